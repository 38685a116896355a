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
- ``chain``: per frame its *steps*, every picture its motion is built from (the anchors that lead
  from ``r`` to ``i``; in an H.264 B-pyramid the reference B-frames too; a B-frame's next anchor),
  in decode order with ``i`` last (:func:`plan_frame`), their L0 block vectors painted on the 8x8
  cell grid in quarter pixels, the K frames' steps one after another, (S, 2, Hc, Wc) int16
  (S = sum of depths, Hc = ceil(H / 8)), ``depths`` (K,) int16 the frames' step counts;
- ``sources`` (S, ``MAX_REFERENCES``) int16: per step, where each of its candidate reference pictures
  (``codec.reconstruct.l0_candidates``, the default first) is, as a number of steps back (0: the
  step just before; -1: the root, zero motion); a single candidate is repeated;
- ``choice`` (S, Hc, Wc) int16: per step and cell the candidate it is chained through (H.264's
  several reference pictures, the choice codec makes: ``CompressedVideo.reference_choices``);
  empty (0 rows) for a sample without such choices (every cell: the first candidate);
- ``l1_back`` (S,) int16: for a B-frame step whose L1-only blocks are traced through its next
  anchor (``codec.reconstruct.l1_anchor``, itself a step), how many steps back that anchor is, -1
  for none; for the L steps that have one, ``l1`` (L, 2, Hc, Wc) int16 (their L1 vectors) and
  ``only_l1`` (L, Hc, Wc) bool (cells with an L1 and no L0 vector).

No dense or float field is built here: ``device_reconstruct`` turns these into the motion and the
residual ``CompressedVideo.load`` gives, bit for bit. The cell painting is codec's own rule
(``codec/motion.py``'s ``paint_block_cells``: a block's vector on every cell it covers, intra cells
zero, later blocks over earlier ones). What the device path cannot reproduce makes :func:`plan_frame`
or :func:`pack_frames` return None, and the sample takes the CPU path: a candidate outside the GOP,
a step reading more than ``MAX_REACH`` steps back, unaligned blocks and motion scales other than 1,
2 or 4, and videos decoded at a reduced size (``CompressedVideo.factor`` > 1: huge inputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..codec import CompressedVideo
from ..codec.motion import paint_block_cells
from ..codec.reconstruct import MAX_REFERENCES, l0_candidates, l1_anchor, l1_direct
from .transforms import view_boxes

CELL = 8  # FFmpeg's motion blocks are 8 or 16 px, on the 8-px grid
MAX_REACH = 8  # the farthest a step may read back (the device keeps that many motion fields per frame)
QUARTER = 4  # cell vectors are stored in quarter pixels
INT16_MAX = int(np.iinfo(np.int16).max)
AUG_EVAL, AUG_CROP, AUG_VIEW = 0, 1, 2  # a packed sample's augmentation: test views, TSN crop, fixed view
PACKED = "packed"  # the sample / batch key of packed inputs (a batch: a list, None where a worker took the CPU path)
RGB, YUV420 = 0, 1  # how a packed sample's pictures are stored
#: A packed sample's ``pict``: the pictures' format and colorspace tag, the decoded size, and the
#: ``frame`` and ``root`` windows (top, left, height, width; even top / left, in source pixels).
PICT = ("format", "colorspace", "h", "w", "fy", "fx", "fh", "fw", "ry", "rx", "rh", "rw")


@dataclass(frozen=True)
class FramePlan:
    """How frame ``frame`` is rebuilt: the motion of each picture of ``steps`` (every picture the
    frame's motion is built from, in decode order, ``frame`` last; the ``root``'s motion is zero),
    each step's L0 vectors composed through one of its candidates, ``sources`` (per step, how many
    steps back each candidate is: 0 the step just before, -1 the root), and, where ``l1[t]`` >= 0,
    its L1-only cells through the step that many steps back (a B-frame's next anchor). ``multi``:
    some step picks per cell among several candidates (H.264's several reference pictures)."""

    frame: int
    root: int
    steps: tuple[int, ...]
    sources: tuple[tuple[int, ...], ...]
    l1: tuple[int, ...]
    multi: bool = False

    @property
    def reach(self) -> int:
        """How many steps back the rebuild must keep: 1 + the farthest step a step reads."""
        return 1 + max(0, *(b for s in self.sources for b in s), *self.l1)


def plan_frame(video: CompressedVideo, i: int, accumulate: bool) -> FramePlan | None:
    """The reconstruction plan of P/B-frame ``i`` (codec's rule: :func:`~ip_tsn.codec.reconstruct.l0_candidates`
    and :func:`~ip_tsn.codec.reconstruct.l1_anchor`), or None where only the CPU path reproduces
    it (a candidate outside the GOP, more than ``MAX_REACH`` steps back, or, per frame
    (``accumulate=False``), H.264 pixels that may point into several pictures)."""
    idx = video.index
    ref = idx.reference_of(i)
    if ref is None:
        return None
    g = video.gop_of(i)
    root = g if accumulate else ref
    needs: dict[int, tuple[list[int], int | None]] = {}
    todo = [i]
    while todo:  # every picture the frame's motion is built from (each is decoded before what needs it)
        j = todo.pop()
        if j in needs:
            continue
        l0 = l0_candidates(idx, j, g)
        if not accumulate and (len(l0) > 1 or l1_direct(idx, j) is not None):
            return None  # per frame, H.264's pixels point into several pictures (own_sources): the CPU path
        nxt = l1_anchor(idx, j, accumulate)
        if any(k is None or (accumulate and k < g) or (k != root and idx.frame_types[k] == "I") for k in l0):
            return None
        needs[j] = (l0, nxt)  # type: ignore[assignment]
        todo += [k for k in (*l0, *([nxt] if nxt is not None else [])) if k != root and k not in needs]
    steps = sorted(needs, key=lambda j: int(idx.decode[j]))
    at = {j: t for t, j in enumerate(steps)}
    back = lambda t, k: -1 if k == root else t - 1 - at[k]  # noqa: E731
    sources = tuple(tuple(back(t, k) for k in needs[j][0]) for t, j in enumerate(steps))
    l1 = tuple(-1 if needs[j][1] is None else back(t, needs[j][1]) for t, j in enumerate(steps))
    plan = FramePlan(i, root, tuple(steps), sources, l1, any(len(s) > 1 for s in sources))
    return plan if plan.reach <= MAX_REACH and steps[-1] == i else None


def paint_cells(vectors: np.ndarray | None, height: int, width: int,
                source: int) -> tuple[np.ndarray, np.ndarray] | None:
    """FFmpeg block vectors of list ``source`` (-1 L0, +1 L1) on the 8x8 cell grid: ``(cells (2,
    Hc, Wc) int16 quarter pixels (dx, dy), covered (Hc, Wc) bool)``, or None (unaligned blocks,
    a motion scale other than 1, 2, 4, or a vector beyond int16)."""
    return paint_pictures([vectors], height, width, source)[0]


def _concatenate(arrays: list[np.ndarray]) -> np.ndarray:
    """Structured arrays of one dtype end to end: their bytes joined (10x faster than
    ``np.concatenate``, which promotes the fields of every part)."""
    dtype = arrays[0].dtype
    if any(a.dtype != dtype or not a.flags.c_contiguous for a in arrays):
        return np.concatenate(arrays)
    return np.concatenate([a.view(np.uint8).reshape(-1) for a in arrays]).view(dtype)


def paint_pictures(vectors: Sequence[np.ndarray | None], height: int, width: int,
                   source: int) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """:func:`paint_cells` of several pictures' vectors in one pass (one set of array operations,
    however many pictures): per picture its cells and coverage, or None."""
    hc, wc = -(-height // CELL), -(-width // CELL)
    parts = [(n, v) for n, v in enumerate(vectors) if v is not None and len(v)]
    cells = np.zeros((len(vectors), 2, hc, wc), np.int16)
    has = np.zeros((len(vectors), hc, wc), bool)
    bad = np.zeros(len(vectors), bool)
    if parts:
        v = _concatenate([p[1] for p in parts])
        picture = np.repeat([p[0] for p in parts], [len(p[1]) for p in parts])
        keep = np.sign(v["source"]) == source
        v, picture = v[keep], picture[keep]
        scale = v["motion_scale"].astype(np.int64)
        wrong = (scale != 1) & (scale != 2) & (scale != 4)
        scale[wrong] = 1
        qx = v["motion_x"].astype(np.int64) * (QUARTER // scale)
        qy = v["motion_y"].astype(np.int64) * (QUARTER // scale)
        bw, bh = v["w"].astype(np.int64), v["h"].astype(np.int64)
        x0, y0 = v["dst_x"].astype(np.int64) - bw // 2, v["dst_y"].astype(np.int64) - bh // 2
        wrong |= (np.abs(qx) > INT16_MAX) | (np.abs(qy) > INT16_MAX) | (((x0 | y0 | bw | bh) & (CELL - 1)) != 0)
        bad[picture[wrong]] = True  # unaligned blocks, an odd motion scale, a vector beyond int16
        painted, covered = paint_block_cells(np.stack([qx, qy], axis=1).astype(np.int32), x0 // CELL, y0 // CELL,
                                             bw // CELL, bh // CELL, height, width, picture, len(vectors))
        cells = painted[:, :hc, :wc].transpose(0, 3, 1, 2).astype(np.int16)
        has = covered[:, :hc, :wc]
    return [None if bad[n] else (np.ascontiguousarray(cells[n]), np.ascontiguousarray(has[n]))
            for n in range(len(vectors))]


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


def _pair(a: np.ndarray, op: np.ufunc) -> np.ndarray:
    """``op`` (min or max) of ``a`` (2, Hc, Wc) over every 2x2 block of cells, (2, Hc + 1, Wc + 1):
    entry (r, s) over rows {r - 1, r} x columns {s - 1, s}, clamped to the grid (replicated border)."""
    h, w = a.shape[1:]
    rows = np.empty((2, h + 1, w))
    rows[:, 0], rows[:, h] = a[:, 0], a[:, h - 1]
    op(a[:, :-1], a[:, 1:], out=rows[:, 1:h])
    out = np.empty((2, h + 1, w + 1))
    out[:, :, 0], out[:, :, w] = rows[:, :, 0], rows[:, :, w - 1]
    op(rows[:, :, :-1], rows[:, :, 1:], out=out[:, :, 1:w])
    return out


def _pair_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``lo`` / ``hi`` (2, Hc, Wc) of a field over every 2x2 block of cells (:func:`_pair`),
    so that :func:`_compose_bounds` reads one entry per cell."""
    return _pair(lo, np.minimum), _pair(hi, np.maximum)


def _compose_bounds(cells: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]],
                    choice: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell bounds of ``mv(p) + ref(p + mv(p))`` (``device_reconstruct.compose``), ``ref`` per
    cell the candidate ``choice`` (Hc, Wc) names (None: the first) among ``pairs`` (each
    candidate's :func:`_pair_bounds`), ``cells`` (2, Hc, Wc) quarter pixels: the 8 pixels of cell
    c along an axis, moved by its quarter-pixel vector (exact on remap's 1/32 grid), and their
    second bilinear tap span 9 pixels from floor(8 c + mv): the 2x2 cells from floor((8 c + mv) / 8)
    (clamped: replicated border). A bilinear sample lies within the bounds of what it mixes."""
    hc, wc = cells.shape[1:]
    q, unit = cells.astype(np.int32), CELL * QUARTER  # floor((8 c + q / 4) / 8) = (32 c + q) // 32
    r = np.minimum(np.maximum((np.arange(hc, dtype=np.int32)[:, None] * unit + q[1]) // unit, -1), hc - 1) + 1
    s = np.minimum(np.maximum((np.arange(wc, dtype=np.int32)[None, :] * unit + q[0]) // unit, -1), wc - 1) + 1
    at = r * (wc + 1) + s  # flat index into a (Hc + 1, Wc + 1) plane; np.take: faster than two index arrays
    mv = q / QUARTER
    if choice is None or len(pairs) == 1:
        return (mv + pairs[0][0].reshape(2, -1).take(at, axis=1), mv + pairs[0][1].reshape(2, -1).take(at, axis=1))
    plane = (hc + 1) * (wc + 1)
    at = (choice.astype(np.intp) * 2 + np.arange(2)[:, None, None]) * plane + at  # (2, Hc, Wc) into (M, 2, plane)
    return (mv + np.stack([p[0] for p in pairs]).take(at), mv + np.stack([p[1] for p in pairs]).take(at))


def motion_bounds(chain: np.ndarray, sources: np.ndarray, l1_back: np.ndarray, l1: np.ndarray,
                  choice: np.ndarray | None = None, steps: Sequence[int] | None = None,
                  shared: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell bounds ``(lo, hi)`` (2, Hc, Wc) pixels of one packed frame's rebuilt motion: its
    steps ``chain`` (D, 2, Hc, Wc) composed as ``device_reconstruct.rebuild`` composes them, each
    through the candidate (``sources`` (D, M) steps back, -1 the root) its ``choice`` (D, Hc, Wc)
    names per cell (None: the first), and where ``l1_back`` (D,) >= 0 its L1 cells (the next
    rows of ``l1`` (L, 2, Hc, Wc)) through the step that many back. ``steps`` (D,) and ``shared``:
    the steps' pictures and a dict kept across the frames of one root, whose bounds they share."""
    root = (np.zeros((2, chain.shape[2] + 1, chain.shape[3] + 1)),) * 2  # zero motion
    made: list[tuple[np.ndarray, np.ndarray]] = []
    paired: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    shared = {} if shared is None or steps is None else shared

    def pairs(t: int, b: int) -> tuple[np.ndarray, np.ndarray]:  # the 2x2 bounds of the field b steps back
        if b < 0:
            return root
        if t - 1 - b not in paired:
            paired[t - 1 - b] = _pair_bounds(*made[t - 1 - b])
        return paired[t - 1 - b]

    rows = 0
    for t, step in enumerate(chain):
        key = None if steps is None else int(steps[t])
        if key is not None and key in shared:
            made.append(shared[key])
            rows += int(l1_back[t] >= 0)
            continue
        picked = None if choice is None or not choice[t].any() else choice[t]
        count = 1 if picked is None else int(picked.max()) + 1
        lo, hi = _compose_bounds(step, [pairs(t, int(b)) for b in sources[t][:count]], picked)
        if l1_back[t] >= 0:
            t_lo, t_hi = _compose_bounds(l1[rows], [pairs(t, int(l1_back[t]))])
            lo, hi = np.minimum(lo, t_lo), np.maximum(hi, t_hi)
            rows += 1
        made.append((lo, hi))
        if key is not None:
            shared[key] = made[-1]
    return made[-1]


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
    l1s: list = [[] for _ in range(k_count)]
    gops = [video.gop_of(p.frame) for p in plans]  # type: ignore[union-attr]
    planes: dict[int, tuple | None] = {}
    for g in sorted(set(gops)):  # GOP by GOP: the video's GOP cache then decodes each once
        members = [k for k, gk in enumerate(gops) if gk == g]
        wanted = sorted({j for k in members for j in plans[k].steps})  # type: ignore[union-attr]
        found = dict(zip(wanted, video.block_vectors(wanted)))
        pictures = sorted({j for k in members for j in (plans[k].frame, plans[k].root)})  # type: ignore[union-attr]
        planes.update(zip(pictures, video.planes(pictures)))  # while the GOP is decoded
        # every step of the GOP's frames painted once, in one pass per list (the frames share steps)
        l0 = dict(zip(wanted, paint_pictures([_vectors(video, j, found) for j in wanted], h, w, -1)))
        traced = sorted({j for k in members for j, b in zip(plans[k].steps, plans[k].l1) if b >= 0})  # type: ignore[union-attr]
        l1 = dict(zip(traced, paint_pictures([found[j] for j in traced], h, w, +1)))
        if any(x is None for x in (*l0.values(), *l1.values())):
            return None
        for k in members:
            p = plans[k]
            assert p is not None
            chains[k] = np.stack([l0[j][0] for j in p.steps])  # type: ignore[index]
            l1s[k] = [(l1[j][0], l1[j][1] & ~l0[j][1]) for j, b in zip(p.steps, p.l1) if b >= 0]  # type: ignore[index]
    hc, wc = chains[0].shape[2:]
    sources = [np.array([[*s, *(s[:1] * (MAX_REFERENCES - len(s)))] for s in p.sources], np.int16)  # type: ignore[union-attr]
               for p in plans]
    l1_back = [np.array(p.l1, np.int16) for p in plans]  # type: ignore[union-attr]
    multi = any(p.multi for p in plans)  # type: ignore[union-attr]
    choices = [None] * k_count
    if multi:  # each step's choice among its candidates (zero: the first, a single candidate)
        for k, p in enumerate(plans):
            made = video.reference_choices(p.steps) if p.multi else [None] * len(p.steps)  # type: ignore[union-attr]
            choices[k] = np.stack([np.zeros((hc, wc), np.int16) if c is None else c.astype(np.int16) for c in made])
    rows = [r for k in range(k_count) for r in l1s[k]]
    out = {"chain": np.concatenate(chains), "depths": np.array([len(c) for c in chains], np.int16),
           "sources": np.concatenate(sources), "l1_back": np.concatenate(l1_back),
           "l1": np.array([r[0] for r in rows], np.int16).reshape(-1, 2, hc, wc),
           "only_l1": np.array([r[1] for r in rows], bool).reshape(-1, hc, wc),
           "choice": np.concatenate(choices) if multi else np.zeros((0, hc, wc), np.int16)}
    window = window or (0, 0, h, w)
    shared: dict[int, dict] = {}  # per root: the bounds of the steps its frames share
    bounds = [motion_bounds(chains[k], sources[k], l1_back[k], np.array([r[0] for r in l1s[k]]).reshape(-1, 2, hc, wc),
                            choices[k], plans[k].steps, shared.setdefault(plans[k].root, {}))  # type: ignore[union-attr]
              for k in range(k_count)]
    pairs = [(p.frame, p.root) for p in plans]  # type: ignore[union-attr]
    boxes = (window, root_window(bounds, window, h, w))
    out["frame"], out["root"], out["pict"] = _pictures(video, pairs, planes, boxes)
    return out
