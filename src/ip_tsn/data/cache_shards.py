"""Writing the teacher cache (format: :mod:`ip_tsn.data.teacher_cache`): one shard per rank
(:class:`ShardWriter`), merged by rank 0 (:func:`merge_shards`), the manifest written last
(:func:`write_manifest`). Every file goes through :mod:`ip_tsn.atomic`."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ip_tsn.atomic import atomic_path, remove_stale_temps, sha256_file, write_json_atomic

from .teacher_cache import CACHE_DTYPES, CACHE_FORMAT, CACHE_VERSION, MANIFEST, PARTS, shard_file


# -- writing ---------------------------------------------------------------------------------------
def _numpy(x: torch.Tensor | np.ndarray, dtype: np.dtype) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(x, dtype=dtype)



class ShardWriter:
    """Append-only writer of one rank's shard; :meth:`finalize` renames the data into place
    and writes ``shard-<rank>.index.json`` last. ``features=False``: a logits-only cache."""

    def __init__(self, root: str | os.PathLike, rank: int, dtype: str, features: bool = True) -> None:
        if dtype not in CACHE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(CACHE_DTYPES)}, not {dtype!r}")
        self.root, self.rank, self.name = Path(root), rank, f"shard-{rank}"
        self.dtype, self.features = np.dtype(dtype), features
        parts = PARTS if features else ("logits.bin", "frames.bin")
        for part in (*PARTS, "index.json"):  # what a killed earlier run of this rank left: it may be GBs
            remove_stale_temps(shard_file(self.root, self.name, part))
            if part not in parts:  # an earlier run's file this run does not write (features, the index)
                shard_file(self.root, self.name, part).unlink(missing_ok=True)
        # each data file is written under ip_tsn.atomic's temporary name and renamed into place by it
        self._stack = contextlib.ExitStack()
        self.tmp = {p: self._stack.enter_context(atomic_path(shard_file(self.root, self.name, p))) for p in parts}
        self.files: dict[str, BinaryIO] = {p: open(t, "wb") for p, t in self.tmp.items()}
        self.videos: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.rows = 0
        self.num_classes: int | None = None
        self.feature_dim = 0
        self.num_views: int | None = None

    def add(self, video_id: str, frame_index: Any, logits: Any, features: Any = None) -> None:
        """Append one video: frame_index (G,) positions, logits (G * V, C) and features (G * V, D),
        position-major. A video seen before (sampler padding) is skipped; its count must match."""
        frames = _numpy(frame_index, np.int64).reshape(-1)
        lg = _numpy(logits, self.dtype)
        if len(frames) == 0 or len(lg) % len(frames):
            raise ValueError(f"{video_id}: {len(lg)} output rows for {len(frames)} positions")
        views = len(lg) // len(frames)
        if self.num_views not in (None, views):
            raise ValueError(f"{video_id}: {views} views per position, other videos have {self.num_views}")
        if video_id in self.counts:
            if self.counts[video_id] != len(frames):
                raise ValueError(f"{video_id} predicted twice with {self.counts[video_id]} and {len(frames)} positions")
            return
        if np.any(np.diff(frames) <= 0):
            raise ValueError(f"{video_id}: grid frame indices must be strictly increasing")
        self.num_classes, self.num_views = lg.shape[1], views
        self.files["logits.bin"].write(lg.tobytes())
        self.files["frames.bin"].write(np.repeat(frames, views).tobytes())
        if self.features:
            ft = _numpy(features, self.dtype)
            if len(ft) != len(lg):
                raise ValueError(f"{video_id}: {len(ft)} feature rows, {len(lg)} logit rows")
            self.feature_dim = ft.shape[1]
            self.files["features.bin"].write(ft.tobytes())
        self.videos.append({"video_id": video_id, "offset": self.rows, "count": len(frames)})
        self.counts[video_id] = len(frames)
        self.rows += len(lg)

    def finalize(self) -> None:
        """Close, rename the data files into place, then write the shard index."""
        for f in self.files.values():
            f.close()
        self._stack.close()  # ip_tsn.atomic renames every data file into place
        write_json_atomic(shard_file(self.root, self.name, "index.json"), {
            "rank": self.rank, "num_rows": self.rows, "num_classes": self.num_classes,
            "feature_dim": self.feature_dim, "dtype": self.dtype.name, "num_views": self.num_views,
            "videos": self.videos})



def remove_other_ranks(root: str | os.PathLike, world_size: int) -> None:
    """Delete the shard files (and temporaries) of ranks ``world_size`` and up: an earlier run on
    more processes left them, and this run's manifest will not name them. Rank 0, before any
    rank writes."""
    for path in [*Path(root).glob("shard-*.*"), *Path(root).glob(".shard-*.tmp-*")]:
        rank = path.name.lstrip(".").split(".")[0][len("shard-"):]
        if rank.isdigit() and int(rank) >= world_size:
            with contextlib.suppress(OSError):
                path.unlink()


def merge_shards(root: str | os.PathLike, world_size: int) -> dict[str, Any]:
    """Read every shard index; return ``{"shards", "videos", "num_classes", "feature_dim",
    "dtype", "num_views"}`` with each video kept once (a duplicate must have the same count)."""
    root = Path(root)
    shards, videos, dims = [], {}, set()
    for rank in range(world_size):
        name = f"shard-{rank}"
        index = json.loads(shard_file(root, name, "index.json").read_text())
        parts = [p for p in PARTS if shard_file(root, name, p).is_file()]
        shards.append({"name": name, "num_rows": index["num_rows"],
                       "bytes": {p: shard_file(root, name, p).stat().st_size for p in parts},
                       "sha256": {p: sha256_file(shard_file(root, name, p)) for p in parts}})
        if index["num_rows"]:
            dims.add((index["num_classes"], index["feature_dim"], index["dtype"], index["num_views"]))
        for v in index["videos"]:
            if v["video_id"] in videos:
                if videos[v["video_id"]]["count"] != v["count"]:
                    raise ValueError(f"{v['video_id']} cached twice with different counts")
                continue
            videos[v["video_id"]] = {"shard": name, "offset": v["offset"], "count": v["count"]}
    if len(dims) != 1:
        raise ValueError(f"teacher cache {root}: shards disagree or are empty: {dims}")
    (num_classes, feature_dim, dtype, num_views), = dims
    return {"shards": shards, "videos": dict(sorted(videos.items())), "num_classes": num_classes,
            "feature_dim": feature_dim, "dtype": dtype, "num_views": num_views}



def write_manifest(root: str | os.PathLike, world_size: int, *, teacher_checkpoint: str | None,
                   dataset: Mapping[str, Any], grid_stride: int, views: Mapping[str, Any],
                   flow_length: int, config: Mapping[str, Any]) -> dict[str, Any]:
    """Merge the shard indexes and write ``manifest.json`` atomically (the cache's last file)."""
    merged = merge_shards(root, world_size)
    if merged["num_views"] != views.get("num_ids", merged["num_views"]):
        raise ValueError(f"teacher cache {root}: {merged['num_views']} outputs per position, "
                         f"the view set has {views['num_ids']}")
    manifest = {
        "format": CACHE_FORMAT, "version": CACHE_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "teacher_checkpoint": teacher_checkpoint,
        "teacher_sha256": sha256_file(teacher_checkpoint) if teacher_checkpoint else None,
        "dataset": dict(dataset), "grid_stride": grid_stride, "views": dict(views),
        "flow_length": flow_length, "config": dict(config), "num_videos": len(merged["videos"]), **merged,
    }
    write_json_atomic(Path(root) / MANIFEST, manifest)
    return manifest
