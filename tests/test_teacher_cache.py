"""Teacher cache: written by a real ``trainer.predict`` with the writer, read back mmapped;
every view of every cached position, exact lookups, broken and stale caches refused by name."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from tiny_data import GridDataset, SignDataset
from torch.utils.data import DataLoader

from ip_tsn.atomic import sha256_file
from ip_tsn.data.cache_size import cache_bytes
from ip_tsn.data.teacher_cache import StaleCacheError, TeacherCache
from ip_tsn.data.teacher_targets import TeacherTargets
from ip_tsn.lit import StreamClassifier, TeacherCacheWriter

LENGTHS = [4, 5, 6]
DATASET = {"name": "synthetic", "root": "/data/syn", "split": "train", "subset": None}


def teacher() -> StreamClassifier:
    torch.manual_seed(0)
    return StreamClassifier(num_classes=3, in_channels=2, net={"arch": "resnet18", "pretrained": False},
                            predict_mode="frames", frames_chunk=4)


def build_cache(tmp_path: Path, module: StreamClassifier, grid: GridDataset, dtype: str,
                loader: dict | None = None, features: bool = True, resume: bool = False, chunk_videos: int = 64,
                callbacks: list | None = None, **trainer_kwargs) -> Path:
    ckpt = tmp_path / "teacher.pt"
    if not ckpt.is_file():
        torch.save(module.state_dict(), ckpt)
    writer = TeacherCacheWriter(tmp_path / "cache", teacher_checkpoint=ckpt, dataset=DATASET,
                                grid_stride=grid.stride, views={"num_views": grid.views, "num_ids": grid.views},
                                flow_length=5, config={"L": 5}, dtype=dtype, features=features, resume=resume,
                                chunk_videos=chunk_videos)
    opts = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                enable_model_summary=False, callbacks=[writer, *(callbacks or [])], default_root_dir=tmp_path)
    opts.update(trainer_kwargs)
    pl.Trainer(**opts).predict(module, DataLoader(grid, **(loader or {"batch_size": 1})), return_predictions=False)
    return tmp_path / "cache"


def only_shard(path: Path) -> str:
    """The name of the one shard a single-process cache at ``path`` has (``shard-<session>-0-0``)."""
    names = sorted(p.name[: -len(".index.json")] for p in path.glob("shard-*.index.json"))
    assert len(names) == 1 and names[0].startswith("shard-") and names[0].endswith("-0-0"), names
    return names[0]


def shard_rank(path: Path, name: str) -> int:
    return json.loads((path / f"{name}.index.json").read_text())["rank"]


def reference(module: StreamClassifier, grid: GridDataset, v: int):
    module.eval()
    with torch.no_grad():
        parts = [module.model.forward_frames(x) for x in grid.videos[v].split(4)]
    return torch.cat([p[0] for p in parts]).numpy(), torch.cat([p[1] for p in parts]).numpy()


def test_cache_roundtrip_every_view_exact(tmp_path: Path) -> None:
    module, grid = teacher(), GridDataset(LENGTHS, stride=3, views=2)
    cache = TeacherCache(build_cache(tmp_path, module, grid, "float32"))
    cache.verify()
    assert cache.video_ids == ["video_000", "video_001", "video_002"]
    assert (cache.num_classes, cache.feature_dim, cache.num_views) == (3, 512, 2)
    assert cache.manifest["teacher_sha256"] == sha256_file(tmp_path / "teacher.pt")
    assert cache.manifest["dataset"] == DATASET and cache.manifest["grid_stride"] == 3
    assert cache_bytes(cache.manifest) == sum(LENGTHS) * 2 * (3 * 4 + 512 * 4 + 8)
    for v, n in enumerate(LENGTHS):
        logits, feats = reference(module, grid, v)  # rows g * 2 + view
        assert cache.frames(f"video_{v:03d}").tolist() == list(range(0, 3 * n, 3))
        for view in (0, 1):
            got_l, got_f = cache.lookup(f"video_{v:03d}", np.arange(n) * 3, view)
            np.testing.assert_array_equal(got_l, logits[view::2])
            np.testing.assert_array_equal(got_f, feats[view::2])
    logits, _ = reference(module, grid, 1)
    got_l, _ = cache.lookup("video_001", torch.tensor([12, 0, 6]), 1)
    np.testing.assert_array_equal(got_l, logits[[9, 1, 5]])
    with pytest.raises(StaleCacheError, match=r"video_001 has no output at frames \[7\]"):
        cache.lookup("video_001", [6, 7])  # not a cached position: never a nearby one
    with pytest.raises(StaleCacheError, match="view 2"):
        cache.lookup("video_001", [6], 2)
    clone = pickle.loads(pickle.dumps(cache))  # DataLoader workers: maps reopen lazily
    np.testing.assert_array_equal(clone.lookup("video_001", [6], 1)[0], logits[[5]])


def test_float16_logits_only_cache_and_targets_wrapper(tmp_path: Path) -> None:
    module, grid = teacher(), GridDataset(LENGTHS, stride=3)
    cache = TeacherCache(build_cache(tmp_path, module, grid, "float16", features=False))
    assert cache.manifest["dtype"] == "float16" and cache.feature_dim == 0
    name = only_shard(tmp_path / "cache")
    assert not (tmp_path / "cache" / f"{name}.features.bin").exists()
    assert (tmp_path / "cache" / f"{name}.logits.bin").stat().st_size == sum(LENGTHS) * 3 * 2
    logits, _ = reference(module, grid, 2)
    np.testing.assert_allclose(cache.lookup("video_002", [0, 15])[0], logits[[0, 5]], rtol=2e-3, atol=1e-4)
    targets = TeacherTargets(SignDataset(3, k=2), cache)  # ids video_000.., frames 0 and 3
    sample = targets[2]
    assert len(targets) == 3 and sample["teacher_logits"].shape == (2, 3)
    assert sample["teacher_features"].shape == (2, 0) and sample["teacher_logits"].dtype == torch.float32
    batch = next(iter(DataLoader(targets, batch_size=3)))
    assert batch["teacher_logits"].shape == (3, 2, 3)


def test_stale_cache_errors(tmp_path: Path) -> None:
    module, grid = teacher(), GridDataset(LENGTHS, stride=3)
    path = build_cache(tmp_path, module, grid, "float16")
    cache = TeacherCache(path)
    cache.check({"teacher_sha256": sha256_file(tmp_path / "teacher.pt"), "num_classes": 3,
                 "dataset": {"name": "synthetic", "split": "train"}, "video_ids": ["video_000", "video_002"],
                 "views": {"num_views": 1}, "flow_length": 5, "grid_stride": 3})
    with pytest.raises(StaleCacheError, match=f"{path}.*teacher_sha256"):
        cache.check({"teacher_sha256": "0" * 64})
    with pytest.raises(StaleCacheError, match=f"{path}.*video_ids.*video_009"):
        cache.check({"video_ids": ["video_000", "video_009"]})
    with pytest.raises(StaleCacheError, match=r"views\.num_views is 1, expected 5"):
        cache.check({"views": {"num_views": 5}})
    with pytest.raises(KeyError, match="teacher_hash"):
        cache.check({"teacher_hash": "0" * 64})
    with pytest.raises(StaleCacheError, match=r"dataset\.split"):
        cache.check({"dataset": {"split": "val"}})
    with pytest.raises(StaleCacheError, match="video_007"):
        cache.lookup("video_007", [0])
    assert isinstance(StaleCacheError("x"), ValueError)
    (path / "manifest.json").unlink()
    with pytest.raises(StaleCacheError, match=str(path)):
        TeacherCache(path)


@pytest.mark.parametrize("damage", ["truncated", "deleted", "empty_manifest", "list_manifest", "feature_dim", "num_rows",
                                    "flipped"])
def test_broken_cache_is_refused_by_name(tmp_path: Path, damage: str) -> None:
    """Issue 11: a broken cache never trains silently wrong or crashes deep; one error names it."""
    path = build_cache(tmp_path, teacher(), GridDataset(LENGTHS, stride=3), "float16")
    name = only_shard(path)
    logits, manifest = path / f"{name}.logits.bin", path / "manifest.json"
    meta = json.loads(manifest.read_text())
    if damage == "truncated":
        logits.write_bytes(logits.read_bytes()[:-6])
    elif damage == "deleted":
        (path / f"{name}.features.bin").unlink()
    elif damage == "empty_manifest":
        manifest.write_text("")
    elif damage == "list_manifest":  # JSON, not an object: an AttributeError traceback until 2026-12-08
        manifest.write_text("[1, 2]")
    elif damage == "feature_dim":  # the student would read misaligned features
        meta["feature_dim"] -= 1
        manifest.write_text(json.dumps(meta))
    elif damage == "num_rows":
        meta["shards"][0]["num_rows"] += 1
        manifest.write_text(json.dumps(meta))
    else:  # same size, other bytes: only the checksum sees it
        data = bytearray(logits.read_bytes())
        data[0] ^= 0xFF
        logits.write_bytes(bytes(data))
    with pytest.raises(StaleCacheError, match=str(path)) as err:
        TeacherCache(path).verify()
    assert "rebuild" in str(err.value) and "\n" not in str(err.value)


def test_duplicate_videos_are_deduplicated(tmp_path: Path) -> None:
    module = teacher()
    grid = GridDataset(LENGTHS, stride=2, order=[0, 1, 2, 0, 2])  # padding-like repeats
    lists = {"batch_size": 2, "collate_fn": list}  # variable G: batches kept as lists of items
    cache = TeacherCache(build_cache(tmp_path, module, grid, "float32", loader=lists))
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["num_videos"] == 3
    assert {v: e["count"] for v, e in manifest["videos"].items()} == {"video_000": 4, "video_001": 5, "video_002": 6}
    assert [(s["name"], s["num_rows"]) for s in manifest["shards"]] == [(only_shard(tmp_path / "cache"), sum(LENGTHS))]
    np.testing.assert_array_equal(cache.lookup("video_000", [0, 2, 4, 6])[0], reference(module, grid, 0)[0])


def test_ddp_two_processes_cache_every_video_once(tmp_path: Path) -> None:
    module, grid = teacher(), GridDataset([3, 4, 2, 5, 3], stride=2)
    path = build_cache(tmp_path, module, grid, "float32", strategy="ddp_spawn", devices=2)
    manifest = json.loads((path / "manifest.json").read_text())
    assert sorted(shard_rank(path, s["name"]) for s in manifest["shards"]) == [0, 1]  # one shard per process
    assert all(s["num_rows"] > 0 for s in manifest["shards"])
    assert sorted(manifest["videos"]) == [f"video_{v:03d}" for v in range(5)]
    assert sum(e["count"] for e in manifest["videos"].values()) == 17
    cache = TeacherCache(path)
    cache.verify()
    for v, n in enumerate([3, 4, 2, 5, 3]):
        logits, feats = reference(module, grid, v)
        got_l, got_f = cache.lookup(f"video_{v:03d}", np.arange(n) * 2)
        np.testing.assert_allclose(got_l, logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_f, feats, rtol=1e-5, atol=1e-6)

    # the same folder rebuilt by one process, logits only: the second rank's shard and the features
    # of the first run go (they stayed, and the manifest listed the stale features.bin, until 2026-12-07)
    build_cache(tmp_path, module, grid, "float32", features=False)
    name = only_shard(path)
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", f"{name}.frames.bin", f"{name}.index.json",
                                                       f"{name}.logits.bin"]
    again = TeacherCache(path)
    again.verify()
    assert again.feature_dim == 0 and [s["name"] for s in again.manifest["shards"]] == [name]
    assert set(again.manifest["shards"][0]["sha256"]) == {"logits.bin", "frames.bin"}


def test_a_killed_cache_run_is_resumed_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """A cache run killed mid-way (a SLURM time limit): its finished shards (one every
    ``chunk_videos`` videos) are kept by the next run with the same key, the temporaries it left
    (as large as the cache, hidden) are removed, and the cache equals the teacher's outputs. Until
    2026-12-07 the next run computed every video again and the temporaries stayed at every kill.
    A checkpoint's next save removes the temporary a kill mid-save left."""
    import signal
    import subprocess
    import sys

    from ip_tsn.lit.callbacks import AtomicCheckpointIO

    tests = Path(__file__).parent
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(tests)!r})\n"
        "import pytorch_lightning as pl\n"
        "from pathlib import Path\n"
        "from test_teacher_cache import LENGTHS, build_cache, teacher\n"
        "from tiny_data import GridDataset\n"
        "class Kill(pl.Callback):\n"
        "    def on_predict_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):\n"
        "        if batch_idx == 2:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        f"build_cache(Path({str(tmp_path)!r}), teacher(), GridDataset(LENGTHS * 2, stride=3), 'float32',\n"
        "            chunk_videos=2, resume=True, callbacks=[Kill()])\n")], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    cache_dir = tmp_path / "cache"
    kept = sorted(p.name[: -len(".index.json")] for p in cache_dir.glob("shard-*.index.json"))
    assert len(kept) == 1 and not (cache_dir / "manifest.json").exists()  # videos 1-2 finished, the 3rd not
    assert [p.name for p in cache_dir.iterdir() if ".tmp-" in p.name]  # the shard being written

    module, grid = teacher(), GridDataset(LENGTHS * 2, stride=3)
    cache = TeacherCache(build_cache(tmp_path, module, grid, "float32", chunk_videos=2, resume=True))
    cache.verify()
    assert {s["name"] for s in cache.manifest["shards"]} >= set(kept)  # the killed run's shards, kept
    named = {f"{s['name']}.{part}" for s in cache.manifest["shards"] for part in ("index.json", *s["sha256"])}
    assert {p.name for p in cache_dir.iterdir()} == named | {"manifest.json"}  # no temporaries, nothing else
    assert cache.video_ids == [f"video_{v:03d}" for v in range(6)]
    for v in range(6):
        logits, feats = reference(module, grid, v)
        got_l, got_f = cache.lookup(f"video_{v:03d}", np.arange(len(logits)) * 3)
        np.testing.assert_allclose(got_l, logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_f, feats, rtol=1e-5, atol=1e-6)

    ckpt = tmp_path / "last.ckpt"
    stale = tmp_path / ".last.ckpt.tmp-4194304"  # what a kill mid-save of another process leaves
    stale.write_bytes(b"\0" * 1000)
    AtomicCheckpointIO().save_checkpoint({"epoch": 1}, ckpt)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1 and not stale.exists()


@pytest.mark.parametrize("part,videos", [({"limit_predict_batches": 2}, 2), ({"fast_dev_run": True}, 1)])
def test_a_pass_over_part_of_the_videos_writes_no_manifest(tmp_path: Path, part: dict, videos: int) -> None:
    """A pass over part of the videos (``trainer.limit_predict_batches``, or ``fast_dev_run``: a
    smoke test) keeps their shard and writes no manifest, since a cache holds every video (until
    2026-12-07 ``ip-tsn cache trainer.fast_dev_run=true`` wrote a finished cache of one video); the
    next whole run resumes from that shard and finishes the cache."""
    module, grid = teacher(), GridDataset(LENGTHS, stride=2)
    cache_dir = build_cache(tmp_path, module, grid, "float32", resume=True, **part)
    assert not (cache_dir / "manifest.json").exists()
    index = json.loads((cache_dir / f"{only_shard(cache_dir)}.index.json").read_text())
    assert len(index["videos"]) == videos
    cache = TeacherCache(build_cache(tmp_path, module, grid, "float32", resume=True))
    cache.verify()
    assert cache.video_ids == [f"video_{v:03d}" for v in range(3)] and len(cache.manifest["shards"]) == 2

