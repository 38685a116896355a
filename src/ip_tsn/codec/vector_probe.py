"""Does FFmpeg's decoder export motion vectors for a file? Learnt by decoding its first frames,
memoised per process (:func:`motion_vectors_exported`), or told by a reader that has decoded it
(:func:`remember_motion`)."""

from __future__ import annotations

from typing import Optional

import av

from .frames import block_vectors_of
from .streams import file_key, open_video_stream

PROBE_INTER_FRAMES = 12  # inter-coded frames decoded (at most) to learn whether vectors come out
PROBE_MAX_FRAMES = 300  # frames decoded (at most) while looking for them
_MOTION: dict[tuple[str, int, int], tuple[bool, int]] = {}  # per file: (vectors found, inter frames seen)


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
        found, inter, decoded = False, 0, 0
        container, stream = open_video_stream(path)
        stream.codec_context.options = {"flags2": "+export_mvs"}
        with container:
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        decoded += 1
                        kind = int(frame.pict_type)  # 0: NONE (the decoder does not say), 1: I
                        if kind > 1 or (kind == 0 and not frame.key_frame):
                            inter += 1
                            found = block_vectors_of(frame) is not None
                        if found or inter >= PROBE_INTER_FRAMES or decoded >= PROBE_MAX_FRAMES:
                            break
                    else:
                        continue
                    break
            except av.FFmpegError:
                pass
        remember_motion(path, found, inter)
    return _MOTION[key]
