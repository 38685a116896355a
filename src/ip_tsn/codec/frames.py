"""Decoded frames to RGB, and keeping FFmpeg state safe across fork (DataLoader workers)."""

from __future__ import annotations

import gc
import os

import av
import numpy as np
from av.video.reformatter import VideoReformatter

# A forked child (a DataLoader worker) must never free the parent's decoder state: FFmpeg's worker
# threads exist only in the parent, so freeing a container or a frame's scaler there can hang
# forever. The child parks what it inherited here instead (never used, never freed), and garbage
# holding decoded frames is collected before every fork.
_INHERITED: list = []
os.register_at_fork(before=gc.collect)
_REFORMATTER: dict[int, VideoReformatter] = {}  # per process: one swscale context for every frame


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame (as ``frame.to_ndarray(format="rgb24")``, ~7x faster)."""
    pid = os.getpid()
    if pid not in _REFORMATTER:
        park(dict(_REFORMATTER))
        _REFORMATTER.clear()
        _REFORMATTER[pid] = VideoReformatter()
    return _REFORMATTER[pid].reformat(frame, format="rgb24").to_ndarray()


def park(state: object) -> None:
    """Keep decoder state inherited from a parent process alive, never freeing it in the child."""
    _INHERITED.append(state)
