"""The huge-input section (issue 21, item 9): one stream's test-protocol input of a 4K and an 8K
clip, decoded at full size against ``data.decode_downscale`` (the default: decoded at 1/8).

What ``ip-tsn predict`` spends before its networks run: ``StreamDataset`` (``train=False``, 25
segment centres, one 224x224 centre crop, shorter side to 256) of MPEG-4 clips (GOP 12): 3840x2160
(12 frames) at full size and reduced, 7680x4320 (24 frames) reduced only (at full size it needs about
4x the 4K clip's memory, more than a 23 GB machine has); ``--quick``: 1920x1080, 12 frames. For the
P-stream (``p``: accumulated motion + residual) and the I-stream (``iframe``). Each cell runs in its
own process: wall seconds of one cold read and the process's peak resident memory. **Agreement**
(the clip measured both ways): per channel group, the mean absolute difference between the two
inputs divided by the full-size input's mean magnitude (normalised units).

    python benchmarks/run.py --only huge        # ~5 min on 2 cores (encodes the clips once, runs/bench/)
    python benchmarks/huge.py --child CLIP MODALITY DOWNSCALE OUT.npy   # one cell (what run() calls)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from common import REPO, WORK_DIR, log
from formatting import f, table

# quick -> [(width, height, frames, the decode_downscale values measured)]
CLIPS = {False: [(3840, 2160, 12, (False, True)), (7680, 4320, 24, (True,))],
         True: [(1920, 1080, 12, (False, True))]}
MODALITIES = ("p", "iframe")
GROUPS = {"p": {"mv": [0, 1], "residual": [2, 3, 4]}, "iframe": {"rgb": [0, 1, 2]}}


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A smooth texture panning 8 px right and 4 px down per frame, MPEG-4, GOP 12, written frame by
    frame (an 8K clip never sits in memory whole)."""
    import av
    import cv2

    from ip_tsn.atomic import atomic_path
    from ip_tsn.codec.encode import add_video_stream

    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = (rng.random((height // 32 + 8, width // 32 + 8, 3)) * 255).astype(np.uint8)
    big = cv2.resize(base, ((width // 32 + 8) * 32, (height // 32 + 8) * 32), interpolation=cv2.INTER_CUBIC)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        stream = add_video_stream(out, width, height, codec="mpeg4", fps=12, gop_size=12, qscale=4)
        for t in range(frames):
            rgb = np.ascontiguousarray(big[4 * t: 4 * t + height, 8 * t: 8 * t + width])
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 12)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def child(clip: str, modality: str, downscale: str, out: str) -> None:
    """One cell: read the test input, save it to ``out``, print seconds and peak memory as JSON."""
    from ip_tsn.codec import CompressedVideo
    from ip_tsn.data.datasets import VideoRecord
    from ip_tsn.data.video_dataset import StreamDataset

    path = Path(clip)
    start = time.perf_counter()
    ds = StreamDataset([VideoRecord(path.name, -1, "")], path.parent, modality, train=False, num_segments=25,
                       test_crops=1, scale_size=256, crop_size=224, decode_downscale=downscale == "1")
    x = ds[0]["input"].numpy()
    seconds = time.perf_counter() - start
    np.save(out, x)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    factor = CompressedVideo(path, min_side=256 if downscale == "1" else None).factor
    print(json.dumps({"seconds": seconds, "peak_gb": peak_kb / 2**20, "shape": list(x.shape), "factor": factor}))


def run(quick: bool = False) -> dict:
    rows, agreement = [], []
    for width, height, frames, settings in CLIPS[quick]:
        clip = make_clip(WORK_DIR / "huge" / f"pan_{width}x{height}_{frames}.mp4", width, height, frames)
        inputs = {}
        for modality in MODALITIES:
            for downscale in settings:
                out = WORK_DIR / "huge" / f"input_{modality}_{int(downscale)}.npy"
                log(f"huge: {width}x{height}, {modality}, decode_downscale={downscale}")
                done = subprocess.run([sys.executable, __file__, "--child", str(clip), modality,
                                       str(int(downscale)), str(out)], capture_output=True, text=True, cwd=REPO)
                if done.returncode:
                    raise RuntimeError(f"huge child failed: {done.stderr.strip().splitlines()[-1:]}")
                cell = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append({"clip": f"{width}x{height}, {frames} frames", "modality": modality,
                             "decode_downscale": downscale, **cell})
                inputs[modality, downscale] = np.load(out)
        for modality in MODALITIES if len(settings) == 2 else ():
            full, small = inputs[modality, False], inputs[modality, True]
            for group, channels in GROUPS[modality].items():
                agreement.append({"clip": f"{width}x{height}", "modality": modality, "channels": group,
                                  "mean_abs_diff": float(np.abs(full[:, channels] - small[:, channels]).mean()),
                                  "mean_abs": float(np.abs(full[:, channels]).mean())})
    return {"quick": quick, "codec": "mpeg4", "gop": 12, "rows": rows, "agreement": agreement}


def report(result: dict) -> str:
    lines = ["## 8. Huge inputs: decoding at a reduced size (issue 21)", "",
             "One stream's test-protocol input (25 segment centres, one 224x224 centre crop, shorter side to 256) "
             f"of {result['codec']} clips (GOP {result['gop']}; a panning texture), each cell a fresh process: wall "
             "seconds of one cold read, peak resident memory of the process (Python, torch and the decoder "
             "included). `decode_downscale` (`data.decode_downscale`, on by default) decodes pictures at 1/2, 1/4 "
             "or 1/8 of their size, never below `scale_size` (decoded at: 1/factor). The 8K clip is not read at full size: "
             "that needs about 4x the 4K clip's memory, more than this machine has.", ""]
    rows = [[r["clip"], r["modality"], "on" if r["decode_downscale"] else "off", f"1/{r['factor']}", f(r["seconds"]),
             f(r["peak_gb"])] for r in result["rows"]]
    lines.append(table(["clip", "stream input", "decode_downscale", "decoded at", "seconds", "peak memory (GB)"], rows,
                       left=4))
    lines += ["", "How far the reduced-size input is from the full-size one (normalised units, the mean absolute "
                  "difference over the mean magnitude of the full-size input):", ""]
    rows = [[a["clip"], a["modality"], a["channels"], f(a["mean_abs_diff"]), f(a["mean_abs"]),
             f(100 * a["mean_abs_diff"] / a["mean_abs"] if a["mean_abs"] else None) + " %"] for a in result["agreement"]]
    lines.append(table(["clip", "stream", "channels", "mean abs. difference", "mean magnitude", "relative"], rows,
                       left=3))
    lines += ["", "Motion vectors and pictures change little; the residual changes most, because the residual of "
                  "downscaled pictures is not the downscaled residual (fine detail the prediction misses is averaged "
                  "away first). Train and test with the same setting: for videos whose shorter side is below twice "
                  "`scale_size` (UCF101, HMDB51, the synthetic default) the setting changes nothing."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        print(__doc__)
