"""Video lists of the dataset layouts (``layouts.py``: synthetic, UCF101, HMDB51, Kinetics) as
``VideoRecord``s.

Subsets: ``train``, ``val``, ``trainval`` (= official train list) and ``test``. For ucf101 / hmdb51
/ kinetics, ``val`` is carved deterministically (``seed``) from the official train list: a
``val_fraction`` of UCF101's groups ``gXX`` (the same groups for every class, so a group never sits
on both sides), else of each class's videos. ``video_root`` / ``ext`` read re-encoded copies
(same relative paths, e.g. ``.mp4``). Videos listed but absent are skipped with ONE warning giving
their count; duplicate lines are dropped with a warning. Refused with :class:`SplitError` (one line
on the command line): a train, trainval or test subset that lists no video, a subset none of whose
listed videos is there, and a test (or listed val) video that a training list also holds.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ip_tsn.settings import SetupWarning

from .layouts import LAYOUTS
from .split_files import Entry, SplitError

DATASETS = tuple(LAYOUTS)
SUBSETS = ("train", "val", "trainval", "test")


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
    return Path(video_root) if video_root is not None else Path(root) / LAYOUTS[dataset].video_dir


def load_classes(dataset: str, root: str | os.PathLike, split: int = 1, *,
                 class_list: str | os.PathLike | None = None) -> list[str]:
    """Class names indexed by 0-based label."""
    _check(dataset)
    return LAYOUTS[dataset].classes(Path(root), split, class_list)


def _dedup(entries: list[Entry]) -> list[Entry]:
    """Drop repeated paths (warning once); the same path under two labels raises ValueError."""
    first: dict[str, Entry] = {}
    repeats: list[Entry] = []
    for e in entries:
        prev = first.setdefault(e.path, e)
        if prev is e:
            continue
        if prev.label != e.label:
            raise SplitError(f"{e.where}: {e.path!r} listed as {e.class_name!r} but as {prev.class_name!r} "
                             f"at {prev.where}")
        repeats.append(e)
    if repeats:
        warnings.warn(f"{len(repeats)} duplicate line(s) ignored, the first at {repeats[0].where}", SetupWarning,
                      stacklevel=3)
    return list(first.values())


def _stem(path: str) -> str:
    return os.path.splitext(path.rsplit("/", 1)[-1])[0]


def _pick(keys: list[str], fraction: float, rng: np.random.Generator) -> set[str]:
    """A deterministic random ``fraction`` of ``keys`` (>= 1 and < all when 0 < fraction, 2+ keys)."""
    n = round(fraction * len(keys))
    if fraction > 0 and len(keys) > 1:
        n = min(max(n, 1), len(keys) - 1)
    return {keys[i] for i in rng.permutation(len(keys))[:n]}


def _carve(entries: list[Entry], fraction: float, seed: int,
           group: Callable[[str], str] | None) -> tuple[list[Entry], list[Entry]]:
    """Split an official train list into (train, val)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    if group is not None:
        held = _pick(sorted({group(e.path) for e in entries}), fraction, rng)
        in_val = [group(e.path) in held for e in entries]
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
    root, vdir, layout = Path(root), video_dir(dataset, root, video_root), LAYOUTS[dataset]
    if layout.val_list:
        parts = ["train", "val"] if subset == "trainval" else [subset]
        entries = _dedup([e for p in parts for e in layout.official(root, vdir, split, p, class_list)])
    elif subset == "test":
        entries = _dedup(layout.official(root, vdir, split, "test", class_list))
    else:
        entries = _dedup(layout.official(root, vdir, split, "train", class_list))
        if subset != "trainval":
            train, val = _carve(entries, val_fraction, seed, layout.group)
            entries = train if subset == "train" else val
    where = root / layout.split_dir
    if not entries and subset != "val":  # an empty val is a choice (val_fraction=0); the others are not
        raise SplitError(f"{where}: split {split} lists no {subset} video (expected layout: {layout.description})")
    if subset == "test" or (subset == "val" and layout.val_list):  # the lists it must not share a video with
        seen = ["train", "val"] if subset == "test" and layout.val_list else ["train"]
        _refuse_leaks(entries, subset, [e for w in seen for e in layout.official(root, vdir, split, w, class_list)],
                      where, split)
    records = [VideoRecord(e.path if ext is None else os.path.splitext(e.path)[0] + ext, e.label, e.class_name)
               for e in entries]
    present = [r for r in records if (vdir / r.path).is_file()]
    if len(present) < len(records):
        absent = next(r.path for r in records if not (vdir / r.path).is_file())
        if not present:
            raise SplitError(f"{vdir}: none of the {len(records)} videos listed for {subset} (split {split}) is "
                             f"there (e.g. {absent}); check data.root / data.video_root / data.ext")
        warnings.warn(f"{dataset} {subset} split {split}: {len(records) - len(present)} of {len(records)} listed "
                      f"videos are missing under {vdir} (e.g. {absent}); skipped", SetupWarning, stacklevel=2)
    return present


def _refuse_leaks(entries: list[Entry], subset: str, train: list[Entry], where: Path, split: int) -> None:
    """``SplitError`` when a video of ``subset`` (test, or a listed val) is also in ``train`` (the
    training list, and a listed val for test): its scores would measure memory, not recognition."""
    trained = {e.path for e in train}
    shared = [e for e in entries if e.path in trained]
    if shared:
        raise SplitError(f"{shared[0].where}: {len(shared)} of the {len(entries)} {subset} videos of split {split} "
                         f"are also listed for training or validation (e.g. {shared[0].path}); a {subset} video "
                         f"must not be trained on or chosen with (split files under {where})")


def video_keys(paths: Sequence[str]) -> np.ndarray:
    """(N,) int64: a 64-bit key (BLAKE2b) per video path, its extension left out (a re-encoded copy,
    ``.avi`` -> ``.mp4``, is the same video): what a checkpoint records of the videos it trained on."""
    return np.array([int.from_bytes(hashlib.blake2b(os.path.splitext(p)[0].encode(), digest_size=8).digest(),
                                    "little", signed=True) for p in paths], dtype=np.int64)
