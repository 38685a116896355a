"""The DataLoader worker's cost of one P training clip, CPU path against device path (issue 13.3).

Times ``StreamDataset.__getitem__`` alone (``time.process_time``: CPU seconds of this process, one
thread for OpenCV and torch, as in a DataLoader worker) for P-stream training clips (K = 3,
340x256 MPEG-4 GOP 12, crop 224, random flip), with ``reconstruct="cpu"`` (the
worker decodes and rebuilds motion, residual, crop, flip, normalisation) and ``"device"`` (the
worker only decodes: pictures and cell vectors; ``device_reconstruct`` does the rest on the batch's
device). Two loaders: the plain P-stream's (TSN multi-scale crops) and the distillation loader's
(the 5 fixed views and mirrors of the real datasets' configs, plus the teacher's logits and features
read from a cache in the real format). Target: at most 15 ms per
clip on the device path. Also measured, from the same draws: the largest difference between the
two paths' inputs (the device part run here with torch), what that device part costs on this CPU
(for scale only: on a GPU it runs there), and a profile of the device-path worker (where its time
goes).

    python benchmarks/run.py --only worker            # a section of `make bench`
    python benchmarks/worker_cost.py --quick          # alone: 2 videos, 12 clips per path
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time

import torch

import media
from common import WORK_DIR, log, set_threads
from formatting import f, table
from ip_tsn.data.datamodule import VideoDataModule, collate_packed
from ip_tsn.data.device_reconstruct import reconstruct_batch
from ip_tsn.data.packed_p import PACKED

TARGET_MS = 15.0
SETTINGS = dict(modality="p", num_segments=3, crop_size=224, scale_size=256, flip=True)
LOADERS = ("p", "distill")
PROFILE_ROWS = 8


def _dataset(root, cache, loader: str, reconstruct: str):
    """The training dataset of ``VideoDataModule`` and its ``Preprocess``: ``p``, TSN multi-scale
    crops; ``distill``, the teacher cache's 5 fixed views and mirrors (as the real datasets' configs)."""
    distill = loader == "distill"
    dm = VideoDataModule(dataset="synthetic", root=str(root), batch_size=8, num_workers=0, pin_memory=False,
                         teacher_cache=str(cache) if distill else None, train_views=5 if distill else None,
                         reconstruct=reconstruct, **SETTINGS)
    dm.setup("fit")
    return dm.datasets["train"], dm.preprocess


def time_clips(ds, clips: int) -> tuple[list[float], list[dict]]:
    """CPU milliseconds of each of ``clips`` ``__getitem__`` calls (videos in turn, seeded draws),
    after one untimed warm-up call per video (the index demux); and the samples."""
    for i in range(len(ds)):
        torch.manual_seed(10_000 + i)
        ds[i]
    costs, samples = [], []
    for c in range(clips):
        torch.manual_seed(c)
        t0 = time.process_time()
        samples.append(ds[c % len(ds)])
        costs.append((time.process_time() - t0) * 1000)
    return costs, samples


def device_part(samples: list[dict], pre, batch: int) -> tuple[float, list[torch.Tensor]]:
    """CPU milliseconds per clip of ``reconstruct_batch`` run here with torch (the device's part),
    and the rebuilt inputs (N, C, crop, crop), in the samples' order."""
    total, n, inputs = 0.0, 0, []
    for start in range(0, len(samples), batch):
        group = collate_packed(samples[start : start + batch])
        t0 = time.process_time()
        out = reconstruct_batch(group, pre)
        total += time.process_time() - t0
        n += len(samples[start : start + batch])
        inputs += list(out["input"])
    return total * 1000 / max(n, 1), inputs


def profile_worker(ds, clips: int) -> list[dict]:
    """The functions the device-path worker spends its time in (cProfile, ``clips`` calls): the top
    rows by own time, with their share of the total."""
    prof = cProfile.Profile()
    prof.enable()
    for c in range(clips):
        torch.manual_seed(c)
        ds[c % len(ds)]
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values()) or 1.0  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:PROFILE_ROWS]  # type: ignore[attr-defined]
    return [{"function": f"{os.path.basename(file)}:{line} {name}" if file != "~" else name,
             "calls": int(v[1]), "own_ms_per_clip": 1000 * v[2] / clips, "share": v[2] / total}
            for (file, line, name), v in rows]


