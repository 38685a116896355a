"""Parsers for the official split / annotation files. Every error names the file and the line.

An ``Entry`` is one listed video: ``path`` relative to the dataset's video directory ('/'-separated),
0-based ``label``, ``class_name`` and ``where`` (``"file:line"``, for messages). A file that
cannot be used raises :class:`SplitError` (a ``ValueError``), which the command line prints as one line.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path


VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv",
                    ".wmv", ".3gp", ".3g2", ".ogv", ".ts", ".mts", ".m2ts", ".vob", ".asf", ".divx",
                    ".f4v", ".mxf", ".dv", ".qt", ".rm", ".rmvb", ".y4m", ".h264", ".hevc")  # file names taken as videos


class SplitError(ValueError):
    """A split or annotation file that cannot be used (missing, malformed, empty, leaking test
    videos into training); the message starts with the file or folder and says why."""


@dataclass(frozen=True)
class Entry:
    path: str
    label: int
    class_name: str
    where: str


def _text(path: str | os.PathLike) -> str:
    """A split, annotation or class file's text (UTF-8, a byte-order mark dropped, newlines as
    written); :class:`SplitError` naming the file where it is not text (until 2026-12-08 the codec's
    words without the file's name)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise SplitError(f"{path}: not a text file (byte {e.start} is not UTF-8): split, annotation and class "
                         "files are UTF-8 text") from None


def _lines(path: Path, layout: str) -> list[tuple[int, str]]:
    """Non-blank lines of a text file as (1-based line number, stripped text)."""
    if not path.is_file():
        raise SplitError(f"{path}: split file not found; expected layout: {layout}")
    return [(n, line.strip()) for n, line in enumerate(io.StringIO(_text(path), newline=None), 1) if line.strip()]


def read_class_ind(path: Path, layout: str) -> list[str]:
    """``classInd.txt`` (``1 Apply Eye Makeup``, 1-based, in order) -> class names by 0-based id."""
    names: list[str] = []
    for n, line in _lines(path, layout):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitError(f"{path}:{n}: expected '<id> <class name>', got {line!r}")
        if int(parts[0]) != len(names) + 1:
            raise SplitError(f"{path}:{n}: class ids must be 1, 2, 3, ... in order; got {parts[0]} "
                             f"where {len(names) + 1} was expected")
        if parts[1] in names:
            raise SplitError(f"{path}:{n}: class {parts[1]!r} listed twice")
        names.append(parts[1])
    if not names:
        raise SplitError(f"{path}: no classes listed; expected layout: {layout}")
    return names


def read_video_list(path: Path, classes: list[str], layout: str) -> list[Entry]:
    """UCF101-style list: ``Class Name/video.avi 3`` (1-based label) or ``Class Name/video.avi``
    (label from the folder). A label disagreeing with the folder raises :class:`SplitError`."""
    ids = {c: i for i, c in enumerate(classes)}
    entries = []
    for n, line in _lines(path, layout):
        where = f"{path}:{n}"
        parts = line.rsplit(maxsplit=1)
        label = int(parts[1]) if len(parts) == 2 and re.fullmatch(r"-?\d+", parts[1]) else None
        if label is None and len(parts) == 2 and parts[0].lower().endswith(VIDEO_EXTENSIONS):
            raise SplitError(f"{where}: label {parts[1]!r} after {parts[0]!r} is not a number (expected "
                             f"'<Class>/<video> [1-based label]')")
        video = (parts[0] if label is not None else line).replace("\\", "/").strip("/")
        folder = video.split("/")[0] if "/" in video else None
        if label is not None and not 1 <= label <= len(classes):
            raise SplitError(f"{where}: label {label} is outside 1..{len(classes)} (the classes of classInd.txt)")
        if folder is not None and folder not in ids:
            raise SplitError(f"{where}: class folder {folder!r} is not in classInd.txt")
        if folder is None and label is None:
            raise SplitError(f"{where}: expected '<Class>/<video> [label]', got {line!r}")
        if label is not None and folder is not None and classes[label - 1] != folder:
            raise SplitError(f"{where}: label {label} is {classes[label - 1]!r} in classInd.txt but the "
                             f"video is in folder {folder!r}")
        cls = folder if folder is not None else classes[label - 1]  # type: ignore[index]
        path_ = video if folder is not None else f"{cls}/{video}"
        entries.append(Entry(path_, ids[cls], cls, where))
    return entries


HMDB_SUBSET_ID = {"train": 1, "test": 2}


