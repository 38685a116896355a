"""`CompressedVideo`: I-frames, motion vectors and residuals of any video FFmpeg decodes.

Motion vectors come from FFmpeg's own decoder (``flags2=+export_mvs``): no patched FFmpeg, no
re-encode, B-frames included, for every codec whose decoder exports them (probed per file on its
first inter-coded frames: H.264, MPEG-1/2/4, H.263, DivX 3 ``msmpeg4``; not HEVC, VP9, AV1). Random access decodes one GOP: the reader seeks to the key frame that
starts the GOP of the requested frame and decodes only until the frames it needs are out.

What a frame's motion and residual are defined against (reference chain, B-frames, H.264's
multiple references) and how they are computed: :mod:`ip_tsn.codec.reconstruct`.

Huge inputs. ``CompressedVideo(path, min_side=256)`` decodes a video whose shorter side is at least
twice ``min_side`` at 1/2, 1/4 or 1/8 of its size (the largest of these that keeps the shorter side
>= ``min_side``): each decoded picture is scaled down by FFmpeg's scaler (area) as it leaves the
decoder, before anything keeps it, and the motion and residual are computed at that size (blocks
and vectors scaled alike; ``mv`` is still in the source's pixels). An 8K frame then costs what a
960x540 one does. ``height`` / ``width`` stay the source's; ``factor`` says the scale.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Iterator, Sequence

import av
import numpy as np

from .errors import VideoError, ffmpeg_reason
from .frames import block_vectors_of, park, scaled, to_rgb, yuv420_planes
from .index import VideoIndex, get_index, require_whole
from .motion import FACTORS
from .matched_frames import check_frame, matched_frames
from .mpeg4_direct import anchors_needed, derive_b_frames
from .reconstruct import GopMotion, frames_needed, l0_candidates, l0_choice, own_sources, representation_of
from .streams import open_video_stream
from .vector_probe import check_gop_vectors, require_inter_frames, require_motion, require_shown_as_stored

REPRESENTATIONS = ("iframe", "mv", "residual", "rgb")


@dataclass
class _Gop:
    """Decoded frames of one GOP and what was computed from them, keyed by display index."""

    frames: dict = field(default_factory=dict)  # av.VideoFrame
    vectors: dict = field(default_factory=dict)  # structured array or None
    rgb: dict = field(default_factory=dict)  # (H, W, 3) uint8
    motion: GopMotion | None = None  # the P inputs computed from them (reconstruct.py)


def _rgb_of(frames: dict, rgb: dict, j: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of decoded frame ``j``, converted once."""
    if j not in rgb:
        rgb[j] = to_rgb(frames[j])
    return rgb[j]


