#!/usr/bin/env python
"""One frame of a video as the networks see it, side by side, in a PNG.

    python data_prep/visualize.py data/synthetic/videos/PoolJump/v_PoolJump_train_000.mp4 --frame 11 \
        --out outputs/viz.png
    python data_prep/visualize.py VIDEO --flow dis        # add an optical-flow panel (tvl1: slow on large frames)
                                                          # -> outputs/<video name>_<frame>.png

Panels: the GOP's I-frame, the frame itself, motion vectors as an HSV colour wheel (hue =
direction, brightness = magnitude; the wheel itself is the legend panel) and as arrows (drawn from
a pixel toward where it comes from in the reference: FFmpeg's sign), the residual (grey = 0), and,
with ``--flow``, optical flow computed between the same two frames in the same convention, so
vectors and flow can be compared directly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ip_tsn.atomic import OutputError, check_output_dir
from ip_tsn.codec import CompressedVideo, VideoError
from ip_tsn.codec.flow import METHODS, compute_flow
from ip_tsn.codec.viz import draw_arrows, motion_to_rgb, residual_to_rgb, save_panels


def colour_wheel(size: int = 96) -> np.ndarray:
    """The legend of :func:`motion_to_rgb`: (size, size, 3) uint8, a vector's colour at its end point
    (hue = direction, brightness = magnitude, full at the rim)."""
    r = (size - 1) / 2
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.stack([xs - r, ys - r], axis=-1)
    wheel = motion_to_rgb(field, r)
    wheel[np.linalg.norm(field, axis=-1) > r] = 255
    return wheel


def visualize(video_path: str, frame: int, out: str, accumulate: bool = True, flow_method: str | None = None) -> dict:
    """Write the panel PNG for ``frame`` of ``video_path`` (``flow_method``: add a flow panel, e.g.
    ``dis``; None: none, the default, as TV-L1 takes about a minute on a 640x272 frame); returns a
    few statistics."""
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
    flow = compute_flow(rgb, video.load(ref_index, "rgb"), flow_method) if flow_method else None
    top = max(float(np.percentile(np.linalg.norm(flow if flow is not None else mv, axis=-1), 99)), 1.0)
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
            *([(f"{flow_method.upper()} flow -> {ref_name}", motion_to_rgb(flow, top))] if flow is not None else []),
            (f"colour wheel (rim = {top:.1f} px)", colour_wheel()),
        ],
        title=f"{video_path} ({video.codec}, {'accumulated' if accumulate else 'per frame'}); "
              "arrows: from a pixel toward where it comes from in the reference",
    )
    stats = {"frame_type": types[frame], "mean_abs_mv": float(np.abs(mv).mean()),
             "mean_abs_residual": float(np.abs(res).mean())}
    if flow is not None:
        stats["mean_abs_flow"] = float(np.abs(flow).mean())
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("--frame", type=int, default=None, help="display index (default: last frame of the first GOP)")
    parser.add_argument("--out", default=None,
                        help="the PNG to write (default: outputs/<video name>_<frame>.png); never replaced without "
                             "--overwrite")
    parser.add_argument("--overwrite", action="store_true", help="replace the PNG already at --out")
    parser.add_argument("--per-frame", action="store_true", help="motion into the frame's own reference, not the I-frame")
    parser.add_argument("--flow", choices=METHODS, default=None,
                        help="add an optical-flow panel computed with this method (dis: fast; tvl1: ~1 min on 640x272)")
    args = parser.parse_args(argv)
    try:
        video = CompressedVideo(args.video)
        frame = args.frame
        if frame is None:
            starts = video.gop_starts + [video.num_frames]
            frame = starts[1] - 1
        out = Path(args.out or f"outputs/{Path(args.video).stem}_{frame}.png")
        _check_out(out, args.overwrite)
        stats = visualize(args.video, frame, str(out), not args.per_frame, args.flow)
    except (VideoError, OutputError) as e:
        print(f"visualize.py: error: {e}", file=sys.stderr)
        return 2
    shown = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items())
    print(f"wrote {out}: {shown}")
    return 0


def _check_out(out: Path, overwrite: bool) -> None:
    """``--out`` before any work: a ``.png`` name (the picture is a PNG whatever the name), in a folder
    that can be made, not a folder itself, and no PNG there unless ``overwrite``. Until 2026-12-08 a
    folder or a file in the way was a traceback after the work, and a PNG there was replaced."""
    if out.suffix.lower() != ".png":
        raise OutputError(f"--out {out}: the picture is a PNG; give a name ending in .png")
    check_output_dir(out.parent, "--out")
    if out.is_dir():
        raise OutputError(f"--out {out}: a folder; give the PNG's file name")
    if out.exists() and not overwrite:
        raise OutputError(f"--out {out}: already there; pass --overwrite to replace it, or another --out")


if __name__ == "__main__":
    sys.exit(main())
