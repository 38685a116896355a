"""The frame index of a video, built by demuxing packets (no decoding), once per file.

The index holds, in display order, each frame's picture type, the I-frames that start GOPs, the
keyframes that decoding can start from, and how the reader recognises each decoded frame.

Display order is the order in which FFmpeg's decoder outputs the frames (what any player shows).
It is the packets' presentation-timestamp order when the timestamps can be trusted: every
decoded picture's packet has one, no two are equal, for the MPEG codecs whose picture types
the packets tell (MPEG-1/2/4 Part 2) the timestamp order is the decoder's, and for other codecs
with B-pictures (H.264) it is not simply the decoding order (an AVI stores no reordering: its
timestamps follow the chunks, so H.264 with B-frames in an AVI is decoded once, below). (Raw elementary
streams, ``.m4v``, ``.h264``, ``.hevc``, have none: a parser invents them, differently after a
seek.) Otherwise:

- MPEG-1/2/4 Part 2: the decoder's order follows from the picture types in decode order (a B-picture
  is output at once, an I- or P-picture when the next one arrives). This covers AVIs from DivX/XviD
  with "packed B-frames" (a P-VOP and the next B-VOP in one chunk, an N-VOP placeholder later: AVI
  timestamps follow the chunks, not the display), whose VOPs :class:`bitstream.Mpeg4Pictures`
  replays as FFmpeg decodes them.
- Any other codec (HEVC, H.264, ... with missing or repeated timestamps, e.g. an mkv whose
  packets all carry 0): the stream is decoded once, here, and its output order recorded.

In both cases the reader recognises a decoded frame by the packet it came from: it sets each
packet's pts to the packet's byte position in the file (or its number from the start when
positions are unknown) before decoding, and FFmpeg hands that value on to the frame.

Edit lists (mp4, mov). A cut made without re-encoding (``ffmpeg -ss ... -c copy``) keeps the
packets from the I-frame before the cut and hides the frames before the cut point: FFmpeg's
decoder drops them, and so does the index (:func:`_shown_run`), which holds the frames a player
shows. Shown frames predicted from a hidden I-frame cannot be rebuilt from a GOP of the index:
such a file is refused in one line naming the fix, ``data_prep/reencode.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Optional

import av
import numpy as np

from .bitstream import Mpeg4Pictures, picture_info_parser
from .errors import VideoError, ffmpeg_reason
from .streams import declared_length, file_key, open_video_stream

AVFMT_NOTIMESTAMPS = 0x0080  # libavformat: the format has no timestamps (raw elementary streams)
# codecs whose display order follows from picture types in decode order (at most one held anchor)
STRUCTURAL_CODECS = ("mpeg4", "mpeg1video", "mpeg2video")
_PICT_TYPES = {1: "I", 2: "P", 3: "B", 4: "P", 5: "I", 6: "P", 7: "B"}  # AVPictureType: S->P, SI->I, SP->P, BI->B


@dataclass(frozen=True)
class VideoIndex:
    """Frame index of one video stream. Arrays are in display order, length ``num_frames``."""

    path: str
    codec: str
    width: int
    height: int
    fps: float
    pts: np.ndarray  # (N,) int64: what a decoded frame's pts is matched against (see ``order``)
    keyframe: np.ndarray  # (N,) bool: decoding can start here (container sync sample)
    frame_types: str  # "I" / "P" / "B" per frame
    reference: np.ndarray  # (N,) bool: a reference picture (an anchor other frames predict from)
    truncated: bool  # demuxing stopped on an error: the index holds the packets read before it
    # (N,) int64: each frame's place in decode order (the ordinal of the packet it decodes from). A
    # picture can only refer to pictures decoded before it (``decoded_before``).
    decode: np.ndarray
    # "pts": ``pts`` are the presentation timestamps; "pos" / "count": the decoder's output order,
    # ``pts`` holds the byte position / number (from the start) of the packet each frame decodes
    # from, which the reader writes into each packet's pts before decoding
    order: str = "pts"
    seek_ts: Optional[np.ndarray] = None  # (N,) int64 timestamps to seek to (None: decode from the start)
    # (packets the file holds, frames its header lists) where the header lists more (an mp4/mov sample
    # table, an AVI's frame count): the file was cut short (an interrupted download or copy); None otherwise
    missing: Optional[tuple[int, int]] = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_types)

    @property
    def timestamps(self) -> bool:
        """The frames are identified by the container's presentation timestamps."""
        return self.order == "pts"

    @cached_property
    def display_of_pts(self) -> dict[int, int]:
        """Display index of each frame key (``pts``)."""
        return {int(p): j for j, p in enumerate(self.pts)}

    @property
    def gop_starts(self) -> list[int]:
        """Display indices of the I-frames (each starts a GOP)."""
        return [i for i, t in enumerate(self.frame_types) if t == "I"]

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

    def decoded_before(self, k: int, j: int) -> bool:
        """Frame ``k`` is decoded before frame ``j`` (so ``j`` may refer to it)."""
        return bool(self.decode[k] < self.decode[j])

    def anchor_after(self, i: int) -> Optional[int]:
        """Display index of the nearest reference picture after frame ``i``, or None."""
        after = np.flatnonzero(self.reference[i + 1 :])
        return int(after[0]) + i + 1 if len(after) else None


