"""Late fusion of per-video stream scores: weighted sums, weight search, evaluation.

Plain numpy: scores may also be ``torch.Tensor`` s (converted with ``.detach().cpu().numpy()``),
but torch is never imported here."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    import torch

ArrayLike = Union[np.ndarray, "torch.Tensor"]
DEFAULT_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def _np(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch.Tensor, converted without importing torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def fuse_scores(scores: Mapping[str, ArrayLike], weights: Mapping[str, float]) -> np.ndarray:
    """``sum_s weights[s] * scores[s]`` over the streams in ``weights``: (N, C) float64."""
    missing = [s for s in weights if s not in scores]
    if missing:
        raise KeyError(f"no scores for stream(s) {missing}; have {sorted(scores)}")
    return sum(float(w) * _np(scores[s]).astype(np.float64) for s, w in weights.items())


def fuse_probabilities(scores: Mapping[str, ArrayLike], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean ``sum_s w_s p_s / sum_s w_s`` of the streams' class probabilities (same
    shapes, (C,) or (N, C)): :func:`fuse_scores` on the probability scale, what ``ip-tsn predict``
    reports. float64."""
    total = sum(float(w) for w in weights.values())
    if total <= 0:
        raise ValueError(f"fusion weights must sum to a positive value, got {dict(weights)}")
    return fuse_scores(scores, weights) / total


def topk_accuracy(scores: ArrayLike, labels: ArrayLike, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores. scores (N, C)."""
    scores, labels = _np(scores), _np(labels)
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1))) if len(labels) else 0.0


def mean_class_accuracy(scores: ArrayLike, labels: ArrayLike) -> float:
    """Mean over classes present in ``labels`` of per-class top-1 recall."""
    pred, labels = _np(scores).argmax(axis=1), _np(labels)
    recalls = [np.mean(pred[labels == c] == c) for c in np.unique(labels)]
    return float(np.mean(recalls)) if recalls else 0.0


def evaluate(scores: ArrayLike, labels: ArrayLike,
             class_names: Sequence[str] | None = None) -> dict[str, float]:
    """``{"top1", "top5", "mean_class_acc"}`` (fractions in [0, 1]); top-5 uses
    ``min(5, C)`` with C = ``len(class_names)`` when given, else the score width."""
    num_classes = len(class_names) if class_names else _np(scores).shape[1]
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, min(5, num_classes)),
        "mean_class_acc": mean_class_accuracy(scores, labels),
    }


def equal_weights(streams: Sequence[str]) -> dict[str, float]:
    """Fixed 1:1 fusion: weight 1 for every stream of ``streams``."""
    return {s: 1.0 for s in streams}


def fuse_equal(scores: Mapping[str, ArrayLike], streams: Sequence[str]) -> np.ndarray:
    """The plain sum of the ``streams`` scores: :func:`fuse_scores` with :func:`equal_weights`,
    (N, C) float64."""
    return fuse_scores(scores, equal_weights(streams))


def distance_to_uniform(weights: Sequence[float]) -> float:
    """L1 distance of ``weights`` (S,), normalised to sum 1, to the uniform ``1 / S`` (0 for
    equal weights, up to ``2 - 2 / S`` for one stream alone); rounded to 12 decimals so equal
    ratios (1:1 and 2:2) tie exactly; infinite when the weights do not sum to a positive value."""
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        return float("inf")
    return round(float(np.abs(w / w.sum() - 1.0 / len(w)).sum()), 12)


def search_fusion_weights(
    val_scores: Mapping[str, ArrayLike],
    val_labels: ArrayLike,
    streams: Sequence[str],
    grid: Sequence[float] = DEFAULT_GRID,
) -> dict[str, float]:
    """Grid search of one weight per stream maximising validation top-1.

    Ties go to the higher mean-class accuracy, then to the weights closest to equal
    (:func:`distance_to_uniform`), then to the first candidate in enumeration order (grid sorted
    ascending, ``itertools.product`` over ``streams``), which is deterministic. All-zero
    candidates are skipped.
    """
    grid = sorted(set(float(g) for g in grid))
    best: tuple[float, float, float] | None = None
    best_weights: dict[str, float] = {}
    for combo in itertools.product(grid, repeat=len(streams)):
        if not any(combo):
            continue
        weights = dict(zip(streams, combo))
        fused = fuse_scores(val_scores, weights)
        key = (topk_accuracy(fused, val_labels, 1), mean_class_accuracy(fused, val_labels),
               -distance_to_uniform(combo))
        if best is None or key > best:
            best, best_weights = key, weights
    if best is None:
        raise ValueError("grid has no non-zero weight")
    return best_weights


def evaluate_streams(
    scores: Mapping[str, ArrayLike], labels: ArrayLike, weights: Mapping[str, float],
    class_names: Sequence[str] | None = None,
) -> tuple[dict[str, dict[str, Any]], np.ndarray]:
    """Evaluate every stream and their fusion with ``weights``.

    Returns ``({stream: metrics, ..., "fusion": metrics}, fused scores (N, C))``.
    """
    results: dict[str, dict[str, Any]] = {s: evaluate(v, labels, class_names)
                                          for s, v in scores.items()}
    fused = fuse_scores(scores, weights)
    results["fusion"] = evaluate(fused, labels, class_names)
    return results, fused


def correct_of(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) bool: the top-1 class of ``scores`` (N, C) is ``labels`` (N,)."""
    return np.asarray(scores).argmax(axis=1) == np.asarray(labels)
