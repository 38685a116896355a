"""benchmarks/: each section's report is computed from its results."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def bench(name: str):
    """A module of benchmarks/ (they import each other by bare name)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


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
