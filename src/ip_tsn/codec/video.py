"""`CompressedVideo`: I-frames, motion vectors and residuals of any video FFmpeg decodes.

Motion vectors come from FFmpeg's own decoder (``flags2=+export_mvs``): no patched FFmpeg, no
re-encode, B-frames included, for every codec whose decoder exports them (probed per file on its
first inter-coded frames: H.264, MPEG-1/2/4, H.263, DivX 3 ``msmpeg4``; not HEVC, VP9, AV1). Random access decodes one GOP: the reader seeks to the key frame that
starts the GOP of the requested frame and decodes only until the frames it needs are out.

Reference chain and B-frames. The reference of a P- or B-frame is the nearest *anchor* before it
in display order: an I- or P-frame, or a B-frame that other pictures refer to (H.264 B-pyramids,
``nal_ref_idc != 0``). FFmpeg does not export which picture of a reference list a block used, so
that choice defines the motion and the residual (which stays exact by construction). For each
pixel of a B-frame: the L0 (past) vector when its block has one; else the L1 (future) vector,
traced on through the next anchor's own motion back to the same past anchor when that next anchor
is not an I-frame; else (intra blocks, L1 into the next GOP's I-frame) zero motion. So every frame
has one motion field relative to one reference frame, and ``accumulate=True`` chains fields anchor
by anchor back to the GOP's I-frame (CoViAR's accumulation, at sub-pixel precision).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import av
import cv2
import numpy as np

from .errors import VideoError
from .frames import park, to_rgb
from .index import VideoIndex, get_index, motion_vectors_exported, open_video_stream, remember_motion
from .motion import compose, dense_motion, residual, warp

REPRESENTATIONS = ("iframe", "mv", "residual", "rgb")
MAX_REFERENCES = 3  # H.264 reference pictures tried per block when accumulating


@dataclass
class _Gop:
    """Decoded frames of one GOP and what was computed from them, keyed by display index."""

    frames: dict = field(default_factory=dict)  # av.VideoFrame
    vectors: dict = field(default_factory=dict)  # structured array or None
    rgb: dict = field(default_factory=dict)  # (H, W, 3) uint8
    own: dict = field(default_factory=dict)  # (H, W, 2) float32, relative to the previous anchor
    acc: dict = field(default_factory=dict)  # (H, W, 2) float32, relative to the GOP's I-frame
    busy: set = field(default_factory=set)  # frames whose accumulated motion is being computed


class CompressedVideo:
    """Random access to the compressed-domain representations of one video.

    Nothing is opened at construction: the index (packet demux, no decoding) and the decoder are
    created in the process that first uses them, so instances can be built in a DataLoader's main
    process and used in its workers. Every failure raises :class:`VideoError` naming the file.
    """

    def __init__(self, path: str | os.PathLike, gop_cache: int = 2):
        self.path = os.fspath(path)
        self._gop_cache_size = gop_cache
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._container = None
        self._stream = None
        self._index: VideoIndex | None = None
        self._gops: OrderedDict[int, _Gop] = OrderedDict()

    def __getstate__(self) -> dict:
        return {"path": self.path, "_gop_cache_size": self._gop_cache_size}

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
        fix = f"re-encode it first: python data_prep/reencode.py {self.path} --output DIR"
        self._require_inter_frames()
        found, inter = motion_vectors_exported(self.path)
        if not found and inter > 0:
            raise VideoError(
                self.path,
                f"codec '{self.codec}' has no motion vectors in FFmpeg (none on its first {inter} "
                f"inter-coded frames); {fix}",
            )

    def _require_inter_frames(self) -> None:
        idx = self.index
        if idx.frame_types.count("I") == idx.num_frames:
            raise VideoError(
                self.path,
                f"has no P- or B-frames (all {idx.num_frames} frames are I-frames), so no motion vectors or "
                f"residuals; re-encode it with a GOP: python data_prep/reencode.py {self.path} --output DIR",
            )

    def _check_vectors(self, gop: "_Gop") -> None:
        """After decoding a GOP for ``mv``/``residual``: vectors on one of its P/B-frames settle that
        the decoder exports them; none on any, and the file is probed (:meth:`require_motion`)."""
        known = motion_vectors_exported(self.path, probe=False)
        if known is not None:
            if not known[0]:
                self.require_motion()
            return
        inter = [v for j, v in gop.vectors.items() if self.frame_types[j] != "I"]
        if any(v is not None for v in inter):
            remember_motion(self.path, True, len(inter))
        else:
            self.require_motion()

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
            self._require_inter_frames()
        out: list = [None] * len(indices)
        for g in sorted(set(gops)):
            members = [k for k, gk in enumerate(gops) if gk == g]
            need = set().union(*(self._needed(indices[k], g, representation, accumulate) for k in members))
            gop = self._decode_gop(g, need)
            if motion:
                self._check_vectors(gop)
            for k in members:
                out[k] = self._compute(gop, indices[k], g, representation, accumulate)
        return out

    def block_vectors(self, indices: Sequence[int]) -> list[np.ndarray | None]:
        """FFmpeg's own block motion vectors of frames ``indices`` (display order), as the decoder
        exports them (``flags2=+export_mvs``): per frame a structured array with one row per block
        (FFmpeg's ``AVMotionVector`` fields: ``source``, ``w``, ``h``, ``src_x``, ``src_y``,
        ``dst_x``, ``dst_y``, ``motion_x``, ``motion_y``, ``motion_scale``, ...), or None for a frame
        without any (I-frames). No dense painting, no accumulation; each GOP is decoded once and
        its decoded frames are kept for later :meth:`load` calls."""
        indices = [int(i) for i in indices]
        gops = [self.gop_of(i) for i in indices]
        out: list[np.ndarray | None] = [None] * len(indices)
        for g in sorted(set(gops)):
            members = [k for k, gk in enumerate(gops) if gk == g]
            gop = self._decode_gop(g, {indices[k] for k in members})
            for k in members:
                out[k] = gop.vectors.get(indices[k])
        return out

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Every decoded frame, (H, W, 3) uint8 RGB, in display order."""
        container, stream = open_video_stream(self.path)
        with container:
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        yield to_rgb(frame)
            except av.FFmpegError as e:
                raise VideoError(self.path, f"decoding failed: {e}") from None

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
    def _needed(self, i: int, g: int, representation: str, accumulate: bool) -> set[int]:
        """Display indices whose decoded frames (or vectors) computing frame ``i`` uses."""
        idx = self.index
        if representation == "iframe":
            return {g}
        if representation == "rgb" or idx.frame_types[i] == "I":
            return {i}
        need, todo = set(), [i]
        while todo:
            j = todo.pop()
            if j in need:
                continue
            need.add(j)
            ref = idx.reference_of(j)
            if ref is not None and accumulate:
                todo += self._l0_candidates(j, g)  # the whole chain back to the I-frame
            elif ref is not None and j == i:
                need.add(ref)  # only its pixels, for the residual
            nxt = self._l1_anchor(j, accumulate)
            if nxt is not None:
                todo.append(nxt)
        return need

    def _l1_anchor(self, j: int, accumulate: bool = False) -> int | None:
        """The next reference picture a B-frame's L1-only blocks are traced through, or None.

        It must not be an I-frame (no motion to trace through). Per frame (``accumulate=False``)
        its own reference must be the B-frame's reference, so that the two motions compose; when
        accumulating, both sides are traced to the I-frame, so any anchor whose chain does not
        pass through frame ``j`` itself will do.
        """
        idx = self.index
        if idx.frame_types[j] != "B":
            return None
        nxt = idx.anchor_after(j)
        if nxt is None or idx.frame_types[nxt] == "I":
            return None
        if not accumulate:
            return nxt if idx.reference_of(nxt) == idx.reference_of(j) else None
        k = nxt
        while k is not None:
            if k == j:
                return None
            k = idx.reference_of(k)
        return nxt

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
        gop = self._run_decoder(g, key, need)
        if requested - gop.frames.keys() and key > 0:  # the seek landed wrong: decode from the start
            gop = self._run_decoder(g, 0, need)
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

    def _run_decoder(self, g: int, key: int, need: set[int]) -> _Gop:
        """Decode from key frame ``key`` until every frame in ``need`` is out (or the stream ends).

        Decoded frames are matched to display indices by their pts: the container's timestamps,
        or (``order`` "pos" / "count") the byte position / number of their packet, written into
        each packet's pts here before decoding (see :mod:`ip_tsn.codec.index`).
        """
        idx, gop, last = self.index, _Gop(), max(need)
        display = idx.display_of_pts
        by_pos, by_count = idx.order == "pos", idx.order == "count"
        seek = idx.seek_ts is not None and key > 0
        # from the start: timestamps that order nothing may not seek back either; reopen instead
        container, stream = self._open(fresh=not seek and idx.order != "pts")
        try:
            if seek:
                container.seek(int(idx.seek_ts[key]), stream=stream, backward=True, any_frame=False)
            elif idx.order == "pts":
                container.seek(0, backward=True, stream=stream)
            count = 0
            for packet in container.demux(stream):
                if packet.size and (by_pos or by_count):
                    packet.pts = packet.pos if by_pos else count
                    count += 1
                for frame in packet.decode():
                    j = display.get(frame.pts)
                    if j is not None and g <= j <= last:  # keep what was decoded anyway: later loads reuse it
                        gop.frames[j] = frame
                        sd = frame.side_data.get("MOTION_VECTORS")
                        gop.vectors[j] = sd.to_ndarray() if sd is not None else None
                if need <= gop.frames.keys():
                    break
        except av.FFmpegError:
            pass  # a corrupt packet: whatever decoded before it is kept; the caller checks
        return gop

    # ------------------------------------------------------------ computing
    def _rgb(self, gop: _Gop, j: int) -> np.ndarray:
        if j not in gop.rgb:
            gop.rgb[j] = to_rgb(gop.frames[j])
        return gop.rgb[j]

    def _own_motion(self, gop: _Gop, j: int) -> np.ndarray:
        """(H, W, 2) motion of frame ``j`` into its reference frame (``VideoIndex.reference_of``)."""
        if j in gop.own:
            return gop.own[j]
        h, w = self.height, self.width
        vectors = gop.vectors.get(j)
        mv, has_l0 = dense_motion(vectors, h, w, -1)
        nxt = self._l1_anchor(j)
        if nxt is not None:
            mv1, has_l1 = dense_motion(vectors, h, w, +1)
            only_l1 = has_l1 & ~has_l0
            if only_l1.any():
                mv[only_l1] = compose(mv1, self._own_motion(gop, nxt))[only_l1]
        gop.own[j] = mv
        return mv

    def _acc_motion(self, gop: _Gop, j: int, g: int) -> np.ndarray:
        """(H, W, 2) motion of frame ``j`` into the GOP's I-frame ``g``.

        L0 blocks (and intra blocks, with zero motion) chain through a reference picture before
        ``j`` (:meth:`_l0_candidates`); the L1-only blocks of a B-frame chain through the next
        anchor's accumulated motion.
        """
        if j in gop.acc:
            return gop.acc[j]
        h, w = self.height, self.width
        gop.busy.add(j)
        vectors = gop.vectors.get(j)
        mv0, has_l0 = dense_motion(vectors, h, w, -1)
        acc = self._chain(gop, j, g, mv0, self._l0_candidates(j, g))
        nxt = self._l1_anchor(j, accumulate=True)
        if nxt is not None and nxt not in gop.busy:
            mv1, has_l1 = dense_motion(vectors, h, w, +1)
            only_l1 = has_l1 & ~has_l0
            if only_l1.any():
                acc[only_l1] = self._chain(gop, j, g, mv1, [nxt])[only_l1]
        gop.busy.discard(j)
        gop.acc[j] = acc
        return acc

    def _l0_candidates(self, j: int, g: int) -> list[int]:
        """Pictures frame ``j``'s L0 vectors may point into, the default (``reference_of``) first.

        H.264 allows several reference pictures per list and FFmpeg does not export which one a
        block used: the nearest reference pictures of the GOP are candidates, and each 8x8 cell
        takes the one whose motion-compensated prediction matches the decoded frame best. Other
        codecs have a single reference.
        """
        first = self.index.reference_of(j)
        if self.codec != "h264" or first is None:
            return [first]
        refs = [k for k in range(j - 1, g - 1, -1) if self.index.reference[k]][:MAX_REFERENCES]
        return [first] + [k for k in refs if k != first]

    def _chain(self, gop: _Gop, j: int, g: int, mv: np.ndarray, candidates: list[int]) -> np.ndarray:
        """``mv`` (into one of ``candidates``, chosen per 8x8 cell) chained on to the I-frame ``g``."""
        candidates = [c for c in candidates if c not in gop.busy] or candidates[:1]
        fields = [mv.copy() if c == g else compose(mv, self._acc_motion(gop, c, g)) for c in candidates]
        if len(fields) == 1:
            return fields[0]
        frame, (h, w) = self._rgb(gop, j), mv.shape[:2]
        hc, wc = -(-h // 8), -(-w // 8)
        errors = []
        for c in candidates:  # per 8x8 cell: mean absolute prediction error, channels summed
            diff = cv2.absdiff(warp(self._rgb(gop, c), mv), frame).astype(np.float32)
            if (hc * 8, wc * 8) != (h, w):
                diff = cv2.copyMakeBorder(diff, 0, hc * 8 - h, 0, wc * 8 - w, cv2.BORDER_REPLICATE)
            errors.append(cv2.resize(diff, (wc, hc), interpolation=cv2.INTER_AREA).sum(-1))
        choice = np.argmin(np.stack(errors), axis=0).astype(np.uint8)  # ties: the default candidate
        pick = cv2.resize(choice, (wc * 8, hc * 8), interpolation=cv2.INTER_NEAREST)[:h, :w]
        out = fields[0]
        for k in range(1, len(fields)):
            cv2.copyTo(fields[k], (pick == k).view(np.uint8), out)
        return out

    def _compute(self, gop: _Gop, i: int, g: int, representation: str, accumulate: bool) -> np.ndarray:
        if representation == "iframe":
            return self._rgb(gop, g)
        if representation == "rgb":
            return self._rgb(gop, i)
        h, w = self.height, self.width
        if self.frame_types[i] == "I":
            shape = (h, w, 2) if representation == "mv" else (h, w, 3)
            return np.zeros(shape, np.float32 if representation == "mv" else np.int16)
        ref = g if accumulate else self.index.reference_of(i)
        mv = self._acc_motion(gop, i, g) if accumulate else self._own_motion(gop, i)
        if representation == "mv":
            return mv.copy()
        return residual(self._rgb(gop, i), warp(self._rgb(gop, ref), mv))
