"""Datasets of one stream's inputs: TSN segments (``StreamDataset``) and dense grids (``GridDataset``).

A sample is ``{"input": (N, C, H, W) float32, "label": int, "video_id": str, "frame_index": (K,)
int64}``. ``video_id`` is the record's path (relative to the video directory). Frames are read by
``frame_reader.FrameReader``; positions sampled per modality (``FrameReader.valid``): rgb any frame; iframe the I-frames; mv / residual / p the non-I
frames (CoViAR drops the GOP's first frame); flow the frames ``1 <= t <= F`` at which an L-long stack
of the F flows (flow i: frame i -> i + 1) ENDS: the stack of position t is flows ``t - L .. t - 1``
(frames ``t - L .. t``), channels ``x_{t-L}, y_{t-L}, ..., x_{t-1}, y_{t-1}``; for ``t < L`` the
missing flows before flow 0 repeat flow 0 (``frame_reader.flow_stack_index``), so that every P-frame has a
flow stack and the distilled student samples exactly plain P's positions. So the teacher's
window at t and the P-stream's accumulated motion at t (from its GOP's I-frame up to t) both end at
frame t, the frame whose motion vectors and residual the student reads.

Training views: TSN's random multi-scale crop (``train_views=None``) or one of a fixed set of
views (``train_views`` = 1, 3 or 5 boxes of :func:`~ip_tsn.data.transforms.view_boxes`, each also
mirrored when ``flip``), drawn per sample and recorded as ``sample["view"]``; the distilled
P-stream uses the fixed set, so that its teacher's cached output for the same view exists.
Videos are opened lazily in the process that reads them; any read failure raises an error naming
the file (``VideoError``), never a blank input.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec import CompressedVideo, VideoError
from .datasets import VideoRecord
from .frame_reader import FrameReader
from .modalities import x_channels
from .packed_p import AUG_CROP, AUG_EVAL, AUG_VIEW, PACKED, pack_frames, source_window
from .preprocess import Preprocess, check_reconstruct
from .sampling import segment_indices
from .transforms import (all_views, apply_view, center_view, check_crops, crop_view, eval_views,
                         multi_scale_crop_params, normalize, num_view_ids, short_side_size, to_tensor)


PositionFilter = Callable[[str], np.ndarray]  # video_id -> the (G,) frame indices a sample may use
_P = Preprocess()  # the preprocessing defaults (data/preprocess.py), the only ones
CHECK_COMMAND = "python data_prep/check_videos.py"  # lists every unreadable video under a folder
SKIPPED = "skipped"  # sample key with skip_bad: "path\treason" lines of the videos read around ("" if none)


class WorkerVideoError(VideoError):
    """A :class:`VideoError` raised by a sample, that stays one line in the main process.

    A DataLoader worker's exception is rebuilt there as ``type(message)``, the message being
    "Caught ... in DataLoader worker process N" plus the worker's traceback; this class keeps only
    that traceback's last line (``WorkerVideoError: <path>: <problem>``)."""

    def __init__(self, path: str | os.PathLike, problem: str | None = None):
        if problem is None:  # rebuilt by torch.utils.data from the worker's formatted traceback
            lines = [line for line in str(path).splitlines() if line.strip()]
            last = lines[-1] if lines else str(path)
            path, _, problem = last.split(f"{type(self).__name__}: ", 1)[-1].partition(": ")
        super().__init__(path, problem)


class BadVideosError(VideoError):
    """Listed videos that cannot be read, refused before training: ``bad`` holds (path, why)."""

    def __init__(self, root: str | os.PathLike, problem: str, bad: Sequence[tuple[str, str]] = ()):
        super().__init__(root, problem)
        self.bad = list(bad)