class CompressedVideo:
    """Random access to the compressed-domain representations of one video.

    Nothing is opened at construction: the index (packet demux, no decoding) and the decoder are
    created in the process that first uses them, so instances can be built in a DataLoader's main
    process and used in its workers. Every failure raises :class:`VideoError` naming the file.
    ``min_side``: decode huge videos at a reduced size no smaller than this (module docstring);
    None: always at full size.
    """

    def __init__(self, path: str | os.PathLike, gop_cache: int = 2, min_side: int | None = None):
        self.path = os.fspath(path)
        self._gop_cache_size = gop_cache
        self.min_side = min_side
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._container = None
        self._stream = None
        self._index: VideoIndex | None = None
        self._gops: OrderedDict[int, _Gop] = OrderedDict()
        self._fresh_start = False  # a seek to the start renumbers this file's timestamps: reopen instead
        self._seek_early = False  # seeks to a key frame land after it (no key-frame flags): seek one earlier

    def __getstate__(self) -> dict:
        return {"path": self.path, "_gop_cache_size": self._gop_cache_size, "min_side": self.min_side}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def __repr__(self) -> str:
        return f"CompressedVideo({self.path!r})"

    # ------------------------------------------------------------------ index
    @property
    def index(self) -> VideoIndex:
        if self._index is None:
            self._index = get_index(self.path)
        return self._index

    @property
    def num_frames(self) -> int:
        return self.index.num_frames

    @property
    def frame_types(self) -> str:
        """One of ``I``, ``P``, ``B`` per frame, display order."""
        return self.index.frame_types

    @property
    def gop_starts(self) -> list[int]:
        """Display indices of the I-frames."""
        return self.index.gop_starts

    @property
    def height(self) -> int:
        return self.index.height

    @property
    def width(self) -> int:
        return self.index.width

    @property
    def factor(self) -> int:
        """1, 2, 4 or 8: pictures are decoded at ``ceil(height / factor) x ceil(width / factor)``,
        the smallest of these whose shorter side is still >= ``min_side`` (1 without one)."""
        if not self.min_side:
            return 1
        short = min(self.height, self.width)
        return max(f for f in FACTORS if short // f >= self.min_side or f == 1)

    @property
    def fps(self) -> float:
        return self.index.fps

    @property
    def codec(self) -> str:
        return self.index.codec

    def require_motion(self) -> None:
        """Raise :class:`VideoError` (one line: the file, the problem, the fix) unless ``mv`` and
        ``residual`` can be read: the video needs P- or B-frames, and FFmpeg's decoder must export
        motion vectors for it, which is probed on its first P/B-frames (not read off a list of
        codec names: DivX 3 ``msmpeg4`` exports them, HEVC, VP9 and AV1 do not)."""
        require_motion(self.path, self.index)

    def require_whole(self) -> None:
        """Raise :class:`VideoError` for a file cut short (:func:`ip_tsn.codec.index.require_whole`);
        reads of such a file give the frames it holds, a data set's check refuses it."""
        require_whole(self.index)

    def require_shown_as_stored(self) -> None:
        """Raise :class:`VideoError` (one line: the turn, the fix) for a video whose display matrix
        turns or mirrors its pictures (phones' portrait video), which every read refuses; learnt
        from its first decoded frame, memoised per process."""
        require_shown_as_stored(self.path)

    def gop_of(self, i: int) -> int:
        """Display index of the I-frame that starts frame ``i``'s GOP."""
        types = self.frame_types
        if not 0 <= i < len(types):
            raise VideoError(self.path, f"frame index {i} out of range (the video has {len(types)} frames)")
        return types.rindex("I", 0, i + 1)

    # ----------------------------------------------------------------- public
    def load(self, index: int, representation: str, accumulate: bool = True) -> np.ndarray:
        """One representation of frame ``index`` (display order).

        Returns:
            ``"iframe"``: (H, W, 3) uint8 RGB of the I-frame starting the GOP;
            ``"mv"``: (H, W, 2) float32 motion ``(dx, dy)`` into the GOP's I-frame
            (``accumulate=True``) or into the previous anchor frame;
            ``"residual"``: (H, W, 3) int16, the frame minus ``warp(reference, mv)``;
            ``"rgb"``: (H, W, 3) uint8 RGB of the decoded frame itself.
            ``"mv"`` at full size is the memoised field itself, read-only (copy it to change it).
        """
        return self.load_many([index], representation, accumulate)[0]

    def load_many(self, indices: Sequence[int], representation: str, accumulate: bool = True) -> list[np.ndarray]:
        """:meth:`load` for several frames, decoding each GOP involved once."""
        if representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
        indices = [int(i) for i in indices]
        gops = [self.gop_of(i) for i in indices]
        motion = representation in ("mv", "residual")
        if motion:
            require_inter_frames(self.path, self.index)
        out: list = [None] * len(indices)
        for g in sorted(set(gops)):
            members = [k for k, gk in enumerate(gops) if gk == g]
            need = frames_needed(self.index, [indices[k] for k in members], g, representation, accumulate)
            gop = self._decode_gop(g, need)
            if motion:
                check_gop_vectors(self.path, self.index, gop.vectors)
            state = self._motion(gop, g)
            for k in members:
                out[k] = representation_of(state, indices[k], representation, accumulate)
        return out

    def block_vectors(self, indices: Sequence[int]) -> list[np.ndarray | None]:
        """FFmpeg's own block motion vectors of frames ``indices`` (display order), as the decoder
        exports them (``flags2=+export_mvs``): per frame a structured array with one row per block
        (FFmpeg's ``AVMotionVector`` fields: ``source``, ``w``, ``h``, ``src_x``, ``src_y``,
        ``dst_x``, ``dst_y``, ``motion_x``, ``motion_y``, ``motion_scale``, ...), or None for a frame
        without any (I-frames). No dense painting, no accumulation; each GOP is decoded once and
        its decoded frames are kept for later :meth:`load` calls. MPEG-4 Part 2 B-frames, whose
        vectors FFmpeg exports as zeros, get 8x8 records with the vectors direct mode derives
        (:mod:`ip_tsn.codec.mpeg4_direct`)."""
        indices = [int(i) for i in indices]
        gops = [self.gop_of(i) for i in indices]
        out: list[np.ndarray | None] = [None] * len(indices)
        for g in sorted(set(gops)):
            members = [k for k, gk in enumerate(gops) if gk == g]
            gop = self._decode_gop(g, {indices[k] for k in members})
            for k in members:
                out[k] = gop.vectors.get(indices[k])
        return out

    def planes(self, indices: Sequence[int]) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray] | None]:
        """The decoded 4:2:0 planes of frames ``indices`` (display order), before any conversion:
        per frame ``(colorspace, Y, U, V)`` (``frames.yuv420_planes``), or None where the frame is
        not yuv420p or is decoded at a reduced size (``factor`` > 1: its pictures are RGB already).
        Each GOP is decoded once; the frames stay for later :meth:`load` calls."""
        indices = [int(i) for i in indices]
        gops = [self.gop_of(i) for i in indices]
        out: list = [None] * len(indices)
        for g in sorted(set(gops)):
            members = [k for k, gk in enumerate(gops) if gk == g]
            gop = self._decode_gop(g, {indices[k] for k in members})
            for k in members:
                out[k] = yuv420_planes(gop.frames[indices[k]]) if self.factor == 1 else None
        return out

    def reference_choices(self, indices: Sequence[int]) -> list[np.ndarray | None]:
        """Per frame of ``indices``: the reference picture each 8x8 cell of its L0 motion is chained
        through when accumulating, (ceil(H / 8), ceil(W / 8)) uint8 indices into its candidates
        (``reconstruct.l0_candidates``, the default reference first), or None where it has one
        candidate: the choice :meth:`load` makes (``reconstruct.l0_choice``), for the device path."""
        indices = [int(i) for i in indices]
        gops = [self.gop_of(i) for i in indices]
        out: list = [None] * len(indices)
        for g in sorted(set(gops)):
            members = [k for k, gk in enumerate(gops) if gk == g]
            need = {j for k in members for j in (indices[k], *l0_candidates(self.index, indices[k], g))
                    if j is not None}
            gop = self._decode_gop(g, need)
            motion = self._motion(gop, g)
            for k in members:
                if self.frame_types[indices[k]] != "I":
                    out[k] = l0_choice(motion, indices[k])
        return out

    def own_sources(self, indices: Sequence[int]) -> list[np.ndarray | None]:
        """Per frame of ``indices``: the display index of the picture each pixel of its own motion
        (``load(i, "mv", accumulate=False)``) points into and its residual is taken from, (H, W)
        int32, or None where that is ``index.reference_of(i)`` for every pixel (every codec but
        H.264, which may predict each block from another reference picture; ``reconstruct.own_sources``).
        None for I-frames."""
        indices = [int(i) for i in indices]
        out: list = [None] * len(indices)
        for k, i in enumerate(indices):
            if self.frame_types[i] != "I":
                g = self.gop_of(i)
                gop = self._decode_gop(g, frames_needed(self.index, [i], g, "residual", False))
                out[k] = own_sources(self._motion(gop, g), i)
        return out

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Every frame of the index, (H, W, 3) uint8 RGB, in display order: frame ``i`` is
        ``load(i, "rgb")``, so flow ``i`` (frame ``i`` -> ``i + 1``) lines up with the P inputs.
        Frames the decoder outputs that the index leaves out (a capture that starts inside a GOP:
        pictures whose references are missing) are skipped; a truncated file ends early."""
        idx = self.index
        container, stream = open_video_stream(self.path)
        n = 0
        with container:
            try:
                for j, frame in matched_frames(container, stream, idx):
                    if j is None or j < n:
                        continue
                    if j > n:
                        raise VideoError(self.path, f"frames {list(range(n, j))[:10]} could not be decoded "
                                                    f"(corrupt video; the index lists {idx.num_frames} frames)")
                    check_frame(self.path, idx, frame, j, first=n == 0)
                    n += 1
                    yield to_rgb(frame)
            except av.FFmpegError as e:
                raise VideoError(self.path, f"decoding failed: {ffmpeg_reason(e)}") from None

    def close(self) -> None:
        if self._pid != os.getpid():
            park((self._container, self._gops))
        elif self._container is not None:
            self._container.close()
        self._reset()

    def __enter__(self) -> "CompressedVideo":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --------------------------------------------------------------- decoding
    def _open(self, fresh: bool = False):
        if self._pid != os.getpid():  # forked: never touch (or free) the parent's decoder
            park((self._container, self._gops))
            self._reset()
        if fresh and self._container is not None:  # start over: a new container at its first packet
            self._container.close()
            self._container = None
        if self._container is None:
            container, stream = open_video_stream(self.path)
            stream.codec_context.options = {"flags2": "+export_mvs"}
            self._container, self._stream = container, stream
        return self._container, self._stream

    def _decode_gop(self, g: int, need: set[int]) -> _Gop:
        gop = self._gops.get(g)
        if gop is not None and need <= gop.frames.keys():
            self._gops.move_to_end(g)
            return gop
        idx, requested = self.index, need
        if gop is not None:  # a second miss on this GOP: decode all of it this time
            after = idx.frame_types.find("I", g + 1)
            need = need | set(range(g, after if after > 0 else idx.num_frames))
        key = max(j for j in range(g + 1) if idx.keyframe[j])
        if self._seek_early:
            key = self._key_before(key)
        # the GOP's I-frame too: without it out, the decoder started after it (a seek that landed late)
        # and what it gave of the GOP was decoded without its references
        want, need = requested | {g}, need | {g}
        gop = self._run_decoder(g, key, need, fresh=self._fresh_start and key == 0)
        if want - gop.frames.keys() and key > 0:  # from the key frame before: a seek that lands late lands right
            earlier = self._key_before(key)
            gop = self._run_decoder(g, earlier, need, fresh=self._fresh_start and earlier == 0)
            self._seek_early |= not want - gop.frames.keys()
        if want - gop.frames.keys():  # the seek landed wrong (or renumbered what it found): from a fresh start
            gop = self._run_decoder(g, 0, need, fresh=True)
            self._fresh_start |= key == 0 and not want - gop.frames.keys()
        missing = sorted(requested - gop.frames.keys())
        if missing:
            raise VideoError(
                self.path,
                f"frames {missing} could not be decoded (truncated or corrupt video; "
                f"the index lists {idx.num_frames} frames)",
            )
        self._gops[g] = gop
        while len(self._gops) > self._gop_cache_size:
            self._gops.popitem(last=False)
        return gop

    def _key_before(self, key: int) -> int:
        """The key frame before key frame ``key`` (0 if none)."""
        return max((j for j in range(key) if self.index.keyframe[j]), default=0)

    def _run_decoder(self, g: int, key: int, need: set[int], fresh: bool = False) -> _Gop:
        """Decode from key frame ``key`` until every frame in ``need`` is out (or the stream ends);
        ``fresh``: from a newly opened container, not a seek to its start (after a seek, a parser
        may number timestamps afresh: MPEG-1 in an AVI gave its first I-frame pts 1 instead of 0).

        Decoded frames are matched to display indices as :mod:`ip_tsn.codec.matched_frames` says.
        """
        idx, gop = self.index, _Gop()
        if idx.codec == "mpeg4":
            need = need | anchors_needed(idx, need)
        last, f = max(need), self.factor
        size = (-(-idx.width // f), -(-idx.height // f))
        seek = idx.seek_ts is not None and key > 0 and not fresh
        # from the start: timestamps that order nothing may not seek back either; reopen instead
        fresh = fresh or (not seek and idx.order != "pts")
        container, stream = self._open(fresh=fresh)
        try:
            if seek:
                container.seek(int(idx.seek_ts[key]), stream=stream, backward=True, any_frame=False)
            elif not fresh:
                container.seek(0, backward=True, stream=stream)
            for j, frame in matched_frames(container, stream, idx):
                if j is not None and g <= j <= last:  # keep what was decoded anyway: later loads reuse it
                    check_frame(self.path, idx, frame, j, first=not gop.frames)
                    gop.vectors[j] = block_vectors_of(frame)
                    gop.frames[j] = scaled(frame, *size) if f > 1 else frame
                    if need <= gop.frames.keys():
                        break
        except av.FFmpegError:
            pass  # a corrupt packet: whatever decoded before it is kept; the caller checks
        if idx.codec == "mpeg4":
            derive_b_frames(idx, gop.vectors)
        return gop

    # ------------------------------------------------------------ computing
    def _motion(self, gop: _Gop, g: int) -> GopMotion:
        """The GOP's reconstruction state (created on first use, kept with its decoded frames)."""
        if gop.motion is None:
            gop.motion = GopMotion(self.index, g, gop.vectors, partial(_rgb_of, gop.frames, gop.rgb), self.factor)
        return gop.motion
