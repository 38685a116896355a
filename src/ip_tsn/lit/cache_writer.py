"""The prediction-writer callback that fills a teacher cache (format, writer and manifest:
:mod:`ip_tsn.data.teacher_cache`).

Run a :class:`~ip_tsn.lit.classifier.StreamClassifier` with ``predict_mode="frames"`` over the
cache's grid dataset (one video per item, every cached position in every view). Each rank appends
to its own shards, each finished atomically every ``CHUNK_VIDEOS`` videos; after a barrier rank 0
writes ``manifest.json``, unless only part of the videos ran (``trainer.fast_dev_run``,
``limit_predict_batches``: :attr:`TeacherCacheWriter.partial`). ``resume``: the finished shards of an unfinished earlier run with the
same key stay (the dataset then holds only the other videos, ``ip-tsn cache`` sees to it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from ip_tsn.data.cache_shards import CHUNK_VIDEOS, ShardWriter, cache_key, prepare_folder, write_manifest
from ip_tsn.data.teacher_cache import CACHE_DTYPES, MANIFEST
from ip_tsn.lit.callbacks import partial_pass


class TeacherCacheWriter(BasePredictionWriter):
    """Writes the teacher's per-position, per-view logits (and features) to ``out_dir``.

    ``teacher_checkpoint``: the teacher's checkpoint (its SHA-256 goes into the manifest);
    ``dataset``: ``{"name", "split", "videos", "subset"}``; ``grid_stride``, ``views`` (``{"num_views",
    "flip", "crop_size", "num_ids"}``) and ``flow_length``: what the student's sampling must match;
    ``config``: any JSON-able dict recorded as is; ``dtype``: ``float16`` or ``float32``;
    ``features=False`` stores logits only. Use ``trainer.predict(..., return_predictions=False)``.
    """

    def __init__(self, out_dir: str | os.PathLike, teacher_checkpoint: str | os.PathLike | None = None,
                 dataset: Mapping[str, Any] | None = None, grid_stride: int = 1,
                 views: Mapping[str, Any] | None = None, flow_length: int = 5,
                 config: Mapping[str, Any] | None = None, dtype: str = "float16", features: bool = True,
                 resume: bool = False, chunk_videos: int = CHUNK_VIDEOS) -> None:
        super().__init__(write_interval="batch")
        if dtype not in CACHE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(CACHE_DTYPES)}, not {dtype!r}")
        self.out_dir = Path(out_dir)
        self.teacher_checkpoint = str(teacher_checkpoint) if teacher_checkpoint else None
        self.dataset = {k: str(v) if isinstance(v, os.PathLike) else v for k, v in (dataset or {}).items()}
        self.grid_stride, self.views, self.flow_length = grid_stride, dict(views or {}), flow_length
        self.config, self.dtype, self.features = dict(config or {}), dtype, features
        try:
            json.dumps({"dataset": self.dataset, "config": self.config, "views": self.views})
        except TypeError as err:
            raise ValueError("TeacherCacheWriter: dataset, views and config must be JSON-able (plain "
                             f"containers, e.g. OmegaConf.to_container(cfg)): {err}") from err
        self._shard: ShardWriter | None = None
        self.resume, self.chunk_videos = resume, chunk_videos
        self.partial: str | None = None  # after predict: why only part of the videos ran (no manifest then)
        self.key = cache_key(self.teacher_checkpoint, self.dataset, grid_stride, self.views, flow_length, dtype, features)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / MANIFEST).unlink(missing_ok=True)  # invalid until rewritten
            prepare_folder(self.out_dir, self.key, self.resume)  # an earlier run's leftovers, or all of it
        trainer.strategy.barrier("teacher_cache_start")
        self._shard = ShardWriter(self.out_dir, trainer.global_rank, self.dtype, self.features, key=self.key,
                                  chunk_videos=self.chunk_videos)

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        """Append every video of a ``predict_frames`` output (keyed by its video id)."""
        assert self._shard is not None
        if not isinstance(prediction.get("logits"), list):
            raise ValueError("TeacherCacheWriter needs per-position outputs: set the module's predict_mode = 'frames'")
        for vid, frames, logits, feats in zip(prediction["video_id"], prediction["frame_index"],
                                              prediction["logits"], prediction["features"]):
            self._shard.add(str(vid), frames, logits, feats)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self._shard is not None
        self._shard.finalize()
        self._shard = None
        trainer.strategy.barrier("teacher_cache_shards")
        self.partial = partial_pass(trainer, "predict")
        if trainer.is_global_zero and self.partial is None:  # a part's shards stay, for the whole run to resume
            self.write_manifest()
        trainer.strategy.barrier("teacher_cache_manifest")

    def write_manifest(self) -> dict[str, Any]:
        """Merge the shard indexes and write ``manifest.json`` atomically."""
        return write_manifest(self.out_dir, teacher_checkpoint=self.teacher_checkpoint,
                              dataset=self.dataset, grid_stride=self.grid_stride, views=self.views,
                              flow_length=self.flow_length, config=self.config)
