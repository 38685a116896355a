"""Per-video score files of one stream, and aligning streams by video id.

On disk: ``<stream>.npz`` (``np.savez``, no pickles) with ``video_ids`` (N,) unicode,
``scores`` (N, C) float32 softmax probabilities, ``labels`` (N,) int64.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from ip_tsn.atomic import atomic_path


class ScoreTable(NamedTuple):
    """Scores of one stream: ``video_ids`` (N), ``scores`` (N, C), ``labels`` (N,)."""

    video_ids: list[str]
    scores: np.ndarray
    labels: np.ndarray


def save_scores(path: str | os.PathLike, table: ScoreTable) -> None:
    """Write ``table`` to ``path`` (.npz) atomically."""
    scores = np.asarray(table.scores, dtype=np.float32)
    labels = np.asarray(table.labels, dtype=np.int64)
    if not (len(table.video_ids) == len(scores) == len(labels)):
        raise ValueError(f"{path}: video_ids, scores and labels differ in length")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, video_ids=np.array(table.video_ids, dtype=np.str_), scores=scores,
                 labels=labels)


def load_scores(path: str | os.PathLike) -> ScoreTable:
    """Read a score file written by :func:`save_scores`."""
    with np.load(path, allow_pickle=False) as data:
        return ScoreTable([str(v) for v in data["video_ids"]], data["scores"].astype(np.float32),
                          data["labels"].astype(np.int64))


def align_scores(
    tables: Mapping[str, ScoreTable], sources: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Align streams by video id: ``(video_ids (sorted union), {stream: (N, C)}, labels (N,))``.

    Raises ``ValueError`` naming the stream's source (its file, from ``sources``) when a video
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
            raise ValueError(f"{where}: {len(missing)} video(s) missing from stream {name!r}, "
                             f"e.g. {missing[:3]}")
        order = np.array([pos[v] for v in ids], dtype=np.int64)
        aligned[name] = np.asarray(table.scores)[order]
        stream_labels = np.asarray(table.labels)[order]
        if labels is None:
            labels = stream_labels
        elif not np.array_equal(labels, stream_labels):
            raise ValueError(f"{where}: labels of stream {name!r} disagree with other streams")
    return ids, aligned, labels if labels is not None else np.zeros(0, np.int64)


def load_aligned(
    paths: Mapping[str, str | os.PathLike],
) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """:func:`load_scores` every ``{stream: path}`` and :func:`align_scores` them."""
    tables = {name: load_scores(p) for name, p in paths.items()}
    return align_scores(tables, {name: str(p) for name, p in paths.items()})
