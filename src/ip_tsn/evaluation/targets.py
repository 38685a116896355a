"""What the distilled student imitates: the teacher's targets per cached row, measured (plain numpy).

The teacher cache holds the flow teacher's logits at every P-frame position of every train / val
video, in every training view. Memorised targets (a teacher that fits its own training videos) are
close to the labels and teach nothing beyond them, so the cache stage reports the teacher's top-1
and mean entropy on the rows the student imitates (train) beside the same on val rows. Where the
data records when each video's action happens (the synthetic data's ``actions.json``: ``{video_id:
[o, o + A]}``, the motion from frame t to t + 1 being the action iff ``o <= t < o + A``), it also
reports the teacher's entropy on *idle* rows (flow stacks with no active flow) and the share of TSN
training draws of K segments in which no segment carries the action (label noise that labels alone
cannot remove): two of the pre-registered data checks of version 7.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def entropy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Entropy in nats of ``softmax(logits / T)``: (N, C) -> (N,)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(np.exp(logp) * logp).sum(axis=1)


def active_flow_stacks(ends: np.ndarray, window: Sequence[int], flow_length: int) -> np.ndarray:
    """(G,) bool: the flow stack ending at each frame of ``ends`` (G,) (flows ``t - L .. t - 1``,
    those before flow 0 padded with flow 0) holds an active flow (``o <= f < o + A``)."""
    o, end = int(window[0]), int(window[1])
    ends = np.asarray(ends, dtype=np.int64)
    first = np.maximum(ends - flow_length, 0)
    return (ends - 1 >= o) & (first <= end - 1)


def active_p_positions(positions: np.ndarray, window: Sequence[int], gop_starts: Sequence[int]) -> np.ndarray:
    """(G,) bool: the accumulated motion of each P-frame t (from its GOP's I-frame g up to t: the
    motions of frames g .. t - 1) holds an active motion (``t >= o + 1`` and ``g <= o + A - 1``)."""
    o, end = int(window[0]), int(window[1])
    t = np.asarray(positions, dtype=np.int64)
    starts = np.sort(np.asarray(gop_starts, dtype=np.int64))
    g = starts[np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)]
    return (t >= o + 1) & (g <= end - 1)


def no_active_probability(active: np.ndarray, num_segments: int) -> float:
    """Probability that a TSN training draw (``sampling.segment_indices``: the G positions split in
    order into K equal segments, one uniform draw in each) picks no active position: (G,) bool ->
    float."""
    active = np.asarray(active, dtype=bool)
    n = len(active)
    k = np.arange(num_segments)
    lo = k * n // num_segments
    hi = np.maximum((k + 1) * n // num_segments, lo + 1)
    p = 1.0
    for a, b in zip(lo, hi):
        p *= 1.0 - float(active[a:b].mean())
    return p


def target_stats(rows: Mapping[str, Mapping[str, Any]], num_classes: int, temperature: float = 2.0,
                 windows: Mapping[str, Sequence[int]] | None = None, flow_length: int = 5,
                 gop_starts: Mapping[str, Sequence[int]] | None = None, num_segments: int = 3) -> dict[str, Any]:
    """The teacher's targets per subset.

    ``rows``: ``{video_id: {"subset": "train" | "val", "label": int, "frames": (G,) int64,
    "logits": (G * V, C)}}`` (position-major, V views per position). Returns ``{subset: {"videos",
    "rows", "top1" (%), "entropy" (nats, T = 1), "entropy_T" (at ``temperature``), "max_entropy"
    (ln C)[, "idle_rows", "idle_entropy", "idle_entropy_ratio" (idle entropy / ln C), "idle_top1",
    "active_top1", "no_active_pct" (train: % of K-segment draws with no active segment)]}}``;
    the idle keys only where ``windows`` (and, for ``no_active_pct``, ``gop_starts``) are given.
    """
    out: dict[str, Any] = {}
    by_subset: dict[str, list[str]] = {}
    for vid, r in rows.items():
        by_subset.setdefault(str(r["subset"]), []).append(vid)
    for subset, vids in sorted(by_subset.items()):
        logits, correct, idle, no_active = [], [], [], []
        for vid in vids:
            r = rows[vid]
            lg = np.asarray(r["logits"], dtype=np.float64)
            frames = np.asarray(r["frames"], dtype=np.int64)
            views = len(lg) // max(len(frames), 1)
            logits.append(lg)
            correct.append(lg.argmax(axis=1) == int(r["label"]))
            if windows is not None and vid in windows:
                idle.append(np.repeat(~active_flow_stacks(frames, windows[vid], flow_length), views))
                if gop_starts is not None and vid in gop_starts:
                    act = active_p_positions(frames, windows[vid], gop_starts[vid])
                    no_active.append(no_active_probability(act, num_segments))
        lg_all = np.concatenate(logits)
        ok = np.concatenate(correct)
        ent = entropy(lg_all)
        stats: dict[str, Any] = {"videos": len(vids), "rows": int(len(lg_all)), "top1": 100.0 * float(ok.mean()),
                                 "entropy": float(ent.mean()), "entropy_T": float(entropy(lg_all, temperature).mean()),
                                 "temperature": temperature, "max_entropy": float(np.log(num_classes))}
        if idle and len(idle) == len(vids):
            mask = np.concatenate(idle)
            stats["idle_rows"] = int(mask.sum())
            if mask.any():
                stats["idle_entropy"] = float(ent[mask].mean())
                stats["idle_entropy_ratio"] = stats["idle_entropy"] / float(np.log(num_classes))
                stats["idle_top1"] = 100.0 * float(ok[mask].mean())
            if (~mask).any():
                stats["active_top1"] = 100.0 * float(ok[~mask].mean())
        if no_active and len(no_active) == len(vids):
            stats["no_active_pct"] = 100.0 * float(np.mean(no_active))
        out[subset] = stats
    return out