def read_hmdb_splits(split_dir: Path, split: int, subset: str, layout: str) -> tuple[list[str], list[Entry]]:
    """HMDB51 ``<class>_test_split<N>.txt`` files (``video.avi 1|2|0``: train / test / unused) ->
    (class names sorted, entries of ``subset`` in {"train", "test"})."""
    suffix = f"_test_split{split}.txt"
    files = sorted(split_dir.glob(f"*{suffix}")) if split_dir.is_dir() else []
    if not files:
        raise SplitError(f"{split_dir}: no '*{suffix}' split files found; expected layout: {layout}")
    classes = [f.name[: -len(suffix)] for f in files]
    want = HMDB_SUBSET_ID[subset]
    entries = []
    for label, (cls, f) in enumerate(zip(classes, files)):
        for n, line in _lines(f, layout):
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise SplitError(f"{f}:{n}: expected '<video>.avi <0|1|2>', got {line!r}")
            if int(parts[1]) == want:
                entries.append(Entry(f"{cls}/{parts[0]}", label, cls, f"{f}:{n}"))
    return classes, entries


KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
# the subset words of an annotation file's name: train.csv, val.csv (CVDF), validate.csv (official),
# kinetics_400_val.csv, kinetics400_validate.csv, k700-2020_val.csv, ...
KINETICS_SUBSET_WORDS = {"train": ("train",), "validate": ("validate", "val", "validation"), "test": ("test",)}


def find_kinetics_csv(folder: Path, which: str, layout: str) -> Path:
    """The annotation CSV of ``which`` (``train``, ``validate``, ``test``) in ``folder``:
    ``<which>.csv``, else the one file named ``<word>.csv`` or ``<prefix>[_-]<word>.csv`` (any case)
    for a word of ``KINETICS_SUBSET_WORDS``. None found or several: :class:`SplitError` naming them."""
    words = KINETICS_SUBSET_WORDS[which]
    exact = [folder / f"{w}.csv" for w in words if (folder / f"{w}.csv").is_file()]
    if exact:
        return exact[0]
    pattern = re.compile(rf"^(?:.*[_-])?(?:{'|'.join(words)})\.csv$", re.IGNORECASE)
    found = sorted(f for f in folder.iterdir() if f.is_file() and pattern.match(f.name)) if folder.is_dir() else []
    if len(found) > 1:
        raise SplitError(f"{folder}: several {which} annotation files ({', '.join(f.name for f in found)}); "
                         f"keep one, or name it {which}.csv")
    if not found:
        names, example = ", ".join(f"{w}.csv" for w in words), "val" if which == "validate" else which
        raise SplitError(f"{folder / (which + '.csv')}: annotation file not found (also looked for {names} and "
                         f"kinetics_400_{example}.csv-style names); expected layout: {layout}")
    return found[0]



def read_kinetics_csv(path: Path, layout: str) -> list[tuple[str, str, str]]:
    """Official Kinetics CSV (``label,youtube_id,time_start,time_end,split[,is_cc]``) ->
    (label, clip stem ``<youtube_id>_<start:06d>_<end:06d>``, "file:line") per row."""
    if not path.is_file():
        raise SplitError(f"{path}: annotation file not found; expected layout: {layout}")
    rows = []
    with io.StringIO(_text(path), newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in KINETICS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SplitError(f"{path}:1: header lacks columns {missing}; expected {','.join(KINETICS_COLUMNS)},split")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            try:
                start, end = int(float(row["time_start"])), int(float(row["time_end"]))
            except (TypeError, ValueError):
                raise SplitError(f"{where}: time_start / time_end must be numbers, got "
                                 f"{row['time_start']!r}, {row['time_end']!r}") from None
            rows.append((row["label"].strip(), f"{row['youtube_id']}_{start:06d}_{end:06d}", where))
    return rows


def read_class_list(path: Path, known: set[str]) -> list[str]:
    """A class-list file (one class name per line, order = label id; ``#`` comments) whose every
    class must be in ``known``."""
    names: list[str] = []
    for n, line in _lines(path, "one class name per line"):
        if line.startswith("#"):
            continue
        if line not in known:
            raise SplitError(f"{path}:{n}: class {line!r} does not occur in the training annotations")
        if line in names:
            raise SplitError(f"{path}:{n}: class {line!r} listed twice")
        names.append(line)
    return names


def read_class_file(path: str | os.PathLike) -> list[str]:
    """Class names from ``classInd.txt`` (``1 Name``) or a file with one name per line."""
    if not os.path.isfile(path):
        raise SplitError(f"{path}: class file not found (classInd.txt, or one class name per line)")
    lines = [ln.strip() for ln in io.StringIO(_text(path), newline=None) if ln.strip()]
    numbered = all(ln.split(maxsplit=1)[0].isdigit() and " " in ln for ln in lines)
    return [ln.split(maxsplit=1)[1] for ln in lines] if numbered and lines else lines
