"""The packed-batch section (issue 20, item 1): what one collated batch of the device path holds.

A batch of 32 P training clips (K = 3, 340x256 MPEG-4 GOP 12, crop 224, TSN multi-scale crops and
flip; ``data.reconstruct=device``), collated as the DataLoader's workers do (``collate_packed``):
the number of tensors the main process receives and pins, the bytes per clip of the packed
buffers, and the CPU milliseconds of collating. Targets (issue 20): at most 16 tensors per batch and
at most 0.6 MB per clip. Counts and bytes do not depend on the machine.

    python benchmarks/run.py --only packed      # a section of `make bench` (seconds)
"""

from __future__ import annotations

import time

import torch

import media
from common import WORK_DIR, log, set_threads
from formatting import f, table
from ip_tsn.data.datamodule import collate_packed
from ip_tsn.data.packed_p import PACKED
from worker_cost import _dataset

BATCH, MAX_TENSORS, MAX_MB_PER_CLIP = 32, 16, 0.6


def _tensors(x) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors(v)]
    return [t for v in x for t in _tensors(v)] if isinstance(x, (list, tuple)) else []


def run(quick: bool = False) -> dict:
    set_threads(1)
    root = media.make_dataset(WORK_DIR / "data" / "coviar340", media.SIZE_340, 36, 1 if quick else 2)
    ds, _ = _dataset(root, None, "p", "device")
    samples = []
    for c in range(BATCH):
        torch.manual_seed(c)
        samples.append(ds[c % len(ds)])
    t0 = time.process_time()
    batch = collate_packed(samples)
    collate_ms = 1000 * (time.process_time() - t0)
    everything, packed = _tensors(batch), _tensors(batch[PACKED])
    per_clip = [_tensors(s[PACKED]) for s in samples if PACKED in s]
    out = {"batch": BATCH, "packed_clips": len(per_clip), "tensors": len(everything), "packed_tensors": len(packed),
           "bytes": sum(t.numel() * t.element_size() for t in everything),
           "packed_bytes": sum(t.numel() * t.element_size() for t in packed),
           "tensors_per_clip_before": len(per_clip[0]) if per_clip else None, "collate_ms": collate_ms,
           "size": "340x256", "crop": 224, "segments": 3,
           "by_buffer": {k: int(v.numel() * v.element_size()) for k, v in batch[PACKED].items()}}
    log(f"packed batch: {out['tensors']} tensors, {out['packed_bytes'] / BATCH / 1e6:.2f} MB per clip")
    return out


def targets(res: dict) -> list[list[str]]:
    n, mb = res["tensors"], res["packed_bytes"] / res["batch"] / 1e6
    return [[f"a packed batch of {res['batch']} P clips is at most {MAX_TENSORS} tensors",
             f"{n} tensors ({res['packed_tensors']} packed buffers; before: {res['tensors_per_clip_before']} per clip)",
             "**met**" if n <= MAX_TENSORS else "**missed**"],
            [f"a packed batch carries at most {MAX_MB_PER_CLIP} MB per clip (340x256, crop 224, K = 3)",
             f"{f(mb)} MB per clip (pictures cut to the view and the motion's reach, 4:2:0; vectors int8)", "**met**" if mb <= MAX_MB_PER_CLIP else "**missed**"]]


def report(res: dict) -> str:
    lines = ["## 2c. A packed batch of the device path (issue 20)", "",
             f"One collated batch of {res['batch']} P training clips ({res['size']} MPEG-4, K = {res['segments']}, crop "
             f"{res['crop']}, `data.reconstruct=device`), as the workers hand it to the main process "
             f"(`collate_packed`: the packed clips' arrays in one buffer per dtype, `packed_p.pack_batch`): "
             f"{res['tensors']} tensors in all, {f(res['bytes'] / 1e6)} MB, collated in {f(res['collate_ms'])} ms of CPU "
             f"({res['packed_clips']} of {res['batch']} clips packed).", ""]
    rows = [[k, f(v / 1e6), f(v / res["batch"] / 1e6)] for k, v in res["by_buffer"].items()]
    lines.append(table(["buffer", "MB per batch", "MB per clip"], rows))
    lines += ["", "Each clip ships its K decoded frames cut to what the view reads and their root I-frames cut to "
                  "what the motion can reach (per-cell bounds of the composed chain), as the decoder's YUV 4:2:0 "
                  "planes (RGB on the device through FFmpeg's measured conversion table); chains ragged, L1 arrays "
                  "only for frames that trace them; block vectors as int8 quarter pixels (`vectors`), or int16 "
                  "(`vectors_wide`) for a clip with a vector beyond 127 quarter pixels (32 px a step)."]
    return "\n".join(lines) + "\n"
