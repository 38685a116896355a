"""Late fusion: score files, alignment, weight search, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ip_tsn.evaluation.scores import ScoresError, checkpoint_name, protocol_difference, protocol_text
from ip_tsn.evaluation import (ScoreTable, evaluate, fuse_scores, load_aligned, load_scores,
                               run_fusion, save_scores, search_fusion_weights)
from ip_tsn.evaluation.fusion import distance_to_uniform, equal_weights, fuse_equal
from ip_tsn.evaluation.checks import Roles, data_checks, load_groups, oracle_top1
from ip_tsn.evaluation.report import BASELINE, EQUAL, FUSION, protocol_markdown, provenance_markdown
from ip_tsn.evaluation.stats import accuracy_ci

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
    # (0, 1), (0, 2) and (1, 2) all give 7 / 8: the tie goes to the weights closest to 1:1
    assert weights == {"bad": 1.0, "good": 2.0}
    assert search_fusion_weights({"good": good, "bad": bad}, labels, ["bad", "good"],
                                 grid=[2.0, 1.0, 0.0]) == weights
    assert search_fusion_weights({"good": good, "bad": bad}, labels, ["bad", "good"],
                                 grid=[0.0, 1.0]) == {"bad": 0.0, "good": 1.0}  # 1:1 is 1/8 worse


def test_weight_search_ties_go_to_equal_weights() -> None:
    labels = np.array([0, 1, 2, 0])
    same = onehot_scores([0, 1, 2, 1])  # every candidate gives the same top-1 and class accuracy
    assert search_fusion_weights({"A": same, "B": same.copy()}, labels, ["A", "B"],
                                 grid=[0.0, 1.0, 2.0, 3.0]) == {"A": 1.0, "B": 1.0}
    three = {k: same for k in "ABC"}
    assert search_fusion_weights(three, labels, list("ABC"), grid=[0.0, 0.5, 2.0]) == \
        {"A": 0.5, "B": 0.5, "C": 0.5}  # 1:1:1 first met at 0.5 (grid ascending)
    assert distance_to_uniform([1.0, 1.0]) == distance_to_uniform([2.0, 2.0]) == 0.0
    assert distance_to_uniform([0.0, 1.0]) == 1.0 and distance_to_uniform([1.0, 3.0]) == 0.5
    np.testing.assert_allclose(fuse_equal({"A": same, "B": 2 * same}, ["A", "B"]), 3 * same)
    assert equal_weights(["A", "B"]) == {"A": 1.0, "B": 1.0}


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
    with pytest.raises(ScoresError, match=r"short.npz: 1 video\(s\) missing from stream 'R', e.g. \['v/2.mp4'\]: "
                                          r"the streams were scored on different video lists"):
        load_aligned({"I": tmp_path / "i.npz", "R": tmp_path / "short.npz"})
    relabelled = ScoreTable(["v/1.mp4", "v/2.mp4"], onehot_scores([0, 0]), np.array([0, 0]))
    save_scores(tmp_path / "relabelled.npz", relabelled)
    with pytest.raises(ScoresError, match=r"relabelled.npz: labels of stream 'R' disagree"):
        load_aligned({"I": tmp_path / "i.npz", "R": tmp_path / "relabelled.npz"})


def test_score_files_name_the_checkpoint_that_made_them(tmp_path: Path) -> None:
    """Inside the run folder a checkpoint is named relative to it (the folder may move; symlinks
    resolved), outside it by its absolute path; files of older versions name none."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (tmp_path / "link").symlink_to(run)
    assert checkpoint_name(tmp_path / "link/checkpoints/last.ckpt", run) == "checkpoints/last.ckpt"
    assert checkpoint_name(tmp_path / "elsewhere.ckpt", run) == str(tmp_path.resolve() / "elsewhere.ckpt")
    table = ScoreTable(["v/1.mp4"], onehot_scores([0]), np.array([0]))
    protocol = protocol_text({"test_segments": 25, "test_crops": 10})
    save_scores(run / "named.npz", table._replace(checkpoint="checkpoints/last.ckpt", checkpoint_sha256="ab12",
                                                  protocol=protocol))
    named = load_scores(run / "named.npz")
    assert (named.checkpoint, named.checkpoint_sha256, named.protocol) == ("checkpoints/last.ckpt", "ab12", protocol)
    assert protocol_difference(protocol, protocol_text({"test_segments": 3, "test_crops": 10})) == \
        "test_segments: 25 there, 3 asked"
    save_scores(run / "unnamed.npz", table)
    with np.load(run / "unnamed.npz") as data:
        assert sorted(data.files) == ["labels", "scores", "video_ids"]  # the format of older versions
    assert load_scores(run / "unnamed.npz")[3:] == (None, None, None)


