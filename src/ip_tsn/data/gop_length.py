"""Training videos whose GOPs are far longer than the format the method is made for: one warning
(:func:`long_gops`). CoViAR, DMC-Net and the paper re-encode every video to MPEG-4 Part 2 with a
GOP of 12 frames (``data_prep/reencode.py``, ``make data``). Videos as downloaded (x264's default
GOP is 250 frames, YouTube's 2-10 s) are read all the same, but a P-frame's accumulated motion and
residual then reach back up to a whole GOP, TSN's segments share one or two I-frames, and a clip
costs that much more to read: another input than the paper's, which until 2026-12-07 nothing said.
"""

from __future__ import annotations

from collections.abc import Sequence

from ip_tsn.codec import CompressedVideo

COVIAR_GOP = 12  # frames per GOP of CoViAR's format, the one data_prep writes
LONG_GOP = 4 * COVIAR_GOP  # a mean GOP (frames per I-frame) above this is warned of
LOOKED_AT = 32  # videos whose index (demuxed, no decoding; cached per process) is read, evenly spread


def long_gops(videos: Sequence[CompressedVideo], listed: int) -> str | None:
    """The warning where the mean GOP (frames per I-frame) of ``videos`` (some of the ``listed``
    training videos) is over :data:`LONG_GOP` frames, else None."""
    counts = [(v.path, v.num_frames, len(v.gop_starts)) for v in videos]
    frames, gops = sum(c[1] for c in counts), sum(c[2] for c in counts)
    if not gops or frames / gops <= LONG_GOP:
        return None
    path, n, g = max(counts, key=lambda c: c[1] / max(c[2], 1))
    return (f"the training videos' GOPs average {frames / gops:.0f} frames ({len(counts)} of {listed} videos read; "
            f"{path}: {n} frames, {g} I-frame(s)), where CoViAR's format and the paper's numbers have "
            f"{COVIAR_GOP}: accumulated motion and residuals reach back a whole GOP, the segments share few "
            "I-frames, and a clip costs more to read; re-encode them (make data, or data_prep/reencode.py) "
            "for the paper's input")


def spread(records: Sequence, count: int = LOOKED_AT) -> list:
    """Up to ``count`` of ``records``, evenly spread over the list."""
    return list(records)[:: max(1, -(-len(records) // count))][:count]