def _shown_run(path: str, packets: list[int], keys: list[bool], hidden: list[bool]) -> tuple[int, int]:
    """The frames an mp4/mov edit list shows: ``[start, stop)`` of display order, given each frame's
    packet (display order), keyframe flag and the packets' ``hidden`` flags (FFmpeg's decoder
    drops hidden frames). Frames it hides before and after are left out of the index; a hidden
    I-frame that shown frames are predicted from, and hidden frames between shown ones, cannot
    be represented: one clear error, whose fix is re-encoding (which decodes what is shown)."""
    flags = [hidden[k] for k in packets]
    if not any(flags):
        return 0, len(flags)
    fix = f"re-encode it: python data_prep/reencode.py {path} --output DIR"
    if all(flags):
        raise VideoError(path, f"its edit list hides every frame; {fix}")
    start = flags.index(False)
    stop = len(flags) - flags[::-1].index(False)
    inside = sum(flags[start:stop])
    if inside:
        raise VideoError(path, f"its edit list hides {inside} frames between shown ones; {fix}")
    if start and not keys[start]:
        lead = next((j for j in range(start, stop) if keys[j]), stop) - start
        raise VideoError(path, f"its edit list hides the I-frame its first {lead} shown frames are predicted "
                               f"from (a cut made without re-encoding, e.g. ffmpeg -ss ... -c copy); {fix}")
    return start, stop


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


def _output_order(types: list[str]) -> list[int]:
    """Decoder output order of MPEG-1/2/4 pictures given in decode order: a B-picture is output at
    once, an I- or P-picture when the next I- or P-picture is decoded (or at the end)."""
    out, held = [], None
    for k, t in enumerate(types):
        if t == "B":
            out.append(k)
        else:
            if held is not None:
                out.append(held)
            held = k
    return out if held is None else out + [held]


@dataclass
class _Packets:
    """What demuxing found, one entry per non-empty packet (decode order)."""

    invented: bool = False  # the format has no timestamps: those seen were invented by a parser
    pts: list = field(default_factory=list)
    dts: list = field(default_factory=list)
    key: list = field(default_factory=list)
    pos: list = field(default_factory=list)
    hidden: list = field(default_factory=list)  # an mp4/mov edit list hides the packet's frame (FFmpeg's decoder drops it)

    def packet_keys(self) -> tuple[str, list[int]]:
        """How the reader numbers packets: by byte position if every packet has a distinct one."""
        if all(p is not None and p >= 0 for p in self.pos) and len(set(self.pos)) == len(self.pos):
            return "pos", [int(p) for p in self.pos]
        return "count", list(range(len(self.pos)))

    def seek_timestamps(self) -> Optional[list[int]]:
        """Each packet's dts (else pts) if they strictly increase in decode order, else None."""
        ts = [d if d is not None else p for p, d in zip(self.pts, self.dts)]
        if self.invented or any(t is None for t in ts) or any(b <= a for a, b in zip(ts, ts[1:])):
            return None
        return [int(t) for t in ts]


