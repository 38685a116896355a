"""Datasets of one stream's inputs: TSN segments (``StreamDataset``) and dense grids (``GridDataset``).

A sample is ``{"input": (N, C, H, W) float32, "label": int, "video_id": str, "frame_index": (K,)
int64}``. ``video_id`` is the record's path (relative to the video directory). Frames sampled per
modality (``_FrameReader.valid``): rgb any frame; iframe the I-frames; mv / residual / p the non-I
frames (CoViAR drops the GOP's first frame); flow the starts ``t <= F - L`` of an L-long stack of
the F flows (flow t: frame t -> t + 1), channels ``x_t, y_t, ..., x_{t+L-1}, y_{t+L-1}``.
Videos are opened lazily in the process that reads them; any read failure raises an error naming
the file (``VideoError``), never a blank input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec import CompressedVideo, VideoError
from ..codec.flow import load_flow
from .datasets import VideoRecord
from .modalities import check_modality, x_channels
from .sampling import segment_indices
from .transforms import check_crops, eval_views, normalize, resize_short, to_tensor, train_augment

class _FrameReader:
    """Reads the frames of one modality for one record, normalised: (K, H, W, C) float32."""

    def __init__(self, video_root: str | os.PathLike, modality: str, flow_root: str | os.PathLike | None,
                 flow_length: int, accumulate: bool, scale_size: int | None):
        self.video_root = Path(video_root)
        self.scale_size = scale_size
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
        return load_flow(path) if self.modality == "flow" else CompressedVideo(path)

    def valid(self, src: CompressedVideo | np.ndarray) -> np.ndarray:
        """(N,) bool mask of the positions this modality may sample (module docstring)."""
        if isinstance(src, np.ndarray):
            starts = np.zeros(len(src), dtype=bool)
            starts[: max(0, len(src) - self.flow_length + 1)] = True
            return starts
        types = np.frombuffer(src.frame_types.encode(), dtype="S1")
        if self.modality == "rgb":
            return np.ones(len(types), dtype=bool)
        return types == b"I" if self.modality == "iframe" else types != b"I"

    def read(self, record: VideoRecord, pick: Callable[[int, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(positions (K,) int64, frames (K, H, W, C) float32)``: positions chosen by ``pick(n,
        valid_mask)``, frames normalised, shorter side resized to ``scale_size``; video closed after."""
        src = self.source(record)
        try:
            index = self.positions(record, src, pick)
            x = normalize(self.frames(src, index), self.modality)
        finally:
            if isinstance(src, CompressedVideo):
                src.close()
        return index, resize_short(x, self.scale_size) if self.scale_size else x

    def positions(self, record: VideoRecord, src: CompressedVideo | np.ndarray,
                  pick: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
        """(K,) int64 positions chosen by ``pick(num_positions, valid_mask)``."""
        valid = self.valid(src)
        if not valid.any():
            what = f"{self.flow_length} consecutive flows" if self.modality == "flow" else f"{self.modality} frames"
            raise VideoError(self.path(record), f"too short: no position with {what} among {len(valid)}")
        return pick(len(valid), valid)

    def frames(self, src: CompressedVideo | np.ndarray, index: np.ndarray) -> np.ndarray:
        """Raw (K, H, W, C) frames at ``index``: uint8 rgb / iframe / flow, float32 mv / p, int16 residual."""
        if isinstance(src, np.ndarray):
            stack = np.asarray(src[index[:, None] + np.arange(self.flow_length)])  # (K, L, H, W, 2)
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


class StreamDataset(Dataset):
    """TSN samples of one modality: K segment frames, augmented (train) or multi-crop (test).

    ``input``: (K * test_crops, C, crop, crop) float32 (crop-major, ``view(crops, K, ...)``);
    ``frame_index``: (K,) int64. ``flip=False`` turns off the random horizontal flip (and refuses
    10-crop testing, whose mirrored views would be wrong) for data sets whose classes differ by
    left/right direction or rotation sense (the synthetic default, Something-Something); TSN's
    flip keeps mirrored motion consistent but turns "left" into "right". Randomness comes only from torch's RNG (per worker and epoch, set
    by ``seed_everything``/the DataLoader) mixed with ``seed``; item i always reads record i.
    """

    def __init__(self, records: Sequence[VideoRecord], video_root: str | os.PathLike, modality: str,
                 num_segments: int = 3, train: bool = True, crop_size: int = 224, scale_size: int | None = 256,
                 test_crops: int = 1, flow_root: str | os.PathLike | None = None, flow_length: int = 5,
                 accumulate: bool = True, seed: int = 0, flip: bool = True):
        check_crops(test_crops, flip)
        self.records = list(records)
        self.reader = _FrameReader(video_root, modality, flow_root, flow_length, accumulate, scale_size)
        self.modality, self.num_segments, self.train = modality, num_segments, train
        self.crop_size, self.test_crops = crop_size, test_crops
        self.seed, self.flip = seed, flip
        self.x_channels = x_channels(modality, flow_length)

    def __len__(self) -> int:
        return len(self.records)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(torch.randint(0, 2**62, ()).item())])

    def __getitem__(self, i: int) -> dict:
        record = self.records[i]
        rng = self._rng() if self.train else None
        index, x = self.reader.read(
            record, lambda n, valid: segment_indices(n, self.num_segments, self.train, rng, valid))
        if self.train:
            x = train_augment(x, self.crop_size, rng, self.x_channels, flip=self.flip)  # type: ignore[arg-type]
        else:
            x = eval_views(x, self.crop_size, self.test_crops, self.x_channels, self.flip)
        return {"input": to_tensor(x), "label": record.label, "video_id": record.path,
                "frame_index": torch.from_numpy(index)}


class GridDataset(Dataset):
    """One item per video: centre crops at every ``stride``-th valid position (for the teacher cache).

    ``input``: (G, C, crop, crop) float32; ``frame_index``: (G,) int64, positions
    ``valid[::stride]`` (flow: stack starts 0, stride, 2 * stride, ...).
    """

    def __init__(self, records: Sequence[VideoRecord], video_root: str | os.PathLike, modality: str,
                 stride: int = 1, crop_size: int = 224, scale_size: int | None = 256,
                 flow_root: str | os.PathLike | None = None, flow_length: int = 5, accumulate: bool = True):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.records = list(records)
        self.reader = _FrameReader(video_root, modality, flow_root, flow_length, accumulate, scale_size)
        self.stride, self.crop_size = stride, crop_size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        record = self.records[i]
        index, x = self.reader.read(record, lambda n, valid: np.flatnonzero(valid)[:: self.stride].astype(np.int64))
        return {"input": to_tensor(eval_views(x, self.crop_size)), "label": record.label,
                "video_id": record.path, "frame_index": torch.from_numpy(index)}