def test_the_report_says_what_trained_the_streams() -> None:
    env = {"ip_tsn": "0.1.0", "git_commit": "0123456789abcdef", "git_dirty": False, "cpu_capability": "AVX2",
           "cuda_device": None, "torch": "2.14.1"}
    assert provenance_markdown({"I": env, "P": dict(env)}) == [
        "Trained by: 0123456789, AVX2 CPU, torch 2.14.1 (every stream)."]
    other = {**env, "cpu_capability": "AVX512", "git_dirty": True, "cuda_device": "NVIDIA H200"}
    assert provenance_markdown({"I": env, "P": other, "T": None}) == [
        "Trained by (the streams differ): I: 0123456789, AVX2 CPU, torch 2.14.1; P: 0123456789 with uncommitted "
        "changes, AVX512 CPU, NVIDIA H200, torch 2.14.1; T: not recorded."]
    assert provenance_markdown({}) == []


def test_the_report_says_the_test_protocol() -> None:
    tsn = {"test_segments": 25, "test_crops": 10, "crop_size": 224, "scale_size": 256}
    assert protocol_markdown({"I": tsn, "P": dict(tsn)}) == [
        "Test protocol: 25 segments x 10 crops of 224 px (shorter side 256) (every stream)."]
    one = {**tsn, "test_segments": 10, "test_crops": 1, "scale_size": None}
    assert protocol_markdown({"I": tsn, "P": one, "T": None}) == [
        "Test protocol (the streams differ): I: 25 segments x 10 crops of 224 px (shorter side 256); P: 10 segments "
        "x 1 crop of 224 px (as decoded); T: not recorded."]
    assert protocol_markdown({}) == []


def test_unreadable_score_files_are_named(tmp_path: Path) -> None:
    """Empty, truncated, foreign (.npz without the keys) and absent score files: ScoresError naming
    the file and what to do, not numpy's or zipfile's own exception."""
    save_scores(tmp_path / "good.npz", ScoreTable(["v/1.mp4"], onehot_scores([0]), np.array([0])))
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    np.savez(tmp_path / "foreign.npz", logits=np.zeros(3))
    for name, problem in [("empty", "not a readable score file (empty file); write it again with `ip-tsn test`"),
                          ("cut", "not a readable score file (File is not a zip file); write it again with `ip-tsn test`"),
                          ("foreign", "not a score file (it lacks video_ids, scores or labels); write it with `ip-tsn test`"),
                          ("absent", "no such score file; write it with `ip-tsn test`")]:
        with pytest.raises(ScoresError) as e:
            load_scores(tmp_path / f"{name}.npz")
        assert str(e.value) == f"{tmp_path / name}.npz: {problem}"


