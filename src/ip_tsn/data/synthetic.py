"""Synthetic action videos: the package's embedded default dataset (nothing to download).

Every video is drawn with numpy/OpenCV and encoded with PyAV as real compressed video: MPEG-4
Part 2 (``mpeg4``), GOP 12 (frame types ``IPPPPPPPPPPPIPPP...``), no B-frames, yuv420p, a fixed
quantiser, 4MV (8x8 motion blocks allowed), in ``.mp4``; the motion vectors and residuals are the
codec's own (FFmpeg's vectors point back to the source: a rightward move has ``motion_x < 0``).
Each video has a random textured background (blobs + stripes + grain), smooth random camera jitter
(a sub-pixel random walk, ``|offset| <= 3`` px), random object colours, sizes, tilts and start
positions, and a small drifting triangle as a distractor. Objects move 1-4.7 px per frame, well
inside the +-20 px flow clipping bound. Object sizes scale with ``min(H, W) / 96``; speeds are in
pixels per frame. A video is a pure function of (seed, split, class, index, frames, size): the same
seed gives byte-identical decoded frames, whatever the counts, worker count or generation order.

Classes (1-based labels as in ``classInd.txt``). One frame shows the shape but not the motion; the
motion vectors show the motion but only roughly the shape:

==  =============  ==========================================  ========================================
#   name           what moves                                  what tells it apart
==  =============  ==========================================  ========================================
1   DiscLeft       a disc slides left, 1.2-2.2 px/frame        direction (vs 2), shape (vs 3)
2   DiscRight      a disc slides right, 1.2-2.2 px/frame       direction (vs 1), shape (vs 4)
3   SquareLeft     a tilted square slides left                 direction (vs 4), shape (vs 1)
4   SquareRight    a tilted square slides right                direction (vs 3), shape (vs 2)
5   DiscOscillate  a disc swings left-right (sine, period      periodic vs steady (vs 1, 2); one frame
                   12-18 frames, amplitude 6-9 px)             looks like 1 or 2
6   SpinCW         a two-coloured bar turns clockwise,         rotation sense (vs 7), speed (vs 8)
                   tips 1.1-2.2 px/frame
7   SpinCCW        the bar turns counter-clockwise             rotation sense (vs 6), speed (vs 8)
8   SpinFast       the bar turns either way, tips 2.7-4.6      speed (vs 6, 7), not the sense
                   px/frame
9   ZoomIn         the camera zooms in on a bullseye, 1.8-2.6  expansion vs contraction (vs 10); the
                   %/frame (x1.9-2.5 over 36 frames)           scale range is the same in both
10  ZoomOut        the camera zooms out (the reverse)          contraction vs expansion (vs 9)
==  =============  ==========================================  ========================================

Layout written (see docs/DESIGN.md): ``<root>/videos/<Class>/v_<Class>_<split>_<idx:03d>.mp4``,
``<root>/splits/classInd.txt`` and ``{train,val,test}list01.txt``, plus ``<root>/synthetic.json``
(the generation settings, checked on re-runs).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm.auto import tqdm

CLASSES: tuple[str, ...] = (
    "DiscLeft", "DiscRight", "SquareLeft", "SquareRight", "DiscOscillate",
    "SpinCW", "SpinCCW", "SpinFast", "ZoomIn", "ZoomOut",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")
GOP_SIZE = 12
DEFAULT_COUNTS: dict[str, int] = {"train": 16, "val": 4, "test": 8}
DEFAULT_CONFIG: dict = {"videos_per_class": DEFAULT_COUNTS, "num_frames": 36, "size": (96, 96)}
TINY_CONFIG: dict = {"videos_per_class": {"train": 2, "val": 1, "test": 1}, "num_frames": 24,
                     "size": (64, 64)}
_MARGIN = 8  # background pixels beyond each frame edge (> max camera jitter)
_SS = 4  # supersampling factor for anti-aliased sprites


def video_name(class_name: str, split: str, index: int) -> str:
    """File name of one video, e.g. ``v_DiscLeft_train_003.mp4``."""
    return f"v_{class_name}_{split}_{index:03d}.mp4"


def video_rng(seed: int, split: str, class_index: int, index: int) -> np.random.Generator:
    """The RNG that draws video ``index`` of class ``class_index`` (0-based) in ``split``."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), class_index, index]))


