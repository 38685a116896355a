"""The synthetic dataset: layout, real MPEG-4 encoding, determinism, resumability, motion sanity."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from ip_tsn.codec.flow import save_flow
from ip_tsn.data.synthetic import TINY_CONFIG, encode_video, generate_synthetic, groups, video_rng
from ip_tsn.data.synthetic_render import CLASSES, SCENES, arms_clockwise, class_parts, render_video

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
    for folder in ("videos", "source"):  # the compressed copy and the flow's source, each once
        files = [p for p in (root / folder).rglob("*") if p.is_file()]
        on_disk = sorted(p.relative_to(root / folder).as_posix() for p in files)
        assert sorted(listed) == on_disk  # each once, and no temporary files left behind
    assert summary["written"] == len(listed) and summary["skipped"] == 0


def test_videos_are_gop12_mpeg4(tiny, tmp_path):
    root, _ = tiny
    for path in sorted((root / "videos").rglob("*.mp4")):
        frames, types, codec = decode(path)
        assert codec == "mpeg4" and frames.shape == (24, 64, 64, 3), path
        assert types == "I" + "P" * 11 + "I" + "P" * 11, (path, types)
    encode_video(render_video("CourtJump", video_rng(0, "train", 10, 0), 48, (48, 80)), tmp_path / "v.mp4")
    frames, types, _ = decode(tmp_path / "v.mp4")
    assert frames.shape == (48, 48, 80, 3)
    assert [i for i, t in enumerate(types) if t == "I"] == [0, 12, 24, 36] and set(types) == {"I", "P"}


def test_quantiser_takes_effect(tmp_path):
    """The dataset's fixed quantiser is real: a coarser one gives smaller, lossier files."""
    frames = render_video("PoolWalkRight", video_rng(0, "train", 0, 0), 24, (64, 64))
    sizes, errors = [], []
    for q in (2, 10, 24):
        encode_video(frames, tmp_path / f"q{q}.mp4", qscale=q)
        sizes.append((tmp_path / f"q{q}.mp4").stat().st_size)
        errors.append(np.abs(decode(tmp_path / f"q{q}.mp4")[0].astype(float) - frames).mean())
    assert sizes[0] > 1.5 * sizes[1] > 1.5 * sizes[2], sizes
    assert errors[0] < errors[1] < errors[2], errors


def test_class_design_and_groups(tiny):
    """3 scenes x 4 body motions; each motion's arm sense differs between scenes (so flow tells
    some scenes apart) but no motion's sense is the same in all three nor unique to each."""
    root, summary = tiny
    assert len(CLASSES) == 12 and summary["groups"] == groups()
    meta = json.loads((root / "synthetic.json").read_text())
    assert meta["groups"] == {c: class_parts(c)[0] for c in CLASSES} and meta["qscale"] == 10 and meta["source_qscale"] == 2
    for motion in ("WalkRight", "WalkLeft", "Jump", "Stand"):
        senses = [arms_clockwise(s + motion) for s in SCENES]
        assert sum(senses) == 1, motion  # one scene clockwise, two counter-clockwise


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