def test_run_fusion_end_to_end(tmp_path: Path) -> None:
    ids = [f"v{i}" for i in range(6)]
    labels = np.array([0, 1, 2, 0, 1, 2])
    streams = {"I": onehot_scores([0, 1, 2, 0, 1, 1]), "P": onehot_scores([0, 1, 0, 0, 1, 2])}
    streams["I"][5] = [0.3, 0.4, 0.3]  # each stream is wrong once, without confidence
    streams["P"][2] = [0.4, 0.3, 0.3]
    for split in ("val", "test"):
        for name, s in streams.items():
            save_scores(tmp_path / f"{split}_{name}.npz", ScoreTable(ids, s, labels, protocol=protocol_text(
                {"test_segments": 3, "test_crops": 1, "crop_size": 32, "scale_size": None})))
    out = run_fusion({n: tmp_path / f"val_{n}.npz" for n in streams},
                     {n: tmp_path / f"test_{n}.npz" for n in streams}, tmp_path / "out",
                     CLASSES, grid=[0.0, 1.0])
    assert out["weights"] == {"I": 1.0, "P": 1.0}
    assert out["protocols"]["I"]["test_segments"] == 3
    assert "\nTest protocol: 3 segments x 1 crop of 32 px (as decoded) (every stream).\n" in \
        (tmp_path / "out" / "results.md").read_text()
    assert out["results"]["I"]["top1"] == pytest.approx(5 / 6)  # fractions, as fuse_splits reads
    assert out["results"]["fusion"]["top1"] == 1.0
    assert out["streams"]["I"]["top1"] == pytest.approx(500 / 6)  # percent
    assert out["streams"][EQUAL]["top1"] == 100.0  # 1:1 is what the search found
    assert (tmp_path / "out" / "results.md").exists()
    save_scores(tmp_path / "test_T.npz", ScoreTable(ids, onehot_scores([0] * 6), labels))
    out = run_fusion({n: tmp_path / f"val_{n}.npz" for n in streams},
                     {n: tmp_path / f"test_{n}.npz" for n in ["T", *streams]}, tmp_path / "out",
                     CLASSES, grid=[0.0, 1.0], fused=["I"])  # T reported, not fused
    assert out["weights"] == {"I": 1.0}
    assert out["results"]["T"]["top1"] == pytest.approx(2 / 6)
    assert out["results"]["fusion"] == out["results"]["I"]
    assert out["paired"]["fused_minus_best"]["mean"] == 0.0  # the fusion of one stream is it
    assert out["paired"]["fused_minus_best"]["mcnemar_p"] == 1.0
    assert "| T | 33.33 | [" in (tmp_path / "out" / "results.md").read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["confusion.png", "results.json", "results.md"]  # no temporary files left


# --------------------------------------------------------------- the full report on hand-made data
FOUR = ["a", "b", "c", "d"]
GROUPS = {"a": "g1", "b": "g1", "c": "g2", "d": "g2"}
LABELS = np.arange(20) % 4


def wrong_at(indices: range | list[int]) -> np.ndarray:
    """One-hot-ish scores (20, 4) right on every video except ``indices`` (class label + 1)."""
    preds = LABELS.copy()
    preds[list(indices)] = (LABELS[list(indices)] + 1) % 4
    return onehot_scores(preds.tolist(), 4)


VAL = {"T": wrong_at(range(2)), "P": wrong_at(range(10)), "D": wrong_at(range(6)),
       "I": wrong_at(range(8, 20))}  # val top-1: 90, 50, 70, 40
TEST = {"T": wrong_at([0]), "P": wrong_at(range(12)), "D": wrong_at(range(6)),
        "I": wrong_at(range(10, 20))}  # test top-1: 95, 40, 70, 50
ROLES = Roles(baseline_fused=("I", "P"), distilled="D", plain="P", teacher="T", appearance="I")


