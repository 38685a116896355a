"""Bootstrap CIs of accuracy and paired comparisons of two classifiers (real numpy arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from ip_tsn.evaluation.stats import accuracy_ci, mcnemar_p, mean_ci, paired_difference


def test_accuracy_ci_contains_the_estimate_and_narrows_with_n() -> None:
    small = np.array([1] * 7 + [0] * 3, dtype=bool)  # 70%
    large = np.tile(small, 40)  # 70% of 400
    mean, low, high = accuracy_ci(small)
    assert mean == pytest.approx(70.0) and low < 70.0 < high
    mean_l, low_l, high_l = accuracy_ci(large)
    assert mean_l == pytest.approx(70.0) and low_l < 70.0 < high_l
    assert high_l - low_l < (high - low) / 2  # width ~ 1 / sqrt(N): 40x the videos, ~1/6 the width
    assert high_l - low_l == pytest.approx(2 * 1.96 * np.sqrt(0.21 / 400) * 100, rel=0.15)
    assert accuracy_ci(small) == accuracy_ci(small)  # seeded
    assert 0.0 <= low and high <= 100.0


def test_accuracy_ci_degenerate_inputs() -> None:
    assert accuracy_ci(np.zeros(0, bool)) == (0.0, 0.0, 0.0)
    assert accuracy_ci(np.ones(12, bool)) == (100.0, 100.0, 100.0)
    assert accuracy_ci(np.zeros(5, bool)) == (0.0, 0.0, 0.0)
    assert accuracy_ci([True]) == (100.0, 100.0, 100.0)


def test_paired_difference_of_identical_vectors_is_zero() -> None:
    x = np.random.default_rng(0).random(50) < 0.6
    d = paired_difference(x, x)
    assert (d["mean"], d["low"], d["high"], d["mcnemar_p"]) == (0.0, 0.0, 0.0, 1.0)
    assert (d["n"], d["a_only"], d["b_only"]) == (50, 0, 0)


def test_paired_difference_clearly_better_stream() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(200) < 0.5
    a = b.copy()
    a[np.flatnonzero(~b)[:40]] = True  # A also gets 40 of B's misses right; never worse
    d = paired_difference(a, b)
    assert d["mean"] == pytest.approx(20.0) and (d["a_only"], d["b_only"]) == (40, 0)
    assert 0.0 < d["low"] < 20.0 < d["high"]
    assert d["mcnemar_p"] < 1e-6  # chi-square: 40 discordant pairs, all one way
    assert paired_difference(b, a)["mean"] == pytest.approx(-20.0)
    # pairing matters: the unpaired CI of the difference would be far wider
    _, la, ha = accuracy_ci(a)
    assert d["high"] - d["low"] < (ha - la)


def test_mcnemar_exact_and_asymptotic() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 0) == pytest.approx(2 * 0.5 ** 5)  # exact binomial below 25 discordant
    assert mcnemar_p(3, 3) == pytest.approx(1.0)
    # 30 vs 10: chi-square with continuity correction, (|30 - 10| - 1)^2 / 40 = 9.025
    from scipy.stats import chi2
    assert mcnemar_p(30, 10) == pytest.approx(chi2.sf(9.025, 1))


def test_paired_difference_rejects_unaligned() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference(np.ones(3, bool), np.ones(4, bool))


def test_mean_ci_of_per_video_differences() -> None:
    diffs = np.array([1.0, 0.0, 0.5, 0.0, -0.5, 1.0, 0.0, 0.5])  # e.g. mean over runs per video
    mean, low, high = mean_ci(diffs)
    assert mean == pytest.approx(0.3125) and low < mean < high
    assert mean_ci(np.full(4, 0.25)) == (0.25, 0.25, 0.25)
    assert mean_ci([]) == (0.0, 0.0, 0.0)
