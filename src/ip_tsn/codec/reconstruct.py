"""P inputs of one GOP: each frame's motion field and residual, from its decoded pictures and
FFmpeg's block vectors (the reader, :mod:`ip_tsn.codec.video`, decodes; this module computes).

Reference chain and B-frames. The reference of a P- or B-frame is the nearest *anchor* before it
in display order: an I- or P-frame, or a B-frame that other pictures refer to (H.264 B-pyramids,
``nal_ref_idc != 0``). FFmpeg does not export which picture of a reference list a block used, so
that choice defines the motion and the residual (which stays exact by construction). For each
pixel of a B-frame: the L0 (past) vector when its block has one; else the L1 (future) vector,
traced on through the next anchor's own motion back to the same past anchor when that next anchor
is not an I-frame; else (intra blocks, L1 into the next GOP's I-frame: an open GOP) zero motion
(per frame, :func:`l1_direct` keeps such L1 vectors, into that picture). So every frame
has one motion field relative to one reference frame, and accumulation chains fields anchor by
anchor back to the GOP's I-frame (CoViAR's accumulation, at sub-pixel precision).

Decode order. A picture can only predict from pictures decoded before it, so a frame's motion is
built only from frames decoded before it (its L0 candidates, :func:`l0_candidates`, and the next
anchor its L1-only blocks are traced through, :func:`l1_anchor`). No two frames' motions depend on
each other, the recursion ends, and nothing depends on the order frames are asked for.

Multiple references (H.264). When accumulating, a frame's L0 vectors may point into any of the
``MAX_REFERENCES`` nearest reference pictures of the GOP decoded before it (:func:`l0_candidates`;
in a B-pyramid a P-frame is decoded before the reference B-frames shown before it); each 8x8 cell
takes the candidate whose motion-compensated prediction matches the decoded frame's luma best
(:func:`best_reference`; luma rather than RGB: half the warping, and on the sample videos the same
choice on 96-99% of cells), ties going to the default reference (``VideoIndex.reference_of``).
Each pixel is then composed through its cell's candidate in one remap of the candidates' fields
stacked as tiles (``motion.compose_choice``, equal to composing through each candidate alone).
Per frame (``accumulate=False``) the same choice says which picture each cell's vector points
into, and the residual takes each pixel from that picture (:func:`own_sources`,
:func:`own_prediction`); a B-frame's L1-only blocks whose next anchor refers to another picture
keep their L1 vector into that anchor (:func:`l1_direct`).

Motion fields are (H, W, 2) float32 in :mod:`ip_tsn.codec.motion`'s convention: ``mv[y, x] =
(dx, dy)``, pixel ``(x, y)`` comes from ``(x + dx, y + dy)`` of the reference.

Reduced size. A GOP decoded at 1 / ``factor`` of its size (``CompressedVideo(min_side=...)``) is
reconstructed at that size: blocks, vectors and the reference-choice cells scaled by ``factor``;
the ``mv`` handed out is in the source's pixels again (model inputs do not depend on the factor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

from .index import VideoIndex
from .motion import compose, compose_choice, dense_motion, residual, sampling_maps, warp, warp_planes

MAX_REFERENCES = 3  # H.264 reference pictures tried per 8x8 cell when accumulating
CELL = 8  # side of the cells the reference choice is made on (FFmpeg's smallest exported block)


@dataclass
class GopMotion:
    """One GOP as reconstruction reads it, and the motion fields it has computed.

    Keys are display indices. ``vectors``: FFmpeg's ``MOTION_VECTORS`` side data of each decoded
    frame (structured array, None for none); ``rgb(j)``: (H, W, 3) uint8 RGB of decoded frame
    ``j``; ``own`` / ``acc``: (H, W, 2) float32 motion into the frame's reference / into the GOP's
    I-frame ``start``; ``grey``: (H, W) uint8 luma of the pictures :meth:`luma` has made;
    ``choice``: per frame its cells' reference choice among :func:`l0_candidates`
    (:func:`l0_choice`); ``sources``: per frame the picture each pixel of its own motion points
    into (:func:`own_sources`).
    ``factor``: the pictures are 1 / ``factor`` of the video's size (H = ceil(height / factor)),
    and so are the motion fields, in those pictures' pixels.
    """

    index: VideoIndex
    start: int
    vectors: dict[int, np.ndarray | None]
    rgb: Callable[[int], np.ndarray]
    factor: int = 1
    own: dict[int, np.ndarray] = field(default_factory=dict)
    acc: dict[int, np.ndarray] = field(default_factory=dict)
    grey: dict[int, np.ndarray] = field(default_factory=dict)
    choice: dict[int, np.ndarray] = field(default_factory=dict)
    sources: dict[int, np.ndarray | None] = field(default_factory=dict)

    def luma(self, j: int) -> np.ndarray:
        """(H, W) uint8 luma of decoded frame ``j`` (OpenCV's RGB -> grey), what the reference
        choice matches on; kept, as each picture is a candidate for several frames."""
        if j not in self.grey:
            self.grey[j] = cv2.cvtColor(self.rgb(j), cv2.COLOR_RGB2GRAY)
        return self.grey[j]

    @property
    def height(self) -> int:
        return -(-self.index.height // self.factor)

    @property
    def width(self) -> int:
        return -(-self.index.width // self.factor)


# ------------------------------------------------------------------ which pictures a frame refers to
def l1_anchor(index: VideoIndex, j: int, accumulate: bool = False) -> int | None:
    """The next reference picture a B-frame's L1-only blocks are traced through, or None.

    It must be decoded before ``j`` (else ``j``'s L1 vectors cannot point into it) and not be an
    I-frame (no motion to trace through). Per frame (``accumulate=False``) its own reference must
    be the B-frame's reference, so that the two motions compose; when accumulating, both sides are
    traced to the I-frame, so any such anchor will do.
    """
    if index.frame_types[j] != "B":
        return None
    nxt = index.anchor_after(j)
    if nxt is None or index.frame_types[nxt] == "I" or not index.decoded_before(nxt, j):
        return None
    if not accumulate and index.reference_of(nxt) != index.reference_of(j):
        return None
    return nxt


def l1_direct(index: VideoIndex, j: int) -> int | None:
    """The next anchor a B-frame's L1-only blocks point into where, per frame, their motion cannot
    be traced on, or None: that anchor's own reference is not the B-frame's (an H.264 B-pyramid),
    or it is the next GOP's I-frame, decoded before the B-frame (an open GOP: H.264, MPEG-1/2;
    not MPEG-4 Part 2, whose B vectors are derived, :mod:`~ip_tsn.codec.mpeg4_direct`). Their L1
    vectors then stay as they are, into that anchor (:func:`own_motion`, :func:`own_sources`)."""
    if index.frame_types[j] != "B" or l1_anchor(index, j) is not None:
        return None
    nxt = index.anchor_after(j)
    if nxt is None or not index.decoded_before(nxt, j):
        return None
    if index.frame_types[nxt] == "I":
        return nxt if index.codec != "mpeg4" else None
    return nxt


def l0_candidates(index: VideoIndex, j: int, g: int) -> list[int]:
    """Pictures frame ``j``'s L0 vectors may point into, the default (``reference_of``) first.

    H.264 allows several reference pictures per list and FFmpeg does not export which one a
    block used: the ``MAX_REFERENCES`` nearest reference pictures of the GOP (I-frame ``g``) before
    ``j`` that are decoded before it are candidates (in a B-pyramid a P-frame is decoded before the
    reference B-frames shown before it, so it cannot refer to them). Other codecs have a single
    reference.
    """
    first = index.reference_of(j)
    if index.codec != "h264" or first is None:
        return [first]
    refs: list[int] = []
    for k in range(j - 1, g - 1, -1):  # nearest first
        if index.reference[k] and index.decoded_before(k, j):
            refs.append(k)
            if len(refs) == MAX_REFERENCES:
                break
    return [first] + [k for k in refs if k != first]


def frames_needed(index: VideoIndex, targets: Sequence[int], g: int, representation: str,
                  accumulate: bool) -> set[int]:
    """Display indices whose decoded frames (or vectors) computing frames ``targets`` of GOP ``g``
    uses (for ``representation``, accumulated or per frame)."""
    if representation == "iframe":
        return {g}
    need: set[int] = set()
    for i in targets:
        if representation == "rgb" or index.frame_types[i] == "I":
            need.add(i)
            continue
        # accumulating, what a frame needs does not depend on the target: walk each frame once
        seen, todo = (need if accumulate else set()), [i]
        while todo:
            j = todo.pop()
            if j in seen:
                continue
            seen.add(j)
            if index.reference_of(j) is not None and accumulate:
                todo += l0_candidates(index, j, g)  # the whole chain back to the I-frame
            elif index.reference_of(j) is not None:  # only their pixels: the reference choice, the residual
                seen.update(l0_candidates(index, j, g))
                direct = l1_direct(index, j)
                if direct is not None:
                    seen.add(direct)
            nxt = l1_anchor(index, j, accumulate)
            if nxt is not None:
                todo.append(nxt)
        need |= seen
    return need


# ------------------------------------------------------------------ motion fields
def own_motion(gop: GopMotion, j: int) -> np.ndarray:
    """(H, W, 2) motion of frame ``j`` into its reference frame (``VideoIndex.reference_of``).

    L0 blocks keep their vector; a B-frame's L1-only blocks are composed with the next anchor's
    own motion (:func:`l1_anchor`), or keep their L1 vector where that cannot be traced on
    (:func:`l1_direct`); intra blocks get zero motion. In H.264 a pixel's motion may point into
    another reference picture than ``reference_of(j)``: :func:`own_sources` says which.
    """
    if j in gop.own:
        return gop.own[j]
    h, w, f = gop.height, gop.width, gop.factor
    vectors = gop.vectors.get(j)
    mv, has_l0 = dense_motion(vectors, h, w, -1, f)
    nxt = l1_anchor(gop.index, j)
    if nxt is not None or l1_direct(gop.index, j) is not None:
        mv1, has_l1 = dense_motion(vectors, h, w, +1, f)
        only_l1 = has_l1 & ~has_l0
        if only_l1.any():
            cv2.copyTo(mv1 if nxt is None else compose(mv1, own_motion(gop, nxt)), only_l1.view(np.uint8), mv)
    gop.own[j] = mv
    return mv


def own_sources(gop: GopMotion, j: int) -> np.ndarray | None:
    """(H, W) int32: the display index of the picture each pixel of :func:`own_motion` of frame
    ``j`` points into, or None where that is ``reference_of(j)`` for every pixel (one reference
    picture: every codec but H.264, and H.264 frames whose cells all use the default).

    H.264 cells with L0 vectors (and intra cells) take their :func:`l0_choice`; a B-frame's
    L1-only pixels point where their L1 vector lands in the next anchor, into that pixel's picture,
    or into the next anchor itself (:func:`l1_direct`).
    """
    if j in gop.sources:
        return gop.sources[j]
    idx, h, w = gop.index, gop.height, gop.width
    ref, out = idx.reference_of(j), None
    choice = l0_choice(gop, j)
    if choice is not None and choice.any():
        cell = CELL // gop.factor
        picked = np.asarray(l0_candidates(idx, j, gop.start), np.int32)[choice]
        out = np.ascontiguousarray(picked.repeat(cell, axis=0).repeat(cell, axis=1)[:h, :w])
    nxt, direct = l1_anchor(idx, j), l1_direct(idx, j)
    if nxt is not None or direct is not None:  # L1-only pixels, as own_motion builds them
        landed = None if nxt is None else own_sources(gop, nxt)
        vectors = gop.vectors.get(j)
        mv1, has_l1 = dense_motion(vectors, h, w, +1, gop.factor)
        only_l1 = has_l1 & ~dense_motion(vectors, h, w, -1, gop.factor)[1]
        if only_l1.any() and (out is not None or landed is not None or direct is not None):
            out = np.full((h, w), ref, np.int32) if out is None else out
            if landed is None:
                out[only_l1] = ref if direct is None else direct
            else:
                xs, ys = sampling_maps(mv1)
                qx = np.clip(np.rint(xs[only_l1]), 0, w - 1).astype(np.intp)
                qy = np.clip(np.rint(ys[only_l1]), 0, h - 1).astype(np.intp)
                out[only_l1] = landed[qy, qx]
    if out is not None and (out == ref).all():
        out = None
    gop.sources[j] = out
    return out


def own_prediction(gop: GopMotion, j: int) -> np.ndarray:
    """(H, W, 3) uint8: frame ``j`` predicted by its own motion, each pixel from the picture it
    points into (:func:`own_sources`; ``warp(rgb(reference_of(j)), own_motion)`` where one)."""
    mv, sources = own_motion(gop, j), own_sources(gop, j)
    if sources is None:
        return warp(gop.rgb(gop.index.reference_of(j)), mv)
    maps = sampling_maps(mv)
    out = np.empty((gop.height, gop.width, 3), np.uint8)
    for k in np.unique(sources):
        cv2.copyTo(warp(gop.rgb(int(k)), mv, maps), (sources == k).view(np.uint8), out)
    return out


def accumulated_motion(gop: GopMotion, j: int) -> np.ndarray:
    """(H, W, 2) motion of frame ``j`` into the GOP's I-frame ``gop.start``.

    L0 blocks (and intra blocks, with zero motion) chain through a reference picture before
    ``j`` (:func:`l0_candidates`, chosen per 8x8 cell); the L1-only blocks of a B-frame chain
    through the next anchor's accumulated motion.
    """
    if j in gop.acc:
        return gop.acc[j]
    h, w, f, g = gop.height, gop.width, gop.factor, gop.start
    vectors = gop.vectors.get(j)
    mv0, has_l0 = dense_motion(vectors, h, w, -1, f)
    acc = chain(gop, j, mv0, l0_candidates(gop.index, j, g))
    nxt = l1_anchor(gop.index, j, accumulate=True)
    if nxt is not None:
        mv1, has_l1 = dense_motion(vectors, h, w, +1, f)
        only_l1 = has_l1 & ~has_l0
        if only_l1.any():
            cv2.copyTo(chain(gop, j, mv1, [nxt]), only_l1.view(np.uint8), acc)
    gop.acc[j] = acc
    return acc


def chain(gop: GopMotion, j: int, mv: np.ndarray, candidates: list[int]) -> np.ndarray:
    """(H, W, 2) ``mv`` of frame ``j`` (into one of ``candidates``, chosen per 8x8 cell by
    :func:`best_reference`) chained on to the GOP's I-frame."""
    g = gop.start
    # every candidate's accumulated motion first, in order (what is memoised depends on the order)
    chained = [None if c == g else accumulated_motion(gop, c) for c in candidates]
    maps = sampling_maps(mv)  # one set of sampling maps for every warp by mv
    if len(candidates) == 1:
        return mv.copy() if chained[0] is None else compose(mv, chained[0], maps)
    choice = cell_choice(gop, j, mv, candidates, maps)
    gop.choice[j] = choice  # several candidates are L0's: the choice l0_choice hands the device path
    cell = CELL // gop.factor
    h, w = mv.shape[:2]
    per_pixel = cv2.resize(choice, (choice.shape[1] * cell, choice.shape[0] * cell),
                           interpolation=cv2.INTER_NEAREST)[:h, :w]
    return compose_choice(mv, chained, maps, per_pixel)  # the I-frame's field is zero: None


def cell_choice(gop: GopMotion, j: int, mv: np.ndarray, candidates: list[int],
                maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(ceil(H / cell), ceil(W / cell)) uint8: per cell, the index into ``candidates`` that frame
    ``j``'s motion ``mv`` (H, W, 2) predicts from (:func:`best_reference` on luma)."""
    maps = sampling_maps(mv) if maps is None else maps
    predictions = warp_planes([gop.luma(c) for c in candidates], mv, maps)
    return best_reference(gop.luma(j), predictions, CELL // gop.factor)


def l0_choice(gop: GopMotion, j: int) -> np.ndarray | None:
    """Frame ``j``'s per-cell choice among :func:`l0_candidates` when accumulating (as
    :func:`chain` makes it; (Hc, Wc) uint8 indices, Hc = ceil(H / 8) at full size), or None where
    it has a single candidate."""
    candidates = l0_candidates(gop.index, j, gop.start)
    if len(candidates) < 2:
        return None
    if j not in gop.choice:
        mv, _ = dense_motion(gop.vectors.get(j), gop.height, gop.width, -1, gop.factor)
        gop.choice[j] = cell_choice(gop, j, mv, candidates)
    return gop.choice[j]


def best_reference(frame: np.ndarray, predictions: list[np.ndarray], cell: int = CELL) -> np.ndarray:
    """(ceil(H / cell), ceil(W / cell)) uint8: per cell x cell block, the index of the prediction that
    matches ``frame`` best (sum of absolute differences over the cell's pixels and channels, edge
    cells padded by replication; ties: the lowest index).

    Args:
        frame: (H, W) or (H, W, C) uint8 decoded frame (the reconstruction passes luma).
        predictions: motion-compensated predictions of ``frame``'s shape, one per candidate.
        cell: 8 at full size, 8 / factor in a picture decoded at 1 / factor.
    """
    h, w = frame.shape[:2]
    c = frame.shape[2] if frame.ndim == 3 else 1
    hc, wc = -(-h // cell), -(-w // cell)
    errors = []
    for prediction in predictions:
        diff = cv2.absdiff(prediction, frame)
        if (hc * cell, wc * cell) != (h, w):
            diff = cv2.copyMakeBorder(diff, 0, hc * cell - h, 0, wc * cell - w, cv2.BORDER_REPLICATE)
        rows = diff.reshape(hc, cell, wc * cell * c).sum(axis=1, dtype=np.uint16)  # (hc, W * C): <= 8 * 255
        errors.append(rows.reshape(hc, wc, cell * c).sum(axis=2, dtype=np.uint32))  # exact integer sums
    return np.argmin(np.stack(errors), axis=0).astype(np.uint8)  # ties: the default candidate


# ------------------------------------------------------------------ the representations
def representation_of(gop: GopMotion, i: int, representation: str, accumulate: bool) -> np.ndarray:
    """One representation of frame ``i`` of the GOP (see ``CompressedVideo.load``).

    Returns ``"iframe"``: (H, W, 3) uint8 RGB of the GOP's I-frame; ``"rgb"``: (H, W, 3) uint8 of
    frame ``i``; ``"mv"``: (H, W, 2) float32 motion into the I-frame (``accumulate``) or into the
    frame's reference (H.264: per pixel the picture :func:`own_sources` names), in the source's
    pixels (whatever ``gop.factor``); ``"residual"``: (H, W, 3) int16 frame minus ``warp(reference,
    mv)`` (per frame: :func:`own_prediction`). An I-frame's ``mv`` and ``residual`` are zeros.
    """
    g = gop.start
    if representation == "iframe":
        return gop.rgb(g)
    if representation == "rgb":
        return gop.rgb(i)
    h, w = gop.height, gop.width
    if gop.index.frame_types[i] == "I":
        shape = (h, w, 2) if representation == "mv" else (h, w, 3)
        return np.zeros(shape, np.float32 if representation == "mv" else np.int16)
    mv = accumulated_motion(gop, i) if accumulate else own_motion(gop, i)
    if representation == "mv":
        if gop.factor > 1:
            return mv * gop.factor
        view = mv.view()  # the memoised field itself, not a copy: read-only, so it stays what it is
        view.flags.writeable = False
        return view
    return residual(gop.rgb(i), warp(gop.rgb(g), mv) if accumulate else own_prediction(gop, i))
