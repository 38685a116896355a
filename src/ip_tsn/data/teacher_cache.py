"""Reader of the optical-flow teacher cache (written by ``ip_tsn.lit.cache_writer``).

Layout of a cache folder::

    manifest.json                written last, by rank 0, once every shard is final
    shard-<r>.index.json         {"rank", "num_rows", "num_classes", "feature_dim", "dtype",
                                  "videos": [{"video_id", "offset", "count"}, ...]}
    shard-<r>.logits.bin         raw C-order (num_rows, num_classes) float16 | float32
    shard-<r>.features.bin       raw C-order (num_rows, feature_dim)  float16 | float32
    shard-<r>.frames.bin         raw (num_rows,) int64: the frame index of each row

``manifest.json`` holds ``format``, ``version``, ``created``, ``teacher_checkpoint``,
``teacher_sha256`` (of the checkpoint file), ``num_classes``, ``feature_dim``, ``dtype``, ``dataset``
(name/root/split/subset), ``grid_stride``, ``config``, ``shards`` ([{"name", "num_rows"}]),
``num_videos`` and ``videos`` ({video_id: {"shard", "offset", "count"}}, de-duplicated).
A video's rows ``offset .. offset + count`` of its shard are its grid positions, in order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

CACHE_FORMAT = "ip-tsn-teacher-cache"
CACHE_VERSION = 1
MANIFEST = "manifest.json"


class StaleCacheError(ValueError):
    """The teacher cache does not match what the caller expects (rebuild it)."""


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shard_file(root: str | os.PathLike, shard: str, part: str) -> Path:
    """Path of ``<shard>.<part>``; part is ``index.json``, ``logits.bin``, ``features.bin`` or
    ``frames.bin``."""
    return Path(root) / f"{shard}.{part}"


def snap(grid: np.ndarray, frame_index: np.ndarray) -> np.ndarray:
    """Row of the nearest grid position for each frame index (ties go to the earlier one).

    grid: (G,) increasing; frame_index: (K,) -> (K,) int64 in ``[0, G)``.
    """
    right = np.clip(np.searchsorted(grid, frame_index, side="left"), 0, len(grid) - 1)
    left = np.clip(right - 1, 0, len(grid) - 1)
    take_left = np.abs(frame_index - grid[left]) <= np.abs(grid[right] - frame_index)
    return np.where(take_left, left, right).astype(np.int64)


class TeacherCache:
    """Memory-mapped, read-only view of a teacher cache folder (safe to pickle into workers:
    the maps are reopened lazily in each process)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise StaleCacheError(f"teacher cache {self.path}: no {MANIFEST} (missing or "
                                  "unfinished cache; run the teacher cache stage)")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        if self.manifest.get("format") != CACHE_FORMAT or \
                self.manifest.get("version") != CACHE_VERSION:
            raise StaleCacheError(f"teacher cache {self.path}: unknown format/version")
        self.num_classes: int = int(self.manifest["num_classes"])
        self.feature_dim: int = int(self.manifest["feature_dim"])
        self.videos: dict[str, dict[str, Any]] = self.manifest["videos"]
        self._maps: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def video_ids(self) -> list[str]:
        """Every cached video id, sorted."""
        return sorted(self.videos)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}

    def _shard(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if name not in self._maps:
            rows = next(s["num_rows"] for s in self.manifest["shards"] if s["name"] == name)
            dtype = np.dtype(self.manifest["dtype"])
            self._maps[name] = (
                np.memmap(shard_file(self.path, name, "logits.bin"), dtype, "r",
                          shape=(rows, self.num_classes)),
                np.memmap(shard_file(self.path, name, "features.bin"), dtype, "r",
                          shape=(rows, self.feature_dim)),
                np.memmap(shard_file(self.path, name, "frames.bin"), np.int64, "r",
                          shape=(rows,)),
            )
        return self._maps[name]

    def _entry(self, video_id: str) -> dict[str, Any]:
        if video_id not in self.videos:
            raise StaleCacheError(f"teacher cache {self.path}: video {video_id!r} is not "
                                  "cached (cache built for another split/subset?)")
        return self.videos[video_id]

    def frames(self, video_id: str) -> np.ndarray:
        """(G,) int64 cached grid positions (frame indices) of ``video_id``."""
        entry = self._entry(video_id)
        start = entry["offset"]
        return np.asarray(self._shard(entry["shard"])[2][start:start + entry["count"]])

    def lookup(self, video_id: str, frame_index: np.ndarray | torch.Tensor | list[int]
               ) -> tuple[np.ndarray, np.ndarray]:
        """Teacher outputs at the grid positions nearest to ``frame_index`` (K,):
        ``(logits (K, C) float32, features (K, D) float32)``."""
        entry = self._entry(video_id)
        logits, features, frames = self._shard(entry["shard"])
        start = entry["offset"]
        grid = np.asarray(frames[start:start + entry["count"]])
        rows = start + snap(grid, np.asarray(frame_index, dtype=np.int64).reshape(-1))
        return logits[rows].astype(np.float32), features[rows].astype(np.float32)

    def check(self, expected: Mapping[str, Any]) -> None:
        """Raise :class:`StaleCacheError` naming the cache and the first mismatching key.

        Keys are manifest keys (``teacher_sha256``, ``num_classes``, ``feature_dim``,
        ``grid_stride``, ``dataset`` — a dict compared on the sub-keys given); ``video_ids`` (an
        iterable) must all be cached. An unknown key is a ``KeyError`` (a caller's typo).
        """
        unknown = sorted(set(expected) - set(self.manifest) - {"video_ids"})
        if unknown:
            raise KeyError(f"teacher cache {self.path}: {unknown} are not manifest keys; known: "
                           f"{sorted(self.manifest)} and video_ids")
        for key, want in expected.items():
            if key == "video_ids":
                missing = sorted(set(want) - set(self.videos))
                if missing:
                    raise StaleCacheError(
                        f"teacher cache {self.path} is stale: video_ids: {len(missing)} "
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


class TeacherTargets(Dataset):
    """Wrap a dataset of sample dicts, adding the teacher's ``teacher_logits`` (K, C) and
    ``teacher_features`` (K, D) float32 at ``sample["frame_index"]`` (K,) of
    ``sample["video_id"]``."""

    def __init__(self, dataset: Dataset, cache: TeacherCache) -> None:
        self.dataset = dataset
        self.cache = cache

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        logits, features = self.cache.lookup(sample["video_id"], sample["frame_index"])
        sample["teacher_logits"] = torch.from_numpy(logits)
        sample["teacher_features"] = torch.from_numpy(features)
        return sample
