"""Writer of the optical-flow teacher cache: a prediction-writer callback for ``trainer.predict``.

Run a :class:`~ip_tsn.lit.classifier.StreamClassifier` with ``predict_mode="frames"`` over the
grid dataset (one video per item, every grid position). Each rank appends to its own shard
(``shard-<rank>.*``, format in :mod:`ip_tsn.data.teacher_cache`) and finalises it atomically;
after a barrier rank 0 merges the shard indexes into ``manifest.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from ip_tsn.data.teacher_cache import (CACHE_FORMAT, CACHE_VERSION, MANIFEST, sha256_file,
                                       shard_file)
from ip_tsn.lit.atomic import write_json_atomic

PARTS = ("logits.bin", "features.bin", "frames.bin")


def _numpy(x: torch.Tensor | np.ndarray, dtype: np.dtype) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(x, dtype=dtype)


class ShardWriter:
    """Append-only writer of one rank's shard; :meth:`finalize` renames the data into place
    and writes ``shard-<rank>.index.json`` last."""

    def __init__(self, root: Path, rank: int, dtype: str) -> None:
        self.root, self.rank, self.name = root, rank, f"shard-{rank}"
        self.dtype = np.dtype(dtype)
        shard_file(root, self.name, "index.json").unlink(missing_ok=True)
        self.tmp = {p: root / f".{self.name}.{p}.tmp-{os.getpid()}" for p in PARTS}
        self.files: dict[str, BinaryIO] = {p: open(t, "wb") for p, t in self.tmp.items()}
        self.videos: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.rows = 0
        self.num_classes: int | None = None
        self.feature_dim: int | None = None

    def add(self, video_id: str, frame_index: Any, logits: Any, features: Any) -> None:
        """Append one video: frame_index (G,), logits (G, C), features (G, D). A video seen
        before (sampler padding) is skipped; its count must match."""
        frames = _numpy(frame_index, np.int64).reshape(-1)
        lg, ft = _numpy(logits, self.dtype), _numpy(features, self.dtype)
        if not (len(frames) == len(lg) == len(ft)):
            raise ValueError(f"{video_id}: {len(frames)} frames, {len(lg)} logits, "
                             f"{len(ft)} features")
        if video_id in self.counts:
            if self.counts[video_id] != len(frames):
                raise ValueError(f"{video_id} predicted twice with {self.counts[video_id]} "
                                 f"and {len(frames)} grid positions")
            return
        if np.any(np.diff(frames) <= 0):
            raise ValueError(f"{video_id}: grid frame indices must be strictly increasing")
        self.num_classes, self.feature_dim = lg.shape[1], ft.shape[1]
        for part, arr in zip(PARTS, (lg, ft, frames)):
            self.files[part].write(arr.tobytes())
        self.videos.append({"video_id": video_id, "offset": self.rows, "count": len(frames)})
        self.counts[video_id] = len(frames)
        self.rows += len(frames)

    def finalize(self) -> None:
        """Close, rename the data files into place, then write the shard index."""
        for part, f in self.files.items():
            f.close()
            os.replace(self.tmp[part], shard_file(self.root, self.name, part))
        write_json_atomic(shard_file(self.root, self.name, "index.json"), {
            "rank": self.rank, "num_rows": self.rows, "num_classes": self.num_classes,
            "feature_dim": self.feature_dim, "dtype": self.dtype.name, "videos": self.videos})


def merge_shards(root: Path, world_size: int) -> dict[str, Any]:
    """Read every shard index; return ``{"shards", "videos", "num_classes", "feature_dim",
    "dtype"}`` with each video kept once (a duplicate must have the same count)."""
    shards, videos, dims = [], {}, set()
    for rank in range(world_size):
        index = json.loads(shard_file(root, f"shard-{rank}", "index.json").read_text())
        name = f"shard-{rank}"
        shards.append({"name": name, "num_rows": index["num_rows"]})
        if index["num_rows"]:
            dims.add((index["num_classes"], index["feature_dim"], index["dtype"]))
        for v in index["videos"]:
            if v["video_id"] in videos:
                if videos[v["video_id"]]["count"] != v["count"]:
                    raise ValueError(f"{v['video_id']} cached twice with different counts")
                continue
            videos[v["video_id"]] = {"shard": name, "offset": v["offset"], "count": v["count"]}
    if len(dims) != 1:
        raise ValueError(f"teacher cache {root}: shards disagree or are empty: {dims}")
    (num_classes, feature_dim, dtype), = dims
    return {"shards": shards, "videos": dict(sorted(videos.items())),
            "num_classes": num_classes, "feature_dim": feature_dim, "dtype": dtype}


class TeacherCacheWriter(BasePredictionWriter):
    """Writes the teacher's per-grid-position logits and features to ``out_dir``.

    ``teacher_checkpoint``: path of the teacher's checkpoint (its SHA-256 goes into the
    manifest); ``dataset``: ``{"name", "root", "split", "subset"}``; ``grid_stride``: the grid
    dataset's stride; ``config``: any JSON-able dict recorded as is; ``dtype``: ``float16`` or
    ``float32``. Use ``trainer.predict(..., return_predictions=False)``.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        teacher_checkpoint: str | os.PathLike | None = None,
        dataset: Mapping[str, Any] | None = None,
        grid_stride: int | None = None,
        config: Mapping[str, Any] | None = None,
        dtype: str = "float16",
    ) -> None:
        super().__init__(write_interval="batch")
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, not {dtype!r}")
        self.out_dir = Path(out_dir)
        self.teacher_checkpoint = str(teacher_checkpoint) if teacher_checkpoint else None
        self.dataset = {k: str(v) if isinstance(v, os.PathLike) else v
                        for k, v in (dataset or {}).items()}
        self.grid_stride = grid_stride
        self.config = dict(config or {})
        self.dtype = dtype
        try:
            json.dumps({"dataset": self.dataset, "config": self.config})
        except TypeError as err:
            raise ValueError("TeacherCacheWriter: dataset and config must be JSON-able (plain "
                             f"containers, e.g. OmegaConf.to_container(cfg)): {err}") from err
        self._shard: ShardWriter | None = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / MANIFEST).unlink(missing_ok=True)  # invalid until rewritten
        trainer.strategy.barrier("teacher_cache_start")
        self._shard = ShardWriter(self.out_dir, trainer.global_rank, self.dtype)

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           prediction: Any, batch_indices: Sequence[int] | None, batch: Any,
                           batch_idx: int, dataloader_idx: int = 0) -> None:
        """Append every video of a ``predict_frames`` output (keyed by its video id)."""
        assert self._shard is not None
        if not isinstance(prediction.get("logits"), list):
            raise ValueError("TeacherCacheWriter needs per-position outputs: set the module's "
                             "predict_mode = 'frames'")
        for vid, frames, logits, feats in zip(prediction["video_id"], prediction["frame_index"],
                                              prediction["logits"], prediction["features"]):
            self._shard.add(str(vid), frames, logits, feats)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self._shard is not None
        self._shard.finalize()
        self._shard = None
        trainer.strategy.barrier("teacher_cache_shards")
        if trainer.is_global_zero:
            self.write_manifest(trainer.world_size)
        trainer.strategy.barrier("teacher_cache_manifest")

    def write_manifest(self, world_size: int) -> dict[str, Any]:
        """Merge the shard indexes and write ``manifest.json`` atomically."""
        merged = merge_shards(self.out_dir, world_size)
        ckpt = self.teacher_checkpoint
        manifest = {
            "format": CACHE_FORMAT, "version": CACHE_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "teacher_checkpoint": ckpt,
            "teacher_sha256": sha256_file(ckpt) if ckpt else None,
            "dataset": self.dataset, "grid_stride": self.grid_stride, "config": self.config,
            "num_videos": len(merged["videos"]),
            **merged,
        }
        write_json_atomic(self.out_dir / MANIFEST, manifest)
        return manifest