def test_an_unreadable_settings_record_is_one_line_or_regenerated(tiny, tmp_path):
    """A ``synthetic.json`` that is not JSON: one line and exit 2 from make_synthetic.py (json's
    traceback until 2026-12-08); with --overwrite the dataset is made again and the record rewritten."""
    root = tmp_path / "synthetic"
    shutil.copytree(tiny[0], root)
    (root / "synthetic.json").write_text('{"version": ')
    script = Path(__file__).resolve().parents[1] / "data_prep" / "make_synthetic.py"
    proc = subprocess.run([sys.executable, str(script), "--root", str(root), "--tiny", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"make_synthetic.py: error: {root / 'synthetic.json'}: not JSON (Expecting value: line 1 column 13 (char 12)); "
        "it should hold the settings the synthetic dataset was made with; pass --overwrite (overwrite=True) to "
        "regenerate the dataset"]
    summary = generate_synthetic(root, seed=0, overwrite=True, **TINY)
    assert summary["written"] == len(list((root / "videos").rglob("*.mp4"))) > 0
    assert json.loads((root / "synthetic.json").read_text()) == json.loads((tiny[0] / "synthetic.json").read_text())


def test_rerun_skips_existing_and_checks_settings(tiny, tmp_path):
    root, _ = tiny
    videos = sorted((root / "videos").rglob("*.mp4"))
    before = [p.stat().st_mtime_ns for p in videos]
    summary = generate_synthetic(root, seed=0, **TINY)
    assert summary["written"] == 0 and summary["skipped"] == len(videos)
    assert [p.stat().st_mtime_ns for p in videos] == before
    with pytest.raises(ValueError, match=r"holds a synthetic dataset made with other settings \(seed: 0 there, 1 "
                                         r"asked; \S*synthetic.json\); pass --overwrite"):
        generate_synthetic(root, seed=1, **TINY)
    script = Path(__file__).resolve().parents[1] / "data_prep" / "make_synthetic.py"
    proc = subprocess.run([sys.executable, str(script), "--root", str(root), "--tiny", "--seed", "1", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"make_synthetic.py: error: {root}: holds a synthetic dataset made with other settings (seed: 0 there, 1 "
        f"asked; {root / 'synthetic.json'}); pass --overwrite (overwrite=True) to regenerate it, or another root"]
    with pytest.raises(ValueError, match="multiples of 16"):
        generate_synthetic(tmp_path, size=(60, 64), progress=False)
    with pytest.raises(ValueError, match=r"^version 7 needs num_frames >= 14 \(its action fills 12 frames between idle "
                                         r"ones\), got 13$"):  # the action shrank until 2026-12-08, to none at 2
        generate_synthetic(tmp_path / "few", num_frames=13, version=7, progress=False)
    assert not (tmp_path / "few").exists()
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match=r"root=\S*afile/x: \S*afile is a file, not a folder"):
        generate_synthetic(tmp_path / "afile" / "x", progress=False)
    # overwrite with fewer videos: re-encodes and drops the videos no split lists any more
    # and the flow of the dropped videos; with other settings, all the flow (data_prep would keep it as done)
    small = tmp_path / "small"
    generate_synthetic(small, seed=0, **dict(TINY, videos_per_class={"train": 2}))
    flows = [small / "flow" / rel.relative_to(small / "videos").with_suffix(".npy")
             for rel in sorted((small / "videos").rglob("*.mp4"))]
    for flow in flows:  # as extract_flow.py writes them
        flow.parent.mkdir(parents=True, exist_ok=True)
        save_flow(flow, np.zeros((1, 4, 4, 2), np.uint8))
    summary = generate_synthetic(small, seed=0, overwrite=True, **ONE_EACH)
    assert summary["written"] == len(CLASSES) == len(list((small / "videos").rglob("*.mp4")))
    kept = sorted(p.name for p in (small / "flow").rglob("*.npy"))
    assert summary["flow_removed"] == len(CLASSES) and kept == sorted(p.name for p in flows if "_000" in p.name)
    summary = generate_synthetic(small, seed=1, overwrite=True, **ONE_EACH)
    assert summary["flow_removed"] == len(CLASSES) and not (small / "flow").exists()


def test_motion_vectors_show_the_body_motion(tmp_path):
    """Walking right / left gives opposite camera-compensated motion_x on the moving blocks."""
    for scene in SCENES:
        stats = {}
        for motion in ("WalkRight", "WalkLeft"):
            name = scene + motion
            encode_video(render_video(name, video_rng(0, "test", CLASSES.index(name), 0), 48, (64, 64)),
                         tmp_path / f"{name}.mp4")
            stats[motion] = mv_stats(tmp_path / f"{name}.mp4")[0]
        assert stats["WalkRight"] < -0.05 < 0.05 < stats["WalkLeft"], (scene, stats)  # body ~0.6 px/frame


def test_jumps_land_on_every_i_frame():
    """A jump's I-frames show the actor on the ground (the I-stream cannot tell jump from stand),
    while between I-frames it is 6-9 px up at the highest."""
    from ip_tsn.data.synthetic_render import GOP_SIZE, _trajectory

    t = np.arange(48, dtype=np.float64)
    for index in range(6):
        rng = video_rng(0, "train", 2, index)
        y = _trajectory("Jump", rng, t, 64, 64, 1.0)[:, 1]
        ground = y[0]
        assert np.allclose(y[::GOP_SIZE], ground, atol=1e-9)
        assert 6 - 1e-6 <= (ground - y).max() <= 9 + 1e-6
