"""`ip-tsn test` with 3 and 10 crops (scores, per-class CSV, confusion PNG) and `ip-tsn fuse` over
two splits (each split and the mean), on tiny I- and P-streams trained through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ip_tsn.cli import main
from ip_tsn.config import load_config
from ip_tsn.stages.build import build_datamodule
from ip_tsn.deploy.fused_model import read_fused_model
from ip_tsn.evaluation.class_report import confusion_matrix
from ip_tsn.evaluation.scores import load_scores

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
PNG = b"\x89PNG\r\n\x1a\n"


def _ok(*args: str) -> None:
    assert main(list(args)) == 0, args


@pytest.mark.parametrize("stage,crops", [("istream", 3), ("pstream", 10)])
def test_multi_crop_protocol_scores_and_per_class_report(tiny_streams, stage, crops):
    # 10 crops hold mirrored views: the protocol of flip-invariant data sets (UCF101, HMDB51)
    common = [*tiny_streams["common"], f"data.test_crops={crops}", f"data.flip={crops == 10}"]
    dm = build_datamodule(load_config(EXPERIMENTS / f"{stage}.yaml", common))
    dm.setup("test")
    item = dm.datasets["test"][0]
    channels = 3 if stage == "istream" else 5
    assert item["input"].shape == (3 * crops, channels, 32, 32)  # (K * crops, C, H, W), crop-major
    _ok("test", str(EXPERIMENTS / f"{stage}.yaml"), *common)

    run = tiny_streams["runs"] / stage
    metrics = json.loads((run / "metrics.json").read_text())
    for subset in ("val", "test"):
        table = load_scores(run / f"scores_{subset}.npz")
        assert table.scores.shape == (12, 12)  # one row per video: the consensus covers K x crops
        np.testing.assert_allclose(table.scores.sum(1), 1.0, rtol=1e-4)
        with open(run / f"per_class_{subset}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        cm = confusion_matrix(table.labels, table.scores.argmax(1), 12)
        assert [r["class"] for r in rows] == dm.class_names
        assert [int(r["n"]) for r in rows] == cm.sum(1).tolist()
        assert [int(r["correct"]) for r in rows] == np.diag(cm).tolist()
        for r, n, hit in zip(rows, cm.sum(1), np.diag(cm)):
            assert (r["top1"] == "") if n == 0 else float(r["top1"]) == pytest.approx(hit / n, abs=1e-6)
        assert np.trace(cm) / cm.sum() == pytest.approx(metrics[subset]["top1"], abs=1e-6)
        assert (run / f"confusion_{subset}.png").read_bytes()[:8] == PNG


def test_fuse_over_splits_reports_each_split_and_the_mean(tiny_streams, tmp_path, capsys):
    common, runs = tiny_streams["common"], tiny_streams["runs"]
    for stage in ("istream", "pstream"):  # split 1 scores (if the crop test did not), split 2 scores
        if not (runs / stage / "scores_val.npz").is_file():
            _ok("test", str(EXPERIMENTS / f"{stage}.yaml"), *common)
        ckpt = str(runs / stage / "checkpoints/best.ckpt")
        _ok("test", str(EXPERIMENTS / f"{stage}.yaml"), *common, "data.split=2", "--checkpoint", ckpt)
    config = tmp_path / "fuse_ip.yaml"
    config.write_text(f"_base_: {EXPERIMENTS / 'base.yaml'}\nstage: fuse\nname: fusion\nfuse:\n"
                      "  streams: {I-stream: '${run_root}/istream', P-stream: '${run_root}/pstream'}\n"
                      "  fused: [I-stream, P-stream]\n  out_dir: ${run_dir}\n  splits: null\n"
                      "  splits_dir: null\n")
    capsys.readouterr()
    _ok("fuse", str(config), *common, "fuse.splits=[1,2]")
    table = capsys.readouterr().out
    assert "| stream | split 1 | split 2 | mean |" in table and "| fusion |" in table

    base = runs.parent
    combined = json.loads((base / "fusion_splits/results.json").read_text())
    assert combined["splits"] == [1, 2]
    for k in (1, 2):
        per_split = json.loads((base / f"split{k}/fusion/results.json").read_text())["results"]
        for row in ("I-stream", "P-stream", "fusion"):
            for metric in ("top1", "top5", "mean_class_acc"):
                entry = combined["results"][row][metric]
                assert entry["splits"][str(k)] == pytest.approx(per_split[row][metric])
    for row, metrics in combined["results"].items():
        top1 = metrics["top1"]
        assert top1["mean"] == pytest.approx(np.mean(list(top1["splits"].values())))
        assert f"| {row} | " in table and f"{100 * top1['mean']:.2f} |" in table

    spec = read_fused_model(runs / "fusion")  # model.json: the fused checkpoints and weights
    assert [s.name for s in spec.streams] == ["I-stream", "P-stream"]
    assert Path(spec.streams[0].checkpoint) == runs / "istream/checkpoints/best.ckpt"
    for stream in spec.streams:  # and a copy of each checkpoint's preprocessing
        assert stream.preprocess == torch.load(stream.checkpoint, weights_only=True, mmap=True)["preprocess"]
    assert spec.streams[1].preprocess["modality"] == "p"
    assert spec.class_names and len(spec.class_names) == 12


def test_fuse_over_splits_refuses_a_shared_run_root(tiny_streams, capsys):
    common = [o for o in tiny_streams["common"] if not o.startswith("run_root=")]
    code = main(["fuse", str(EXPERIMENTS / "fuse.yaml"), *common, "run_root=/tmp/ip_tsn_same",
                 "fuse.splits=[1,2]"])
    assert code == 2 and "does not depend on data.split" in capsys.readouterr().err
