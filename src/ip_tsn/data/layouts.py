"""One description per dataset layout on disk (:class:`Layout`): its folders, its split files and
their parser, its class rule, how its validation set is carved, the official splits. Read by
:mod:`ip_tsn.data.datasets` (the records) and ``data_prep/prepare_dataset.py`` (what to copy and
re-encode). A new layout is one :class:`Layout` entry in :data:`LAYOUTS` (and, when its split files
are of a new kind, their parser in ``split_files.py``).

Layouts (``root`` is the dataset root; record paths are relative to the layout's video folder):

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
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .split_files import (Entry, find_kinetics_csv, read_class_ind, read_class_list, read_hmdb_splits,
                          read_kinetics_csv, read_video_list)


@dataclass(frozen=True)
class Layout:
    """A dataset layout: ``description`` (shown in errors), ``video_dir`` and ``split_dir``
    (relative to the root), the official ``splits``; ``classes(root, split, class_list)`` -> names
    by 0-based label; ``official(root, video_dir, split, which, class_list)`` -> the entries of an
    official list (``which``: train, val, test); ``val_list``: the layout lists its own val set
    (else val is carved from train); ``group``: the key that keeps related videos on one side of
    the carved val split (None: per-class by file stem); ``downloaded``: prepared from a download by
    ``data_prep/prepare_dataset.py``."""

    name: str
    description: str
    video_dir: str
    split_dir: str
    splits: tuple[int, ...]
    classes: Callable[[Path, int, "str | os.PathLike | None"], list[str]]
    official: Callable[[Path, Path, int, str, "str | os.PathLike | None"], list[Entry]]
    val_list: bool = False
    group: Callable[[str], str] | None = None
    downloaded: bool = True  # false: made here (synthetic), not prepared from a download


# --------------------------------------------------------------- classInd + lists (synthetic, UCF101)
def _list_layout(name: str, description: str, video_dir: str, split_dir: str, splits: tuple[int, ...],
                 val_list: bool, group: Callable[[str], str] | None, downloaded: bool = True) -> Layout:
    def classes(root: Path, split: int, class_list: str | os.PathLike | None) -> list[str]:
        return read_class_ind(root / split_dir / "classInd.txt", description)

    def official(root: Path, vdir: Path, split: int, which: str, class_list: str | os.PathLike | None) -> list[Entry]:
        names = classes(root, split, class_list)
        return read_video_list(root / split_dir / f"{which}list{split:02d}.txt", names, description)

    return Layout(name, description, video_dir, split_dir, splits, classes, official, val_list, group, downloaded)


def _ucf_group(path: str) -> str:
    m = re.search(r"_g(\d+)_c\d+", path)
    return m.group(1) if m else path


# ------------------------------------------------------------------------------------------- HMDB51
_HMDB = "<root>/<class>/<video>.avi and <root>/testTrainMulti_7030_splits/<class>_test_splitN.txt"


def _hmdb_classes(root: Path, split: int, class_list: str | os.PathLike | None) -> list[str]:
    return read_hmdb_splits(root / "testTrainMulti_7030_splits", split, "train", _HMDB)[0]


def _hmdb_official(root: Path, vdir: Path, split: int, which: str, class_list: str | os.PathLike | None) -> list[Entry]:
    return read_hmdb_splits(root / "testTrainMulti_7030_splits", split, which, _HMDB)[1]


# ----------------------------------------------------------------------------------------- Kinetics
_KINETICS = ("<root>/annotations/{train,validate}.csv (label,youtube_id,time_start,time_end,split), "
             "clips <root>/{train,val}/[<class>/]<youtube_id>_<start:06d>_<end:06d>.mp4, optional "
             "<root>/annotations/classes.txt")
_KINETICS_DIRS = {"train": ("train",), "validate": ("val", "validate")}


def _kinetics_rows(root: Path, csv_name: str) -> list:
    return read_kinetics_csv(find_kinetics_csv(root / "annotations", csv_name, _KINETICS), _KINETICS)


def _kinetics_classes(root: Path, split: int, class_list: str | os.PathLike | None,
                      train_rows: list | None = None) -> list[str]:
    """The selected classes (``classes.txt`` or ``class_list``; default every class of train.csv);
    ``train_rows``: train.csv's rows when the caller has read them already."""
    rows = train_rows if train_rows is not None else _kinetics_rows(root, "train")
    known = {label for label, _, _ in rows}
    chosen = Path(class_list) if class_list is not None else root / "annotations" / "classes.txt"
    if class_list is not None or chosen.is_file():
        return read_class_list(chosen, known)
    return sorted(known)


def _kinetics_official(root: Path, vdir: Path, split: int, which: str,
                       class_list: str | os.PathLike | None) -> list[Entry]:
    """Kinetics rows of the selected classes; paths found by clip stem (flat or class folders)."""
    csv_name = "train" if which == "train" else "validate"
    rows = _kinetics_rows(root, csv_name)  # train.csv read once: it also gives the classes
    classes = _kinetics_classes(root, split, class_list, rows if csv_name == "train" else None)
    dirs = [d for d in _KINETICS_DIRS[csv_name] if (vdir / d).is_dir()] or [_KINETICS_DIRS[csv_name][0]]
    found: dict[str, str] = {}
    for base, _, files in os.walk(vdir / dirs[0]):
        rel = Path(base).relative_to(vdir).as_posix()
        found.update((os.path.splitext(f)[0], f"{rel}/{f}") for f in sorted(files))
    ids = {c: i for i, c in enumerate(classes)}
    return [Entry(found.get(stem, f"{dirs[0]}/{stem}.mp4"), ids[label], label, where)
            for label, stem, where in rows if label in ids]


LAYOUTS: dict[str, Layout] = {
    "synthetic": _list_layout("synthetic", "<root>/videos/<Class>/<v>.mp4 and <root>/splits/{classInd,trainlist01,"
                              "vallist01,testlist01}.txt", "videos", "splits", (1,), val_list=True, group=None, downloaded=False),
    "ucf101": _list_layout("ucf101", "<root>/UCF-101/<Class>/<v>.avi and <root>/ucfTrainTestlist/{classInd,"
                           "trainlist0N,testlist0N}.txt", "UCF-101", "ucfTrainTestlist", (1, 2, 3), val_list=False,
                           group=_ucf_group),
    "hmdb51": Layout("hmdb51", _HMDB, "", "testTrainMulti_7030_splits", (1, 2, 3), _hmdb_classes, _hmdb_official),
    "kinetics": Layout("kinetics", _KINETICS, "", "annotations", (1,), _kinetics_classes, _kinetics_official),
}