def build_index(path: str) -> VideoIndex:
    """Demux every packet of the first video stream of ``path`` into a :class:`VideoIndex`."""
    container, stream = open_video_stream(path)
    codec = stream.codec_context.name
    mpeg4 = Mpeg4Pictures(stream.codec_context.extradata) if codec == "mpeg4" else None
    parse = None if mpeg4 else picture_info_parser(codec, stream.codec_context.extradata)
    packets = _Packets(invented=bool(container.format.flags & AVFMT_NOTIMESTAMPS))
    pictures: list[tuple[int, Optional[str], Optional[bool], bool]] = []  # (packet, type, reference, own)
    truncated, listed, end = False, 0, 0
    start: Optional[int] = None
    try:
        with container:
            try:
                for packet in container.demux(stream):
                    listed += packet.size > 0 or packet.dts is not None  # all but the final flush packet
                    if packet.pts is not None:  # the time the file spans, in the stream's time base
                        start = packet.pts if start is None else min(start, packet.pts)
                        end = max(end, packet.pts + (packet.duration or 0))
                    if packet.size == 0:
                        continue
                    k = len(packets.pts)
                    packets.pts.append(packet.pts)
                    packets.dts.append(packet.dts)
                    packets.key.append(bool(packet.is_keyframe))
                    packets.pos.append(packet.pos)
                    packets.hidden.append(bool(packet.is_discard))
                    if mpeg4 is not None:
                        kind, own = mpeg4.feed(bytes(packet))
                        if kind is not None:
                            pictures.append((k, kind, kind != "B", own))
                    else:
                        kind, ref = parse(bytes(packet)) if parse else (None, None)
                        pictures.append((k, kind, ref, True))
            except av.FFmpegError:
                truncated = True
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            declared, seconds = declared_length(container, stream)  # 0: it does not say (mpeg-ts, raw streams)
            spans = float((end - start) * stream.time_base) if start is not None and stream.time_base else 0.0
            if seconds and spans < seconds * 0.98 - 0.1:  # Matroska: a duration, not a count
                declared = max(listed + 1, int(round(seconds * float(rate))))
    except av.FFmpegError as e:
        raise VideoError(path, f"could not be read: {ffmpeg_reason(e)}") from None
    if not pictures:
        raise VideoError(path, "no video frames (empty or corrupt stream)")
    meta = dict(path=path, codec=codec, width=int(width), height=int(height), fps=float(rate),
                missing=(listed, declared) if declared > listed else None)

    pts = [packets.pts[k] for k, *_ in pictures]
    usable = not packets.invented and all(p is not None for p in pts) and len(set(pts)) == len(pts)
    structural = codec in STRUCTURAL_CODECS and all(t is not None for _, t, _, _ in pictures)
    if usable:
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
        kinds = [t for _, t, _, _ in pictures]
        # timestamps in decoding order beside B-pictures: AVI's (it stores no reordering), not a display order
        in_decoding_order = "B" in kinds and bool((order == np.arange(len(order))).all())
        if structural and list(order) == _output_order(kinds):
            return _pts_index(meta, pictures, packets, pts, order, truncated)
        if not structural and not in_decoding_order:
            return _pts_index(meta, pictures, packets, pts, order, truncated)
    if structural:
        return _structural_index(meta, pictures, packets, truncated)
    return _decoded_index(meta, packets, pictures, truncated)


def _pts_index(meta: dict, pictures: list, packets: _Packets, pts: list[int], order: np.ndarray,
               truncated: bool) -> VideoIndex:
    """Display order = presentation-timestamp order; frames are recognised by their pts."""
    path = meta["path"]
    keys = [packets.key[k] for k, *_ in pictures]
    fallback = _fallback_types(pts, keys)
    types = [t or f for (_, t, _, _), f in zip(pictures, fallback)]
    refs = [t != "B" if r is None else r for (_, _, r, _), t in zip(pictures, types)]
    start, stop = _shown_run(path, [pictures[i][0] for i in order], [keys[i] for i in order], packets.hidden)
    order = order[start:stop]
    if not keys[order[0]]:
        truncated = True  # leading frames without a key frame cannot be decoded: drop them
        first = next((j for j, i in enumerate(order) if keys[i]), None)
        if first is None:
            raise VideoError(path, "no key frame: the video cannot be decoded")
        order = order[first:]
    shown = [types[i] for i in order]
    return VideoIndex(
        **meta,
        pts=np.asarray(pts, dtype=np.int64)[order],
        keyframe=np.asarray(keys, dtype=bool)[order],
        frame_types="".join(shown),
        reference=np.asarray(refs, dtype=bool)[order] | (np.asarray(shown) == "I"),
        truncated=truncated,
        order="pts",
        seek_ts=np.asarray(pts, dtype=np.int64)[order],
        decode=np.asarray([pictures[i][0] for i in order], dtype=np.int64),
    )