def run(quick: bool = False) -> dict:
    """Both loaders, both paths: CPU ms per clip in the worker, the paths' largest input difference,
    the device part's cost on this CPU, and the device-path worker's profile."""
    set_threads(1)
    # the loaders read the teacher cache, never the flow: --quick (and its test) skips computing it;
    # the full run shares the loader section's set, flow included
    root = media.make_dataset(WORK_DIR / "data" / ("coviar340-noflow" if quick else "coviar340"), media.SIZE_340, 36,
                              1 if quick else 2, with_flow=not quick)
    cache = media.fake_teacher_cache(root / "teacher_cache", root, len(media.CLASSES))
    clips = 12 if quick else 120
    out: dict = {"settings": {**SETTINGS, "clips": clips, "size": "340x256", "target_ms": TARGET_MS}, "loaders": {}}
    for loader in LOADERS:
        rows: dict = {}
        samples = {}
        for path in ("cpu", "device"):
            ds, pre = _dataset(root, cache, loader, path)
            costs, samples[path] = time_clips(ds, clips)
            rows[path] = {"median_ms": statistics.median(costs), "mean_ms": statistics.fmean(costs),
                          "max_ms": max(costs), "packed": sum(PACKED in s for s in samples[path])}
            log(f"worker: {loader} loader, {path} path: median {rows[path]['median_ms']:.1f} ms CPU per clip "
                f"({rows[path]['packed']}/{clips} packed)")
            if path == "device":
                rows["videos"] = len(ds)
                rows["profile"] = profile_worker(ds, min(clips, 24))
                ms, rebuilt = device_part(samples[path], pre, batch=8)
                rows["device_part_on_cpu_ms"] = ms
                diffs = [float((a - s["input"]).abs().max()) for a, s in zip(rebuilt, samples["cpu"])]
                rows["max_abs_diff"] = max(diffs)
                rows["same_draws"] = all(bool((a["frame_index"] == b["frame_index"]).all())
                                         for a, b in zip(samples["cpu"], samples["device"]))
                if loader == "distill":  # the teacher targets are the worker's either way: identical
                    keys = [k for k in samples["cpu"][0] if k.startswith("teacher")]
                    rows["teacher_keys"] = keys
                    rows["teacher_equal"] = all(torch.equal(a[k], b[k]) for a, b in zip(samples["cpu"], samples["device"])
                                                for k in keys)
        out["loaders"][loader] = rows
    return out


def targets(res: dict) -> list[list[str]]:
    """Rows (target, measured, verdict) of the targets table."""
    out = []
    for loader, rows in res.get("loaders", {}).items():
        dev, cpu = rows["device"]["median_ms"], rows["cpu"]["median_ms"]
        out.append([f"worker CPU per P training clip, device path, {loader} loader (<= {f(TARGET_MS)} ms)",
                    f"{f(dev)} ms (CPU path {f(cpu)} ms, {f(cpu / dev)}x)",
                    "**met**" if dev <= TARGET_MS else "**missed**"])
    diffs = {loader: rows.get("max_abs_diff") for loader, rows in res.get("loaders", {}).items()}
    if diffs and all(v is not None for v in diffs.values()):
        worst = max(diffs.values())
        out.append(["device path's inputs equal to the CPU path's (<= 1e-4, same draws)",
                    f"largest difference {worst:.1e} over {res['settings']['clips']} clips per loader",
                    "**met**" if worst <= 1e-4 else "**missed**"])
    return out


def report(res: dict) -> str:
    """The worker-cost section of RESULTS.md, from this module's results (``results/worker.json``)."""
    s = res["settings"]
    text = ["## 2b. Worker cost per P training clip: CPU path against device path", "",
            f"`StreamDataset.__getitem__` of the training loader alone, CPU time of one thread (as in a DataLoader "
            f"worker), {s['clips']} seeded clips per path after one warm-up call per video: K = {s['num_segments']}, "
            f"{s['size']} MPEG-4 GOP 12, crop {s['crop_size']} and flip (the P loader: TSN multi-scale crops; distill: the 5 fixed "
            "views and mirrors of the real datasets' configs). **CPU path**: the worker "
            "decodes and rebuilds motion, residual, crop, flip and normalisation. **Device path** "
            "(`data.reconstruct=device`): the worker decodes and packs uint8 pictures and int16 block vectors; "
            "`on_after_batch_transfer` rebuilds the rest with torch on the batch's device. **distill** adds the "
            "teacher's logits and features from a cache in the real format. **device part here**: that rebuild "
            "run on this CPU with torch, one thread, batches of 8 (on a GPU it runs there; for scale only). "
            "**max |diff|**: the largest difference between the two paths' inputs on the same draws.", ""]
    body = []
    for loader, rows in res.get("loaders", {}).items():
        for path in ("cpu", "device"):
            r = rows[path]
            extra = [f(rows["device_part_on_cpu_ms"]), f"{rows['max_abs_diff']:.1e}"] if path == "device" else ["", ""]
            body.append([loader, path, f(r["median_ms"]), f(r["mean_ms"]), f(r["max_ms"]),
                         f"{r['packed']}/{s['clips']}", *extra])
    text += [table(["loader", "path", "median CPU ms", "mean", "max", "packed", "device part here, ms", "max \\|diff\\|"],
                   body, left=2), ""]
    for loader, rows in res.get("loaders", {}).items():
        if "teacher_equal" in rows:
            text.append(f"The {loader} loader's teacher targets ({', '.join(rows['teacher_keys'])}) are read by the "
                        f"worker on both paths: {'identical' if rows['teacher_equal'] else 'NOT identical'}; "
                        f"same frames drawn on both paths: {'yes' if rows['same_draws'] else 'NO'}.")
    text.append("")
    worst = max(rows["device"]["median_ms"] for rows in res.get("loaders", {}).values())
    verdict = "meets" if worst <= TARGET_MS else "misses"
    text += [f"The device path {verdict} the {f(TARGET_MS)} ms target. Where the device-path worker's time goes "
             "(cProfile, own time per clip, the P loader):", ""]
    prof = res["loaders"]["p"]["profile"]
    text += [table(["function", "calls", "own ms per clip", "share"],
                   [[r["function"].replace("|", "/"), r["calls"], f(r["own_ms_per_clip"]), f"{100 * r['share']:.0f}%"]
                    for r in prof]), ""]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 340x256 set of 10 videos, 12 clips per path")
    args = parser.parse_args()
    print(report(run(args.quick)))


if __name__ == "__main__":
    main()
