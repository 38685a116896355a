"""Opening a video file: its first video stream, or one clear :class:`VideoError` (missing, empty,
a directory, an image, audio only, unreadable); how many frames its header lists; and the key the
per-process memos of a file use."""

from __future__ import annotations

import os
import re

import av

from .errors import VideoError, ffmpeg_reason

IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "gif")


def _open(path: str) -> av.container.InputContainer:
    if os.path.isdir(path):
        raise VideoError(path, "is a directory, not a video file")
    if not os.path.exists(path):
        raise VideoError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        return av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(path, f"not a readable video (corrupt or truncated): {ffmpeg_reason(e)}") from None
    except OSError as e:
        raise VideoError(path, f"cannot be opened: {e.strerror or e}") from None


def open_video_stream(path: str) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` and return its container and video stream, or raise VideoError.

    The video stream is the one FFmpeg's players pick (``av_find_best_stream``: most frames,
    then bit rate) among those that are not a still cover picture (``attached_pic``): a
    thumbnail track stored before the video is not read as the video."""
    container = _open(path)
    if container.format.name in IMAGE_FORMATS or container.format.name.endswith("_pipe"):
        container.close()
        raise VideoError(path, f"an image ({container.format.name}), not a video")
    moving = [s for s in container.streams.video if not _is_cover(s)]
    if not moving:
        kinds = sorted({s.type for s in container.streams}) or ["no"]
        cover = " and a cover picture" if container.streams.video else ""
        container.close()
        raise VideoError(path, f"no video stream (has {', '.join(k for k in kinds if not cover or k != 'video') or 'no'} "
                               f"streams{cover} only)")
    best = container.streams.best("video") if hasattr(container.streams, "best") else None
    return container, best if best in moving else moving[0]


ATTACHED_PIC = 0x0400  # FFmpeg's AV_DISPOSITION_ATTACHED_PIC: a still picture (cover art), not a video


def _is_cover(stream: av.stream.Stream) -> bool:
    disposition = getattr(stream, "disposition", 0)  # an int, or an enum flag in newer PyAV
    return bool(int(getattr(disposition, "value", disposition)) & ATTACHED_PIC)


def file_key(path: str) -> tuple[str, int, int]:
    """(absolute path, size, mtime): what the per-process memos of a file are keyed on."""
    try:
        st = os.stat(path)
    except OSError:
        raise VideoError(path, "file not found") from None
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


def declared_length(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[int, float]:
    """``(frames, seconds)`` the header lists for ``stream`` (0: it does not say). An mp4/mov sample
    table or an AVI counts the frames. Matroska/WebM counts none: mkvmerge tags the track's
    ``NUMBER_OF_FRAMES``, FFmpeg its ``DURATION``; a file whose only stream is the video has the
    segment's duration. Other containers (mpeg-ts, raw streams) say nothing reliable: (0, 0)."""
    if stream.frames:
        return int(stream.frames), 0.0
    if "matroska" not in container.format.name:
        return 0, 0.0
    tags = {k.upper(): v for k, v in (stream.metadata or {}).items()}
    if str(tags.get("NUMBER_OF_FRAMES", "")).isdigit():
        return int(tags["NUMBER_OF_FRAMES"]), 0.0
    found = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", str(tags.get("DURATION", "")).strip())
    if found:
        return 0, int(found[1]) * 3600 + int(found[2]) * 60 + float(found[3])
    return 0, container.duration / 1e6 if container.duration and len(container.streams) == 1 else 0.0
