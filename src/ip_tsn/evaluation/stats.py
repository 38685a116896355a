"""Uncertainty of accuracies over test videos: bootstrap confidence intervals
(``scipy.stats.bootstrap``) and paired comparisons of two classifiers on the same videos (paired
bootstrap of the difference of accuracies, McNemar's test from ``statsmodels``).

Every value is in percent (accuracies) or percentage points (differences). Inputs are per-video
correctness vectors: ``correct`` (N,) bool, video ``i`` classified correctly.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

EXACT_BELOW = 25  # McNemar: exact binomial test when fewer discordant pairs than this
BATCH = 1000  # bootstrap resamples evaluated at once (memory: BATCH x N floats)
_RNG_KW = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def _vector(correct: Any) -> np.ndarray:
    """``correct`` as a (N,) float64 0/1 vector."""
    return np.asarray(correct, dtype=bool).reshape(-1).astype(np.float64)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _bootstrap(data: tuple[np.ndarray, ...], statistic, confidence: float, n_resamples: int,
               seed: int, paired: bool = False) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of ``statistic`` over the rows of ``data``."""
    res = stats.bootstrap(data, statistic, paired=paired, vectorized=True,
                          confidence_level=confidence, n_resamples=n_resamples, batch=BATCH,
                          method="percentile", **{_RNG_KW: np.random.default_rng(seed)})
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_ci(values: Any, confidence: float = 0.95, n_resamples: int = 9999,
            seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``values`` (N,) float, in their units: the mean and its
    percentile-bootstrap ``confidence`` interval. With N = 0 (mean 0) or all values equal the
    interval is the point estimate itself."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    mean = float(x.mean()) if len(x) else 0.0
    if len(x) < 2 or np.all(x == x[0]):
        return mean, mean, mean
    low, high = _bootstrap((x,), _mean, confidence, n_resamples, seed)
    return mean, low, high


def accuracy_ci(correct: Any, confidence: float = 0.95, n_resamples: int = 9999,
                seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)`` in percent: the accuracy of ``correct`` (N,) bool and its
    percentile-bootstrap ``confidence`` interval over videos (:func:`mean_ci`); N = 0 gives 0."""
    mean, low, high = mean_ci(_vector(correct), confidence, n_resamples, seed)
    return 100.0 * mean, 100.0 * low, 100.0 * high


def mcnemar_p(a_only: int, b_only: int, both: int = 0, neither: int = 0) -> float:
    """Two-sided McNemar p-value of the discordant counts (``a_only``: videos only A gets right);
    exact binomial below :data:`EXACT_BELOW` discordant pairs, chi-square with continuity
    correction otherwise; 1 without discordant pairs."""
    if a_only + b_only == 0:
        return 1.0
    table = np.array([[both, a_only], [b_only, neither]])
    exact = a_only + b_only < EXACT_BELOW
    return float(mcnemar(table, exact=exact, correction=True).pvalue)


def paired_difference(correct_a: Any, correct_b: Any, confidence: float = 0.95,
                      n_resamples: int = 9999, seed: int = 0) -> dict[str, float | int]:
    """A minus B on the same N videos (``correct_a``, ``correct_b`` (N,) bool, aligned).

    Returns ``{"mean", "low", "high"}`` (percentage points: the accuracy difference and its paired
    percentile-bootstrap interval, videos resampled with both outcomes), ``"mcnemar_p"``,
    ``"n"`` (videos), ``"a_only"`` / ``"b_only"`` (videos only A / only B classifies correctly).
    """
    a, b = _vector(correct_a), _vector(correct_b)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in length: {len(a)} vs {len(b)}")
    a_only, b_only = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
    both, neither = int(np.sum((a == 1) & (b == 1))), int(np.sum((a == 0) & (b == 0)))
    mean = float(a.mean() - b.mean()) if len(a) else 0.0
    d = a - b
    if len(d) < 2 or np.all(d == d[0]):
        low = high = mean
    else:
        low, high = _bootstrap((a, b), _mean_diff, confidence, n_resamples, seed, paired=True)
    return {"mean": 100.0 * mean, "low": 100.0 * low, "high": 100.0 * high,
            "mcnemar_p": mcnemar_p(a_only, b_only, both, neither), "n": int(len(a)),
            "a_only": a_only, "b_only": b_only}


__all__ = ["accuracy_ci", "mcnemar_p", "mean_ci", "paired_difference"]
