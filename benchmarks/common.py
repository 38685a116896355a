"""Shared helpers of the benchmarks: timing, thread settings, the machine description, result files.

Every timing is ``time.perf_counter`` (wall) and, where a single process does the work,
``time.process_time`` (CPU time of every thread of the process), after warm-up runs; the reported
value is the median over the repeats. Results of each section go to
``benchmarks/results/<section>.json``; ``report.py`` and ``charts.py`` read them back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Generated videos, datasets, flow and training runs: ignored by git (runs/ is in .gitignore).
WORK_DIR = Path(os.environ.get("IPTSN_BENCH_WORK", REPO / "runs" / "bench"))

if str(REPO / "src") not in sys.path:  # running from a checkout without `pip install -e`
    sys.path.insert(0, str(REPO / "src"))

from ip_tsn.atomic import write_text_atomic  # noqa: E402  (after the path set-up above)


def set_threads(n: int) -> None:
    """Threads of OpenCV and torch (intra-op) in this process."""
    import cv2
    import torch

    cv2.setNumThreads(n)
    torch.set_num_threads(n)


def timed(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times: median wall and CPU seconds."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu),
            "wall_min": min(wall), "repeats": repeats}


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_counters() -> tuple[float, float] | None:
    """(CPU seconds the whole machine was busy, CPU seconds of this process and its reaped children),
    both since boot / start; None without /proc. Two readings around a section give the CPU the
    *other* processes of the machine used meanwhile (:func:`others_share`)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system (idle iowait) irq softirq steal
    t = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system + t.children_user + t.children_system


SHARED = 0.10  # a section during which other processes used at least this share of the CPU ran on a shared machine


def others_share(start: tuple[float, float] | None, end: tuple[float, float] | None, wall_s: float) -> float | None:
    """Share of the machine's CPU (0..1, all cores) that processes other than the benchmark's own
    used between two :func:`cpu_counters` readings: 0 on an idle machine, whatever the load
    average says (which lags and counts the benchmark's own work)."""
    if start is None or end is None or wall_s <= 0:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, others) / (wall_s * (os.cpu_count() or 1))


def shared(machine: dict[str, Any]) -> bool:
    """Whether a section ran on a shared machine (its ``machine`` record): other processes used >=
    :data:`SHARED` of the CPU meanwhile (``others_cpu_share``); for records without that measure, a
    1-minute load average at the start at or above the core count."""
    if machine.get("others_cpu_share") is not None:
        return machine["others_cpu_share"] >= SHARED
    load = (machine.get("loadavg_start") or [None])[0]
    return load is not None and bool(machine.get("cores")) and load >= machine["cores"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, GPU, library versions, date."""
    import av
    import cv2
    import numpy
    import torch

    try:
        import importlib.metadata as md
        mvx = md.version("motion-vector-extractor")
    except Exception:
        mvx = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory_gib(), "gpu": gpu,
        "python": platform.python_version(), "platform": platform.platform(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the CPU kernels torch picked: numerics differ
        "av": av.__version__, "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "cv2": cv2.__version__, "numpy": numpy.__version__, "motion_vector_extractor": mvx,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_start": loadavg(),
    }


OUTPUT: dict[str, Path] = {"dir": BENCH_DIR}  # RESULTS.md and the charts (results/ below it): run.py --output-dir


def output_dir() -> Path:
    return OUTPUT["dir"]


def results_dir() -> Path:
    """Where the section results are read and written: ``<output dir>/results`` unless run.py --results-dir."""
    return OUTPUT.get("results") or OUTPUT["dir"] / "results"


def save_section(name: str, payload: dict[str, Any]) -> Path:
    path = results_dir() / f"{name}.json"
    write_text_atomic(path, json.dumps(payload, indent=1, default=_json_default) + "\n")
    return path


def load_section(name: str) -> dict[str, Any] | None:
    path = results_dir() / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _json_default(x):
    import numpy as np

    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-able: {type(x)}")


def log(*args) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)
