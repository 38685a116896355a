"""Worker side of ``reconstruct: device``: what a P-stream frame's reconstruction needs, compactly.

For each sampled frame ``i`` (display order) with its *root* picture ``r`` (the GOP's I-frame when
accumulating, else ``i``'s own reference) the worker only demuxes and decodes, and delivers:

- ``frame`` / ``root``: the decoded pictures of ``i`` and ``r``, only the part the sample's view
  reads (``frame``: the view's box mapped back to the source, :func:`source_window`; ``root``: that
  box widened by how far the frame's motion can reach), flat uint8: per picture the Y, U and V
  windows of the decoder's own 4:2:0 planes (1.5 bytes a pixel; the device turns them into the
  CPU path's RGB through FFmpeg's measured table, ``codec.frames.yuv420_rgb_table``), or RGB
  windows (3 bytes a pixel) where the frames are not yuv420p; ``pict`` (12,) int64 says which
  (:data:`PICT`);
- ``chain``: the L0 block vectors of the anchors that lead from ``r`` to ``i`` (oldest first, ``i``
  last), painted on the 8x8 cell grid in quarter pixels, the K frames' chains one after another,
  (sum of depths, 2, Hc, Wc) int16 (Hc = ceil(H / 8)), ``depths`` (K,) int16 their lengths;
- for the L B-frames whose L1-only blocks are traced through the next anchor ``n`` (a P-frame with
  the same reference; ``use_l1`` (K,) bool says which): ``l1`` (L, 2, Hc, Wc) int16 (their L1
  vectors), ``only_l1`` (L, Hc, Wc) bool (cells with an L1 and no L0 vector) and ``nxt`` (L, 2, Hc,
  Wc) int16 (``n``'s L0 vectors);
- H.264 with several reference pictures (accumulating): ``choice`` (sum of depths, Hc, Wc) int16,
  per chain step and cell the step before it that the cell is chained through (0: the nearest, up
  to ``MAX_REFERENCES`` - 1; the root counts as a step), the choice codec makes
  (``CompressedVideo.reference_choices``), and ``nxt_choice`` (L, Hc, Wc) the same for each ``n``;
  both empty (0 rows) for a sample without such choices.

No dense or float field is built here: ``device_reconstruct`` turns these into the motion and the
residual ``CompressedVideo.load`` gives, bit for bit. The cell painting is codec's own rule
(``codec/motion.py``'s ``paint_block_cells``: a block's vector on every cell it covers, intra cells
zero, later blocks over earlier ones). What the device path cannot reproduce makes :func:`plan_frame` return None, and the
sample takes the CPU path: accumulated H.264 frames one of whose steps may pick a reference picture
that is not a step before it (a reference B-frame of a B-pyramid), B-frames traced through a
reference B-frame, unaligned blocks and motion scales other than 1, 2 or 4, and videos decoded at a
reduced size (``CompressedVideo.factor`` > 1: huge inputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..codec import CompressedVideo
from ..codec.motion import paint_block_cells
from ..codec.reconstruct import MAX_REFERENCES, l0_candidates, l1_anchor
from .transforms import view_boxes

CELL = 8  # FFmpeg's motion blocks are 8 or 16 px, on the 8-px grid
QUARTER = 4  # cell vectors are stored in quarter pixels
AUG_EVAL, AUG_CROP, AUG_VIEW = 0, 1, 2  # a packed sample's augmentation: test views, TSN crop, fixed view
PACKED = "packed"  # the sample / batch key of packed inputs (a batch: a list, None where a worker took the CPU path)
RGB, YUV420 = 0, 1  # how a packed sample's pictures are stored
#: A packed sample's ``pict``: the pictures' format and colorspace tag, the decoded size, and the
#: ``frame`` and ``root`` windows (top, left, height, width; even top / left, in source pixels).
PICT = ("format", "colorspace", "h", "w", "fy", "fx", "fh", "fw", "ry", "rx", "rh", "rw")


@dataclass(frozen=True)
class FramePlan:
    """How frame ``frame`` is rebuilt: L0 motion chained through ``anchors`` (oldest first) back to
    ``root``; with ``nxt``, its L1-only cells through the next anchor ``nxt``. ``multi``: some step
    (or ``nxt``) picks per cell among the steps before it (H.264's several reference pictures)."""

    frame: int
    root: int
    anchors: tuple[int, ...]
    nxt: int | None
    multi: bool = False


def _chains_through(video: CompressedVideo, j: int, before: list[int], g: int) -> int | None:
    """How many candidates frame ``j``'s accumulated L0 motion picks among (codec's rule,
    :func:`~ip_tsn.codec.reconstruct.l0_candidates`), or None unless they are the last steps of
    ``before`` (the root and anchors before ``j``, oldest first), nearest first: then candidate k is
    the step k + 1 back, which the device's rebuild keeps."""
    candidates = l0_candidates(video.index, j, g)
    if len(candidates) > len(before) or candidates != before[::-1][: len(candidates)]:
        return None
    return len(candidates)


def plan_frame(video: CompressedVideo, i: int, accumulate: bool) -> FramePlan | None:
    """The reconstruction plan of P/B-frame ``i``, or None where only the CPU path reproduces it."""
    idx, types = video.index, video.frame_types
    ref = idx.reference_of(i)
    if ref is None:
        return None
    g = video.gop_of(i)
    anchors: list[int] = []
    counts: list[int | None] = []
    if accumulate:
        k = ref
        while k != g:
            if types[k] != "P":
                return None
            anchors.append(k)
            nk = idx.reference_of(k)
            if nk is None or nk < g:
                return None
            k = nk
        anchors.reverse()
        steps = [g, *anchors, i]
        counts = [_chains_through(video, j, steps[:t], g) for t, j in enumerate(steps) if t > 0]
    nxt = l1_anchor(video.index, i, accumulate)
    if nxt is not None:
        if types[nxt] != "P" or idx.reference_of(nxt) != ref:
            return None
        if accumulate:
            counts.append(_chains_through(video, nxt, [g, *anchors], g))
    if any(c is None for c in counts):
        return None
    return FramePlan(i, g if accumulate else ref, tuple(anchors), nxt, any(c > 1 for c in counts))  # type: ignore[operator]


def paint_cells(vectors: np.ndarray | None, height: int, width: int,
                source: int) -> tuple[np.ndarray, np.ndarray] | None:
    """FFmpeg block vectors of list ``source`` (-1 L0, +1 L1) on the 8x8 cell grid: ``(cells (2,
    Hc, Wc) int16 quarter pixels (dx, dy), covered (Hc, Wc) bool)``, or None (unaligned blocks,
    a motion scale other than 1, 2, 4, or a vector beyond int16)."""
    hc, wc = -(-height // CELL), -(-width // CELL)
    cells, has = np.zeros((hc + 2, wc + 2, 2), np.int32), np.zeros((hc + 2, wc + 2), bool)
    v = None if vectors is None or len(vectors) == 0 else vectors[np.sign(vectors["source"]) == source]
    if v is not None and len(v):
        scale = v["motion_scale"].astype(np.int64)
        if np.any((scale != 1) & (scale != 2) & (scale != 4)):
            return None
        qx = v["motion_x"].astype(np.int64) * (QUARTER // scale)
        qy = v["motion_y"].astype(np.int64) * (QUARTER // scale)
        if max(np.abs(qx).max(), np.abs(qy).max()) > np.iinfo(np.int16).max:
            return None
        bw, bh = v["w"].astype(np.int64), v["h"].astype(np.int64)
        x0, y0 = v["dst_x"].astype(np.int64) - bw // 2, v["dst_y"].astype(np.int64) - bh // 2
        if np.any(x0 % CELL) or np.any(y0 % CELL) or np.any(bw % CELL) or np.any(bh % CELL):
            return None
        cells, has = paint_block_cells(np.stack([qx, qy], axis=1).astype(np.int32), x0 // CELL, y0 // CELL,
                                       bw // CELL, bh // CELL, height, width)
    return np.ascontiguousarray(cells[:hc, :wc].transpose(2, 0, 1)).astype(np.int16), has[:hc, :wc]


def _vectors(video: CompressedVideo, j: int, found: dict[int, np.ndarray | None]) -> np.ndarray | None:
    v = found[j]
    if v is None and video.frame_types[j] != "I":
        video.require_motion()  # raises, naming the file, where the codec exports no vectors
    return v


def _span(start: int, size: int, source: int, scaled: int) -> tuple[int, int]:
    """Source rows (or columns) ``[lo, hi)`` that rows ``[start, start + size)`` of a bilinear
    resize (align_corners False, 2 taps) from ``source`` to ``scaled`` read, with 1 px of slack."""
    if source == scaled:
        return start, start + size
    s = source / scaled
    lo = math.floor(max(0.0, (start + 0.5) * s - 0.5)) - 1
    hi = math.floor(max(0.0, (start + size - 0.5) * s - 0.5)) + 3  # the second tap, exclusive end, slack
    return max(0, lo), min(source, hi)


def _even(lo: int, hi: int, size: int) -> tuple[int, int]:
    """``[lo, hi)`` widened to an even start and an even end (or the edge): whole 4:2:0 chroma samples."""
    return lo - lo % 2, min(size, hi + hi % 2)


def source_window(aug: Sequence[int], height: int, width: int, scaled: tuple[int, int], crop_size: int,
                  train_views: int | None, flip: bool) -> tuple[int, int, int, int]:
    """The part ``(top, left, h, w)`` of a ``height`` x ``width`` source frame that a sample's view
    reads, once resized to ``scaled`` (H', W'): a TSN crop's box or a fixed view's box mapped back
    through the resize (even-aligned); the whole frame for the test views."""
    if aug[0] == AUG_VIEW:
        top, left, h, w = view_boxes(*scaled, crop_size, train_views)[aug[6] // 2 if flip else aug[6]]  # type: ignore[arg-type]
    elif aug[0] == AUG_CROP:
        top, left, h, w = (int(a) for a in aug[1:5])
    else:
        return 0, 0, height, width
    y0, y1 = _even(*_span(top, h, height, scaled[0]), height)
    x0, x1 = _even(*_span(left, w, width, scaled[1]), width)
    return y0, x0, y1 - y0, x1 - x0


def _compose_bounds(cells: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell bounds of ``mv(p) + ref(p + mv(p))`` (``device_reconstruct.compose``) from per-cell
    bounds ``lo`` / ``hi`` (2, Hc, Wc) pixels of ``ref``, ``cells`` (2, Hc, Wc) quarter pixels: the
    8 pixels of cell c along an axis, moved by its quarter-pixel vector (exact on remap's 1/32 grid),
    and their second bilinear tap span 9 pixels from floor(8 c + mv): the 2x2 cells from
    floor((8 c + mv) / 8) (clamped: replicated border). A bilinear sample lies within the bounds
    of what it mixes."""
    hc, wc = cells.shape[1:]
    mv = cells.astype(np.float64) / QUARTER
    y0 = np.floor((np.arange(hc)[:, None] * CELL + mv[1]) / CELL).astype(np.int64)
    x0 = np.floor((np.arange(wc)[None, :] * CELL + mv[0]) / CELL).astype(np.int64)
    low, high = np.full_like(mv, np.inf), np.full_like(mv, -np.inf)
    for dy in range(2):
        yy = np.clip(y0 + dy, 0, hc - 1)
        for dx in range(2):
            xx = np.clip(x0 + dx, 0, wc - 1)
            low, high = np.minimum(low, lo[:, yy, xx]), np.maximum(high, hi[:, yy, xx])
    return mv + low, mv + high


def _through_bounds(cells: np.ndarray, ring: list[tuple[np.ndarray, np.ndarray]],
                    choice: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_compose_bounds` of a step composed through ``ring[choice]`` per cell (``ring``: the
    bounds of the steps before it, nearest first; ``choice`` (Hc, Wc) or None: the nearest)."""
    if choice is None or not choice.any():
        return _compose_bounds(cells, *ring[0])
    each = [_compose_bounds(cells, *ring[k]) for k in range(int(choice.max()) + 1)]
    return (np.choose(choice, [b[0] for b in each]), np.choose(choice, [b[1] for b in each]))


def motion_bounds(chain: np.ndarray, l1: np.ndarray | None, nxt: np.ndarray | None,
                  choice: np.ndarray | None = None, nxt_choice: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell bounds ``(lo, hi)`` (2, Hc, Wc) pixels of one packed frame's rebuilt motion: its
    ``chain`` (D, 2, Hc, Wc) of steps (and, given, the L1 path through ``l1`` and ``nxt``)
    composed as ``device_reconstruct.rebuild`` composes them, each step (and ``nxt``) through the
    step its ``choice`` (D, Hc, Wc) (``nxt_choice`` (Hc, Wc)) names per cell, given."""
    zero = np.zeros((2, *chain.shape[2:]))
    ring = [(zero, zero)] * MAX_REFERENCES  # the steps before, nearest first (the root's motion is zero)
    for t, step in enumerate(chain[:-1]):
        ring = [_through_bounds(step, ring, None if choice is None else choice[t]), *ring[:-1]]
    out_lo, out_hi = _through_bounds(chain[-1], ring, None if choice is None else choice[-1])
    if l1 is not None and nxt is not None:
        t_lo, t_hi = _compose_bounds(l1, *_through_bounds(nxt, ring, nxt_choice))
        out_lo, out_hi = np.minimum(out_lo, t_lo), np.maximum(out_hi, t_hi)
    return out_lo, out_hi


def root_window(bounds: list[tuple[np.ndarray, np.ndarray]], window: tuple[int, int, int, int], height: int,
                width: int) -> tuple[int, int, int, int]:
    """The part of the root pictures that warping the frames' ``window`` reads: each pixel p of the
    window's cells reads p + mv(p) and the next pixel (``warp_pictures``), mv within the cell's
    ``bounds`` (one (lo, hi) per frame, :func:`motion_bounds`), plus 1 px of slack; even-aligned."""
    fy, fx, fh, fw = window
    cy, cx = slice(fy // CELL, -(-(fy + fh) // CELL)), slice(fx // CELL, -(-(fx + fw) // CELL))
    lo = np.min([b[0][:, cy, cx].min(axis=(1, 2)) for b in bounds], axis=0)  # (dx, dy)
    hi = np.max([b[1][:, cy, cx].max(axis=(1, 2)) for b in bounds], axis=0)
    y0 = max(0, math.floor(cy.start * CELL + lo[1]) - 1)
    y1 = min(height, math.floor(min(height, cy.stop * CELL) - 1 + hi[1]) + 3)
    x0 = max(0, math.floor(cx.start * CELL + lo[0]) - 1)
    x1 = min(width, math.floor(min(width, cx.stop * CELL) - 1 + hi[0]) + 3)
    y0, y1 = _even(min(y0, height - 1), max(y1, y0 + 1), height)
    x0, x1 = _even(min(x0, width - 1), max(x1, x0 + 1), width)
    return y0, x0, y1 - y0, x1 - x0


def _pictures(video: CompressedVideo, pairs: list[tuple[int, int]], found: dict[int, tuple | None],
              boxes: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frame, root, pict)`` of K (frame, root) ``pairs``: the frames' and the roots' ``boxes``
    (top, left, h, w), flat (module docstring); 4:2:0 where every picture's planes are in ``found``
    (``CompressedVideo.planes``) with one colorspace tag, else RGB."""
    planes = [found[j] for pair in pairs for j in pair]
    spaces = {p[0] for p in planes if p is not None}
    yuv = all(p is not None for p in planes) and len(spaces) == 1
    h, w = planes[0][1].shape if yuv else video.load(pairs[0][0], "rgb").shape[:2]  # type: ignore[index]
    parts: list[list[np.ndarray]] = [[], []]
    for which, (y, x, bh, bw) in enumerate(boxes):
        for pair in pairs:
            if yuv:
                _, py, pu, pv = found[pair[which]]  # type: ignore[misc]
                parts[which] += [py[y : y + bh, x : x + bw].ravel(),
                                 pu[y // 2 : (y + bh + 1) // 2, x // 2 : (x + bw + 1) // 2].ravel(),
                                 pv[y // 2 : (y + bh + 1) // 2, x // 2 : (x + bw + 1) // 2].ravel()]
            else:
                parts[which].append(video.load(pair[which], "rgb")[y : y + bh, x : x + bw].ravel())
    pict = np.array([YUV420 if yuv else RGB, spaces.pop() if yuv else 0, h, w, *boxes[0], *boxes[1]], np.int64)
    return np.concatenate(parts[0]), np.concatenate(parts[1]), pict


def pack_frames(video: CompressedVideo, index: np.ndarray, accumulate: bool,
                window: tuple[int, int, int, int] | None = None) -> dict[str, np.ndarray] | None:
    """The packed inputs of frames ``index`` (K,) (module docstring), pictures cut to ``window``
    (``(top, left, h, w)`` of the source frame, :func:`source_window`; None: whole); None if any
    frame needs the CPU path. Decodes each GOP once."""
    if video.factor > 1:
        return None
    plans = [plan_frame(video, int(i), accumulate) for i in index]
    if any(p is None for p in plans):
        return None
    h, w = video.height, video.width
    k_count = len(plans)
    chains: list = [None] * k_count
    l1s: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    gops = [video.gop_of(p.frame) for p in plans]  # type: ignore[union-attr]
    planes: dict[int, tuple | None] = {}
    for g in sorted(set(gops)):  # GOP by GOP: the video's GOP cache then decodes each once
        members = [k for k, gk in enumerate(gops) if gk == g]
        wanted = sorted({j for k in members for j in (*plans[k].anchors, plans[k].frame,  # type: ignore[union-attr]
                                                       *([plans[k].nxt] if plans[k].nxt is not None else []))})
        found = dict(zip(wanted, video.block_vectors(wanted)))
        pictures = sorted({j for k in members for j in (plans[k].frame, plans[k].root)})  # type: ignore[union-attr]
        planes.update(zip(pictures, video.planes(pictures)))  # while the GOP is decoded
        for k in members:
            p = plans[k]
            assert p is not None
            steps = [paint_cells(_vectors(video, j, found), h, w, -1) for j in (*p.anchors, p.frame)]
            if any(s is None for s in steps):
                return None
            chains[k] = np.stack([step[0] for step in steps])  # type: ignore[index]
            if p.nxt is not None:
                l1 = paint_cells(_vectors(video, p.frame, found), h, w, +1)
                nxt = paint_cells(_vectors(video, p.nxt, found), h, w, -1)
                if l1 is None or nxt is None:
                    return None
                l1s[k] = (l1[0], nxt[0], l1[1] & ~steps[-1][1])  # type: ignore[index]
    used = sorted(l1s)
    hc, wc = chains[0].shape[2:]
    multi = any(p.multi for p in plans)  # type: ignore[union-attr]
    choices, nxt_choices = [np.zeros((0, hc, wc), np.int16)] * k_count, {}
    if multi:  # every step's choice among the steps before it (zero: the nearest, one candidate)
        for k, p in enumerate(plans):
            assert p is not None
            made = video.reference_choices([*p.anchors, p.frame, *([p.nxt] if p.nxt is not None else [])])
            made = [np.zeros((hc, wc), np.int16) if c is None else c.astype(np.int16) for c in made]
            choices[k] = np.stack(made[: len(p.anchors) + 1])
            if p.nxt is not None:
                nxt_choices[k] = made[-1]
    out = {"chain": np.concatenate(chains), "depths": np.array([len(c) for c in chains], np.int16),
           "l1": np.array([l1s[k][0] for k in used], np.int16).reshape(-1, 2, hc, wc),
           "nxt": np.array([l1s[k][1] for k in used], np.int16).reshape(-1, 2, hc, wc),
           "only_l1": np.array([l1s[k][2] for k in used], bool).reshape(-1, hc, wc),
           "use_l1": np.array([k in l1s for k in range(k_count)], bool),
           "choice": np.concatenate(choices),
           "nxt_choice": np.array([nxt_choices[k] for k in used] if multi else [], np.int16).reshape(-1, hc, wc)}
    window = window or (0, 0, h, w)
    bounds = [motion_bounds(chains[k], *(l1s[k][:2] if k in l1s else (None, None)),
                            choices[k] if multi else None, nxt_choices.get(k)) for k in range(k_count)]
    pairs = [(p.frame, p.root) for p in plans]  # type: ignore[union-attr]
    boxes = (window, root_window(bounds, window, h, w))
    out["frame"], out["root"], out["pict"] = _pictures(video, pairs, planes, boxes)
    return out
