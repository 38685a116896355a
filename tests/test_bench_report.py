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
    common, report = bench("common"), bench("report")
    monkeypatch.setitem(common.OUTPUT, "dir", tmp_path)
    monkeypatch.setitem(common.OUTPUT, "results", REPO / "benchmarks" / "results")
    results = {name: common.load_section(name) for name in ("preprocess", "loader", "networks", "ablation")}
    text = report.write(results, []).read_text()
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads[:3] == ["## Machine", "## Targets", "## 1. Preprocessing per frame"]
    assert "## 2. Loaders" in heads and "## 3. Networks and end-to-end latency" in heads
    pre = results["preprocess"]
    ratio = np.median([r["ratio_cpu"]["tvl1"] for r in pre["rows"] if "340x256" in r["group"]])
    assert f"median {report.f(float(ratio))}x" in text  # the target's figure is the JSON's, not typed in
    lat = results["networks"]["latency"][0]
    assert f"IP TSN is **{report.f(lat['speedup'])}x** faster end to end" in text
    json.dumps(results)
