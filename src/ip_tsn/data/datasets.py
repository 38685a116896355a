"""Video lists of the synthetic layout and of UCF101, HMDB51 and Kinetics, as ``VideoRecord``s.

Layouts (``root`` is the dataset root; record paths are relative to :func:`video_dir`):

- ``synthetic``: ``<root>/videos/<Class>/<v>.mp4``, ``<root>/splits/classInd.txt`` and
  ``<root>/splits/{train,val,test}list<NN>.txt`` (``Class/v.mp4 <1-based label>``).
- ``ucf101``: ``<root>/UCF-101/<Class>/v_<Class>_gXX_cYY.avi``, ``<root>/ucfTrainTestlist/`` with
  ``classInd.txt``, ``trainlist0N.txt`` (``Class/v.avi 1``) and ``testlist0N.txt`` (no label).
- ``hmdb51``: ``<root>/<class>/<video>.avi``, ``<root>/testTrainMulti_7030_splits/
  <class>_test_splitN.txt`` (``<video>.avi 1|2|0``: train / test / unused); ids = sorted classes.
- ``kinetics``: ``<root>/annotations/{train,validate}.csv`` (official ``label,youtube_id,
  time_start,time_end,split``; also ``val.csv``, ``kinetics_400_val.csv``-style names:
  :func:`~.split_files.find_kinetics_csv`), clips ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` under
  ``<root>/train/`` and ``<root>/val/`` (or ``validate/``), flat or in per-class folders (any
  naming); ``<root>/annotations/classes.txt`` (or ``class_list``) selects and orders the classes
  (default: every class of train.csv, sorted). ``test`` is the official validate split.

Subsets: ``train``, ``val``, ``trainval`` (= official train list) and ``test``. For ucf101 / hmdb51
/ kinetics, ``val`` is carved deterministically (``seed``) from the official train list: a
``val_fraction`` of UCF101's groups ``gXX`` (the same groups for every class, so a group never sits
on both sides), else of each class's videos. ``video_root`` / ``ext`` read re-encoded copies
(same relative paths, e.g. ``.mp4``). Videos listed but absent are skipped with ONE warning giving
their count; duplicate lines are dropped with a warning.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .split_files import (Entry, find_kinetics_csv, read_class_ind, read_class_list, read_hmdb_splits,
                          read_kinetics_csv, read_video_list)

DATASETS = ("synthetic", "ucf101", "hmdb51", "kinetics")
SUBSETS = ("train", "val", "trainval", "test")
LAYOUTS = {
    "synthetic": "<root>/videos/<Class>/<v>.mp4 and <root>/splits/{classInd,trainlist01,vallist01,"
                 "testlist01}.txt",
    "ucf101": "<root>/UCF-101/<Class>/<v>.avi and <root>/ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt",
    "hmdb51": "<root>/<class>/<video>.avi and <root>/testTrainMulti_7030_splits/<class>_test_splitN.txt",
    "kinetics": "<root>/annotations/{train,validate}.csv (label,youtube_id,time_start,time_end,split), "
                "clips <root>/{train,val}/[<class>/]<youtube_id>_<start:06d>_<end:06d>.mp4, optional "
                "<root>/annotations/classes.txt",
}
_VIDEO_DIRS = {"synthetic": "videos", "ucf101": "UCF-101", "hmdb51": "", "kinetics": ""}
_KINETICS_DIRS = {"train": ("train",), "validate": ("val", "validate")}


@dataclass(frozen=True)
class VideoRecord:
    """One video: ``path`` relative to the dataset's video directory ('/'-separated; also the
    sample's ``video_id``), 0-based ``label`` and its ``class_name``."""

    path: str
    label: int
    class_name: str


def _check(dataset: str, subset: str = "train") -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")


def video_dir(dataset: str, root: str | os.PathLike, video_root: str | os.PathLike | None = None) -> Path:
    """The directory record paths are relative to: ``video_root`` if given, else the layout's."""
    _check(dataset)
    return Path(video_root) if video_root is not None else Path(root) / _VIDEO_DIRS[dataset]


def _split_file(root: Path, dataset: str, name: str) -> Path:
    sub = "splits" if dataset == "synthetic" else "ucfTrainTestlist"
    return root / sub / name


def _kinetics_classes(root: Path, class_list: str | os.PathLike | None) -> tuple[list[str], list]:
    rows = read_kinetics_csv(find_kinetics_csv(root / "annotations", "train", LAYOUTS["kinetics"]), LAYOUTS["kinetics"])
    known = {label for label, _, _ in rows}
    chosen = Path(class_list) if class_list is not None else root / "annotations" / "classes.txt"
    if class_list is not None or chosen.is_file():
        return read_class_list(chosen, known), rows
    return sorted(known), rows


def load_classes(dataset: str, root: str | os.PathLike, split: int = 1, *,
                 class_list: str | os.PathLike | None = None) -> list[str]:
    """Class names indexed by 0-based label."""
    _check(dataset)
    root = Path(root)
    if dataset == "hmdb51":
        return read_hmdb_splits(root / "testTrainMulti_7030_splits", split, "train", LAYOUTS[dataset])[0]
    if dataset == "kinetics":
        return _kinetics_classes(root, class_list)[0]
    return read_class_ind(_split_file(root, dataset, "classInd.txt"), LAYOUTS[dataset])


