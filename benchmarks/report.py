"""Assemble benchmarks/RESULTS.md from the sections' results (``results/<section>.json``).

Each section module writes its own part from its saved results (``report(result) -> str``, and
``targets(result)`` for the rows of the targets table); this module adds only the machine
description, the targets table and the order of the sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import coviar
import flow
import gpu
import huge
import loader
import networks
import packed_batch
import preprocess
import worker_cost
from ablation_report import ablation_section
from common import SHARED, output_dir, shared
from formatting import pct, table
from ip_tsn.atomic import write_text_atomic

# section name: its writer, in the order of RESULTS.md
WRITERS: dict[str, Callable[[dict], str]] = {
    "preprocess": preprocess.report,
    "loader": loader.report,
    "worker": worker_cost.report,
    "packed": packed_batch.report,
    "networks": networks.report,
    "ablation": ablation_section,
    "coviar": coviar.report,
    "gpu": gpu.report,
    "flow": flow.report,
    "huge": huge.report,
}
TARGETS: dict[str, Callable[[dict], list[list[str]]]] = {"preprocess": preprocess.targets, "loader": loader.targets,
                                                           "worker": worker_cost.targets, "packed": packed_batch.targets,
                                                           "coviar": coviar.targets, "flow": flow.targets}


def ran_alone(results: dict) -> bool:
    """Whether no timed section (the ablation times nothing) ran on a shared machine (``common.shared``)."""
    timed = [r for name, r in results.items() if r and name != "ablation"]
    return bool(timed) and not any(shared(r["machine"]) for r in timed)


def _capability(results: dict) -> str:
    """The CPU kernels torch used (``torch.backends.cpu.get_cpu_capability``: AVX2, AVX512, ...), which
    change training's floating-point path, so a seeded run's numbers hold on one kind only."""
    caps = {r["machine"].get("cpu_capability") for r in results.values() if r}
    found = sorted(c for c in caps if c)
    if not found:
        return "not recorded"
    return " / ".join(found) + (" (sections run before this row was added, 2026-12-06, did not record it)" if None in caps else "")


def machine_section(results: dict) -> str:
    """The machine, library versions and, per section, when it ran and the load around it."""
    m = next((r["machine"] for r in results.values() if r), None)
    if m is None:
        return "## Machine\n\nNo results yet: run `python benchmarks/run.py`.\n"
    gpu = m.get("gpu") or "none visible to the benchmarks (`torch.cuda.is_available()` was false): every GPU row below is *not measured*"
    rows = [["CPU", m["cpu"]], ["cores", m["cores"]], ["memory", f"{m['memory_gib']} GiB"], ["GPU", gpu],
            ["OS", m["platform"]], ["Python", m["python"]], ["torch", m["torch"]],
            ["torch CPU kernels", _capability(results)],
            ["PyAV (libavcodec)", f"{m['av']} ({m['ffmpeg']})"], ["OpenCV", m["cv2"]], ["numpy", m["numpy"]],
            ["motion-vector-extractor", m.get("motion_vector_extractor") or "not installed"]]
    runs = []
    for name, r in results.items():
        if r:
            mm = r["machine"]
            others = mm.get("others_cpu_share")
            runs.append([name, r["mode"], mm["date"], f"{r['seconds'] / 60:.1f}",
                         "-" if others is None else pct(others),
                         ", ".join(map(str, mm.get("loadavg_start", []))), ", ".join(map(str, mm.get("loadavg_end", [])))])
    text = "## Machine\n\n" + table(["", ""], rows, left=2) + "\n\n"
    text += table(["section", "mode", "run at (UTC)", "minutes", "others' CPU %", "load avg. at start", "at end"],
                  runs, left=3) + "\n\n"
    text += ("**others' CPU %**: the share of the machine's CPU (all cores) that processes other than the "
             "benchmark's own used while the section ran (/proc/stat minus the benchmark's process tree); the "
             "load averages lag and count the benchmark's own work. ")
    if ran_alone(results):
        text += f"No timed section shared the machine (others below {pct(SHARED)}% of its CPU). "
    else:
        busy = [name for name, r in results.items() if r and name != "ablation" and shared(r["machine"])]
        text += (f"The machine was shared during {', '.join(busy)}: those sections got less than the whole CPU, "
                 "and their wall-clock figures (loaders, networks, latency) would be better on an idle machine. ")
    text += ("Single-threaded costs are reported as **CPU time** of the process (`time.process_time`, every thread "
             "of the process counted, waiting excluded) next to wall-clock time.\n")
    return text


def targets_section(results: dict) -> list[str]:
    rows = [row for name, fn in TARGETS.items() if results.get(name) for row in fn(results[name])]
    if not rows:
        return []
    parts = ["## Targets", "", table(["target", "measured", "verdict"], rows, left=3), ""]
    if results.get("preprocess"):
        parts += [p + "\n" for p in preprocess.targets_notes(results["preprocess"])]
    return parts


def write(results: dict, pngs: list[str]) -> Path:
    """RESULTS.md in the output folder, from every section's results (None: not run)."""
    parts = ["# ip-tsn benchmarks", "",
             "Generated by `python benchmarks/run.py` (`make bench`; `--quick` for a small check, written to "
             "`runs/bench/quick/`). Raw numbers: `benchmarks/results/*.json`; charts: the PNGs beside this file. "
             "Each section is written by its benchmark module from its results file. Issue #5.", ""]
    parts.append(machine_section(results))
    parts += targets_section(results)
    parts += [writer(results[name]) for name, writer in WRITERS.items() if results.get(name)]
    path = output_dir() / "RESULTS.md"
    write_text_atomic(path, "\n".join(parts).rstrip() + "\n")
    return path


__all__ = ["ablation_section", "f", "machine_section", "pct", "table", "write"]
