"""Writing the teacher cache (format: :mod:`ip_tsn.data.teacher_cache`): each rank's shards, one
every ``CHUNK_VIDEOS`` videos (:class:`ShardWriter`), so that a run killed mid-way is resumed by
the next (:func:`finished_videos`, :func:`prepare_folder`); merged by rank 0 (:func:`merge_shards`),
the manifest written last (:func:`write_manifest`). Every file goes through :mod:`ip_tsn.atomic`."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ip_tsn.atomic import atomic_path, sha256_file, write_json_atomic

from .teacher_cache import CACHE_DTYPES, CACHE_FORMAT, CACHE_VERSION, MANIFEST, PARTS, shard_file


# -- writing ---------------------------------------------------------------------------------------
def _numpy(x: torch.Tensor | np.ndarray, dtype: np.dtype) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(x, dtype=dtype)



CHUNK_VIDEOS = 64  # videos per finished shard: what a run killed mid-way keeps for the next one


class ShardWriter:
    """Append-only writer of one rank's shards: every ``chunk_videos`` videos the data files are
    renamed into place and ``<shard>.index.json`` written last, so a run killed mid-way keeps its
    finished shards (:func:`finished_videos`) and the next run computes only the rest. Shards are
    named ``shard-<session>-<rank>-<n>`` (``session``: random per writer, so no run overwrites
    another's). ``key``: what a resumed run must share with it (:func:`cache_key`), in every index.
    ``features=False``: a logits-only cache."""

    def __init__(self, root: str | os.PathLike, rank: int, dtype: str, features: bool = True,
                 key: Mapping[str, Any] | None = None, chunk_videos: int = CHUNK_VIDEOS) -> None:
        if dtype not in CACHE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(CACHE_DTYPES)}, not {dtype!r}")
        self.root, self.rank = Path(root), rank
        self.dtype, self.features = np.dtype(dtype), features
        self.key, self.chunk_videos = dict(key or {}), max(1, int(chunk_videos))
        self.prefix, self.chunk = f"shard-{secrets.token_hex(3)}-{rank}", 0
        self.counts: dict[str, int] = {}  # every video this writer has added (a repeat is skipped)
        self.num_classes: int | None = None
        self.feature_dim = 0
        self.num_views: int | None = None
        self.files: dict[str, BinaryIO] = {}  # the open shard's data files (none until a video comes)
        self.videos: list[dict[str, Any]] = []
        self.rows = 0

    def _start(self) -> None:
        """Open the next shard's data files (at its first video: a writer that gets none writes nothing)."""
        self.name = f"{self.prefix}-{self.chunk}"
        parts = PARTS if self.features else ("logits.bin", "frames.bin")
        # each data file is written under ip_tsn.atomic's temporary name and renamed into place by it
        self._stack = contextlib.ExitStack()
        self.tmp = {p: self._stack.enter_context(atomic_path(shard_file(self.root, self.name, p))) for p in parts}
        self.files = {p: open(t, "wb") for p, t in self.tmp.items()}

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
        if not self.files:
            self._start()
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
        if len(self.videos) >= self.chunk_videos:
            self._finish()

    def _finish(self) -> None:
        """Close the open shard, if any: its data files renamed into place, then its index."""
        if not self.files:
            return
        for f in self.files.values():
            f.close()
        self._stack.close()  # ip_tsn.atomic renames every data file into place
        write_json_atomic(shard_file(self.root, self.name, "index.json"), {
            "rank": self.rank, "num_rows": self.rows, "num_classes": self.num_classes,
            "feature_dim": self.feature_dim, "dtype": self.dtype.name, "num_views": self.num_views,
            "videos": self.videos, "key": self.key})
        self.files, self.videos, self.rows, self.chunk = {}, [], 0, self.chunk + 1

    def finalize(self) -> None:
        """Finish the last shard (none if it is empty)."""
        self._finish()


def cache_key(teacher_checkpoint: str | None, dataset: Mapping[str, Any], grid_stride: int,
              views: Mapping[str, Any], flow_length: int, dtype: str, features: bool) -> dict[str, Any]:
    """What a run resuming an unfinished cache must share with the shards it keeps: the format,
    the teacher checkpoint's SHA-256, the data set, the positions, the views, the flow window and
    the storage (every shard index holds it)."""
    return {"version": CACHE_VERSION, "teacher_sha256": sha256_file(teacher_checkpoint) if teacher_checkpoint else None,
            "dataset": dict(dataset), "grid_stride": int(grid_stride), "views": dict(views),
            "flow_length": int(flow_length), "dtype": str(dtype), "features": bool(features)}


def _indexes(root: Path) -> dict[str, dict[str, Any]]:
    """Every finished shard in ``root`` (its index written, so its data files are whole): name -> index."""
    out = {}
    for path in sorted(root.glob("shard-*.index.json")):
        with contextlib.suppress(ValueError, OSError):
            out[path.name[: -len(".index.json")]] = json.loads(path.read_text())
    return out


def finished_videos(root: str | os.PathLike, key: Mapping[str, Any]) -> set[str]:
    """The videos the finished shards in ``root`` with this ``key`` hold: what a resumed run skips."""
    key = json.loads(json.dumps(dict(key)))  # as the index holds it (tuples as lists)
    return {v["video_id"] for index in _indexes(Path(root)).values() if index.get("key") == key
            for v in index["videos"]}


def prepare_folder(root: str | os.PathLike, key: Mapping[str, Any], resume: bool) -> None:
    """Before any rank writes (rank 0): remove the temporaries of killed writers, the data files of
    shards that never got their index, and every finished shard (``resume``: those with another
    ``key``, unusable here), so the folder ends holding only what the manifest names."""
    root, key = Path(root), json.loads(json.dumps(dict(key)))
    keep = {name for name, index in _indexes(root).items() if resume and index.get("key") == key}
    for path in [*root.glob("shard-*"), *root.glob(".shard-*.tmp-*")]:
        if path.name.startswith(".") or path.name.split(".")[0] not in keep:
            with contextlib.suppress(OSError):
                path.unlink()


def merge_shards(root: str | os.PathLike) -> dict[str, Any]:
    """Read every finished shard's index; return ``{"shards", "videos", "num_classes", "feature_dim",
    "dtype", "num_views"}`` with each video kept once (a duplicate must have the same count)."""
    root = Path(root)
    shards, videos, dims = [], {}, set()
    for name, index in _indexes(root).items():
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



def write_manifest(root: str | os.PathLike, *, teacher_checkpoint: str | None,
                   dataset: Mapping[str, Any], grid_stride: int, views: Mapping[str, Any],
                   flow_length: int, config: Mapping[str, Any]) -> dict[str, Any]:
    """Merge the shard indexes and write ``manifest.json`` atomically (the cache's last file)."""
    merged = merge_shards(root)
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
