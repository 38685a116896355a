#!/usr/bin/env python
"""List every video (and flow file) under a folder that ip-tsn cannot read, and why.

    python data_prep/check_videos.py data/ucf101/videos            # every video under it
    python data_prep/check_videos.py data/ucf101/flow --workers 8  # every .npy flow file
    python data_prep/check_videos.py data/ucf101/videos --full     # also decode every frame (every GOP)

Each file is opened as training opens it: a video's frame index (demuxing every packet) and its
first frame (a display matrix, as phones write portrait video, is refused; so is a file that holds
fewer frames than its header lists, cut short by an interrupted download), a flow file's header;
``--full`` also decodes every frame and probes the motion vectors. Bad files are listed at the end
(exit status 1); a truncated video that still has readable frames is a note (how many frames are
left). Nothing is written.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common_args, find_files, parallel_map, parse_shard, run_main, shard, summarize  # noqa: E402
from reencode import VIDEO_EXTENSIONS  # noqa: E402


def check_file(path: str, full: bool = False) -> str:
    """"done", or "done (note)" for a truncated video; raises ``VideoError`` naming ``path``.
    ``full``: also decode every frame (every GOP) and probe the motion vectors the P-stream reads."""
    if path.lower().endswith(".npy"):
        from ip_tsn.codec.flow import load_flow

        flows = load_flow(path)
        if full:
            flows.sum()  # reads every byte of the memory map
        return "done"
    from ip_tsn.codec import CompressedVideo, VideoError
    from ip_tsn.codec.vector_probe import require_shown_as_stored

    video = CompressedVideo(path)
    try:
        index = video.index  # every packet demuxed
        video.require_whole()  # cut short: its header lists more frames than it holds, as training refuses
        require_shown_as_stored(path)  # its first frame: a display matrix (phones' portrait video) is refused
        if full:
            decoded = sum(1 for _ in video.iter_frames())
            if decoded < index.num_frames:
                raise VideoError(path, f"{decoded} of {index.num_frames} frames decode")
            if "P" in index.frame_types or "B" in index.frame_types:
                video.require_motion()
    finally:
        video.close()
    if index.truncated:
        return f"truncated: {index.num_frames} frames readable"
    return "done"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a folder of videos or .npy flow files (searched recursively)")
    parser.add_argument("--full", action="store_true",
                        help="also decode every frame and probe the motion vectors (slower: what training reads)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.folder):
        parser.error(f"{args.folder}: no such folder")
    root = os.path.abspath(args.folder)
    files = shard(find_files(root, VIDEO_EXTENSIONS + (".npy",)), *(args.shard or parse_shard(None)))
    results = parallel_map(functools.partial(check_file, full=args.full), [os.path.join(root, f) for f in files],
                           workers=args.workers, desc="check", progress=args.progress)
    return summarize(results, "check")


if __name__ == "__main__":
    sys.exit(run_main(main))
