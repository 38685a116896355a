"""The teacher-target report (issue 19): active rows, no-active draws, entropies, on real cached logits' shapes."""

from __future__ import annotations

import numpy as np

from ip_tsn.data.sampling import segment_indices
from ip_tsn.evaluation.targets import (active_flow_stacks, active_p_positions, entropy, no_active_probability,
                                       target_stats)


def test_entropy_of_uniform_and_one_hot():
    assert np.allclose(entropy(np.zeros((2, 12))), np.log(12))
    assert entropy(np.array([[100.0, 0, 0]]))[0] < 1e-6
    assert entropy(np.array([[2.0, 0, 0]]), temperature=2.0)[0] > entropy(np.array([[2.0, 0, 0]]))[0]


def test_active_rows_follow_the_window():
    ends = np.arange(1, 48)
    act = active_flow_stacks(ends, (20, 30), 5)  # flows 20..29 active; stack of t = flows t-5..t-1
    assert act.tolist() == [(t - 1 >= 20) and (t - 5 <= 29) for t in ends]
    assert not act[ends == 20][0] and act[ends == 21][0] and act[ends == 34][0] and not act[ends == 35][0]
    assert active_flow_stacks(np.array([1, 2]), (0, 10), 5).all()  # padded stacks hold flow 0
    pos = np.array([t for t in range(48) if t % 12])
    p = active_p_positions(pos, (20, 30), [0, 12, 24, 36])
    # accumulated from the GOP's I-frame: 21..35 (GOPs 12 and 24 hold the motion), not 37..47
    assert pos[p].tolist() == [t for t in pos if t >= 21 and (t // 12) * 12 <= 29]


def test_no_active_probability_matches_tsn_draws():
    rng = np.random.default_rng(0)
    pos = np.array([t for t in range(48) if t % 12])
    act = active_p_positions(pos, (14, 24), [0, 12, 24, 36])
    exact = no_active_probability(act, 3)
    draws = [not act[np.searchsorted(pos, segment_indices(48, 3, True, rng, np.isin(np.arange(48), pos)))].any()
             for _ in range(20000)]
    assert 0.05 < exact < 0.95
    assert abs(np.mean(draws) - exact) < 0.015
    assert no_active_probability(np.ones(10, bool), 3) == 0.0


def test_target_stats_per_subset_and_idle_rows():
    frames = np.arange(1, 11)
    views = 2
    confident = np.zeros((10 * views, 4))
    confident[:, 1] = 20.0  # always class 1
    rows = {"a": {"subset": "train", "label": 1, "frames": frames, "logits": confident},
            "b": {"subset": "val", "label": 2, "frames": frames, "logits": np.zeros((10 * views, 4))}}
    windows = {"a": [5, 8], "b": [5, 8]}
    st = target_stats(rows, 4, 2.0, windows, 5, {"a": [0], "b": [0]}, 3)
    assert st["train"]["top1"] == 100.0 and st["train"]["entropy"] < 1e-3
    assert st["val"]["top1"] == 0.0 and np.isclose(st["val"]["entropy"], np.log(4))
    idle = ~active_flow_stacks(frames, (5, 8), 5)
    assert st["val"]["idle_rows"] == views * idle.sum() and np.isclose(st["val"]["idle_entropy_ratio"], 1.0)
    assert 0.0 <= st["train"]["no_active_pct"] <= 100.0
    assert "idle_entropy" not in target_stats({"a": rows["a"]}, 4)["train"]
