#!/usr/bin/env python
"""Prepare a downloaded UCF101 / HMDB51 / Kinetics folder for ip-tsn in one command.

    python data_prep/prepare_dataset.py ucf101 ~/downloads/ucf101 --out data/ucf101 --workers 16
    make data DATASET=ucf101 ROOT=~/downloads/ucf101          # the same (OUT defaults to data/<dataset>)
    sbatch --array=0-31 --wrap "python data_prep/prepare_dataset.py ucf101 ROOT --out data/ucf101"
    python data_prep/prepare_dataset.py ucf101 ROOT --out data/ucf101 --check   # after all shards

Every video the split files list (all splits) is re-encoded to MPEG-4 Part 2, GOP 12, no B-frames,
340x256 (``reencode.py``) into ``OUT/videos/<same relative path>.mp4``, then its TV-L1 flow is
written to ``OUT/flow/<same relative path>.npy`` (``extract_flow.py``); the split files are copied
to OUT in the dataset's own layout, so that ``load_split(DATASET, OUT, split, subset,
video_root=OUT/videos, ext=".mp4")`` (what ``experiments/data/<dataset>.yaml`` sets) reads the
copy. Kinetics: ``--class-list FILE`` (one class per line) picks the subset's classes and becomes
``OUT/annotations/classes.txt``. Finished outputs are skipped (resume); shards (``--shard i/n`` or a
SLURM array) split the videos. The final check (every video when not sharded, or ``--check``)
opens each output and its flow, and lists every video that failed and why: exit status 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Result, add_common_args, atomic_output, claim_folder, parallel_map, parse_shard, run_main, shard, \
    summarize  # noqa: E402
from extract_flow import _init_worker, extract_one, flow_path, flow_settings  # noqa: E402
from reencode import encode_settings, parse_size, reencode_video  # noqa: E402

from ip_tsn.codec import CompressedVideo, VideoError  # noqa: E402
from ip_tsn.codec.flow import METHODS, load_flow  # noqa: E402
from ip_tsn.data.datasets import load_split, video_dir  # noqa: E402
from ip_tsn.data.layouts import LAYOUTS  # noqa: E402
from ip_tsn.data.split_files import SplitError, find_kinetics_csv  # noqa: E402

PREPARED = tuple(name for name, layout in LAYOUTS.items() if layout.downloaded)  # layouts.py describes each


def copy_split_files(dataset: str, root: str, out: str, class_list: str | None = None) -> list[str]:
    """Copy the dataset's split / annotation folder (files only) from ``root`` to ``out``;
    ``class_list`` becomes Kinetics' ``annotations/classes.txt``. Returns the files written."""
    src_dir, dst_dir = os.path.join(root, LAYOUTS[dataset].split_dir), os.path.join(out, LAYOUTS[dataset].split_dir)
    if not os.path.isdir(src_dir):
        raise SplitError(f"{src_dir}: no such folder; expected layout: {LAYOUTS[dataset].description}")
    pairs = [(os.path.join(src_dir, n), os.path.join(dst_dir, n)) for n in sorted(os.listdir(src_dir))
             if os.path.isfile(os.path.join(src_dir, n))]
    if class_list is not None:
        pairs.append((class_list, os.path.join(dst_dir, "classes.txt")))
    for src, dst in pairs:
        with atomic_output(dst) as tmp:  # shards may copy at once: each renames a complete file
            shutil.copyfile(src, tmp)
    return [dst for _, dst in pairs]


def listed_videos(dataset: str, root: str, class_list: str | None = None,
                  video_root: str | None = None, ext: str | None = None) -> tuple[list[str], list[str]]:
    """(sorted relative paths of every listed video present, warnings about missing ones), over
    every split and subset of the dataset at ``root`` (or its copy: ``video_root`` / ``ext``)."""
    paths: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for split in LAYOUTS[dataset].splits:
            try:
                for subset in ("trainval", "test"):
                    paths.update(r.path for r in load_split(dataset, root, split, subset, class_list=class_list,
                                                            video_root=video_root, ext=ext))
            except SplitError:  # splits 2 and 3 may be left out; split 1 must be there
                if split == 1:
                    raise
    return sorted(paths), [str(w.message) for w in caught if "missing" in str(w.message)]


def prepare_one(rel: str, video_root: str, out: str, size: tuple[int, int], gop: int, qscale: int,
                flow_method: str | None, flow_size: tuple[int, int] | None, overwrite: bool) -> str:
    """Re-encode ``video_root/rel`` to ``out/videos/<rel>.mp4``, then its flow: a status string."""
    rel_mp4 = os.path.splitext(rel)[0] + ".mp4"
    status = reencode_video(os.path.join(video_root, rel), os.path.join(out, "videos", rel_mp4),
                            size=size, gop=gop, qscale=qscale, overwrite=overwrite)
    if flow_method is not None:  # a new video makes any older flow stale
        flow = extract_one(rel_mp4, out, method=flow_method, size=flow_size,
                           overwrite=overwrite or status != "skipped")
        status = status if status != "skipped" or flow == "skipped" else "done (flow)"
    return status


