"""The frame index of a video, built by demuxing packets (no decoding), once per file.

The index holds, in display order, each frame's timestamp and picture type, the I-frames that start
GOPs and the keyframes that decoding can start from. Display order is packet order sorted by
presentation timestamp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Optional

import av
import numpy as np

from .bitstream import picture_info_parser
from .errors import VideoError

IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "gif")
# FFmpeg decoders that export motion vectors with flags2=+export_mvs (FFmpeg's mpegutils / h264).
MV_CODECS = ("h264", "mpeg4", "mpeg1video", "mpeg2video", "h263", "h263p", "msmpeg4v2", "msmpeg4v3")


@dataclass(frozen=True)
class VideoIndex:
    """Frame index of one video stream. Arrays are in display order, length ``num_frames``."""

    path: str
    codec: str
    width: int
    height: int
    fps: float
    pts: np.ndarray  # (N,) int64 presentation timestamps in stream time base
    keyframe: np.ndarray  # (N,) bool: decoding can start here (container sync sample)
    frame_types: str  # "I" / "P" / "B" per frame
    reference: np.ndarray  # (N,) bool: a reference picture (an anchor other frames predict from)
    truncated: bool  # demuxing stopped on an error: the index holds the packets read before it
    timestamps: bool  # packets carry timestamps (else frames are numbered in decode order)

    @property
    def num_frames(self) -> int:
        return len(self.frame_types)

    @cached_property
    def display_of_pts(self) -> dict[int, int]:
        """Display index of each presentation timestamp."""
        return {int(p): j for j, p in enumerate(self.pts)}

    @property
    def gop_starts(self) -> list[int]:
        """Display indices of the I-frames (each starts a GOP)."""
        return [i for i, t in enumerate(self.frame_types) if t == "I"]

    @property
    def supports_motion(self) -> bool:
        return self.codec in MV_CODECS

    def anchor_before(self, i: int) -> Optional[int]:
        """Display index of the nearest reference picture before frame ``i``, or None."""
        before = np.flatnonzero(self.reference[:i])
        return int(before[-1]) if len(before) else None

    def reference_of(self, i: int) -> Optional[int]:
        """The frame that frame ``i``'s motion and residual are defined against, or None for I.

        A P-frame: the previous I- or P-frame. A B-frame: the nearest reference picture before it
        (which may be a reference B-frame of an H.264 B-pyramid).
        """
        kind = self.frame_types[i]
        if kind == "I":
            return None
        if kind == "B":
            return self.anchor_before(i)
        return max(self.frame_types.rfind("I", 0, i), self.frame_types.rfind("P", 0, i))

    def anchor_after(self, i: int) -> Optional[int]:
        """Display index of the nearest reference picture after frame ``i``, or None."""
        after = np.flatnonzero(self.reference[i + 1 :])
        return int(after[0]) + i + 1 if len(after) else None


def _open(path: str) -> av.container.InputContainer:
    if not os.path.exists(path):
        raise VideoError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        return av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(path, f"not a readable video (corrupt or truncated): {e}") from None


def open_video_stream(path: str) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` and return its container and first video stream, or raise VideoError."""
    container = _open(path)
    if container.format.name in IMAGE_FORMATS or container.format.name.endswith("_pipe"):
        container.close()
        raise VideoError(path, f"an image ({container.format.name}), not a video")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no"]
        container.close()
        raise VideoError(path, f"no video stream (has {', '.join(kinds)} streams only)")
    return container, container.streams.video[0]


def _fallback_types(decode_pts: list[int], keyframes: list[bool]) -> list[str]:
    """I for keyframes; B for a frame shown before a frame decoded earlier; else P."""
    types, shown_max = [], None
    for pts, key in zip(decode_pts, keyframes):
        if key:
            types.append("I")
        elif shown_max is not None and pts < shown_max:
            types.append("B")
        else:
            types.append("P")
        shown_max = pts if shown_max is None else max(shown_max, pts)
    return types


def build_index(path: str) -> VideoIndex:
    """Demux every packet of the first video stream of ``path`` into a :class:`VideoIndex`."""
    container, stream = open_video_stream(path)
    codec = stream.codec_context.name
    parse = picture_info_parser(codec, stream.codec_context.extradata)
    pts, keys, infos, truncated, timestamps = [], [], [], False, True
    try:
        with container:
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    t = packet.pts if packet.pts is not None else packet.dts
                    timestamps = timestamps and t is not None
                    pts.append(len(pts) if t is None else int(t))
                    keys.append(bool(packet.is_keyframe))
                    infos.append(parse(bytes(packet)) if parse else (None, None))
            except av.FFmpegError:
                truncated = True
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
    except av.FFmpegError as e:
        raise VideoError(path, f"could not be read: {e}") from None
    if not pts:
        raise VideoError(path, "no video frames (empty or corrupt stream)")
    fallback = _fallback_types(pts, keys)
    types = [t or f for (t, _), f in zip(infos, fallback)]
    refs = [t != "B" if r is None else r for (_, r), t in zip(infos, types)]
    if not timestamps:
        pts = list(range(len(pts)))
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    if len(set(pts)) != len(pts):
        raise VideoError(path, "duplicate frame timestamps: cannot tell the display order")
    if not keys[order[0]]:
        truncated = True  # leading frames without a key frame cannot be decoded: drop them
        first = next((j for j, i in enumerate(order) if keys[i]), None)
        if first is None:
            raise VideoError(path, "no key frame: the video cannot be decoded")
        order = order[first:]
    return VideoIndex(
        path=path,
        codec=codec,
        width=int(width),
        height=int(height),
        fps=float(rate),
        pts=np.asarray(pts, dtype=np.int64)[order],
        keyframe=np.asarray(keys, dtype=bool)[order],
        frame_types="".join(types[i] for i in order),
        reference=np.asarray(refs, dtype=bool)[order] | (np.asarray([types[i] for i in order]) == "I"),
        truncated=truncated,
        timestamps=timestamps,
    )


_CACHE: dict[tuple[str, int, int], VideoIndex] = {}


def clear_index_cache() -> None:
    """Forget every memoised :func:`get_index` result of this process (e.g. to time a cold open)."""
    _CACHE.clear()


def get_index(path: str) -> VideoIndex:
    """:func:`build_index`, memoised per process on (path, size, mtime)."""
    try:
        st = os.stat(path)
    except OSError:
        raise VideoError(path, "file not found") from None
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = build_index(path)
    return _CACHE[key]