def _kinetics_entries(root: Path, vdir: Path, csv_name: str, classes: list[str], rows: list | None) -> list[Entry]:
    """Kinetics rows of the selected classes; paths found by clip stem (flat or class folders)."""
    if rows is None:
        rows = read_kinetics_csv(find_kinetics_csv(root / "annotations", csv_name, LAYOUTS["kinetics"]),
                                 LAYOUTS["kinetics"])
    dirs = [d for d in _KINETICS_DIRS[csv_name] if (vdir / d).is_dir()] or [_KINETICS_DIRS[csv_name][0]]
    found: dict[str, str] = {}
    for base, _, files in os.walk(vdir / dirs[0]):
        rel = Path(base).relative_to(vdir).as_posix()
        found.update((os.path.splitext(f)[0], f"{rel}/{f}") for f in sorted(files))
    ids = {c: i for i, c in enumerate(classes)}
    return [Entry(found.get(stem, f"{dirs[0]}/{stem}.mp4"), ids[label], label, where)
            for label, stem, where in rows if label in ids]


def _official(dataset: str, root: Path, vdir: Path, split: int, which: str,
              class_list: str | os.PathLike | None) -> list[Entry]:
    """Entries of an official list: ``which`` in {"train", "val", "test"}."""
    layout = LAYOUTS[dataset]
    if dataset == "hmdb51":
        return read_hmdb_splits(root / "testTrainMulti_7030_splits", split, which, layout)[1]
    if dataset == "kinetics":
        classes, rows = _kinetics_classes(root, class_list)
        return _kinetics_entries(root, vdir, "train" if which == "train" else "validate", classes,
                                 rows if which == "train" else None)
    classes = read_class_ind(_split_file(root, dataset, "classInd.txt"), layout)
    return read_video_list(_split_file(root, dataset, f"{which}list{split:02d}.txt"), classes, layout)


def _dedup(entries: list[Entry]) -> list[Entry]:
    """Drop repeated paths (warning once); the same path under two labels raises ValueError."""
    first: dict[str, Entry] = {}
    repeats: list[Entry] = []
    for e in entries:
        prev = first.setdefault(e.path, e)
        if prev is e:
            continue
        if prev.label != e.label:
            raise ValueError(f"{e.where}: {e.path!r} listed as {e.class_name!r} but as {prev.class_name!r} "
                             f"at {prev.where}")
        repeats.append(e)
    if repeats:
        warnings.warn(f"{len(repeats)} duplicate line(s) ignored, the first at {repeats[0].where}", stacklevel=3)
    return list(first.values())


def _stem(path: str) -> str:
    return os.path.splitext(path.rsplit("/", 1)[-1])[0]


def _ucf_group(path: str) -> str:
    m = re.search(r"_g(\d+)_c\d+", path)
    return m.group(1) if m else path


def _pick(keys: list[str], fraction: float, rng: np.random.Generator) -> set[str]:
    """A deterministic random ``fraction`` of ``keys`` (>= 1 and < all when 0 < fraction, 2+ keys)."""
    n = round(fraction * len(keys))
    if fraction > 0 and len(keys) > 1:
        n = min(max(n, 1), len(keys) - 1)
    return {keys[i] for i in rng.permutation(len(keys))[:n]}


def _carve(entries: list[Entry], fraction: float, seed: int, by_group: bool) -> tuple[list[Entry], list[Entry]]:
    """Split an official train list into (train, val)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    if by_group:
        held = _pick(sorted({_ucf_group(e.path) for e in entries}), fraction, rng)
        in_val = [_ucf_group(e.path) in held for e in entries]
    else:  # keyed by file stem: independent of where (or whether) the file was found
        per_class: dict[int, list[str]] = defaultdict(list)
        for e in entries:
            per_class[e.label].append(_stem(e.path))
        held = set().union(*(_pick(sorted(per_class[c]), fraction, rng) for c in sorted(per_class)))
        in_val = [_stem(e.path) in held for e in entries]
    return [e for e, v in zip(entries, in_val) if not v], [e for e, v in zip(entries, in_val) if v]


def load_split(dataset: str, root: str | os.PathLike, split: int = 1, subset: str = "train", *,
               val_fraction: float = 0.1, seed: int = 0, video_root: str | os.PathLike | None = None,
               ext: str | None = None, class_list: str | os.PathLike | None = None) -> list[VideoRecord]:
    """The videos of ``subset`` of split ``split`` (module docstring), missing ones skipped.

    ``ext`` (e.g. ``".mp4"``) replaces each file's extension; ``class_list`` selects Kinetics classes.
    """
    _check(dataset, subset)
    root, vdir = Path(root), video_dir(dataset, root, video_root)
    if dataset == "synthetic":
        parts = ["train", "val"] if subset == "trainval" else [subset]
        entries = _dedup([e for p in parts for e in _official(dataset, root, vdir, split, p, class_list)])
    elif subset == "test":
        entries = _dedup(_official(dataset, root, vdir, split, "test", class_list))
    else:
        entries = _dedup(_official(dataset, root, vdir, split, "train", class_list))
        if subset != "trainval":
            train, val = _carve(entries, val_fraction, seed, by_group=dataset == "ucf101")
            entries = train if subset == "train" else val
    records = [VideoRecord(e.path if ext is None else os.path.splitext(e.path)[0] + ext, e.label, e.class_name)
               for e in entries]
    present = [r for r in records if (vdir / r.path).is_file()]
    if len(present) < len(records):
        absent = next(r.path for r in records if not (vdir / r.path).is_file())
        warnings.warn(f"{dataset} {subset} split {split}: {len(records) - len(present)} of {len(records)} listed "
                      f"videos are missing under {vdir} (e.g. {absent}); skipped", stacklevel=2)
    return present