def check_one(rel: str, out: str, gop: int, flow: bool) -> str:
    """Raise ``VideoError`` (the reason) unless ``out`` holds a readable GOP-``gop`` video without
    B-frames for ``rel`` and, with ``flow``, one flow field per consecutive frame pair."""
    rel_mp4 = os.path.splitext(rel)[0] + ".mp4"
    path = os.path.join(out, "videos", rel_mp4)
    if not os.path.isfile(path):
        raise VideoError(path, "not written (it failed, or its shard has not run: see that shard's log)")
    types = CompressedVideo(path).frame_types
    if "B" in types or any(types[i] != "I" for i in range(0, len(types), gop)):
        raise VideoError(path, f"frame types {types[:2 * gop]}... are not GOP {gop} without B-frames")
    if flow:
        fpath = flow_path(out, rel_mp4)
        if not os.path.isfile(fpath):
            raise VideoError(fpath, "no flow file")
        if len(load_flow(fpath)) != len(types) - 1:
            raise VideoError(fpath, f"{len(load_flow(fpath))} flow fields for {len(types)} frames")
    return "done"


def final_check(dataset: str, rels: list[str], out: str, gop: int, flow: bool, workers: int,
                progress: bool | None, failed: dict[str, str]) -> list[Result]:
    """:func:`check_one` of every video (those that just ``failed``: that reason), then
    :func:`check_split_lists`."""
    fn = functools.partial(check_one, out=out, gop=gop, flow=flow)
    checks = parallel_map(fn, [r for r in rels if r not in failed], workers=workers, desc="check",
                          progress=progress)
    checks += [Result(r, False, f"not prepared: {failed[r]}") for r in rels if r in failed]
    return checks + check_split_lists(dataset, out, sum(r.ok for r in checks))


def check_split_lists(dataset: str, out: str, expected: int) -> list[Result]:
    """``load_split`` on the copy (Kinetics classes from the copied ``annotations/classes.txt``)
    finds the ``expected`` videos that passed the check."""
    found, _ = listed_videos(dataset, out, video_root=os.path.join(out, "videos"), ext=".mp4")
    if len(found) == expected:
        return []
    return [Result(out, False, f"load_split finds {len(found)} videos in the copy, {expected} were checked")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=PREPARED, help="the download's layout")
    parser.add_argument("root", help="the downloaded folder (layouts: ip_tsn.data.layouts)")
    parser.add_argument("--out", required=True, help="the prepared dataset's root, e.g. data/ucf101")
    parser.add_argument("--size", type=parse_size, default=(340, 256), metavar="WxH", help="default 340x256")
    parser.add_argument("--gop", type=int, default=12, help="I-frame interval (default 12)")
    parser.add_argument("--qscale", type=int, default=2, help="MPEG-4 quantizer (default 2)")
    parser.add_argument("--flow-method", choices=METHODS + ("none",), default="tvl1", help="default tvl1")
    parser.add_argument("--flow-size", type=parse_size, default=None, metavar="WxH",
                        help="frame size for the flow (default: the re-encoded size)")
    parser.add_argument("--class-list", help="Kinetics: the subset's classes, one per line")
    parser.add_argument("--check", action="store_true", help="only check the outputs of every shard")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        parser.error(f"{args.root}: no such folder")
    root, out = os.path.abspath(args.root), os.path.abspath(args.out)
    if root == out:
        parser.error("--out must differ from the downloaded folder")
    flow_method = None if args.flow_method == "none" else args.flow_method

    if args.dataset == "kinetics":
        for which in ("train", "validate"):
            used = find_kinetics_csv(Path(root) / LAYOUTS["kinetics"].split_dir, which, LAYOUTS["kinetics"].description)
            print(f"kinetics {which} annotations: {used}")
    rels, missing = listed_videos(args.dataset, root, args.class_list)  # split files read before anything is written
    if not args.check:  # the copy's videos and flow: one set of settings each, as reencode.py / extract_flow.py
        claim_folder(os.path.join(out, "videos"), encode_settings(args.size, args.gop, args.qscale), "re-encoded videos",
                     ".mp4", args.overwrite)
        if flow_method is not None:
            claim_folder(os.path.join(out, "flow"), flow_settings(flow_method, size=args.flow_size), "flow files", ".npy",
                         args.overwrite)
    copy_split_files(args.dataset, root, out, args.class_list)
    for message in missing:
        print(f"warning: {message}")
    index, count = args.shard or parse_shard(None)
    status, failed = 0, {}
    if not args.check:
        fn = functools.partial(prepare_one, video_root=str(video_dir(args.dataset, root)), out=out,
                               size=args.size, gop=args.gop, qscale=args.qscale, flow_method=flow_method,
                               flow_size=args.flow_size, overwrite=args.overwrite)
        threads = 1 if args.workers > 1 else -1
        results = parallel_map(fn, shard(rels, index, count), workers=args.workers, desc=f"{args.dataset}",
                               progress=args.progress, initializer=_init_worker, initargs=(threads,))
        status = summarize(results, f"prepare {args.dataset} (shard {index}/{count})")
        failed = {r.item: r.message for r in results if not r.ok}
    if args.check or count == 1:
        checks = final_check(args.dataset, rels, out, args.gop, flow_method is not None, args.workers,
                             args.progress, failed)
        status = max(status, summarize(checks, f"final check of {out}"))
    else:
        print(f"shard {index}/{count} done; once every shard has run: python data_prep/prepare_dataset.py "
              f"{args.dataset} {args.root} --out {args.out} --check")
    return status


if __name__ == "__main__":
    sys.exit(run_main(main))