def _colour(rng: np.random.Generator, sat: tuple[float, float] = (0.5, 1.0)) -> np.ndarray:
    """A random RGB colour (3,) float32 in [0, 255] with saturation in ``sat`` and bright value."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.uniform(*sat) * 255, rng.uniform(0.55, 1.0) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random texture (height, width, 3) float32: smooth blobs + oriented stripes + grain."""
    cell = rng.uniform(8, 16)
    low = rng.random((int(height / cell) + 2, int(width / cell) + 2)).astype(np.float32)
    blobs = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    a = rng.uniform(0, np.pi)
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / rng.uniform(6, 18))
    w = rng.uniform(0.3, 0.7)
    mix = np.clip(w * blobs + (1 - w) * stripes, 0, 1)[..., None]
    c1, c2 = _colour(rng, (0.1, 0.6)), _colour(rng, (0.1, 0.6))
    grain = rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    return np.clip(c1 * (1 - mix) + c2 * mix + grain, 0, 255).astype(np.float32)


def _sprite(kind: str, radius: float, rng: np.random.Generator, tilt: float = 0.0) -> np.ndarray:
    """An anti-aliased textured shape, (S, S, 4) float32: premultiplied RGB in [0, 255] + alpha.

    ``kind``: disc, square (same area as the disc, tilted by ``tilt`` rad), bar (length
    ``2 * radius``, two coloured halves), bullseye (alternating rings) or triangle. The shape's
    centre is the sprite's centre ``((S - 1) / 2, (S - 1) / 2)``.
    """
    size = 2 * int(np.ceil(radius * 1.3)) + 3
    big = size * _SS
    c = (big - 1) / 2
    r = radius * _SS
    mask = np.zeros((big, big), np.uint8)
    part = np.zeros((big, big), np.uint8)  # which of two colours

    def poly(pts: np.ndarray, img: np.ndarray, value: int) -> None:
        cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], value, cv2.LINE_8, shift=4)

    def rot(pts: np.ndarray, a: float) -> np.ndarray:
        return pts @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + c

    if kind == "disc":
        cv2.circle(mask, (int(c), int(c)), int(r), 1, -1)
        cv2.circle(part, (int(c), int(c)), int(r * 0.45), 1, -1)
    elif kind == "square":
        h = r * np.sqrt(np.pi) / 2
        poly(rot(np.array([[-h, -h], [h, -h], [h, h], [-h, h]]), tilt), mask, 1)
        poly(rot(np.array([[-h, -h], [0, -h], [0, h], [-h, h]]) * 0.5, tilt), part, 1)
    elif kind == "bar":
        h = max(r * 0.3, 2.5 * _SS)
        poly(rot(np.array([[-r, -h], [r, -h], [r, h], [-r, h]]), 0.0), mask, 1)
        poly(rot(np.array([[0, -h], [r, -h], [r, h], [0, h]]), 0.0), part, 1)
    elif kind == "bullseye":
        for i, rr in enumerate(np.linspace(r, r / 4, 4)):
            cv2.circle(mask, (int(c), int(c)), int(rr), 1, -1)
            cv2.circle(part, (int(c), int(c)), int(rr), i % 2, -1)
    elif kind == "triangle":
        ang = tilt + np.array([0, 2, 4]) * np.pi / 3
        poly(np.stack([np.cos(ang), np.sin(ang)], 1) * r + c, mask, 1)
    else:
        raise ValueError(f"unknown sprite kind {kind!r}")
    c1, c2 = _colour(rng), _colour(rng)
    rgb = np.where(part[..., None] > 0, c2, c1)
    edge = mask - cv2.erode(mask, np.ones((2 * _SS + 1,) * 2, np.uint8))  # ~1 px outline
    rgb[edge > 0] = 20.0 if c1.mean() > 110 else 235.0
    alpha = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    prgb = cv2.resize(rgb * mask[..., None], (size, size), interpolation=cv2.INTER_AREA)
    prgb += rng.normal(0, 10, prgb.shape).astype(np.float32) * alpha[..., None]
    return np.concatenate([np.clip(prgb, 0, 255), alpha[..., None]], axis=2).astype(np.float32)


def _affine(scale: float, angle: float, src_c: np.ndarray, dst_c: np.ndarray) -> np.ndarray:
    """(2, 3) matrix mapping ``src_c + v`` to ``dst_c + scale * R(angle) v`` (y down: + is clockwise)."""
    a = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([a, (dst_c - a @ src_c)[:, None]])


