"""``VideoDataModule``: train / val / test / predict loaders of one stream, from plain arguments.

Subsets: fit trains on ``train`` (K = ``num_segments``, augmented) and validates on ``val`` (K
centres, 1 centre crop); test uses ``test`` with ``test_segments`` x ``test_crops``; predict runs
the ``GridDataset`` over ``predict_subset`` (default ``trainval``: every video the student trains or
validates on) for the teacher cache. With ``teacher_cache`` set, training samples are drawn only at
the positions the cache holds, in one of its views (``train_views``), and carry the teacher's
``teacher_logits`` (K, C) / ``teacher_features`` (K, D) on exactly that sample (``TeacherTargets``);
with ``teacher_input`` they carry the teacher's own input on it instead (``teacher_input`` (K, 2L,
crop, crop): the flow stacks ending at the same frames, in the same view) for an online teacher.

DDP: the train loader has no sampler of its own, so Lightning (``use_distributed_sampler=True``,
the default) injects a ``DistributedSampler`` (ranks padded to equal length); val and test take
every world-th video per rank with no repeats (``_unpadded``: Lightning's pads, and until 2026-12-08
a few val videos counted twice in ``val/top1``); for predict Lightning injects an
``UnrepeatedDistributedSamplerWrapper`` (the cache writer de-duplicates by video id anyway).

Bad videos: ``setup`` opens every video the stage reads once (the index demux, no decoding; its
result is cached and inherited by forked workers) and refuses the unreadable ones in ONE
``BadVideosError`` (count, the first few with their reasons, the command that lists them all), or
with ``skip_bad_videos`` leaves them out with one warning. A video that still fails in a worker
raises a one-line ``WorkerVideoError`` naming it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, fields
from functools import cached_property
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch import distributed as dist
from torch.utils.data import DataLoader, Dataset, default_collate

from ip_tsn.settings import SetupWarning, from_mapping, plain

from .datasets import VideoRecord, load_classes, load_split, video_dir
from .device_reconstruct import reconstruct_batch
from .packed_batch import pack_batch
from .packed_p import PACKED
from .preprocess import DEVICE_MODALITIES, Preprocess
from .settings import DataSettings
from .teacher_cache import TeacherCache
from .teacher_targets import TeacherInputs, TeacherTargets
from .transforms import apply_view, normalize, resize_short, to_tensor
from .frame_reader import FrameReader
from .gop_length import long_gops, spread
from .video_dataset import CHECK_COMMAND, SKIPPED, BadVideosError, GridDataset, StreamDataset, check_records

_S = DataSettings()  # the loader settings' defaults (data/settings.py)
DATA_KEYS = tuple(f.name for f in fields(DataSettings))


class AlignedPositions:
    """The positions a distilled sample may use in one video: P-frames (non-I) at which an
    ``flow_length``-long flow stack ends, every ``stride``-th: exactly what the teacher cache
    holds. Picklable (for workers); ``__call__(video_id) -> (G,) int64``."""

    def __init__(self, video_root: str, flow_root: str, flow_length: int, stride: int) -> None:
        self.p = FrameReader(video_root, "p", flow_root, flow_length, True, None, decode_downscale=False)
        self.flow = FrameReader(video_root, "flow", flow_root, flow_length, True, None, decode_downscale=False)
        self.stride = stride

    def __call__(self, video_id: str) -> np.ndarray:
        from .datasets import VideoRecord

        record = VideoRecord(video_id, -1, "")
        video = self.p.source(record)
        try:
            valid = self.p.valid(video)
        finally:
            video.close()  # type: ignore[union-attr]
        flow_valid = self.flow.valid(self.flow.source(record))
        n = min(len(valid), len(flow_valid))
        return np.flatnonzero(valid[:n] & flow_valid[:n])[:: self.stride].astype(np.int64)


class FlowView:
    """The teacher's input for a student sample: (video_id, frame_index (K,), view) -> (K, 2L,
    crop, crop) float32, the flow stacks ending at those frames in that view. Picklable."""

    def __init__(self, flow_root: str, flow_length: int, crop_size: int, scale_size: int | None,
                 num_views: int, flip: bool) -> None:
        self.reader = FrameReader(flow_root, "flow", flow_root, flow_length, True, scale_size, decode_downscale=False)
        self.crop_size, self.num_views, self.flip, self.flow_length = crop_size, num_views, flip, flow_length

    def __call__(self, video_id: str, frame_index: np.ndarray, view: int) -> torch.Tensor:
        from .datasets import VideoRecord
        from .modalities import x_channels

        src = self.reader.source(VideoRecord(video_id, -1, ""))
        x = normalize(self.reader.frames(src, np.asarray(frame_index, dtype=np.int64)), "flow")
        if self.reader.scale_size:
            x = resize_short(x, self.reader.scale_size)
        x = apply_view(x, view, self.crop_size, self.num_views, self.flip, x_channels("flow", self.flow_length))
        return to_tensor(x)


def _unpadded(dataset: Dataset) -> UnrepeatedDistributedSampler | None:
    """Under DDP, each evaluated video once: rank r takes videos r, r + world, ... (shares may
    differ by one). None outside DDP, or with fewer videos than ranks (a rank with no batch would
    miss the buffer sync of DDP's first evaluation forward): Lightning's padded sampler then."""
    if not (dist.is_available() and dist.is_initialized()) or not 1 < dist.get_world_size() <= len(dataset):
        return None
    return UnrepeatedDistributedSampler(dataset, num_replicas=dist.get_world_size(), rank=dist.get_rank(),
                                        shuffle=False)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch sample dicts: tensors / numbers stacked (``input`` (B, N, C, H, W)); strings
    (``video_id``) kept as a list; tensors whose shapes differ (grid items, G varies) kept as a list."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        ragged = isinstance(values[0], torch.Tensor) and len({v.shape for v in values}) > 1
        out[key] = list(values) if ragged or isinstance(values[0], str) else default_collate(values)
    return out


def collate_packed(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`collate` for ``reconstruct="device"``: the packed samples in one compact packed batch
    (``packed_batch.pack_batch``: 7 tensors whatever the batch size), ``input`` a per-sample list (None
    where a sample is packed), rebuilt into ``input`` (B, N, C, H, W) on the device by
    :meth:`VideoDataModule.on_after_batch_transfer`."""
    if not any(PACKED in s for s in samples):
        return collate(samples)
    out = collate([{k: v for k, v in s.items() if k not in (PACKED, "input")} for s in samples])
    out[PACKED] = pack_batch([s.get(PACKED) for s in samples])
    out["input"] = [s.get("input") for s in samples]
    return out


class VideoDataModule(pl.LightningDataModule):
    """Loaders of one modality of ``dataset`` (``synthetic``, ``ucf101``, ``hmdb51``, ``kinetics``).

    ``video_root`` / ``ext``: re-encoded copies of the videos (see ``load_split``); ``flow_root``:
    ``<root>/flow`` by default. Batches: ``input`` (B, N, C, crop, crop) float32, ``label`` (B,)
    int64, ``video_id`` list[str], ``frame_index`` (B, K) int64 (predict: lists per video).
    ``flip``: random horizontal flips in training and mirrored test views (TSN's default); set it
    false where mirroring changes the class (left vs right, clockwise vs counter-clockwise).
    ``skip_bad_videos``: leave out listed videos that cannot be read (one warning) instead of
    refusing them all in one ``BadVideosError`` (module docstring). ``reconstruct="device"``
    (``mv`` / ``residual`` / ``p``): the train / val / test workers only decode, and
    :meth:`on_after_batch_transfer` rebuilds ``input`` on the training device (the same tensors;
    ``ip-tsn predict`` and the teacher cache's grid still use the CPU path). The preprocessing arguments
    (defaults: :class:`~.preprocess.Preprocess`'s) become one ``preprocess`` that every dataset
    reads and every checkpoint stores.
    """

    def __init__(self, dataset: str = _S.dataset, root: str = _S.root, **settings: Any):
        """Keyword arguments: :class:`~.settings.DataSettings`' and :class:`~.preprocess.Preprocess`'
        fields (their defaults are the only ones); the hyperparameters store them all."""
        super().__init__()
        given = {"dataset": dataset, "root": root, **settings}
        unknown = sorted(set(given) - set(DATA_KEYS) - set(Preprocess.keys()))
        if unknown:
            raise TypeError(f"VideoDataModule: unknown argument(s) {', '.join(unknown)}")
        #: which videos and loaders (``data.*`` minus the preprocessing)
        self.settings = from_mapping(DataSettings, {k: v for k, v in given.items() if k in DATA_KEYS}, "data")
        #: the stream's preprocessing (checked here: modality, crops, views), read by every dataset
        self.preprocess = Preprocess.from_hparams(given)
        self.save_hyperparameters({**plain(self.settings), **asdict(self.preprocess)})
        pre, st = self.preprocess, self.settings
        self.dataset, self.root, self.split, self.modality = st.dataset, st.root, st.split, pre.modality
        self.num_segments, self.test_segments, self.test_crops = pre.num_segments, pre.test_segments, pre.test_crops
        self.batch_size, self.num_workers, self.pin_memory = st.batch_size, st.num_workers, st.pin_memory
        self.teacher_cache = st.teacher_cache
        self.video_root = video_dir(st.dataset, st.root, st.video_root)
        self.flow_root = st.flow_root if st.flow_root is not None else os.path.join(st.root, "flow")
        self.datasets: dict[str, Dataset] = {}
        #: videos that failed in a worker and were replaced (``skip_bad_videos``): path -> why
        self.skipped: dict[str, str] = {}
        self._checked: dict[str, list[VideoRecord]] = {}  # subset -> its readable records
        self.skip_videos: set[str] = set()  # left out of predict: what a resumed teacher cache holds

    # -- classes ------------------------------------------------------------------------------
    @cached_property
    def class_names(self) -> list[str]:
        """Class names by 0-based label (read from the split files, no setup needed)."""
        return load_classes(self.dataset, self.root, self.split, class_list=self.hparams.class_list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_channels(self) -> int:
        """Input channels C of the modality (flow: 2 * flow_length)."""
        return self.preprocess.in_channels

    # -- datasets -----------------------------------------------------------------------------
    def records(self, subset: str) -> list[VideoRecord]:
        """The videos of ``subset`` (``train``, ``val``, ``trainval``, ``test``)."""
        hp = self.hparams
        return load_split(self.dataset, self.root, self.split, subset, val_fraction=hp.val_fraction, seed=hp.seed,
                          video_root=hp.video_root, ext=hp.ext, class_list=hp.class_list)

    def subsets_of(self, stage: str | None) -> list[str]:
        """The subsets :meth:`setup` reads for ``stage`` (``fit``, ``validate``, ``test``, ``predict``;
        None: all of them)."""
        hp = self.hparams
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": [hp.test_subset],
                  "predict": [hp.predict_subset]}
        return list(dict.fromkeys(s for st, subsets in wanted.items() if stage in (None, st) for s in subsets))

    def check_videos(self, subsets: list[str]) -> None:
        """Check every video of ``subsets`` once (:func:`~.video_dataset.check_records`): raise
        ONE ``BadVideosError`` naming the bad ones, or with ``skip_bad_videos`` drop them, warning once.
        Training videos of a compressed-domain stream whose GOPs are far longer than CoViAR's 12
        frames are warned of once (:mod:`~.gop_length`)."""
        todo = [s for s in dict.fromkeys(subsets) if s not in self._checked]
        if not todo:
            return
        hp = self.hparams
        listed = {s: self.records(s) for s in todo}
        unique = list({r.path: r for recs in listed.values() for r in recs}.values())
        pre = self.preprocess
        reader = FrameReader(self.video_root, pre.modality, self.flow_root, pre.flow_length, pre.accumulate,
                             pre.scale_size, decode_downscale=pre.decode_downscale)
        bad = {r.path: why for r, why in check_records(reader, unique, pre.crop_size, max(1, self.num_workers))}
        if bad:
            folder = self.flow_root if self.modality == "flow" else self.video_root
            shown = "; ".join(f"{p} ({why})" for p, why in list(bad.items())[:3])
            more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
            what = f"{len(bad)} of {len(unique)} videos listed for {'/'.join(todo)} cannot be read: {shown}{more}"
            if not hp.skip_bad_videos:
                fix = ("remove them and run data_prep/extract_flow.py again (it makes the missing ones)"
                       if self.modality == "flow" else "re-encode or remove them")
                raise BadVideosError(folder, f"{what}. List them all with `{CHECK_COMMAND} {folder}`, then {fix}, "
                                             "or set data.skip_bad_videos=true to leave them out", list(bad.items()))
        for subset, recs in listed.items():
            self._checked[subset] = [r for r in recs if r.path not in bad]
            if recs and not self._checked[subset]:
                raise BadVideosError(folder, f"{what}; no readable video left in {subset}", list(bad.items()))
        if bad:
            warnings.warn(f"{folder}: {what}; left out (data.skip_bad_videos=true)", SetupWarning, stacklevel=2)
        if "train" in todo and self._checked["train"] and self.modality in ("iframe", *DEVICE_MODALITIES):
            videos = [reader.source(r) for r in spread(self._checked["train"])]  # indexes cached by the check
            said = long_gops(videos, len(self._checked["train"]))
            for v in videos:
                v.close()
            if said:
                warnings.warn(f"{self.video_root}: {said}", SetupWarning, stacklevel=2)

    def _common(self) -> dict[str, Any]:
        return {"video_root": self.video_root, "flow_root": self.flow_root, **self.preprocess.reader_kwargs()}

    def aligned_positions(self) -> AlignedPositions:
        """The positions a distilled sample may use (those the teacher cache holds)."""
        return AlignedPositions(str(self.video_root), str(self.flow_root), self.preprocess.flow_length,
                                self.hparams.grid_stride)

    def _stream(self, subset: str, train: bool, segments: int, crops: int = 1, targets: bool = True) -> Dataset:
        hp, pre = self.hparams, self.preprocess
        self.check_videos([subset])
        records = self._checked[subset]
        distilled = train and targets and (self.teacher_cache is not None or hp.teacher_input)
        cache = None
        if distilled and self.teacher_cache is not None:
            cache = TeacherCache(self.teacher_cache)
            cache.check({"video_ids": [r.path for r in records]})  # fail now, not in a worker
            allowed = cache.frames
        else:
            allowed = self.aligned_positions() if distilled else None
        ds: Dataset = StreamDataset(records, num_segments=segments, train=train, test_crops=crops, seed=hp.seed,
                                    flip=pre.flip, train_views=pre.train_views, allowed_positions=allowed,
                                    reconstruct=pre.reconstruct, skip_bad=hp.skip_bad_videos, **self._common())
        if distilled and pre.train_views is None:
            raise ValueError("distillation needs data.train_views (1, 3 or 5): the teacher's targets exist "
                             "only for a fixed set of views")
        if cache is not None:
            ds = TeacherTargets(ds, cache)
        if distilled and hp.teacher_input:
            ds = TeacherInputs(ds, FlowView(str(self.flow_root), pre.flow_length, pre.crop_size, pre.scale_size,
                                            pre.train_views, pre.flip))
        return ds

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (``fit``, ``validate``, ``test``, ``predict``; None: all),
        after checking all their videos at once (:meth:`check_videos`)."""
        hp = self.hparams
        self.check_videos(self.subsets_of(stage))
        if stage in (None, "fit"):
            self.datasets["train"] = self._stream("train", True, self.num_segments)
        if stage in (None, "fit", "validate"):
            self.datasets["val"] = self._stream("val", False, self.num_segments)
        if stage in (None, "test"):
            # the test protocol on `test_subset` (``val`` too, for fusion weights); no teacher targets
            self.datasets["test"] = self._stream(self.hparams.test_subset, False, self.test_segments,
                                                 self.test_crops, targets=False)
        if stage in (None, "predict"):
            todo = [r for r in self._checked[hp.predict_subset] if r.path not in self.skip_videos]
            self.datasets["predict"] = GridDataset(todo, stride=hp.grid_stride,
                                                   num_views=self.preprocess.train_views, flip=self.preprocess.flip,
                                                   position_modality=hp.cache_positions, **self._common())

    def _loader(self, name: str, shuffle: bool = False, batch_size: int | None = None) -> DataLoader:
        if name not in self.datasets:
            raise RuntimeError(f"call setup() before {name}_dataloader()")
        dataset, workers = self.datasets[name], self.num_workers
        batch_size = batch_size or self.batch_size
        drop_last = shuffle and len(dataset) > batch_size  # type: ignore[arg-type]  # no 1-sample BN batch
        # an evaluation loader draws its worker seed from its own generator, not the global one:
        # training is then the same whatever the validation schedule (check_val_every_n_epoch)
        generator = None if shuffle else torch.Generator().manual_seed(self.hparams.seed)
        packed = self.preprocess.reconstruct == "device" and name != "predict"
        sampler = _unpadded(dataset) if name in ("val", "test") else None
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=workers,
                          pin_memory=self.pin_memory, collate_fn=collate_packed if packed else collate,
                          drop_last=drop_last, persistent_workers=workers > 0, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """``test_batch_size`` (default 1: a sample holds test_segments * test_crops frames)."""
        return self._loader("test", batch_size=self.hparams.test_batch_size)

    def predict_dataloader(self) -> DataLoader:
        """One video per item; ``input`` / ``frame_index`` are lists when ``predict_batch_size`` > 1."""
        return self._loader("predict", batch_size=self.hparams.predict_batch_size)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``reconstruct="device"``: rebuild the packed samples' ``input`` (B, N, C, crop, crop) on the
        batch's device (``device_reconstruct``); Lightning calls it after moving the batch there.
        Other batches pass unchanged."""
        if isinstance(batch, dict) and SKIPPED in batch:
            self._note_skipped(batch.pop(SKIPPED))
        if isinstance(batch, dict) and PACKED in batch:
            return reconstruct_batch(batch, self.preprocess)
        return batch

    def _note_skipped(self, notes: list[str]) -> None:
        """``skip_bad_videos``: videos that failed in a worker and were read around (another video
        of the class took their place; in a test, whose scores are per video id, they are missing);
        each named once (a warning) and kept in :attr:`skipped`."""
        now = ("left out of the test scores" if self.trainer is not None and self.trainer.testing else
               "replaced by another video of its class")
        for note in notes:
            for line in filter(None, note.split("\n")):
                path, _, why = line.partition("\t")
                if path not in self.skipped:
                    self.skipped[path] = why
                    warnings.warn(f"{path}: {why}; {now} (data.skip_bad_videos=true)", stacklevel=2)
