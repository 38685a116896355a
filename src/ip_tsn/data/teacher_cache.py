"""The optical-flow teacher cache: its format and its reader (the writer: ``cache_shards.py``; its
size: ``cache_size.py``; the dataset wrappers that add its targets to samples: ``teacher_targets.py``).

The teacher runs once over every train/val video (``ip-tsn cache``); the student then reads its
outputs, memory-mapped, and the teacher never runs while the student trains. The cache holds what
alignment needs: for each video, the student's own sampling positions (the P-frames at which a
flow stack ends, every ``grid_stride``-th of them) and, at each, every view of the fixed training
view set (``views``: crop boxes, and their mirror images when ``flip``). The student samples only
cached positions and draws one cached view, so each of its segments gets the teacher's output on
the same frames, the same crop and the same flip (see ``data/video_dataset.py`` for the time
window: both end at the P-frame).

Layout of a cache folder (``<s>``: a shard, ``shard-<session>-<rank>-<n>``: each process writes
one every ``cache.chunk_videos`` videos, so a killed run keeps its finished ones for the next)::

    manifest.json                written last, by rank 0, once every shard is final
    <s>.index.json               {"rank", "num_rows", "num_classes", "feature_dim", "dtype",
                                  "num_views", "videos": [{"video_id", "offset", "count"}, ...],
                                  "key": what a resuming run must share (cache_shards.cache_key)}
    <s>.logits.bin               raw C-order (num_rows, num_classes) float16 | float32
    <s>.features.bin             raw C-order (num_rows, feature_dim)  float16 | float32 (absent
                                 when feature_dim is 0: a logits-only cache)
    <s>.frames.bin               raw (num_rows,) int64: the frame index of each row

A video's ``count`` positions are rows ``offset .. offset + count * V`` of its shard, position-
major: row ``offset + g * V + v`` is view ``v`` at its g-th position. ``manifest.json`` holds
``format``, ``version``, ``created``, ``teacher_checkpoint``, ``teacher_sha256``, ``num_classes``,
``feature_dim``, ``dtype``, ``dataset``, ``grid_stride``, ``views`` ({"num_views", "flip",
"crop_size"}), ``flow_length``, ``config``, ``shards`` ([{"name", "num_rows", "bytes", "sha256"}]:
sizes and checksums of every file, verified on opening), ``num_videos`` and ``videos``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ip_tsn.atomic import sha256_file

if TYPE_CHECKING:  # only an annotation: reading a cache needs no torch
    import torch

CACHE_FORMAT = "ip-tsn-teacher-cache"
CACHE_VERSION = 3  # 3: flow stacks padded at the start (every P-frame has a row)
CACHE_DTYPES = ("float16", "float32")  # storage types of logits and features (cache.dtype)
MANIFEST = "manifest.json"
PARTS = ("logits.bin", "features.bin", "frames.bin")


class StaleCacheError(ValueError):
    """The teacher cache is missing, broken or does not match what the caller expects."""


def shard_file(root: str | os.PathLike, shard: str, part: str) -> Path:
    """Path of ``<shard>.<part>``; part is ``index.json`` or one of ``PARTS``."""
    return Path(root) / f"{shard}.{part}"


# -- reading ---------------------------------------------------------------------------------------
class TeacherCache:
    """Memory-mapped, read-only view of a teacher cache folder (safe to pickle into workers:
    the maps are reopened lazily in each process). Opening checks the manifest and the size of
    every shard file; :meth:`verify` also checks their SHA-256."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise StaleCacheError(f"teacher cache {self.path}: no {MANIFEST} (missing or unfinished cache; "
                                  "run the teacher cache stage: make cache / ip-tsn cache)")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
            if self.manifest.get("format") != CACHE_FORMAT or self.manifest.get("version") != CACHE_VERSION:
                raise StaleCacheError(f"teacher cache {self.path}: format/version "
                                      f"{self.manifest.get('format')}/{self.manifest.get('version')}, expected "
                                      f"{CACHE_FORMAT}/{CACHE_VERSION}; rebuild it (ip-tsn cache)")
            self.num_classes: int = int(self.manifest["num_classes"])
            self.feature_dim: int = int(self.manifest["feature_dim"])
            self.num_views: int = int(self.manifest["num_views"])
            self.videos: dict[str, dict[str, Any]] = self.manifest["videos"]
            shards = self.manifest["shards"]
        except StaleCacheError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # AttributeError: not an object
            raise StaleCacheError(f"teacher cache {manifest_path}: broken manifest ({type(e).__name__}: {e}); "
                                  "rebuild the cache (ip-tsn cache)") from None
        self._check_sizes(shards)
        self._maps: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}

    def _expected_bytes(self, rows: int) -> dict[str, int]:
        item = np.dtype(self.manifest["dtype"]).itemsize
        sizes = {"logits.bin": rows * self.num_classes * item, "frames.bin": rows * 8}
        if self.feature_dim:
            sizes["features.bin"] = rows * self.feature_dim * item
        return sizes

    def _check_sizes(self, shards: list[dict[str, Any]]) -> None:
        for shard in shards:
            for part, size in self._expected_bytes(int(shard["num_rows"])).items():
                f = shard_file(self.path, shard["name"], part)
                if not f.is_file():
                    raise StaleCacheError(f"teacher cache {self.path}: {f.name} is missing; rebuild the cache")
                if f.stat().st_size != size or shard.get("bytes", {}).get(part, size) != size:
                    raise StaleCacheError(f"teacher cache {self.path}: {f.name} has {f.stat().st_size} bytes, the "
                                          f"manifest implies {size} (truncated or edited); rebuild the cache")

    def verify(self) -> None:
        """Check every shard file's SHA-256 against the manifest (:class:`StaleCacheError`)."""
        for shard in self.manifest["shards"]:
            for part, digest in shard.get("sha256", {}).items():
                if sha256_file(shard_file(self.path, shard["name"], part)) != digest:
                    raise StaleCacheError(f"teacher cache {self.path}: {shard['name']}.{part} does not match its "
                                          "checksum in the manifest (corrupt or edited); rebuild the cache")

    @property
    def video_ids(self) -> list[str]:
        """Every cached video id, sorted."""
        return sorted(self.videos)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}

    def _shard(self, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        if name not in self._maps:
            rows = next(s["num_rows"] for s in self.manifest["shards"] if s["name"] == name)
            dtype = np.dtype(self.manifest["dtype"])
            feats = np.memmap(shard_file(self.path, name, "features.bin"), dtype, "r",
                              shape=(rows, self.feature_dim)) if self.feature_dim else None
            self._maps[name] = (
                np.memmap(shard_file(self.path, name, "logits.bin"), dtype, "r", shape=(rows, self.num_classes)),
                feats,
                np.memmap(shard_file(self.path, name, "frames.bin"), np.int64, "r", shape=(rows,)),
            )
        return self._maps[name]

    def _entry(self, video_id: str) -> dict[str, Any]:
        if video_id not in self.videos:
            raise StaleCacheError(f"teacher cache {self.path}: video {video_id!r} is not cached "
                                  "(cache built for another split/subset?); rebuild the cache")
        return self.videos[video_id]

    def frames(self, video_id: str) -> np.ndarray:
        """(G,) int64 cached positions (frame indices) of ``video_id``."""
        entry = self._entry(video_id)
        start, v = entry["offset"], self.num_views
        return np.asarray(self._shard(entry["shard"])[2][start:start + entry["count"] * v:v])

    def video_logits(self, video_id: str) -> np.ndarray:
        """Every cached row of ``video_id``: (G * V, C) float32, position-major."""
        entry = self._entry(video_id)
        start = entry["offset"]
        return np.asarray(self._shard(entry["shard"])[0][start:start + entry["count"] * self.num_views], np.float32)

    def lookup(self, video_id: str, frame_index: np.ndarray | torch.Tensor | list[int], view: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
        """Teacher outputs at the cached positions ``frame_index`` (K,) in view ``view``:
        ``(logits (K, C) float32, features (K, D) float32; D = 0 for a logits-only cache)``.
        A position or view the cache does not hold raises :class:`StaleCacheError`."""
        entry = self._entry(video_id)
        logits, features, _ = self._shard(entry["shard"])
        grid = self.frames(video_id)
        want = np.asarray(frame_index, dtype=np.int64).reshape(-1)
        g = np.clip(np.searchsorted(grid, want), 0, len(grid) - 1)
        if not 0 <= view < self.num_views or np.any(grid[g] != want):
            raise StaleCacheError(f"teacher cache {self.path}: {video_id} has no output at frames "
                                  f"{want[grid[g] != want].tolist()} / view {view} (it holds {len(grid)} positions x "
                                  f"{self.num_views} views); rebuild the cache with the student's settings")
        rows = entry["offset"] + g * self.num_views + view
        feats = features[rows].astype(np.float32) if features is not None else np.zeros((len(rows), 0), np.float32)
        return logits[rows].astype(np.float32), feats

    def check(self, expected: Mapping[str, Any]) -> None:
        """Raise :class:`StaleCacheError` naming the cache and the first mismatching key.

        Keys are manifest keys (``teacher_sha256``, ``num_classes``, ``feature_dim``,
        ``grid_stride``, ``views``, ``flow_length``, ``dataset`` — dicts compared on the sub-keys
        given); ``video_ids`` (an iterable) must all be cached. An unknown key is a ``KeyError``.
        """
        unknown = sorted(set(expected) - set(self.manifest) - {"video_ids"})
        if unknown:
            raise KeyError(f"teacher cache {self.path}: {unknown} are not manifest keys; known: "
                           f"{sorted(self.manifest)} and video_ids")
        for key, want in expected.items():
            if key == "video_ids":
                missing = sorted(set(want) - set(self.videos))
                if missing:
                    raise StaleCacheError(f"teacher cache {self.path} is stale: video_ids: {len(missing)} "
                                          f"video(s) missing, e.g. {missing[:3]}; rebuild the cache")
                continue
            _compare(self.path, key, self.manifest.get(key), want)


def _compare(path: Path, key: str, have: Any, want: Any) -> None:
    if isinstance(want, Mapping):
        have = have if isinstance(have, Mapping) else {}
        for sub, value in want.items():
            _compare(path, f"{key}.{sub}", have.get(sub), value)
    elif have != want:
        raise StaleCacheError(f"teacher cache {path} is stale: {key} is {have!r}, expected "
                              f"{want!r}; rebuild the cache")