def check_record(reader: FrameReader, record: VideoRecord, crop_size: int | None = None) -> str | None:
    """Why ``record`` cannot be sampled, or None: its file opens (a video's index demux, cached per
    process; a flow file's header), has a position to sample and, without ``scale_size``, frames
    no smaller than ``crop_size``; a video holds every frame its header lists (not cut short). A
    video's first frame is decoded (no display matrix may turn it:
    phones' portrait video, which every read refuses), and for P inputs its first P/B-frames
    (FFmpeg must export their vectors); nothing else."""
    src = None
    try:
        src = reader.source(record)
        reader.positions(record, src, lambda n, valid: valid)
        if isinstance(src, CompressedVideo):
            src.require_whole()  # a file cut short, which reads would take for a shorter video
        if isinstance(src, CompressedVideo) and reader.modality in ("mv", "residual", "p"):
            src.require_motion()  # probes its first P/B-frames: HEVC, VP9, AV1 export no vectors
        if isinstance(src, CompressedVideo):
            src.require_shown_as_stored()  # its first frame (decoded by the probe above for P inputs)
        h, w = src.shape[1:3] if isinstance(src, np.ndarray) else (src.height, src.width)
        if crop_size and not reader.scale_size and min(h, w) < crop_size:
            return f"frames of {w}x{h} (width x height) are smaller than the {crop_size}x{crop_size} crop"
    except VideoError as e:
        return e.problem
    except Exception as e:  # noqa: BLE001 - any read error is a reason to report
        return f"{type(e).__name__}: {e}"
    finally:
        if isinstance(src, CompressedVideo):
            src.close()
    return None


