#!/usr/bin/env python
"""Optical flow for a dataset: <root>/videos/**.mp4 -> <root>/flow/**.npy (same relative path).

    python data_prep/extract_flow.py data/ucf101 --method tvl1 --workers 16
    sbatch --array=0-63 ... python data_prep/extract_flow.py data/ucf101   # one shard per task

Each .npy holds (N - 1, H, W, 2) uint8: flow t (frame t -> t + 1), clipped to +-bound and mapped
to [0, 255] (TSN), written atomically (``ip_tsn.codec.flow.save_flow``); read it back with
``load_flow`` (memory-mapped). Finished outputs are skipped (resume). Unreadable videos are listed
at the end and make the exit status 1; a truncated one (a read error, or fewer frames than its
container claims) gets its flow and a note line naming it and the frames read. TV-L1 on the CPU costs ~0.8 s per 340x256 frame per core
on one core of this project's CI machine; ``--method dis`` (MEDIUM) is ~80x faster, less accurate.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common_args, find_files, parallel_map, parse_shard, remove_stale_temps, run_main, \
    shard, summarize  # noqa: E402

from reencode import expected_frames, frame_rate  # noqa: E402

from ip_tsn.codec.flow import METHODS, save_flow, video_flow  # noqa: E402


def parse_size(text: str) -> tuple[int, int]:
    """``"170x128"`` -> ``(170, 128)``."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size expects WxH, e.g. 170x128, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"--size {text}: width and height must be positive")
    return width, height


def flow_path(root: str, rel: str) -> str:
    """``<root>/flow/<rel without extension>.npy`` for the video ``<root>/videos/<rel>``."""
    return os.path.join(root, "flow", os.path.splitext(rel)[0] + ".npy")


def truncation_note(path: str, frames_read: int) -> str | None:
    """Why ``path`` looks truncated, having given ``frames_read`` frames, or None: its index
    stopped on a read error, or its container claims more frames."""
    import av

    from ip_tsn.codec.index import get_index

    expected = 0
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            expected = expected_frames(stream, container, frame_rate(stream))
    except (av.FFmpegError, IndexError, OSError):
        pass
    if get_index(path).truncated or frames_read < expected - 1:
        claim = f" of the ~{expected} its container claims" if expected > frames_read else ""
        return f"truncated input: flow of the {frames_read} frames read{claim}"
    return None


def extract_one(rel: str, root: str, method: str = "tvl1", bound: float = 20.0, size=None,
                overwrite: bool = False, videos: str = "videos") -> str:
    """Flow of ``<root>/<videos>/<rel>`` into ``flow_path(root, rel)``: "skipped", "done" or
    "done (truncated input: ...)"."""
    dst = flow_path(root, rel)
    if os.path.exists(dst) and not overwrite:
        return "skipped"
    remove_stale_temps(dst)
    src = os.path.join(root, videos, rel)
    flows = video_flow(src, method=method, bound=bound, size=size)
    save_flow(dst, flows)
    note = truncation_note(src, len(flows) + 1)
    return f"done ({note})" if note else "done"


def _init_worker(threads: int) -> None:
    import cv2

    cv2.setNumThreads(threads)  # -1: OpenCV's default, 0 or 1: no threading


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="dataset root holding videos/ (flow/ is written next to it)")
    parser.add_argument("--method", choices=METHODS, default="tvl1",
                        help="tvl1 (TV-L1, TSN's teacher flow; default) or dis (DIS, MEDIUM preset)")
    parser.add_argument("--bound", type=float, default=20.0,
                        help="clip flow to +-bound pixels before quantizing (default 20)")
    parser.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                        help="resize frames before the flow (default: the video's own size)")
    parser.add_argument("--ext", default=".mp4", help="video extension under videos/ (default .mp4)")
    parser.add_argument("--videos", default="videos", metavar="DIR",
                        help="folder under root to compute the flow from (default videos; the synthetic data "
                             "has source/, its high-quality originals, as real flow comes from the download)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OpenCV threads per worker (default: 1 with several workers, "
                             "else OpenCV's default)")
    add_common_args(parser)
    args = parser.parse_args(argv)

    root = os.path.abspath(args.root)
    videos_dir = os.path.join(root, args.videos)
    if not os.path.isdir(videos_dir):
        parser.error(f"{videos_dir}: no such folder (expected <root>/{args.videos}/**{args.ext})")
    videos = shard(find_files(videos_dir, (args.ext,)), *(args.shard or parse_shard(None)))
    threads = args.threads if args.threads is not None else (1 if args.workers > 1 else -1)
    fn = functools.partial(extract_one, root=root, method=args.method, bound=args.bound,
                           size=args.size, overwrite=args.overwrite, videos=args.videos)
    results = parallel_map(fn, videos, workers=args.workers, desc=f"flow ({args.method})",
                           progress=args.progress, initializer=_init_worker, initargs=(threads,))
    return summarize(results, f"flow ({args.method})")


if __name__ == "__main__":
    sys.exit(run_main(main))
