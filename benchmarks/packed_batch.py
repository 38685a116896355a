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

import numpy as np
import torch

import media
from common import WORK_DIR, log, set_threads
from formatting import f, table
from ip_tsn.codec import CompressedVideo
from ip_tsn.data.datamodule import collate_packed
from ip_tsn.data.device_reconstruct import rebuild_packed
from ip_tsn.data.packed_p import PACKED, pack_frames, plan_frame
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
    out["h264"] = h264_rows(quick)
    return out


def h264_rows(quick: bool = False, picks: int = 3) -> list[dict]:
    """Per H.264 sample as it is (issue 20.3): the share of its accumulated P/B frames the device
    path plans (all; those that pick among several reference pictures; those built through a
    reference B-frame of a B-pyramid), and on up to ``picks`` planned frames of each of the last two
    kinds (the fewest steps, so a CPU run stays short) the largest difference between the device
    rebuild (on this CPU, torch) and ``CompressedVideo.load``, with the bytes the reference
    choices (and each step's candidates) add to what the frames ship."""
    rows = []
    for name, path in sorted(media.real_as_is().items()):
        v = CompressedVideo(path)
        inter = [i for i in range(v.num_frames) if v.frame_types[i] != "I"]
        plans = {i: plan_frame(v, i, True) for i in inter}
        planned = [i for i in inter if plans[i] is not None]
        multi = [i for i in planned if plans[i].multi]  # type: ignore[union-attr]
        pyramid = [i for i in planned if any(v.frame_types[j] == "B" for j in plans[i].steps[:-1])]  # type: ignore[union-attr]
        row = {"video": name, "size": f"{v.width}x{v.height}", "frames": len(inter), "planned": len(planned),
               "multi": len(multi), "pyramid": len(pyramid), "checked": 0, "max_diff": None, "choice_bytes": None,
               "bytes": None}
        fewest = lambda frames: sorted(frames, key=lambda i: len(plans[i].steps))[: 1 if quick else picks]  # type: ignore[union-attr]  # noqa: E731
        chosen = sorted(set(fewest(multi)) | set(fewest(pyramid)))
        if chosen:
            packed = pack_frames(v, np.array(chosen), True)
            assert packed is not None
            raw = rebuild_packed([{k: torch.from_numpy(a) for k, a in packed.items()}]).numpy()
            diff = max(max(np.abs(raw[k, :2].transpose(1, 2, 0) - v.load(i, "mv")).max(),
                           np.abs(raw[k, 2:].transpose(1, 2, 0) - v.load(i, "residual")).max())
                       for k, i in enumerate(chosen))
            row.update(checked=len(chosen), max_diff=float(diff),  # bytes as the worker packs them (int16)
                       choice_bytes=int(packed["choice"].nbytes + packed["sources"].nbytes),
                       bytes=int(sum(a.nbytes for a in packed.values())))
        v.close()
        log(f"packed h264: {name}: {len(planned)}/{len(inter)} planned, {len(multi)} with choices, "
            f"{len(pyramid)} through reference B-frames")
        rows.append(row)
    return rows


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
             f"(`collate_packed`: the packed clips' arrays in one buffer per dtype, `packed_batch.pack_batch`): "
             f"{res['tensors']} tensors in all, {f(res['bytes'] / 1e6)} MB, collated in {f(res['collate_ms'])} ms of CPU "
             f"({res['packed_clips']} of {res['batch']} clips packed).", ""]
    rows = [[k, f(v / 1e6), f(v / res["batch"] / 1e6)] for k, v in res["by_buffer"].items()]
    lines.append(table(["buffer", "MB per batch", "MB per clip"], rows))
    lines += ["", "Each clip ships its K decoded frames cut to what the view reads and their root I-frames cut to "
                  "what the motion can reach (per-cell bounds of the composed chain), as the decoder's YUV 4:2:0 "
                  "planes (RGB on the device through FFmpeg's measured conversion table); chains ragged, L1 arrays "
                  "only for frames that trace them; block vectors as int8 quarter pixels (`vectors`), or int16 "
                  "(`vectors_wide`) for a clip with a vector beyond 127 quarter pixels (32 px a step)."]
    if res.get("h264"):
        lines += ["", "**H.264 as it is** (issue 20.3): a frame's plan holds every picture its accumulated motion "
                      "is built from, as steps in decode order (`packed_p.plan_frame`): the P-frames back to the "
                      "I-frame and, in a B-pyramid, the reference B-frames a P-frame may pick per cell or a "
                      "B-frame's L1-only cells go through; motion that picks among several reference pictures per "
                      "8x8 cell is rebuilt on the device from the worker's per-cell choices "
                      "(`CompressedVideo.reference_choices`). *planned*: accumulated P/B frames the device path "
                      "rebuilds; *with choices*: those among them that ship reference choices; *via reference "
                      "B*: those built through a reference B-frame; *max |diff|*: the device rebuild (torch, this "
                      "CPU) against `CompressedVideo.load` (motion and residual) on the planned frames of the last "
                      "two kinds with the fewest steps; *choices*: the bytes the choices and each step's candidates "
                      "add to those frames' packed arrays, as the worker packs them (int16; int8 in a batch).", ""]
        rows = [[r["video"], r["size"], f"{r['planned']} / {r['frames']}", str(r["multi"]), str(r.get("pyramid", "")),
                 "" if r["max_diff"] is None else f"{r['max_diff']:.1e} ({r['checked']} frames)",
                 "" if r["bytes"] is None else f"{f(r['choice_bytes'] / 1e3)} of {f(r['bytes'] / 1e3)} kB"]
                for r in res["h264"]]
        lines.append(table(["video", "size", "planned", "with choices", "via reference B", "max \\|diff\\|", "choices"],
                           rows))
    return "\n".join(lines) + "\n"
