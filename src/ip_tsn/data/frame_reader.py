"""Reading one modality's frames of one video (:class:`FrameReader`): which positions a modality
may sample (``valid``), the frames at chosen positions, normalised and resized, and flow stacks
(:func:`flow_stack_index`). Used by the datasets (``video_dataset.py``), the pre-training check
and the DataModule's position filters.

Positions per modality: rgb any frame; iframe the I-frames; mv / residual / p the non-I frames
(CoViAR drops the GOP's first frame); flow the frames ``1 <= t <= F`` at which an L-long stack of
the F flows (flow i: frame i -> i + 1) ENDS: the stack of position t is flows ``t - L .. t - 1``;
for ``t < L`` the missing flows before flow 0 repeat flow 0.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..codec import CompressedVideo, VideoError
from ..codec.flow import load_flow
from .datasets import VideoRecord
from .modalities import check_modality
from .transforms import normalize, resize, short_side_size


def flow_stack_index(ends: np.ndarray, flow_length: int) -> np.ndarray:
    """The flows of the stacks ending at frames ``ends`` (K,): (K, L) int64, row k = flows
    ``t - L .. t - 1`` of ``t = ends[k]``, the ones before flow 0 replaced by flow 0 (edge padding)."""
    ends = np.asarray(ends, dtype=np.int64)
    return np.maximum(ends[:, None] - flow_length + np.arange(flow_length), 0)



class FrameReader:
    """Reads the frames of one modality for one record, normalised: (K, H, W, C) float32."""

    def __init__(self, video_root: str | os.PathLike, modality: str, flow_root: str | os.PathLike | None,
                 flow_length: int, accumulate: bool, scale_size: int | None, *, decode_downscale: bool):
        self.video_root = Path(video_root)
        self.scale_size = scale_size
        # huge videos decoded at 1/2, 1/4 or 1/8 of their size, never below scale_size (codec.CompressedVideo)
        self.min_side = scale_size if decode_downscale else None
        self.modality = check_modality(modality)
        if modality == "flow" and flow_root is None:
            raise ValueError("modality 'flow' needs flow_root (the folder of <Class>/<video>.npy files)")
        self.flow_root = Path(flow_root) if flow_root is not None else None
        self.flow_length = flow_length
        self.accumulate = accumulate

    def path(self, record: VideoRecord) -> Path:
        """The file read for ``record``: the video, or its ``.npy`` flow for ``flow``."""
        if self.modality == "flow":
            return self.flow_root / Path(record.path).with_suffix(".npy")  # type: ignore[operator]
        return self.video_root / record.path

    def source(self, record: VideoRecord) -> CompressedVideo | np.ndarray:
        """The lazily opened video, or the memory-mapped (F, H, W, 2) uint8 flow for ``flow``."""
        path = self.path(record)
        return load_flow(path) if self.modality == "flow" else CompressedVideo(path, min_side=self.min_side)

    def valid(self, src: CompressedVideo | np.ndarray) -> np.ndarray:
        """(N,) bool mask of the positions this modality may sample (module docstring)."""
        if isinstance(src, np.ndarray):  # F flows of F + 1 frames; a stack ends at frame t
            ends = np.zeros(len(src) + 1, dtype=bool)
            ends[1:] = True  # a stack ends at any frame after the first (padded at the start)
            return ends
        types = np.frombuffer(src.frame_types.encode(), dtype="S1")
        if self.modality == "rgb":
            return np.ones(len(types), dtype=bool)
        return types == b"I" if self.modality == "iframe" else types != b"I"

    def read(self, record: VideoRecord, pick: Callable[[int, np.ndarray], np.ndarray],
             allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(positions (K,) int64, frames (K, H, W, C) float32)``: positions chosen by ``pick(n,
        valid_mask)`` among the ``allowed`` ones (all if None), frames normalised, shorter side
        resized to ``scale_size``; video closed after."""
        src = self.source(record)
        try:
            index = self.positions(record, src, pick, allowed)
            x = self.resized(normalize(self.frames(src, index), self.modality), src)
        finally:
            if isinstance(src, CompressedVideo):
                src.close()
        return index, x

    def resized(self, x: np.ndarray, src: CompressedVideo | np.ndarray) -> np.ndarray:
        """(K, H, W, C) frames of ``src`` with the shorter side at ``scale_size``, the other side
        from the source's own size (a video decoded at a reduced size ends the same size); None:
        unchanged."""
        if not self.scale_size:
            return x
        h, w = src.shape[1:3] if isinstance(src, np.ndarray) else (src.height, src.width)
        return resize(x, *short_side_size(h, w, self.scale_size))

    def positions(self, record: VideoRecord, src: CompressedVideo | np.ndarray,
                  pick: Callable[[int, np.ndarray], np.ndarray], allowed: np.ndarray | None = None) -> np.ndarray:
        """(K,) int64 positions chosen by ``pick(num_positions, valid_mask)``; ``allowed`` (G,)
        frame indices further restrict the valid ones (e.g. the positions a teacher cache holds)."""
        valid = self.valid(src)
        if allowed is not None:
            keep = np.zeros(len(valid), dtype=bool)
            allowed = np.asarray(allowed, dtype=np.int64)
            keep[allowed[(allowed >= 0) & (allowed < len(valid))]] = True
            valid = valid & keep
        if not valid.any() and isinstance(src, CompressedVideo) and self.modality in ("mv", "residual", "p"):
            src.require_motion()  # an all-I video: "no P- or B-frames", not "too short"
        if not valid.any():
            what = f"{self.flow_length} consecutive flows" if self.modality == "flow" else f"{self.modality} frames"
            where = " (among the positions the teacher cache holds)" if allowed is not None else ""
            raise VideoError(self.path(record), f"too short: no position with {what} among {len(valid)}{where}")
        return pick(len(valid), valid)

    def frames(self, src: CompressedVideo | np.ndarray, index: np.ndarray) -> np.ndarray:
        """Raw (K, H, W, C) frames at ``index``: uint8 rgb / iframe / flow, float32 mv / p, int16 residual."""
        if isinstance(src, np.ndarray):
            stack = np.asarray(src[flow_stack_index(index, self.flow_length)])  # (K, L, H, W, 2)
            k, length, h, w, _ = stack.shape
            return stack.transpose(0, 2, 3, 1, 4).reshape(k, h, w, 2 * length)
        try:
            if self.modality == "p":
                return self._p_frames(src, index)
            return np.stack(src.load_many(index, self.modality, self.accumulate))
        except VideoError:
            raise
        except Exception as e:  # anything else from the decoder: still name the video
            raise VideoError(src.path, f"reading {self.modality} frames {index.tolist()} failed: {e!r}") from e

    def _p_frames(self, src: CompressedVideo, index: np.ndarray) -> np.ndarray:
        """(K, H, W, 5) float32 mv + residual, GOP by GOP: the video's GOP cache decodes each once."""
        gops = np.array([src.gop_of(int(i)) for i in index])
        out = None
        for g in np.unique(gops):
            sel = gops == g
            mv = np.stack(src.load_many(index[sel], "mv", self.accumulate))
            res = np.stack(src.load_many(index[sel], "residual", self.accumulate))
            if out is None:
                out = np.empty((len(index), *mv.shape[1:3], 5), dtype=np.float32)
            out[sel] = np.concatenate([mv, res.astype(np.float32)], axis=-1)
        return out  # type: ignore[return-value]