def write_streams(tmp_path: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    ids = [f"v{i:02d}" for i in range(20)]
    paths: dict[str, dict[str, Path]] = {"val": {}, "test": {}}
    for split, streams in (("val", VAL), ("test", TEST)):
        for name, scores in streams.items():
            paths[split][name] = tmp_path / f"{split}_{name}.npz"
            save_scores(paths[split][name], ScoreTable(ids, scores, LABELS))
    return paths["val"], paths["test"]


def test_oracle_restricts_the_argmax_to_the_true_group() -> None:
    labels = np.array([0, 1, 2, 3])
    scores = np.array([[0.1, 0.2, 0.6, 0.1],   # a: global c, within {a, b}: b, wrong
                       [0.1, 0.3, 0.5, 0.1],   # b: global c, within {a, b}: b, right
                       [0.5, 0.1, 0.3, 0.1],   # c: global a, within {c, d}: c, right
                       [0.4, 0.1, 0.3, 0.2]])  # d: global a, within {c, d}: c, wrong
    groups = [GROUPS[c] for c in FOUR]
    assert evaluate(scores, labels, FOUR)["top1"] == 0.0
    assert oracle_top1(scores, labels, groups) == 0.5
    assert oracle_top1(scores, labels, ["g"] * 4) == 0.0  # one group: the plain argmax
    checks = data_checks({"P": scores}, labels, FOUR, Roles(plain="P"), GROUPS)
    assert checks["oracle"] == {"value": 50.0, "threshold": 90.0, "op": ">=", "pass": False,
                                "description": checks["oracle"]["description"]}
    assert checks["plain_alone"]["value"] == 0.0 and checks["plain_alone"]["pass"] is True
    assert checks["teacher_minus_plain"]["value"] is None and checks["teacher_minus_plain"]["pass"] is None
    assert "fuse.teacher" in checks["teacher_minus_plain"]["note"]


def test_load_groups_accepts_both_layouts(tmp_path: Path) -> None:
    (tmp_path / "synthetic.json").write_text(json.dumps({"seed": 0, "classes": FOUR, "groups": GROUPS}))
    (tmp_path / "plain.json").write_text(json.dumps(GROUPS))
    (tmp_path / "none.json").write_text(json.dumps({"seed": 0, "classes": FOUR}))
    assert load_groups(tmp_path / "synthetic.json") == (GROUPS, None)
    assert load_groups(tmp_path / "plain.json") == (GROUPS, None)
    assert load_groups(tmp_path / "none.json")[0] is None
    assert "not found" in load_groups(tmp_path / "missing.json")[1]
    assert load_groups(None)[0] is None


def test_full_report_checks_on_val_paired_on_test(tmp_path: Path) -> None:
    val, test = write_streams(tmp_path)
    (tmp_path / "synthetic.json").write_text(json.dumps({"seed": 0, "groups": GROUPS}))
    out = run_fusion(val, test, tmp_path / "out", FOUR, grid=[0.0, 1.0, 2.0], fused=["I", "D"],
                     roles=ROLES, groups=tmp_path / "synthetic.json",
                     thresholds={"teacher_minus_plain": 10, "appearance_alone": 65})
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(data) >= {"streams", "paired", "checks", "weights", "num_videos", "num_val_videos",
                         "class_names", "baseline_weights", "per_video"}
    assert data["num_videos"] == data["num_val_videos"] == 20 and data["class_names"] == FOUR
    assert list(out["streams"]) == ["T", "P", "D", "I", FUSION, EQUAL, BASELINE]  # json: sorted keys
    assert set(data["streams"]) == set(out["streams"])
    assert set(data["paired"]) == {"distilled_minus_plain", "fused_minus_best", "equal_fused_minus_best",
                                   "baseline_fused_minus_best", "fused_minus_baseline_fused"}
    p_row = data["streams"]["P"]
    assert p_row["top1"] == pytest.approx(40.0) and p_row["top5"] == 100.0
    assert p_row["top1_ci"] == pytest.approx(list(accuracy_ci(np.arange(20) >= 12)[1:]))
    assert p_row["top1_ci"][0] < 40.0 < p_row["top1_ci"][1]

    # data checks: the VALIDATION numbers (val 90 / 50 / 40), not the test ones (95 / 40 / 50)
    checks = data["checks"]
    assert checks["teacher_minus_plain"]["value"] == pytest.approx(40.0)
    assert checks["appearance_alone"]["value"] == pytest.approx(40.0)
    assert checks["plain_alone"]["value"] == pytest.approx(50.0)
    assert all(checks[c]["pass"] for c in ("teacher_minus_plain", "appearance_alone", "plain_alone"))
    oracle = 100 * oracle_top1(VAL["P"], LABELS, [GROUPS[c] for c in FOUR])
    assert checks["oracle"]["value"] == pytest.approx(oracle) and checks["oracle"]["pass"] is False

    d = data["paired"]["distilled_minus_plain"]  # test: D right on 6..19, P on 12..19
    assert (d["a"], d["b"], d["n"], d["a_only"], d["b_only"]) == ("D", "P", 20, 6, 0)
    assert d["mean"] == pytest.approx(30.0) and d["low"] > 0.0
    assert d["mcnemar_p"] == pytest.approx(2 * 0.5 ** 6)  # exact: 6 discordant videos, one way
    best = data["paired"]["fused_minus_best"]
    assert best["b"] == "D"  # test top-1 70 > I's 50
    assert best["mean"] == pytest.approx(data["streams"][FUSION]["top1"] - 70.0)
    assert data["paired"]["baseline_fused_minus_best"]["b"] == "I"  # 50 > P's 40
    assert data["paired"]["fused_minus_baseline_fused"]["b"] == BASELINE
    assert data["weights"] == out["weights"] and set(data["baseline_weights"]) == {"I", "P"}
    assert data["per_video"]["correct"]["P"] == [0] * 12 + [1] * 8

    md = (tmp_path / "out" / "results.md").read_text()
    assert md.index("## Data checks (validation split)") < md.index("## Test split (20 videos)") \
        < md.index("## Paired differences (test split, percentage points)")
    assert "| teacher_minus_plain: teacher minus plain P, top-1 (points) | 40.00 | >= 10 | pass |" in md
    assert "| oracle: " in md and "| >= 90 | FAIL |" in md
    lo, hi = p_row["top1_ci"]
    assert f"| P | 40.00 | [{lo:.2f}, {hi:.2f}] | 100.00 |" in md
    assert "| distilled_minus_plain | D minus P | +30.00 | [" in md and "| 0.031 | 20 |" in md
    assert "Fusion weights (searched on val): " in md and "bootstrap" in md


def test_report_without_groups_says_na(tmp_path: Path) -> None:
    val, test = write_streams(tmp_path)
    out = run_fusion(val, test, tmp_path / "out", FOUR, grid=[0.0, 1.0], fused=["I", "D"],
                     roles=ROLES, groups=tmp_path / "missing.json")
    assert out["checks"]["oracle"]["value"] is None and out["checks"]["oracle"]["pass"] is None
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| n/a | >= 90 | n/a |" in md and "missing.json not found" in md
    with pytest.raises(ValueError, match="unknown data check"):
        run_fusion(val, test, tmp_path / "out", FOUR, fused=["I"], thresholds={"oracel": 90})
    with pytest.raises(ValueError, match="no score files"):
        run_fusion(val, test, tmp_path / "out", FOUR, fused=["I"], roles=Roles(plain="X"))


# ------------------------------------------------ `ip-tsn fuse` with experiments/fuse.yaml as it is
REPO = Path(__file__).resolve().parents[1]
DEMO = {"teacher": "T", "pstream": "P", "student": "D", "istream": "I"}  # run folder: stream above


def demo_runs(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """A data root with the four classes and a run root whose stream folders (as ``fuse.yaml``
    names them) hold the val and test scores of :func:`write_streams`: ``(root, runs, test paths)``."""
    root, runs = tmp_path / "data", tmp_path / "runs"
    (root / "splits").mkdir(parents=True)
    (root / "splits" / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(FOUR)))
    val, test = write_streams(tmp_path)
    for folder, stream in DEMO.items():
        (runs / folder).mkdir(parents=True)
        (runs / folder / "scores_val.npz").write_bytes(val[stream].read_bytes())
        (runs / folder / "scores_test.npz").write_bytes(test[stream].read_bytes())
    return root, runs, test


def test_experiment_fuse_with_the_default_config(tmp_path: Path) -> None:
    from ip_tsn.config import load_config
    from ip_tsn.stages.fuse_stage import fuse

    root, runs, test = demo_runs(tmp_path)
    over = [f"data.root={root}", f"run_root={runs}", "logger.wandb=false"]
    out = fuse(load_config(REPO / "experiments" / "fuse.yaml", over))  # no synthetic.json: oracle n/a
    assert out["checks"]["oracle"]["pass"] is None and "synthetic.json not found" in out["checks"]["oracle"]["note"]
    assert out["checks"]["teacher_minus_plain"]["value"] == pytest.approx(40.0)  # val: T 90, P 50
    assert out["paired"]["distilled_minus_plain"]["mean"] == pytest.approx(30.0)
    assert set(out["streams"]) == {"teacher (flow)", "P-stream", "P-stream distilled", "I-stream",
                                   FUSION, EQUAL, BASELINE}
    assert json.loads((runs / "fusion" / "model.json").read_text())["class_names"] == FOUR
    (root / "synthetic.json").write_text(json.dumps({"seed": 0, "groups": GROUPS}))
    out = fuse(load_config(REPO / "experiments" / "fuse.yaml", over))
    assert out["checks"]["oracle"]["value"] == pytest.approx(
        100 * oracle_top1(VAL["P"], LABELS, [GROUPS[c] for c in FOUR]))
    assert "## Data checks (validation split)" in Path(out["markdown"]).read_text()
    from ip_tsn.cli import main

    before = (runs / "fusion" / "results.json").read_bytes()
    (runs / "pstream" / "scores_test.npz").write_bytes(test["P"].read_bytes()[:200])  # a killed copy
    assert main(["fuse", str(REPO / "experiments" / "fuse.yaml"), *over]) == 2  # one line, nothing rewritten
    assert (runs / "fusion" / "results.json").read_bytes() == before


def test_broken_groups_or_targets_files_are_one_line(tmp_path: Path, capsys) -> None:
    """A ``fuse.groups`` or ``fuse.targets`` file that is not JSON (an edit gone wrong, a binary
    copied in its place): one line naming it and what it should hold, exit 2, nothing written.
    Until 2026-12-08 json's or the codec's traceback."""
    from ip_tsn.cli import main

    root, runs, _ = demo_runs(tmp_path)
    (tmp_path / "cut.json").write_text('{"groups": {"a": ')
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "list.json").write_text("[1, 2]")
    over = [f"data.root={root}", f"run_root={runs}", "logger.wandb=false", f"fuse.out_dir={tmp_path / 'fusion'}"]
    for setting, name, why, what in [
            ("fuse.groups", "cut.json", "not JSON (Expecting value: line 1 column 18 (char 17))",
             "the class -> appearance group mapping (fuse.groups)"),
            ("fuse.groups", "binary.json", "not a text file (not UTF-8)", "the class -> appearance group mapping"),
            ("fuse.targets", "cut.json", "not JSON (", "the teacher-target report of ip-tsn cache (fuse.targets)"),
            ("fuse.targets", "list.json", "a JSON list, not an object", "the teacher-target report of ip-tsn cache")]:
        capsys.readouterr()
        code = main(["fuse", str(REPO / "experiments" / "fuse.yaml"), *over, f"{setting}={tmp_path / name}"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"ip-tsn fuse: error: {tmp_path / name}: {why}") and f"it should hold {what}" in err, err
        assert not (tmp_path / "fusion" / "results.json").exists()


# ------------------------------------- benchmarks/ablation.py: collecting runs, pooled paired tests
def ablation_modules():
    import importlib
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module("ablation"), importlib.import_module("report")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def write_ablation_run(tmp_path: Path, folder: Path, seed: int) -> None:
    """One run's fusion report with the ablation's stream names: distilled P right on videos
    6 - 2 * seed .. 19, plain P on 12 .. 19, the others as in TEST."""
    ablation, _ = ablation_modules()
    scores = {ablation.PLAIN: TEST["P"], ablation.DISTILLED: wrong_at(range(6 - 2 * seed)),
              ablation.NO_DISTILL: TEST["P"],
              "P, logits only": TEST["P"], "P, features only": TEST["D"],
              ablation.TEACHER: TEST["T"], ablation.APPEARANCE: TEST["I"]}
    ids = [f"v{i:02d}" for i in range(20)]
    paths = {}
    for name, s in scores.items():
        paths[name] = tmp_path / f"{folder.parent.name}_{folder.name}_{len(paths)}.npz"
        save_scores(paths[name], ScoreTable(ids, s, LABELS))
    roles = Roles(baseline_fused=(ablation.APPEARANCE, ablation.PLAIN), distilled=ablation.DISTILLED,
                  plain=ablation.PLAIN, teacher=ablation.TEACHER, appearance=ablation.APPEARANCE)
    run_fusion(paths, paths, folder / "fusion_ablation", FOUR, grid=[0.0, 1.0],
               fused=[ablation.APPEARANCE, ablation.DISTILLED], roles=roles)


def test_ablation_collects_runs_and_pools_paired_tests(tmp_path: Path, monkeypatch) -> None:
    ablation, report = ablation_modules()
    monkeypatch.setattr(ablation, "RUNS_DIR", tmp_path / "runs")
    for d in (0, 1):
        for s in (0, 1):
            write_ablation_run(tmp_path, ablation.run_root(d, s, quick=False), s)
    assert ablation.run_root(0, 0, False) == tmp_path / "runs" / "synthetic" / "split1"  # make demo's folders
    assert ablation.run_root(1, 2, False) == tmp_path / "runs" / "synthetic-d1-s2" / "split1"
    old = ablation.run_root(2, 0, quick=False) / "fusion_ablation"  # an older ip-tsn fuse: skipped
    old.mkdir(parents=True)
    (old / "results.json").write_text(json.dumps({"results": {"fusion": {"top1": 0.5}}}))
    runs = ablation.collect(quick=False)
    assert [(r["data_seed"], r["seed"]) for r in runs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert ablation.data_root(0, False).name == "synthetic" and ablation.data_root(1, False).name == "synthetic-d1"
    assert runs[1]["top1"][ablation.DISTILLED] == pytest.approx(0.8)  # fractions, as charts.py reads

    summary = ablation.summarize(runs)
    assert summary[ablation.DISTILLED]["mean"] == pytest.approx(0.75)
    assert summary[ablation.DISTILLED]["std"] == pytest.approx(np.std([0.7, 0.8, 0.7, 0.8], ddof=1))
    paired = ablation.paired_tests(runs)
    d = paired["P, logits + features - plain P"]
    # per video, averaged over the 2 seeds: +0.5 on videos 4, 5 and +1 on 6..11, 0 elsewhere
    assert d["mean"] == pytest.approx(35.0) and d["low"] > 0 and d["videos"] == 40 and d["runs"] == 4
    assert [r["mcnemar_p"] for r in d["per_run"]] == pytest.approx([2 * 0.5 ** 6, 2 * 0.5 ** 8] * 2)
    assert paired["P, logits only - plain P"]["mean"] == 0.0  # the same scores
    best = paired["fused - best single stream"]
    assert best["mean"] == pytest.approx(np.mean([100 * (r["top1"][ablation.FUSED] -
                                                         r["top1"][r["best_single"]]) for r in runs]))

    # plain P on 3x the training videos of draw 0 (seed 0 only): right on videos 2..19
    more_dir = tmp_path / "runs" / "synthetic-3x-s0" / "split1" / "pstream"
    more_dir.mkdir(parents=True)
    save_scores(more_dir / "scores_test.npz", ScoreTable([f"v{i:02d}" for i in range(20)][::-1],
                                                         wrong_at(range(2))[::-1], LABELS[::-1]))
    more = ablation.more_data(runs)
    assert [r["seed"] for r in more["seeds"]] == [0] and more["seeds"][0]["top1"][0] == pytest.approx(90.0)
    assert more["minus"][ablation.PLAIN]["mean"] == pytest.approx(50.0)  # plain P right on 12..19 only
    assert more["minus"][ablation.DISTILLED]["mean"] == pytest.approx(20.0)  # d0 s0's distilled: right on 6..19
    res = {"quick": False, "seeds": runs, "summary": summary, "paired": paired, "demo": None,
           "command": ablation.COMMAND, "more_data": more}
    text = report.ablation_section(res)
    assert "3x plain P minus plain P: +50.0 [" in text
    assert "| P, logits + features | 75.0 | 5.8 | 4 | 70.0 | 80.0 | 70.0 | 80.0 |" in text
    assert "| P, logits + features - plain P | +35.0 | [" in text and "| 40 | 4 | 4 | 0 |" in text
    assert "d1 s1" in text and "Pre-registered data checks" in text
    assert "differs: P, logits + features - plain P +35.0" in text
    json.dumps(res)  # the section is JSON as saved
