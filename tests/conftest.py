"""Shared test helpers. Each helper's section says whose it is; add yours, keep the others."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from videos import encode, moving_frames


# -- data tests: real tiny videos encoded with PyAV ------------------------------------------------
def encode_moving_video(path: str | os.PathLike, num_frames: int = 30, height: int = 48, width: int = 64,
                        codec: str = "mpeg4", gop: int = 12, fps: int = 25, seed: int = 0) -> Path:
    """Encode :func:`videos.moving_frames` (moving by (2, 1) px a frame) to ``path`` with PyAV:
    ``mpeg4`` (fixed quantiser) or ``h264`` (libx264), GOP ``gop``, no B-frames, yuv420p. Returns
    the path."""
    frames = moving_frames(num_frames, height, width, dx=2, dy=1, seed=seed)
    encode(Path(path), frames, "libx264" if codec == "h264" else codec, gop=gop, bframes=0, fps=fps)
    return path


@pytest.fixture(scope="session")
def tiny_video_bytes(tmp_path_factory) -> Callable[[str], bytes]:
    """``get(codec)`` -> bytes of one 30-frame 48x64 moving-pattern video (``mpeg4`` or ``h264``),
    encoded once per session: copy it wherever a tree of real videos is needed."""
    cache: dict[str, bytes] = {}
    folder = tmp_path_factory.mktemp("tiny_videos")

    def get(codec: str = "mpeg4") -> bytes:
        if codec not in cache:
            cache[codec] = encode_moving_video(folder / f"v_{codec}.mp4", codec=codec).read_bytes()
        return cache[codec]
    return get


# -- evaluation protocol / predict / export tests: tiny trained I- and P-streams -----------------
@pytest.fixture(scope="session")
def tiny_streams(tmp_path_factory) -> dict:
    """A tiny synthetic dataset with a second split (split 2: val and test lists swapped) and an
    I-stream and a P-stream trained 1 epoch on split 1 through the CLI. Returns ``{"root",
    "runs" (run_root of split 1), "common" (overrides), "istream", "pstream" (best.ckpt paths)}``;
    ``run_root`` follows ``data.split`` (``<base>/runs/split<k>``)."""
    from ip_tsn.cli import main
    from ip_tsn.data.synthetic import TINY_CONFIG, generate_synthetic

    base = tmp_path_factory.mktemp("streams")
    data = base / "synthetic"
    generate_synthetic(data, **TINY_CONFIG, progress=False)
    lists = data / "splits"
    for mine, theirs in (("train", "train"), ("val", "test"), ("test", "val")):
        (lists / f"{mine}list02.txt").write_text((lists / f"{theirs}list01.txt").read_text())
    common = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger.wandb=false",
              "data.num_workers=0", "data.crop_size=32", "data.test_segments=3", "data.batch_size=8",
              "trainer.limit_train_batches=2", f"data.root={data}",
              f"run_root={base}/runs/split${{data.split}}"]
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    for stage in ("istream", "pstream"):
        assert main(["fit", str(experiments / f"{stage}.yaml"), *common]) == 0
    runs = base / "runs" / "split1"
    return {"root": data, "runs": runs, "common": common, "base": base,
            "istream": runs / "istream/checkpoints/best.ckpt", "pstream": runs / "pstream/checkpoints/best.ckpt"}
