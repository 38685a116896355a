"""Per-video score files of one stream, and aligning streams by video id.

On disk: ``<stream>.npz`` (``np.savez``, no pickles) with ``video_ids`` (N,) unicode,
``scores`` (N, C) float32 softmax probabilities, ``labels`` (N,) int64 and, where known,
``checkpoint`` () unicode: the checkpoint that scored them, relative to the run folder when it lies
inside it (``checkpoints/best.ckpt``), absolute otherwise, and ``checkpoint_sha256`` () unicode,
its bytes' hash then (so a checkpoint a new training wrote since is told apart), and ``protocol`` ()
unicode, the test protocol they were scored under (JSON: ``test_segments``, ``test_crops``, ...;
:func:`protocol_text`). A file that cannot
be read or streams that cannot be aligned raise :class:`ScoresError` (one line on the command line).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ip_tsn.atomic import atomic_path
from ip_tsn.settings import differences


class ScoresError(ValueError):
    """A score file that cannot be read (empty, truncated, not written by :func:`save_scores`), or
    streams whose scores cover different videos or labels; the message starts with the file."""


class ScoreTable(NamedTuple):
    """Scores of one stream: ``video_ids`` (N), ``scores`` (N, C), ``labels`` (N,), and the
    ``checkpoint`` that scored them, its ``checkpoint_sha256`` and the test ``protocol`` (JSON text;
    None: not recorded)."""

    video_ids: list[str]
    scores: np.ndarray
    labels: np.ndarray
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    protocol: str | None = None


NAMED = ("checkpoint", "checkpoint_sha256", "protocol")  # what a score file says of how it was made


def protocol_text(settings: Mapping) -> str:
    """A test protocol (settings that change a checkpoint's test scores) as a score file records it."""
    return json.dumps(dict(settings), sort_keys=True)


def protocol_difference(recorded: str, asked: str, first: str = "there", second: str = "asked") -> str:
    """``"test_segments: 5 there, 3 asked; ..."``: the settings two protocols (:func:`protocol_text`) differ in."""
    return differences(json.loads(recorded), json.loads(asked), first, second)


def save_scores(path: str | os.PathLike, table: ScoreTable) -> None:
    """Write ``table`` to ``path`` (.npz) atomically."""
    scores = np.asarray(table.scores, dtype=np.float32)
    labels = np.asarray(table.labels, dtype=np.int64)
    if not (len(table.video_ids) == len(scores) == len(labels)):
        raise ValueError(f"{path}: video_ids, scores and labels differ in length")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        named = {key: getattr(table, key) for key in NAMED}
        extra = {key: np.array(value, dtype=np.str_) for key, value in named.items() if value is not None}
        np.savez(f, video_ids=np.array(table.video_ids, dtype=np.str_), scores=scores, labels=labels, **extra)


def checkpoint_name(checkpoint: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """How a score file names the checkpoint that scored it: relative to ``run_dir`` when it lies
    inside it (the run folder may move), else its absolute path; symlinks resolved."""
    path, root = Path(os.path.realpath(checkpoint)), Path(os.path.realpath(run_dir))
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def load_scores(path: str | os.PathLike) -> ScoreTable:
    """Read a score file written by :func:`save_scores`; :class:`ScoresError` naming it otherwise."""
    if not os.path.isfile(path):
        raise ScoresError(f"{path}: no such score file; write it with `ip-tsn test`")
    try:
        with np.load(path, allow_pickle=False) as data:
            named = [str(data[key]) if key in data.files else None for key in NAMED]
            table = ScoreTable([str(v) for v in data["video_ids"]], data["scores"].astype(np.float32),
                               data["labels"].astype(np.int64), *named)
    except KeyError:
        raise ScoresError(f"{path}: not a score file (it lacks video_ids, scores or labels); write it with "
                          "`ip-tsn test`") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        why = "empty file" if os.path.getsize(path) == 0 else (str(e).splitlines() or [type(e).__name__])[0]
        raise ScoresError(f"{path}: not a readable score file ({why}); write it again with `ip-tsn test`") from None
    if not (len(table.video_ids) == len(table.scores) == len(table.labels)) or table.scores.ndim != 2:
        raise ScoresError(f"{path}: video_ids, scores and labels do not match in shape; write it again with "
                          "`ip-tsn test`")
    return table


def align_scores(
    tables: Mapping[str, ScoreTable], sources: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Align streams by video id: ``(video_ids (sorted union), {stream: (N, C)}, labels (N,))``.

    Raises :class:`ScoresError` naming the stream's source (its file, from ``sources``) when a video
    is missing from it or its labels disagree with the first stream's.
    """
    sources = dict(sources or {})
    ids = sorted({v for t in tables.values() for v in t.video_ids})
    aligned: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    for name, table in tables.items():
        where = sources.get(name, name)
        pos = {v: i for i, v in enumerate(table.video_ids)}
        missing = [v for v in ids if v not in pos]
        if missing:
            raise ScoresError(f"{where}: {len(missing)} video(s) missing from stream {name!r}, e.g. "
                              f"{missing[:3]}: the streams were scored on different video lists; score them "
                              "again with `ip-tsn test` on the same data")
        order = np.array([pos[v] for v in ids], dtype=np.int64)
        aligned[name] = np.asarray(table.scores)[order]
        stream_labels = np.asarray(table.labels)[order]
        if labels is None:
            labels = stream_labels
        elif not np.array_equal(labels, stream_labels):
            raise ScoresError(f"{where}: labels of stream {name!r} disagree with other streams (another "
                              "class list?); score them again with `ip-tsn test` on the same data")
    return ids, aligned, labels if labels is not None else np.zeros(0, np.int64)


def load_aligned(
    paths: Mapping[str, str | os.PathLike],
) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """:func:`load_scores` every ``{stream: path}`` and :func:`align_scores` them."""
    tables = {name: load_scores(p) for name, p in paths.items()}
    return align_scores(tables, {name: str(p) for name, p in paths.items()})
