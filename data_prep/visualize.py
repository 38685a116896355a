#!/usr/bin/env python
"""One frame of a video as the networks see it, side by side, in a PNG.

    python data_prep/visualize.py data/synthetic/videos/SpinCW/v_SpinCW_train_000.mp4 --frame 7 \
        --out outputs/viz.png

Panels: the GOP's I-frame, the frame itself, motion vectors as an HSV colour wheel (hue =
direction, brightness = magnitude) and as arrows, the residual (grey = 0), and optical flow
(TV-L1 or DIS) computed between the same two frames in the same convention (pixel p of the
frame comes from p + motion in the reference), so vectors and flow can be compared directly.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ip_tsn.codec import CompressedVideo, VideoError
from ip_tsn.codec.flow import METHODS, compute_flow
from ip_tsn.codec.viz import draw_arrows, motion_to_rgb, residual_to_rgb, save_panels


def visualize(video_path: str, frame: int, out: str, accumulate: bool = True, flow_method: str = "tvl1") -> dict:
    """Write the panel PNG for ``frame`` of ``video_path``; returns a few statistics."""
    video = CompressedVideo(video_path)
    types = video.frame_types
    if accumulate:
        ref_index = video.gop_of(frame)
    else:  # an I-frame has no reference: its flow is against itself (zero); frame 0 is a valid reference
        ref = video.index.reference_of(frame)
        ref_index = frame if ref is None else ref
    iframe = video.load(frame, "iframe")
    rgb = video.load(frame, "rgb")
    mv = video.load(frame, "mv", accumulate)
    res = video.load(frame, "residual", accumulate)
    flow = compute_flow(rgb, video.load(ref_index, "rgb"), flow_method)
    top = max(float(np.percentile(np.linalg.norm(flow, axis=-1), 99)), 1.0)
    step = max(8, min(video.height, video.width) // 12)
    ref_name = "I-frame" if accumulate else f"frame {ref_index}"
    save_panels(
        out,
        [
            (f"I-frame ({video.gop_of(frame)})", iframe),
            (f"frame {frame} ({types[frame]})", rgb),
            (f"motion vectors -> {ref_name}", motion_to_rgb(mv, top)),
            ("motion vector arrows", draw_arrows(rgb, mv, step)),
            ("residual", residual_to_rgb(res)),
            (f"{flow_method.upper()} flow -> {ref_name}", motion_to_rgb(flow, top)),
        ],
        title=f"{video_path} ({video.codec}, {'accumulated' if accumulate else 'per frame'})",
    )
    return {"frame_type": types[frame], "mean_abs_mv": float(np.abs(mv).mean()),
            "mean_abs_flow": float(np.abs(flow).mean()), "mean_abs_residual": float(np.abs(res).mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("--frame", type=int, default=None, help="display index (default: last frame of the first GOP)")
    parser.add_argument("--out", default="outputs/visualize.png")
    parser.add_argument("--per-frame", action="store_true", help="motion into the frame's own reference, not the I-frame")
    parser.add_argument("--flow", choices=METHODS, default="tvl1")
    args = parser.parse_args(argv)
    try:
        video = CompressedVideo(args.video)
        frame = args.frame
        if frame is None:
            starts = video.gop_starts + [video.num_frames]
            frame = starts[1] - 1
        stats = visualize(args.video, frame, args.out, not args.per_frame, args.flow)
    except VideoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