def check_records(reader: FrameReader, records: Sequence[VideoRecord], crop_size: int | None = None,
                  threads: int = 4) -> list[tuple[VideoRecord, str]]:
    """(record, why) of each of ``records`` that :func:`check_record` refuses, in list order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, threads)) as pool:
        reasons = list(pool.map(lambda r: check_record(reader, r, crop_size), records))
    return [(r, why) for r, why in zip(records, reasons) if why is not None]


def _named(path: str | os.PathLike, read: Callable[[], dict]) -> dict:
    """``read()``, any VideoError or ValueError (e.g. a crop larger than the frames) re-raised as
    one :class:`WorkerVideoError` naming ``path``."""
    try:
        return read()
    except VideoError as e:
        raise WorkerVideoError(e.path, e.problem) from None
    except ValueError as e:
        raise WorkerVideoError(path, str(e)) from None


class StreamDataset(Dataset):
    """TSN samples of one modality: K segment frames, augmented (train) or multi-crop (test).

    ``input``: (K * test_crops, C, crop, crop) float32 (crop-major, ``view(crops, K, ...)``);
    ``frame_index``: (K,) int64. ``flip=False`` turns off the random horizontal flip (and refuses
    10-crop testing, whose mirrored views would be wrong) for data sets whose classes differ by
    left/right direction or rotation sense (the synthetic default, Something-Something); TSN's
    flip keeps mirrored motion consistent but turns "left" into "right". Randomness comes only from torch's RNG (per worker and epoch, set
    by ``seed_everything``/the DataLoader) mixed with ``seed``; item i always reads record i.
    ``reconstruct="device"`` (mv / residual / p): samples carry ``packed`` (decoded pictures and cell
    vectors, ``packed_p``) instead of ``input``, the same draws; ``device_reconstruct`` rebuilds
    ``input`` from them (videos only the CPU path reproduces still get ``input``).
    """

    def __init__(self, records: Sequence[VideoRecord], video_root: str | os.PathLike, modality: str,
                 num_segments: int = _P.num_segments, train: bool = True, crop_size: int = _P.crop_size,
                 scale_size: int | None = _P.scale_size, test_crops: int = _P.test_crops,
                 flow_root: str | os.PathLike | None = None, flow_length: int = _P.flow_length,
                 accumulate: bool = _P.accumulate, seed: int = 0, flip: bool = _P.flip,
                 train_views: int | None = _P.train_views, allowed_positions: PositionFilter | None = None,
                 reconstruct: str = _P.reconstruct, skip_bad: bool = False,
                 decode_downscale: bool = _P.decode_downscale):
        if not train:  # the test protocol's crops; training draws one crop (or view) per sample
            check_crops(test_crops, flip)
        check_reconstruct(reconstruct, modality)
        self.reconstruct, self.skip_bad = reconstruct, skip_bad
        if train_views is not None:
            num_view_ids(train_views, flip)
        self.train_views, self.allowed_positions = train_views, allowed_positions
        self.records = list(records)
        self.reader = FrameReader(video_root, modality, flow_root, flow_length, accumulate, scale_size,
                                  decode_downscale=decode_downscale)
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
        if not self.skip_bad:
            return _named(self.reader.path(record), lambda: self._sample(record))
        skipped: list[str] = []
        for j in self._stand_ins(i):
            stand_in = self.records[j]
            try:
                sample = _named(self.reader.path(stand_in), lambda: self._sample(stand_in))
            except WorkerVideoError as e:
                skipped.append(f"{stand_in.path}\t{e.problem}")
                continue
            return {**sample, SKIPPED: "\n".join(skipped)}
        raise WorkerVideoError(self.reader.path(record), f"unreadable, and so were its {len(skipped) - 1} stand-ins")

    def _stand_ins(self, i: int, tries: int = 8) -> list[int]:
        """``i``, then up to ``tries - 1`` other records to read instead when it fails
        (``skip_bad``): those of the same class after it (wrapping around), then the next indices."""
        n, label = len(self.records), self.records[i].label
        after = [(i + k) % n for k in range(1, n)]
        same = [j for j in after if self.records[j].label == label]
        return list(dict.fromkeys([i, *same, *after]))[:tries]

    def _sample(self, record: VideoRecord) -> dict:
        if self.reconstruct == "device":
            return self._device_sample(record)
        rng = self._rng() if self.train else None
        allowed = self.allowed_positions(record.path) if self.allowed_positions is not None else None
        index, x = self.reader.read(
            record, lambda n, valid: segment_indices(n, self.num_segments, self.train, rng, valid), allowed)
        aug = self._draw(rng, (x.shape[1], x.shape[2]))
        return {"input": to_tensor(self._apply(x, aug)), "label": record.label, "video_id": record.path,
                "frame_index": torch.from_numpy(index), "view": self._view(aug)}

    def _draw(self, rng: np.random.Generator | None, size: tuple[int, int]) -> list[int]:
        """A sample's augmentation, drawn once (after its positions, from the same ``rng``) and
        applied by whichever path runs (:meth:`_apply` here, ``device_reconstruct`` on the device):
        ``[kind, top, left, h, w, flip, view]`` (``packed_p``'s ``aug`` layout). ``size``: the
        frames' (H, W) after ``scale_size``."""
        if self.train and self.train_views is not None:
            view = int(rng.integers(num_view_ids(self.train_views, self.flip)))  # type: ignore[union-attr]
            return [AUG_VIEW, 0, 0, 0, 0, 0, view]
        if self.train:  # TSN's multi-scale crop, then a flip with probability 1/2
            top, left, h, w = multi_scale_crop_params(*size, self.crop_size, rng)  # type: ignore[arg-type]
            return [AUG_CROP, top, left, h, w, int(bool(self.flip and rng.random() < 0.5)), 0]  # type: ignore[union-attr]
        return [AUG_EVAL, 0, 0, 0, 0, 0, 0]

    def _apply(self, x: np.ndarray, aug: list[int]) -> np.ndarray:
        """Frames (K, H, W, C) -> the network's views, by the drawn ``aug``: (K, crop, crop, C)
        in training, (K * test_crops, crop, crop, C) in evaluation."""
        if aug[0] == AUG_VIEW:
            return apply_view(x, aug[6], self.crop_size, self.train_views, self.flip, self.x_channels)  # type: ignore[arg-type]
        if aug[0] == AUG_CROP:
            return crop_view(x, *aug[1:5], self.crop_size, bool(aug[5]), self.x_channels)
        return eval_views(x, self.crop_size, self.test_crops, self.x_channels, self.flip)

    def _view(self, aug: list[int]) -> int:
        """The view id a sample reports: its fixed training view, the centre one in single-crop
        evaluation with training views, else 0."""
        if aug[0] == AUG_VIEW:
            return aug[6]
        if aug[0] == AUG_EVAL and self.train_views and self.test_crops == 1:
            return center_view(self.train_views, self.flip)
        return 0

    def _device_sample(self, record: VideoRecord) -> dict:
        """``reconstruct="device"``: the same positions and draws as :meth:`_sample` (:meth:`_draw`),
        but ``packed`` (``packed_p.pack_frames`` as tensors, plus ``aug`` (7,) int64) instead of
        ``input``; a video only the CPU path reproduces gets ``input`` as :meth:`_sample` does."""
        rng = self._rng() if self.train else None
        allowed = self.allowed_positions(record.path) if self.allowed_positions is not None else None
        reader, x = self.reader, None
        src = reader.source(record)
        try:
            index = reader.positions(
                record, src, lambda n, valid: segment_indices(n, self.num_segments, self.train, rng, valid), allowed)
            size = short_side_size(src.height, src.width, reader.scale_size)  # type: ignore[union-attr]
            aug = self._draw(rng, size)  # after the positions, as in _sample
            window = source_window(aug, src.height, src.width, size, self.crop_size, self.train_views, self.flip)  # type: ignore[union-attr]
            try:
                packed = pack_frames(src, index, reader.accumulate, window)  # type: ignore[arg-type]
            except VideoError:
                raise
            except Exception as e:  # anything else from the decoder: still name the video
                raise VideoError(src.path, f"packing {self.modality} frames {index.tolist()} failed: {e!r}") from e
            if packed is None:
                x = reader.resized(normalize(reader.frames(src, index), self.modality), src)
        finally:
            src.close()  # type: ignore[union-attr]
        sample = {"label": record.label, "video_id": record.path, "frame_index": torch.from_numpy(index),
                  "view": self._view(aug)}
        if x is not None:
            return {"input": to_tensor(self._apply(x, aug)), **sample}
        packed_t = {k: torch.from_numpy(v) for k, v in packed.items()}  # type: ignore[union-attr]
        return {PACKED: {**packed_t, "aug": torch.tensor(aug, dtype=torch.int64)}, **sample}


class GridDataset(Dataset):
    """One item per video: every ``stride``-th valid position, in every view (for the teacher cache).

    ``input``: (G * V, C, crop, crop) float32, position-major (row ``g * V + v`` is view ``v`` of
    position ``g``; ``num_views=None``: V = 1, the centre crop); ``frame_index``: (G,) int64.
    ``position_modality`` (e.g. ``"p"``) restricts the positions to those that modality may
    sample too, read from the video next to the flow (its frame types: one demux, no decoding),
    so the cache holds exactly the student's positions.
    """

    def __init__(self, records: Sequence[VideoRecord], video_root: str | os.PathLike, modality: str,
                 stride: int = 1, crop_size: int = _P.crop_size, scale_size: int | None = _P.scale_size,
                 flow_root: str | os.PathLike | None = None, flow_length: int = _P.flow_length,
                 accumulate: bool = _P.accumulate, num_views: int | None = _P.train_views, flip: bool = _P.flip,
                 position_modality: str | None = None, decode_downscale: bool = _P.decode_downscale):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.records = list(records)
        self.reader = FrameReader(video_root, modality, flow_root, flow_length, accumulate, scale_size,
                                  decode_downscale=decode_downscale)
        self.positions_reader = None if position_modality in (None, modality) else \
            FrameReader(video_root, position_modality, flow_root, flow_length, accumulate, scale_size,
                        decode_downscale=decode_downscale)
        self.stride, self.crop_size = stride, crop_size
        self.num_views, self.flip = num_views, flip
        self.x_channels = x_channels(modality, flow_length)

    def __len__(self) -> int:
        return len(self.records)

    def grid(self, record: VideoRecord) -> np.ndarray | None:
        """The positions of ``position_modality`` (None: no restriction): (G,) int64."""
        if self.positions_reader is None:
            return None
        src = self.positions_reader.source(record)
        try:
            return np.flatnonzero(self.positions_reader.valid(src)).astype(np.int64)
        finally:
            if isinstance(src, CompressedVideo):
                src.close()

    def __getitem__(self, i: int) -> dict:
        record = self.records[i]
        return _named(self.reader.path(record), lambda: self._item(record))

    def _item(self, record: VideoRecord) -> dict:
        index, x = self.reader.read(record, lambda n, valid: np.flatnonzero(valid)[:: self.stride].astype(np.int64),
                                    self.grid(record))
        if self.num_views is None:
            views = eval_views(x, self.crop_size)
        else:
            views = all_views(x, self.crop_size, self.num_views, self.flip, self.x_channels)
        return {"input": to_tensor(views), "label": record.label,
                "video_id": record.path, "frame_index": torch.from_numpy(index)}
