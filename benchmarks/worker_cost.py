"""The DataLoader worker's cost of one P training clip, CPU path against device path (issue 13.3).

Times ``StreamDataset.__getitem__`` alone (``time.process_time``: CPU seconds of this process, one
thread for OpenCV and torch, as in a DataLoader worker) for P-stream training clips (K = 3,
340x256 MPEG-4 GOP 12, TSN multi-scale crop of 224, random flip), with ``reconstruct="cpu"`` (the
worker decodes and rebuilds motion, residual, crop, flip, normalisation) and ``"device"`` (the
worker only decodes: pictures and cell vectors; ``device_reconstruct`` does the rest on the batch's
device). Target: at most 15 ms per clip on the device path. Also reported: what the device's part
costs when it runs on this CPU with torch (one thread, per clip, batches of 8), for scale only.

    python benchmarks/worker_cost.py --quick     # 2 videos, 12 clips per path (about a minute)
    python benchmarks/worker_cost.py             # 6 videos of 48 frames, 60 clips per path
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

import media
from common import WORK_DIR, loadavg, log, set_threads
from ip_tsn.atomic import write_text_atomic
from ip_tsn.data.datamodule import collate_packed
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.device_reconstruct import reconstruct_batch
from ip_tsn.data.preprocess import Preprocess
from ip_tsn.data.video_dataset import StreamDataset

TARGET_MS = 15.0
SETTINGS = dict(modality="p", num_segments=3, train=True, crop_size=224, scale_size=256, flip=True)


def _dataset(paths: list, reconstruct: str) -> StreamDataset:
    records = [VideoRecord(os.path.relpath(p, paths[0].parent), 0, "c") for p in paths]
    return StreamDataset(records, paths[0].parent, reconstruct=reconstruct, **SETTINGS)


def time_clips(ds: StreamDataset, clips: int) -> tuple[list[float], list[dict]]:
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


def device_part_on_cpu(samples: list[dict], batch: int = 8) -> float:
    """CPU milliseconds per clip of ``reconstruct_batch`` run here with torch (not the worker's)."""
    pre = Preprocess(**{k: v for k, v in SETTINGS.items() if k != "train"}, reconstruct="device")
    total, n = 0.0, 0
    for start in range(0, len(samples) - batch + 1, batch):
        group = collate_packed(samples[start : start + batch])
        t0 = time.process_time()
        reconstruct_batch(group, pre)
        total += time.process_time() - t0
        n += batch
    return total * 1000 / max(n, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 videos of 36 frames, 12 clips per path")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    set_threads(1)
    videos, clips = (media.synthetic_340(2, 36), 12) if args.quick else (media.synthetic_340(6, 48), 60)
    log(f"{len(videos)} videos under {WORK_DIR}, {clips} clips per path, load average {loadavg()}")
    out: dict = {"settings": {**SETTINGS, "videos": len(videos), "clips": clips, "quick": args.quick,
                              "size": "340x256"}, "load_before": loadavg()}
    for path in ("cpu", "device"):
        costs, samples = time_clips(_dataset(videos, path), clips)
        row = {"median_ms": statistics.median(costs), "mean_ms": statistics.fmean(costs),
               "max_ms": max(costs), "packed": sum("packed" in s for s in samples)}
        if path == "device":
            row["device_part_on_cpu_ms"] = device_part_on_cpu(samples, batch=4 if args.quick else 8)
        out[path] = row
        log(f"{path:>6}: median {row['median_ms']:.1f} ms CPU per clip (mean {row['mean_ms']:.1f}, "
            f"max {row['max_ms']:.1f}; {row['packed']}/{clips} packed)")
    out["load_after"] = loadavg()
    dev = out["device"]["median_ms"]
    log(f"device path: {dev:.1f} ms per clip in the worker ({'meets' if dev <= TARGET_MS else 'misses'} the "
        f"{TARGET_MS:.0f} ms target), {out['cpu']['median_ms'] / dev:.1f}x less than the CPU path; its device "
        f"part costs {out['device']['device_part_on_cpu_ms']:.1f} ms per clip if run on this CPU")
    if args.json:
        write_text_atomic(args.json, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