def _finish_output_index(meta: dict, shown: list[tuple[int, str, bool, bool]], packets: _Packets,
                         truncated: bool) -> VideoIndex:
    """An index in the decoder's output order from ``(packet, type, reference, keyframe)`` per frame."""
    start, stop = _shown_run(meta["path"], [k for k, *_ in shown], [key for *_, key in shown], packets.hidden)
    shown = shown[start:stop]
    first = next((j for j, (_, t, _, _) in enumerate(shown) if t == "I"), None)
    if first is None:
        raise VideoError(meta["path"], "no key frame: the video cannot be decoded")
    if first:
        truncated = True  # pictures shown before the first I-frame lack their references: dropped
        shown = shown[first:]
    how, packet_key = packets.packet_keys()
    seek = packets.seek_timestamps() if how == "pos" else None
    return VideoIndex(
        **meta,
        pts=np.asarray([packet_key[k] for k, *_ in shown], dtype=np.int64),
        keyframe=np.asarray([key for *_, key in shown], dtype=bool),
        frame_types="".join(t for _, t, _, _ in shown),
        reference=np.asarray([r or t == "I" for _, t, r, _ in shown], dtype=bool),
        truncated=truncated,
        order=how,
        seek_ts=None if seek is None else np.asarray([seek[k] for k, *_ in shown], dtype=np.int64),
        decode=np.asarray([k for k, *_ in shown], dtype=np.int64),
    )


def _structural_index(meta: dict, pictures: list, packets: _Packets, truncated: bool) -> VideoIndex:
    """MPEG-1/2/4: the decoder's output order from the picture types in decode order."""
    types = [t for _, t, _, _ in pictures]
    shown = []
    for i in _output_order(types):
        k, _, ref, own = pictures[i]
        shown.append((k, types[i], bool(ref), types[i] == "I" and own and packets.key[k]))
    return _finish_output_index(meta, shown, packets, truncated)


def _decoded_index(meta: dict, packets: _Packets, pictures: list, truncated: bool) -> VideoIndex:
    """Timestamps that cannot order the frames, and no picture types to order them by: decode the
    stream once and record what the decoder outputs, in its order."""
    path = meta["path"]
    how, packet_key = packets.packet_keys()
    packet_of = {key: k for k, key in enumerate(packet_key)}
    refs = {k: r for k, _, r, _ in pictures}
    shown = []
    container, stream = open_video_stream(path)
    with container:
        try:
            n = 0
            for packet in container.demux(stream):
                if packet.size:
                    packet.pts = packet.pos if how == "pos" else n
                    n += 1
                for frame in packet.decode():
                    k = packet_of.get(frame.pts)
                    if k is None:
                        continue
                    kind = _PICT_TYPES.get(int(frame.pict_type), "I" if frame.key_frame else "P")
                    ref = refs.get(k)
                    shown.append((k, kind, kind != "B" if ref is None else ref, kind == "I" and packets.key[k]))
        except av.FFmpegError:
            truncated = True
    if not shown:
        raise VideoError(path, "no frame could be decoded (corrupt stream)")
    return _finish_output_index(meta, shown, packets, truncated)


def require_whole(index: VideoIndex) -> None:
    """Raise :class:`VideoError` for a file cut short: its header (an mp4/mov sample table, an AVI's
    frame count) lists more frames than it holds (``index.missing``), as after an interrupted download
    or copy of an mp4 whose index comes first (one whose index comes last does not open at all), or of
    a Matroska/WebM file (its track's duration tag, :func:`~.streams.declared_length`)."""
    if index.missing is not None:
        held, listed = index.missing
        raise VideoError(index.path, f"truncated: it holds {held} of the {listed} frames its header lists (an "
                                     "interrupted download or copy?); fetch it again, or re-encode the frames it "
                                     "holds with data_prep/reencode.py")


_CACHE: dict[tuple[str, int, int], VideoIndex] = {}


def clear_index_cache() -> None:
    """Forget every memoised :func:`get_index` result of this process (e.g. to time a cold open)."""
    _CACHE.clear()


def get_index(path: str) -> VideoIndex:
    """:func:`build_index`, memoised per process on (path, size, mtime)."""
    key = file_key(path)
    if key not in _CACHE:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = build_index(path)
    return _CACHE[key]
