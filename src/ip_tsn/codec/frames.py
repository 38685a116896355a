"""Decoded frames to RGB (or their 4:2:0 planes and the table that turns them into the same RGB),
and keeping FFmpeg state safe across fork (DataLoader workers)."""

from __future__ import annotations

import gc
import os

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer
from av.video.reformatter import Interpolation, VideoReformatter

# A forked child (a DataLoader worker) must never free the parent's decoder state: FFmpeg's worker
# threads exist only in the parent, so freeing a container or a frame's scaler there can hang
# forever. The child parks what it inherited here instead (never used, never freed), and garbage
# holding decoded frames is collected before every fork.
_INHERITED: list = []
os.register_at_fork(before=gc.collect)
_REFORMATTER: dict[int, VideoReformatter] = {}  # per process: one swscale context for every frame


def block_vectors_of(frame: av.VideoFrame) -> np.ndarray | None:
    """FFmpeg's ``MOTION_VECTORS`` side data of a decoded frame as a structured array, or None.

    Read through a container of our own rather than ``frame.side_data``: PyAV keeps that one on the
    frame, and the container refers back to the frame, so every frame read that way is a reference
    cycle that only a full garbage collection frees; a DataLoader worker evicting GOPs piled up
    thousands of decoded frames that way (hundreds of MB)."""
    data = SideDataContainer(frame).get("MOTION_VECTORS")
    return None if data is None else data.to_ndarray()


def _reformatter() -> VideoReformatter:
    pid = os.getpid()
    if pid not in _REFORMATTER:
        park(dict(_REFORMATTER))
        _REFORMATTER.clear()
        _REFORMATTER[pid] = VideoReformatter()
    return _REFORMATTER[pid]


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame (as ``frame.to_ndarray(format="rgb24")``, ~7x faster)."""
    return _reformatter().reformat(frame, format="rgb24").to_ndarray()


def yuv420_planes(frame: av.VideoFrame) -> tuple[int, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(colorspace, Y (H, W), U (ceil(H/2), ceil(W/2)), V)`` uint8 copies of a decoded yuv420p
    frame's planes (``colorspace``: the frame's tag, which :func:`to_rgb` converts by); None for
    any other pixel format (full-range yuvj420p, 4:2:2, 10-bit ...)."""
    if frame.format.name != "yuv420p":
        return None
    y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in frame.planes)
    return int(frame.colorspace), y, u, v


_TABLES: dict[int, np.ndarray] = {}


def yuv420_rgb_table(colorspace: int) -> np.ndarray:
    """(256, 256, 256, 3) uint8: the RGB that :func:`to_rgb` gives the pixel (Y, U, V) of a yuv420p
    frame tagged ``colorspace``, each chroma sample covering its 2x2 luma block. Measured, not
    modelled: FFmpeg's own converter runs once (per process and colorspace, ~1 s, 48 MB) on a
    4096x4096 frame holding every triple, so ``table[Y, U, V]`` of a frame's planes equals
    :func:`to_rgb` of it bit for bit wherever the converter is a function of the pixel alone
    (checked by the tests on every sample video and on odd sizes)."""
    if colorspace not in _TABLES:
        chroma = np.arange(256 * 256).reshape(256, 256)  # (u, v) = divmod(index, 256)
        tiles = np.tile(chroma, (8, 8))  # 2048x2048 chroma samples: every (u, v) 64 times
        group = np.repeat(np.repeat(np.arange(64).reshape(8, 8), 256, 0), 256, 1)  # which 4 of the 256 Y
        y = np.empty((4096, 4096), np.uint8)
        for dy in range(2):
            for dx in range(2):
                y[dy::2, dx::2] = group * 4 + dy * 2 + dx
        u, v = (tiles // 256).astype(np.uint8), (tiles % 256).astype(np.uint8)
        frame = av.VideoFrame(4096, 4096, "yuv420p")
        frame.colorspace = colorspace
        for plane, values in zip(frame.planes, (y, u, v)):
            np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] = values
        table = np.empty((256, 256, 256, 3), np.uint8)
        up = lambda c: np.repeat(np.repeat(c, 2, 0), 2, 1)  # noqa: E731
        table[y, up(u), up(v)] = to_rgb(frame)
        _TABLES[colorspace] = table
    return _TABLES[colorspace]


# area averaging with full chroma resolution and accurate rounding: scaling to RGB in one step this
# way matches OpenCV's INTER_AREA of the full-size RGB picture to ~1.5 grey levels at 1/2 and 1/8
# (scaling the 4:2:0 planes first and converting after is off by up to 17 at 1/8: chroma shifts)
_AREA = Interpolation.AREA | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND


def scaled(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """The decoded ``frame`` as a ``width`` x ``height`` RGB frame, scaled down by FFmpeg's scaler
    (area averaging): a new, small frame, so the decoder's full-size one is freed at once."""
    out = _reformatter().reformat(frame, width=width, height=height, format="rgb24", interpolation=_AREA)
    out.pts = frame.pts
    return out


def park(state: object) -> None:
    """Keep decoder state inherited from a parent process alive, never freeing it in the child."""
    _INHERITED.append(state)
