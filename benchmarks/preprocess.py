"""Section 1: preprocessing cost per frame, P-stream inputs versus optical flow, and raw motion vectors
versus the ``motion-vector-extractor`` package.

Everything runs in one process with ONE thread (OpenCV and the decoder), so the numbers are per core
and the ratios compare like with like. Per video:

- ``p_inputs``: every frame's I-frame, accumulated motion vectors and accumulated residual, GOP by GOP
  through the public API (``CompressedVideo.load`` / ``load_many``), from a fresh ``CompressedVideo``
  with the index cache cleared (so the demux pass that builds the index is included); / frames.
- ``mv_acc``: the accumulated motion vectors only; ``mv_dense``: per-frame (``accumulate=False``)
  dense motion; ``raw_mv``: decoding with ``flags2=+export_mvs`` and reading FFmpeg's vector arrays,
  no dense painting (``CompressedVideo.block_vectors``, index included): what
  ``motion-vector-extractor`` returns.
- ``decode_rgb``: every frame decoded and converted to RGB (``iter_frames``): the flow pipeline's
  decoding.
- flow (``tvl1``, ``dis``, and in full mode ``tvl1-fast``): ``compute_flow`` on consecutive decoded
  frames (grey conversion included), median over a few pairs.
- ratio = (decode_rgb + flow per pair) / p_inputs, both per frame, from the same run.
- ``mvx`` / ``mvx_frames``: ``mvextractor.videocap.VideoCap`` over the whole file, frame decoding
  off / on (BGR frames); compared with ``raw_mv`` / ``raw_mv_rgb`` (ours plus RGB conversion).

A cProfile of the P inputs and of the raw vectors on one 340x256 video, and of the accumulated
vectors of one as-is H.264 video, shows where the time goes.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from pathlib import Path

import cv2
import numpy as np

import media
from common import log, set_threads, timed
from ip_tsn.codec import CompressedVideo, clear_index_cache
from ip_tsn.codec.flow import compute_flow


def _fresh(path) -> CompressedVideo:
    clear_index_cache()
    return CompressedVideo(path)


def _gop_members(v: CompressedVideo) -> dict[int, list[int]]:
    members: dict[int, list[int]] = {}
    for i in range(v.num_frames):
        members.setdefault(v.gop_of(i), []).append(i)
    return members


def p_inputs(path) -> None:
    """I-frame + accumulated mv + accumulated residual of every frame (what the P-stream needs)."""
    v = _fresh(path)
    for g, members in _gop_members(v).items():
        v.load_many(members, "mv")
        v.load_many(members, "residual")
        v.load(g, "iframe")
    v.close()


def mv_acc(path) -> None:
    v = _fresh(path)
    for members in _gop_members(v).values():
        v.load_many(members, "mv")
    v.close()


def mv_dense(path) -> None:
    v = _fresh(path)
    v.load_many(range(v.num_frames), "mv", accumulate=False)
    v.close()


def raw_mv(path, rgb: bool = False) -> int:
    """FFmpeg's block vectors of every frame (``CompressedVideo.block_vectors``, GOP by GOP);
    ``rgb``: also every frame in RGB (``load_many(..., "rgb")`` of the GOP just decoded). Returns the
    number of vectors."""
    v = _fresh(path)
    count = 0
    for members in _gop_members(v).values():
        count += sum(0 if vec is None else len(vec) for vec in v.block_vectors(members))
        if rgb:
            v.load_many(members, "rgb")
    v.close()
    return count


def decode_rgb(path) -> int:
    return sum(1 for _ in _fresh(path).iter_frames())


def mvx(path, frames: bool = False) -> int:
    """motion-vector-extractor over the whole file; returns the number of vectors."""
    from mvextractor.videocap import VideoCap

    cap = VideoCap()
    if not cap.open(str(path)):
        raise RuntimeError(f"motion-vector-extractor cannot open {path}")
    cap.set_decode_frames(frames)
    count = 0
    while True:
        out = cap.read()
        if not out[0]:
            break
        count += len(out[2])
    cap.release()
    return count


def mvx_available() -> str | None:
    """None if ``mvextractor`` imports and runs, else why not."""
    try:
        from mvextractor.videocap import VideoCap  # noqa: F401
    except Exception as e:  # not installed, or its extension cannot load
        return f"{type(e).__name__}: {e}"
    return None


def measure_video(name: str, path: Path, group: str, quick: bool, methods: list[str],
                  flow_pixel_limit: int | None, use_mvx: bool) -> dict:
    v = CompressedVideo(path)
    n, w, h = v.num_frames, v.width, v.height
    reps = 2 if quick or w * h > 2 * 340 * 256 else 5  # large H.264 frames: fewer repeats (time budget)
    row = {"name": name, "group": group, "path": str(path), "frames": n, "width": w, "height": h,
           "codec": v.codec, "frame_types": v.frame_types[:24], "gops": len(v.gop_starts)}
    per = {}
    for key, fn in [("p_inputs", lambda: p_inputs(path)), ("mv_acc", lambda: mv_acc(path)),
                    ("mv_dense", lambda: mv_dense(path)), ("raw_mv", lambda: raw_mv(path)),
                    ("raw_mv_rgb", lambda: raw_mv(path, rgb=True)), ("decode_rgb", lambda: decode_rgb(path))]:
        t = timed(fn, repeats=reps)
        per[key] = {"wall_ms": 1e3 * t["wall"] / n, "cpu_ms": 1e3 * t["cpu"] / n}
    if use_mvx:
        for key, frames in (("mvx", False), ("mvx_frames", True)):
            t = timed(lambda: mvx(path, frames), repeats=reps)
            per[key] = {"wall_ms": 1e3 * t["wall"] / n, "cpu_ms": 1e3 * t["cpu"] / n}
        row["vectors_ours"], row["vectors_mvx"] = raw_mv(path), mvx(path)
    row["per_frame"] = per
    # optical flow on consecutive decoded frames
    frames = list(CompressedVideo(path).iter_frames())
    pairs = 1 if quick else (3 if w * h <= 340 * 256 * 2 else 2)
    flow = {}
    for method in methods:
        if method.startswith("tvl1") and flow_pixel_limit and w * h > flow_pixel_limit:
            flow[method] = None  # too slow for --quick at this size
            continue
        starts = np.linspace(0, len(frames) - 2, pairs + 1).astype(int)
        compute_flow(frames[starts[0]], frames[starts[0] + 1], method)  # warm-up (estimator, buffers)
        times = [timed(lambda: compute_flow(frames[s], frames[s + 1], method), repeats=1, warmup=0)
                 for s in starts[1:]]
        flow[method] = {"wall_ms": 1e3 * float(np.median([t["wall"] for t in times])),
                        "cpu_ms": 1e3 * float(np.median([t["cpu"] for t in times])), "pairs": len(times)}
    row["flow"] = flow
    for clock in ("wall", "cpu"):
        p = per["p_inputs"][f"{clock}_ms"]
        row[f"ratio_{clock}"] = {m: (per["decode_rgb"][f"{clock}_ms"] + f[f"{clock}_ms"]) / p
                                 for m, f in flow.items() if f}
        row[f"ratio_flow_only_{clock}"] = {m: f[f"{clock}_ms"] / p for m, f in flow.items() if f}
    if use_mvx:
        row["mvx_ratio"] = per["raw_mv"]["wall_ms"] / per["mvx"]["wall_ms"]
        row["mvx_ratio_cpu"] = per["raw_mv"]["cpu_ms"] / per["mvx"]["cpu_ms"]
        row["mvx_frames_ratio"] = per["raw_mv_rgb"]["wall_ms"] / per["mvx_frames"]["wall_ms"]
        row["mvx_frames_ratio_cpu"] = per["raw_mv_rgb"]["cpu_ms"] / per["mvx_frames"]["cpu_ms"]
    return row


def _profile(fn, top: int = 14) -> dict:
    prof = cProfile.Profile(time.process_time)  # CPU time: other processes on the machine do not count
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        where = f"{Path(file).name}:{line}({func})" if file != "~" else func
        rows.append({"function": where, "calls": nc, "tottime_s": tt, "cumtime_s": ct,
                     "share": tt / total if total else 0.0})
    return {"total_s": total, "top": rows}


def run(quick: bool = False) -> dict:
    set_threads(1)
    methods = ["tvl1", "dis"] + ([] if quick else ["tvl1-fast"])
    why_not = mvx_available()
    use_mvx = why_not is None
    groups = [("synthetic 340x256 (MPEG-4)", {p.stem: p for p in media.synthetic_340(2 if quick else 10)}),
              ("real, re-encoded 340x256 (MPEG-4)", media.real_340()),
              ("real, as-is (H.264)", {k: v for k, v in media.real_as_is().items()
                                       if not quick or k.startswith("carphone")})]
    rows = []
    for group, videos in groups:
        for name, path in videos.items():
            log(f"preprocess: {group}: {name}")
            rows.append(measure_video(name, path, group, quick, methods,
                                      flow_pixel_limit=640 * 272 if quick else None, use_mvx=use_mvx))
    probe = media.synthetic_340(1)[0]
    profiles = {"p_inputs": _profile(lambda: [p_inputs(probe) for _ in range(3)]),
                "raw_mv": _profile(lambda: [raw_mv(probe) for _ in range(3)])}
    real = media.real_as_is()
    if "bigbuckbunny.mp4" in real:
        profiles["raw_mv_bigbuckbunny"] = _profile(lambda: raw_mv(real["bigbuckbunny.mp4"]))
    name = "carphone_pristine.mp4" if quick else "bikes.mp4"
    if name in real:
        profiles["mv_acc_h264"] = _profile(lambda: mv_acc(real[name]))
        profiles["mv_acc_h264"]["video"] = name
    return {"rows": rows, "methods": methods, "threads": 1, "mvx_error": why_not,
            "profiles": profiles,
            "profile_video": str(probe)}
