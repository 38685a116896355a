"""The package's one video encoder: RGB frames -> MPEG-4 Part 2 (or another FFmpeg encoder)
with a pinned GOP and a fixed quantiser that takes effect.

FFmpeg's ``-q:v Q`` sets ``global_quality = Q * FF_QP2LAMBDA``; through PyAV the per-frame
lambda stays 0, so the encoder falls back to its quantiser range ``[qmin, qmax]``. Pinning
``qmin = qmax = qscale`` is what makes ``qscale`` real (checked: at 96x96 a textured clip is
several times smaller at qscale 10 than at 2). Used by the synthetic dataset, ``data_prep``'s
re-encoder, the benchmarks and the tests.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ip_tsn.atomic import atomic_path

FF_QP2LAMBDA = 118  # libavutil: lambda of one quantiser step
_FIXED_Q_CODECS = ("mpeg4", "mpeg2video", "mpeg1video", "msmpeg4", "msmpeg4v2", "h263", "h263p")


def configure_fixed_quantiser(cc: av.codec.context.CodecContext, qscale: int) -> None:
    """Pin an FFmpeg MPEG-family encoder to quantiser ``qscale`` (1 best .. 31)."""
    if not 1 <= int(qscale) <= 31:
        raise ValueError(f"qscale must be in 1..31, got {qscale}")
    cc.qscale = True
    cc.global_quality = int(qscale) * FF_QP2LAMBDA
    cc.qmin = cc.qmax = int(qscale)


def add_video_stream(container: av.container.OutputContainer, width: int, height: int, *,
                     codec: str = "mpeg4", fps: float | Fraction = 12, gop_size: int = 12,
                     max_b_frames: int = 0, qscale: int | None = 2, four_mv: bool = True,
                     options: dict[str, str] | None = None) -> av.video.stream.VideoStream:
    """An output video stream, yuv420p, GOP ``gop_size`` without scene-cut I-frames, fixed
    quantiser ``qscale`` for MPEG-family codecs (None: the encoder's rate control), 8x8 motion
    blocks (``four_mv``) for mpeg4. ``options`` are passed to the encoder as-is."""
    opts = {"sc_threshold": "1000000000"} if codec in _FIXED_Q_CODECS else {}
    if codec == "libx264":
        opts = {"x264-params": f"keyint={gop_size}:min-keyint={gop_size}:scenecut=0:bframes={max_b_frames}"}
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(65535),
                                  options={**opts, **(options or {})})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    cc = stream.codec_context
    cc.gop_size, cc.max_b_frames = gop_size, max_b_frames
    if codec in _FIXED_Q_CODECS and qscale is not None:
        configure_fixed_quantiser(cc, qscale)
    if four_mv and codec == "mpeg4":
        cc.flags |= av.codec.context.Flags.four_mv
    return stream


def encode_video(frames: np.ndarray, path: str | os.PathLike, *, codec: str = "mpeg4",
                 fps: float | Fraction = 12, gop_size: int = 12, max_b_frames: int = 0,
                 qscale: int | None = 2, four_mv: bool = True, container_format: str | None = None,
                 options: dict[str, str] | None = None, threads: int = 1) -> Path:
    """Encode (T, H, W, 3) uint8 RGB ``frames`` to ``path``, atomically (temporary name, then
    rename). ``container_format`` defaults to the one FFmpeg guesses from ``path``'s extension.
    Frame t gets pts t in time base 1/fps (display order). Returns ``path``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"{path}: expected (T, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
    _, height, width, _ = frames.shape
    if codec in ("mpeg4", "mpeg2video", "mpeg1video") and (height % 2 or width % 2):
        raise ValueError(f"{path}: frame size {width}x{height} (width x height) must be even for yuv420p")
    path = Path(path)
    fmt = container_format or {".mp4": "mp4", ".avi": "avi", ".mkv": "matroska", ".mov": "mov",
                               ".m4v": "mp4"}.get(path.suffix.lower())
    time_base = Fraction(1) / Fraction(fps).limit_denominator(65535)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format=fmt) as container:
            stream = add_video_stream(container, width, height, codec=codec, fps=fps, gop_size=gop_size,
                                      max_b_frames=max_b_frames, qscale=qscale, four_mv=four_mv,
                                      options=options)
            stream.codec_context.thread_count = threads
            for t, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts, frame.time_base = t, time_base
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return path
