"""The synthetic dataset: layout, real MPEG-4 encoding, determinism, resumability, motion sanity."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from ip_tsn.data.synthetic import (CLASSES, TINY_CONFIG, encode_video, generate_synthetic,
                                   render_video, video_rng)

TINY = dict(TINY_CONFIG, progress=False)
ONE_EACH = dict(TINY, videos_per_class={"train": 1})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic")
    return root, generate_synthetic(root, seed=0, **TINY)


def decode(path: Path) -> tuple[np.ndarray, str, str]:
    """(T, H, W, 3) uint8 RGB frames, frame types ("IPP..."), codec name."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        codec = stream.codec_context.name
    types = "".join(" IPB"[int(f.pict_type)] for f in frames)
    return np.stack([f.to_ndarray(format="rgb24") for f in frames]), types, codec


def mv_stats(path: Path) -> tuple[float, float]:
    """Mean camera-compensated motion_x of moving blocks, and mean divergence, over P-frames.

    FFmpeg's vectors point back to the source: pixel ``dst`` comes from ``dst + motion / scale``
    of the reference, so an object moving right has ``motion_x < 0`` and a zoom-in (expansion)
    has inward-pointing vectors, i.e. negative divergence ``mean(v . (p - centre))``.
    """
    relx, div = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            if side is None:
                continue
            m = side.to_ndarray()
            dx, dy = m["motion_x"] / m["motion_scale"], m["motion_y"] / m["motion_scale"]
            rx, ry = dx - np.median(dx), dy - np.median(dy)  # remove the camera jitter
            moving = np.hypot(rx, ry) >= 0.75
            if moving.any():
                relx.append(rx[moving].mean())
            x, y = m["dst_x"] - stream.width / 2, m["dst_y"] - stream.height / 2
            div.append(np.mean(dx * x + dy * y))
    return float(np.mean(relx)), float(np.mean(div))


def read_list(path: Path) -> list[tuple[str, int]]:
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]


def test_split_files_list_every_video_once(tiny):
    root, summary = tiny
    ind = [line.split() for line in (root / "splits" / "classInd.txt").read_text().splitlines()]
    assert ind == [[str(i + 1), name] for i, name in enumerate(CLASSES)]
    listed = []
    for split, n in TINY["videos_per_class"].items():
        rows = read_list(root / "splits" / f"{split}list01.txt")
        assert len(rows) == n * len(CLASSES) == summary["videos"][split]
        for rel, label in rows:
            name = rel.split("/")[0]
            assert label == CLASSES.index(name) + 1
            assert re.fullmatch(rf"{name}/v_{name}_{split}_\d{{3}}\.mp4", rel), rel
        listed += [rel for rel, _ in rows]
    files = [p for p in (root / "videos").rglob("*") if p.is_file()]
    on_disk = sorted(p.relative_to(root / "videos").as_posix() for p in files)
    assert sorted(listed) == on_disk  # each once, and no temporary files left behind
    assert summary["written"] == len(listed) and summary["skipped"] == 0


def test_videos_are_gop12_mpeg4(tiny, tmp_path):
    root, _ = tiny
    for path in sorted((root / "videos").rglob("*.mp4")):
        frames, types, codec = decode(path)
        assert codec == "mpeg4" and frames.shape == (24, 64, 64, 3), path
        assert types == "I" + "P" * 11 + "I" + "P" * 11, (path, types)
    encode_video(render_video("SpinCW", video_rng(0, "train", 5, 0), 36, (48, 80)), tmp_path / "v.mp4")
    frames, types, _ = decode(tmp_path / "v.mp4")
    assert frames.shape == (36, 48, 80, 3)
    assert [i for i, t in enumerate(types) if t == "I"] == [0, 12, 24] and set(types) == {"I", "P"}


def test_same_seed_same_frames_any_counts_or_workers(tiny, tmp_path):
    root, _ = tiny
    again = generate_synthetic(tmp_path / "a", seed=0, workers=2, **ONE_EACH)
    assert again["written"] == len(CLASSES)
    other = generate_synthetic(tmp_path / "b", seed=1, **ONE_EACH)
    assert other["written"] == len(CLASSES)
    for name in CLASSES:
        rel = f"{name}/v_{name}_train_000.mp4"
        first = decode(root / "videos" / rel)[0]
        np.testing.assert_array_equal(first, decode(tmp_path / "a" / "videos" / rel)[0])
        assert not np.array_equal(first, decode(tmp_path / "b" / "videos" / rel)[0]), name


def test_rerun_skips_existing_and_checks_settings(tiny, tmp_path):
    root, _ = tiny
    videos = sorted((root / "videos").rglob("*.mp4"))
    before = [p.stat().st_mtime_ns for p in videos]
    summary = generate_synthetic(root, seed=0, **TINY)
    assert summary["written"] == 0 and summary["skipped"] == len(videos)
    assert [p.stat().st_mtime_ns for p in videos] == before
    with pytest.raises(ValueError, match="overwrite"):
        generate_synthetic(root, seed=1, **TINY)
    with pytest.raises(ValueError, match="multiples of 16"):
        generate_synthetic(tmp_path, size=(60, 64), progress=False)
    # overwrite with fewer videos: re-encodes and drops the videos no split lists any more
    small = tmp_path / "small"
    generate_synthetic(small, seed=0, **dict(TINY, videos_per_class={"train": 2}))
    summary = generate_synthetic(small, seed=0, overwrite=True, **ONE_EACH)
    assert summary["written"] == len(CLASSES) == len(list((small / "videos").rglob("*.mp4")))


def test_motion_vectors_show_the_motion(tiny):
    """Right/left moves give opposite motion_x signs; zoom in/out opposite divergence signs."""
    root, _ = tiny
    for split in ("train", "val", "test"):
        idx = 0 if split != "train" else 1
        stats = {c: mv_stats(root / "videos" / c / f"v_{c}_{split}_{idx:03d}.mp4") for c in CLASSES}
        for shape in ("Disc", "Square"):
            assert stats[f"{shape}Right"][0] < -0.5 < 0.5 < stats[f"{shape}Left"][0], (split, stats)
        assert stats["ZoomIn"][1] < 0 < stats["ZoomOut"][1], (split, stats)