def render_video(class_name: str, rng: np.random.Generator, num_frames: int = 36,
                 size: tuple[int, int] = (96, 96)) -> np.ndarray:
    """Draw one video of ``class_name``: (T, H, W, 3) uint8 RGB, ``size = (H, W)``."""
    if class_name not in CLASSES:
        raise ValueError(f"unknown class {class_name!r}; expected one of {CLASSES}")
    (height, width), T = size, num_frames
    k, t = min(height, width) / 96, np.arange(T, dtype=np.float64)
    bg = _background(rng, height + 2 * _MARGIN, width + 2 * _MARGIN)
    jitter = np.clip(np.cumsum(rng.normal(0, 0.6, (T, 2)), axis=0), -3, 3)
    zoom, focus = np.ones(T), np.array([width, height]) / 2
    objs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # sprite, xy, angle, scale

    # distractor: a small triangle drifting slowly, drawn first (behind the actor)
    tri = _sprite("triangle", rng.uniform(4, 7) * k, rng, rng.uniform(0, np.pi))
    d_dir, d_speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.6)
    d_vel = d_speed * np.array([np.cos(d_dir), np.sin(d_dir)])
    d_xy = rng.uniform(0.1, 0.9, 2) * [width, height] + np.outer(t, d_vel)
    objs.append((tri, d_xy, rng.uniform(-0.05, 0.05) * t, np.ones(T)))

    name, y = class_name, rng.uniform(0.3, 0.7) * height
    if name in ("DiscLeft", "DiscRight", "SquareLeft", "SquareRight", "DiscOscillate"):
        r = rng.uniform(9, 13) * k
        kind = "square" if name.startswith("Square") else "disc"
        sprite = _sprite(kind, r, rng, rng.uniform(-0.35, 0.35))
        if name == "DiscOscillate":
            amp, period = rng.uniform(6, 9), rng.uniform(12, 18)
            phase = rng.uniform(0, 2 * np.pi)
            x = rng.uniform(0.35, 0.65) * width + amp * np.sin(2 * np.pi * t / period + phase)
        else:
            v = rng.uniform(1.2, 2.2)
            travel = v * (T - 1)
            lo, hi = r, width - r - travel
            x = (rng.uniform(lo, hi) if hi > lo else (width - travel) / 2) + v * t
            x = width - x if name.endswith("Left") else x
        xy = np.stack([x, y + rng.uniform(-0.25, 0.25) * t], axis=1)
        objs.append((sprite, xy, np.zeros(T), np.ones(T)))
    elif name.startswith("Spin"):
        half = rng.uniform(18, 24) * k
        if name == "SpinFast":
            omega = rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.19) / k
        else:
            omega = (1.0 if name == "SpinCW" else -1.0) * rng.uniform(0.06, 0.09) / k
        xy = np.tile(rng.uniform(0.4, 0.6, 2) * [width, height], (T, 1))
        objs.append((_sprite("bar", half, rng), xy, rng.uniform(0, 2 * np.pi) + omega * t, np.ones(T)))
    else:  # ZoomIn / ZoomOut: the camera zooms about a focus point where a bullseye sits
        rho = rng.uniform(0.018, 0.026)
        zoom = np.exp(rho * (t if name == "ZoomIn" else (T - 1 - t)))
        focus = focus + rng.uniform(-0.1, 0.1, 2) * [width, height]
        target = _sprite("bullseye", rng.uniform(7, 10) * k, rng)
        objs.append((target, np.tile(focus, (T, 1)), np.zeros(T), np.ones(T)))

    frames = np.empty((T, height, width, 3), np.uint8)
    for i in range(T):
        cam = focus + jitter[i]  # where the focus point lands in frame i
        out = cv2.warpAffine(bg, _affine(zoom[i], 0.0, focus + _MARGIN, cam), (width, height),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        for sprite, xy, angle, scale in objs:
            sc = (sprite.shape[0] - 1) / 2
            dst = cam + zoom[i] * (xy[i] - focus)
            m = _affine(zoom[i] * scale[i], angle[i], np.array([sc, sc]), dst)
            w = cv2.warpAffine(sprite, m, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            out = out * (1 - w[..., 3:]) + w[..., :3]
        frames[i] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return frames


def encode_video(frames: np.ndarray, path: str | os.PathLike, fps: int = 12, qscale: int = 2) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames to ``path`` (.mp4): MPEG-4 Part 2, GOP 12, no B-frames,
    yuv420p, fixed quantiser ``qscale`` (1 best .. 31). Atomic: a temporary name in the same folder
    is renamed to ``path`` on success. H and W must be multiples of 16."""
    path = Path(path)
    T, height, width, _ = frames.shape
    if height % 16 or width % 16:
        raise ValueError(f"frame size {height}x{width} must be multiples of 16")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("mpeg4", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            cc = stream.codec_context
            cc.gop_size, cc.max_b_frames, cc.thread_count = GOP_SIZE, 0, 1
            cc.qscale, cc.global_quality = True, qscale  # fixed quantiser, like ffmpeg -q:v
            cc.flags |= av.codec.context.Flags.four_mv  # 8x8 motion vectors where they pay off
            stream.options = {"sc_threshold": "1000000000"}  # no scene-cut I-frames: GOP stays 12
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _make_video(job: tuple) -> str:
    """Render and encode one video; ``job = (path, class, split, index, seed, T, size, fps, qscale)``."""
    path, class_name, split, index, seed, num_frames, size, fps, qscale = job
    rng = video_rng(seed, split, CLASSES.index(class_name), index)
    encode_video(render_video(class_name, rng, num_frames, size), path, fps, qscale)
    return path


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def generate_synthetic(root: str | os.PathLike, *, videos_per_class: Mapping[str, int] | None = None,
                       num_frames: int = 36, size: tuple[int, int] = (96, 96), fps: int = 12,
                       seed: int = 0, qscale: int = 2, workers: int = 1,
                       overwrite: bool = False, progress: bool = True) -> dict:
    """Write the synthetic dataset under ``root`` and return a summary dict.

    ``videos_per_class`` maps split -> count (default ``DEFAULT_COUNTS``, 16/4/8); ``size`` is
    (H, W), multiples of 16. ``workers > 1`` uses a spawn process pool (call it from a script with
    an ``if __name__ == "__main__"`` guard); the default 1 runs in-process (~5-8 s for the default).
    Existing videos are kept (resumable) unless ``overwrite``; the settings other than the counts
    must then match ``<root>/synthetic.json``. Summary keys: root, classes, videos (split -> count),
    written, skipped, seconds, and the settings.
    """
    start = time.perf_counter()
    counts = dict(DEFAULT_COUNTS if videos_per_class is None else videos_per_class)
    if set(counts) - set(SPLITS) or min(counts.values(), default=0) < 0:
        raise ValueError(f"videos_per_class must map {SPLITS} to counts >= 0, got {counts}")
    if size[0] % 16 or size[1] % 16 or num_frames < 2 or seed < 0:
        raise ValueError(f"need size multiples of 16, num_frames >= 2 and seed >= 0; "
                         f"got size={size}, num_frames={num_frames}, seed={seed}")
    root = Path(root)
    settings = {"seed": seed, "num_frames": num_frames, "size": list(size), "fps": fps,
                "qscale": qscale, "gop_size": GOP_SIZE, "codec": "mpeg4", "classes": list(CLASSES)}
    meta = root / "synthetic.json"
    if meta.exists() and not overwrite and json.loads(meta.read_text()) != settings:
        raise ValueError(f"{root}: existing dataset was made with {meta.read_text()}; "
                         f"pass overwrite=True (--overwrite) to regenerate with {settings}")
    (root / "splits").mkdir(parents=True, exist_ok=True)
    jobs, lists, wanted = [], {s: [] for s in SPLITS}, set()
    for ci, name in enumerate(CLASSES):
        (root / "videos" / name).mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            for i in range(counts.get(split, 0)):
                rel = f"{name}/{video_name(name, split, i)}"
                lists[split].append(f"{rel} {ci + 1}\n")
                path = root / "videos" / rel
                wanted.add(path)
                if overwrite or not path.exists():
                    jobs.append((str(path), name, split, i, seed, num_frames, tuple(size), fps, qscale))
    if overwrite:  # drop videos of an earlier, larger run so videos/ matches the split lists
        for old in (root / "videos").glob("*/v_*.mp4"):
            if old.parent.name in CLASSES and old not in wanted:
                old.unlink()
    _write_atomic(meta, json.dumps(settings))
    workers = min(workers, len(jobs))
    with tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                _make_video(job)
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
                for _ in pool.map(_make_video, jobs, chunksize=4):
                    bar.update()
    class_ind = "".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES))
    _write_atomic(root / "splits" / "classInd.txt", class_ind)
    for split in SPLITS:
        _write_atomic(root / "splits" / f"{split}list01.txt", "".join(lists[split]))
    return {"root": str(root), "classes": list(CLASSES), "videos": {s: len(v) for s, v in lists.items()},
            "written": len(jobs), "skipped": len(wanted) - len(jobs),
            "seconds": round(time.perf_counter() - start, 3), **settings}
