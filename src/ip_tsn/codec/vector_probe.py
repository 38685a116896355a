"""What decoding a file's first frames tells before any GOP is read: does FFmpeg's decoder export
motion vectors for it (:func:`motion_vectors_exported`, or told by a reader that has decoded it,
:func:`remember_motion`), and does a display matrix turn its pictures (:func:`require_shown_as_stored`).
Memoised per process."""

from __future__ import annotations

from typing import Optional

import av

from .errors import VideoError
from .frames import block_vectors_of
from .index import VideoIndex
from .orientation import Transform, display_transform, turned_error
from .streams import file_key, open_video_stream

PROBE_INTER_FRAMES = 12  # inter-coded frames decoded (at most) to learn whether vectors come out
PROBE_MAX_FRAMES = 300  # frames decoded (at most) while looking for them
_MOTION: dict[tuple[str, int, int], tuple[bool, int]] = {}  # per file: (vectors found, inter frames seen)
_TURN: dict[tuple[str, int, int], Optional[Transform]] = {}  # per file: its first frame's display matrix
# codecs whose FFmpeg decoder exports motion vectors (h264.c and mpegvideo's exporter): used only
# to word the error when a file's first inter-coded frames carry none
EXPORTS_VECTORS = frozenset({"h264", "mpeg4", "mpeg1video", "mpeg2video", "h263", "h263p", "msmpeg4v1",
                             "msmpeg4v2", "msmpeg4v3", "msmpeg4", "wmv1", "wmv2", "flv1"})


def _probe(path: str, motion: bool) -> None:
    """Decode ``path`` from the start: its first frame's display matrix into ``_TURN`` and, with
    ``motion``, until an inter-coded frame carries vectors or ``PROBE_INTER_FRAMES`` of them did
    not, what was seen into ``_MOTION``. A decoding error ends it with what was seen."""
    key = file_key(path)
    found, inter, decoded, turn = False, 0, 0, None
    container, stream = open_video_stream(path)
    stream.codec_context.options = {"flags2": "+export_mvs"}
    with container:
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if decoded == 0:
                        turn = display_transform(frame)
                    decoded += 1
                    kind = int(frame.pict_type)  # 0: NONE (the decoder does not say), 1: I
                    if kind > 1 or (kind == 0 and not frame.key_frame):
                        inter += 1
                        found = block_vectors_of(frame) is not None
                    if not motion or found or inter >= PROBE_INTER_FRAMES or decoded >= PROBE_MAX_FRAMES:
                        break
                else:
                    continue
                break
        except av.FFmpegError:
            pass
    if len(_TURN) > 4096:
        _TURN.clear()
    _TURN[key] = turn
    if motion:
        remember_motion(path, found, inter)


def remember_motion(path: str, found: bool, inter: int) -> None:
    """Record what decoding ``path`` showed: vectors ``found`` on its ``inter`` inter-coded frames."""
    if len(_MOTION) > 4096:
        _MOTION.clear()
    _MOTION[file_key(path)] = (found, inter)


def motion_vectors_exported(path: str, probe: bool = True) -> Optional[tuple[bool, int]]:
    """Does FFmpeg's decoder export motion vectors (``MOTION_VECTORS`` side data) for ``path``?

    Decided by decoding, not by codec name: from the start until an inter-coded frame carries
    vectors, or ``PROBE_INTER_FRAMES`` of them did not. Returns (found, inter-coded frames seen),
    memoised per process on (path, size, mtime); None if not known and ``probe`` is False.
    """
    key = file_key(path)
    if key not in _MOTION:
        if not probe:
            return None
        _probe(path, motion=True)
    return _MOTION[key]


def require_shown_as_stored(path: str) -> None:
    """One :class:`VideoError` (the turn, the fix) for a video whose first frame carries a display
    matrix (phones' portrait video): every read refuses it (``matched_frames.check_frame``), and a
    dataset's check finds it with one decoded frame instead of in a training worker."""
    key = file_key(path)
    if key not in _TURN:
        _probe(path, motion=False)
    if _TURN[key] is not None:
        raise turned_error(path, _TURN[key])


def require_inter_frames(path: str, index: VideoIndex) -> None:
    """One :class:`VideoError` for a video of I-frames only: no motion vectors or residuals."""
    if index.frame_types.count("I") == index.num_frames:
        raise VideoError(path, f"has no P- or B-frames (all {index.num_frames} frames are I-frames), so no motion "
                               f"vectors or residuals; re-encode it with a GOP: python data_prep/reencode.py {path} "
                               f"--output DIR")


def require_motion(path: str, index: VideoIndex) -> None:
    """One :class:`VideoError` (the file, the problem, the fix) unless ``mv`` and ``residual`` can be
    read: the video needs P- or B-frames, and FFmpeg's decoder must export vectors for it, probed
    on its first P/B-frames (:func:`motion_vectors_exported`)."""
    require_inter_frames(path, index)
    found, inter = motion_vectors_exported(path)
    if not found and inter > 0 and index.codec in EXPORTS_VECTORS:
        raise VideoError(path, f"no motion vectors on its first {inter} inter-coded frames: every block is "
                               f"intra-coded (content the encoder could not predict, such as noise), though FFmpeg "
                               f"exports them for '{index.codec}'")
    if not found and inter > 0:
        raise VideoError(path, f"codec '{index.codec}' has no motion vectors in FFmpeg (none on its first {inter} "
                               f"inter-coded frames); re-encode it first: python data_prep/reencode.py {path} "
                               f"--output DIR")


def check_gop_vectors(path: str, index: VideoIndex, vectors: dict[int, object]) -> None:
    """After decoding a GOP for ``mv``/``residual`` (``vectors``: display index -> its records or
    None): vectors on one of its P/B-frames settle that the decoder exports them; none on any, and
    the file is probed (:func:`require_motion`)."""
    known = motion_vectors_exported(path, probe=False)
    if known is not None:
        if not known[0]:
            require_motion(path, index)
        return
    inter = [v for j, v in vectors.items() if index.frame_types[j] != "I"]
    if any(v is not None for v in inter):
        remember_motion(path, True, len(inter))
    else:
        require_motion(path, index)
