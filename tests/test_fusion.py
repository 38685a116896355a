"""Late fusion: score files, alignment, weight search, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ip_tsn.lit import (ScoreTable, evaluate, fuse_scores, load_aligned, load_scores,
                        run_fusion, save_scores, search_fusion_weights, write_report)

CLASSES = ["a", "b", "c"]


def onehot_scores(preds: list[int], num_classes: int = 3) -> np.ndarray:
    scores = np.full((len(preds), num_classes), 0.1, np.float32)
    scores[np.arange(len(preds)), preds] = 0.8
    return scores


def test_fuse_scores_weighted_sum() -> None:
    a, b = np.eye(3), torch.ones(3, 3)
    fused = fuse_scores({"I": a, "P": b}, {"I": 2.0, "P": 0.5})
    np.testing.assert_allclose(fused, 2 * np.eye(3) + 0.5)
    with pytest.raises(KeyError, match="R"):
        fuse_scores({"I": a}, {"R": 1.0})


def test_weight_search_picks_better_stream() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    good = onehot_scores([0, 1, 2, 0, 1, 2, 0, 0])  # 7 / 8 correct
    bad = onehot_scores([1, 2, 0, 1, 2, 0, 1, 1])  # 0 / 8 correct
    weights = search_fusion_weights({"good": good, "bad": bad}, labels, ["bad", "good"],
                                    grid=[0.0, 1.0, 2.0])
    assert weights == {"bad": 0.0, "good": 1.0}  # ties (0, 2) resolve to the first candidate
    assert search_fusion_weights({"good": good, "bad": bad}, labels, ["bad", "good"],
                                 grid=[2.0, 1.0, 0.0]) == weights


def test_evaluate_numbers() -> None:
    labels = np.array([0, 0, 1, 2])
    scores = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2]])
    res = evaluate(scores, labels, CLASSES)
    assert res["top1"] == 0.5  # rows 0, 2 correct
    assert res["top5"] == 1.0  # top-3 of 3 classes
    assert res["mean_class_acc"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_score_files_roundtrip_and_misaligned(tmp_path: Path) -> None:
    table = ScoreTable(["v/2.mp4", "v/1.mp4"], onehot_scores([1, 0]), np.array([1, 0]))
    save_scores(tmp_path / "i.npz", table)
    loaded = load_scores(tmp_path / "i.npz")
    assert loaded.video_ids == table.video_ids
    np.testing.assert_array_equal(loaded.scores, table.scores)
    other = ScoreTable(["v/1.mp4", "v/2.mp4"], onehot_scores([0, 0]), np.array([0, 1]))
    save_scores(tmp_path / "p.npz", other)
    ids, scores, labels = load_aligned({"I": tmp_path / "i.npz", "P": tmp_path / "p.npz"})
    assert ids == ["v/1.mp4", "v/2.mp4"] and labels.tolist() == [0, 1]
    np.testing.assert_array_equal(scores["I"], onehot_scores([0, 1]))
    short = ScoreTable(["v/1.mp4"], onehot_scores([0]), np.array([0]))
    save_scores(tmp_path / "short.npz", short)
    with pytest.raises(ValueError, match="short.npz.*v/2.mp4"):
        load_aligned({"I": tmp_path / "i.npz", "R": tmp_path / "short.npz"})


def test_report_files_have_exact_numbers(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2, 0])
    results = {"I": evaluate(onehot_scores([0, 1, 2, 1]), labels, CLASSES),  # 3/4
               "fusion": evaluate(onehot_scores([0, 1, 2, 0]), labels, CLASSES)}  # 4/4
    paths = write_report(results, tmp_path / "report", CLASSES, labels,
                         onehot_scores([0, 1, 2, 0]), weights={"I": 2.0, "P": 1.0})
    md = paths["markdown"].read_text()
    assert "| I | 75.00 | 100.00 | 83.33 |" in md
    assert "| fusion | 100.00 | 100.00 | 100.00 |" in md
    assert "Fusion weights: I 2, P 1" in md
    data = json.loads(paths["json"].read_text())
    assert data["results"]["I"] == {"top1": 0.75, "top5": 1.0, "mean_class_acc": 2.5 / 3}
    assert data["weights"] == {"I": 2.0, "P": 1.0}
    assert paths["confusion"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == \
        ["confusion.png", "results.json", "results.md"]  # no temporary files left


def test_run_fusion_end_to_end(tmp_path: Path) -> None:
    ids = [f"v{i}" for i in range(6)]
    labels = np.array([0, 1, 2, 0, 1, 2])
    streams = {"I": onehot_scores([0, 1, 2, 0, 1, 1]), "P": onehot_scores([0, 1, 0, 0, 1, 2])}
    streams["I"][5] = [0.3, 0.4, 0.3]  # each stream is wrong once, without confidence
    streams["P"][2] = [0.4, 0.3, 0.3]
    for split in ("val", "test"):
        for name, s in streams.items():
            save_scores(tmp_path / f"{split}_{name}.npz", ScoreTable(ids, s, labels))
    out = run_fusion({n: tmp_path / f"val_{n}.npz" for n in streams},
                     {n: tmp_path / f"test_{n}.npz" for n in streams}, tmp_path / "out",
                     CLASSES, grid=[0.0, 1.0])
    assert out["weights"] == {"I": 1.0, "P": 1.0}
    assert out["results"]["I"]["top1"] == pytest.approx(5 / 6)
    assert out["results"]["fusion"]["top1"] == 1.0
    assert (tmp_path / "out" / "results.md").exists()
    save_scores(tmp_path / "test_T.npz", ScoreTable(ids, onehot_scores([0] * 6), labels))
    out = run_fusion({n: tmp_path / f"val_{n}.npz" for n in streams},
                     {n: tmp_path / f"test_{n}.npz" for n in ["T", *streams]}, tmp_path / "out",
                     CLASSES, grid=[0.0, 1.0], fused=["I"])  # T reported, not fused
    assert out["weights"] == {"I": 1.0}
    assert out["results"]["T"]["top1"] == pytest.approx(2 / 6)
    assert out["results"]["fusion"] == out["results"]["I"]
    assert "| T | 33.33 |" in (tmp_path / "out" / "results.md").read_text()
