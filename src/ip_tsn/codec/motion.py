"""Block motion vectors -> dense per-pixel motion; warping; composing motion along a chain.

Convention (the one FFmpeg exports, see ``shared/reference.md``): a motion field ``mv`` of shape
``(H, W, 2)`` float32 holds ``mv[y, x] = (dx, dy)``, meaning pixel ``(x, y)`` of the current frame
is predicted from position ``(x + dx, y + dy)`` of the reference frame. This is the negative of
CoViAR's and mmaction2's ``dst - src`` maps.

Block-to-pixel rule: FFmpeg gives each inter block (``w x h``, 8 or 16 pixels, centred at
``(dst_x, dst_y)``) one vector ``(motion_x, motion_y) / motion_scale``, so every pixel of the
block gets that vector at sub-pixel precision (quarter-pel for H.264, half-pel for MPEG-4).
Pixels of blocks without a vector (intra blocks) get ``(0, 0)``: predicted from the same place.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

FACTORS = (1, 2, 4, 8)  # the sizes a picture can be decoded at (1 / factor): each keeps 8x8 cells whole


def dense_motion(vectors: np.ndarray | None, height: int, width: int, source: int,
                 factor: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Paint FFmpeg's block vectors of one reference list onto the pixel grid.

    Args:
        vectors: FFmpeg ``MOTION_VECTORS`` side data as a structured array, or None.
        height, width: the grid painted, the picture's size divided by ``factor`` (rounded up).
        source: -1 for list L0 (past reference), +1 for list L1 (future reference).
        factor: 1, 2, 4 or 8: the picture was decoded at 1 / ``factor`` of its size; blocks and
            vectors are scaled by the same amount (a 16-px block is 2 px at 8).

    Returns:
        ``mv`` (H, W, 2) float32 (in the painted grid's pixels) and ``covered`` (H, W) bool (pixels
        that have a vector).
    """
    mine = None if vectors is None else (vectors["source"] < 0 if source < 0 else vectors["source"] > 0)
    if mine is None or not mine.any():
        return np.zeros((height, width, 2), np.float32), np.zeros((height, width), bool)
    if factor not in FACTORS:
        raise ValueError(f"factor must be one of {FACTORS}, got {factor}")

    def field(name: str, dtype: type) -> np.ndarray:  # one field of this list's blocks (not the whole records)
        return vectors[name][mine].astype(dtype)

    scale = field("motion_scale", np.float32) * factor
    vx = field("motion_x", np.float32) / scale
    vy = field("motion_y", np.float32) / scale
    bw, bh = field("w", np.int64), field("h", np.int64)
    x0 = field("dst_x", np.int64) - bw // 2
    y0 = field("dst_y", np.int64) - bh // 2
    if ((x0 | y0 | bw | bh) & 7).any():  # not all multiples of 8 (two's complement: negatives too)
        return _paint_blocks(x0, y0, bw, bh, vx, vy, height, width, factor)
    return _paint_cells(x0 // 8, y0 // 8, bw // 8, bh // 8, vx, vy, height, width, 8 // factor)


def _paint_blocks(x0, y0, bw, bh, vx, vy, height: int, width: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocks not aligned on 8x8 cells (not seen from FFmpeg's exporters): painted one by one."""
    mv = np.zeros((height, width, 2), np.float32)
    covered = np.zeros((height, width), bool)
    for i in range(len(vx)):
        ys = slice(max(y0[i] // factor, 0), max(-(-(y0[i] + bh[i]) // factor), 0))
        xs = slice(max(x0[i] // factor, 0), max(-(-(x0[i] + bw[i]) // factor), 0))
        mv[ys, xs] = (vx[i], vy[i])
        covered[ys, xs] = True
    return mv, covered


def paint_block_cells(values: np.ndarray, cx: np.ndarray, cy: np.ndarray, cw: np.ndarray, ch: np.ndarray,
                      height: int, width: int, picture: np.ndarray | None = None,
                      count: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The one cell-painting rule (also the device path's, ``data/packed_p.py``): each block's
    value (N, 2) on every 8x8 cell it covers (cell origin ``cx``, ``cy``, size ``cw`` x ``ch`` cells),
    later blocks over earlier ones, cells with no block zero. Returns ``(cells (gh, gw, 2) of
    values' dtype, has (gh, gw) bool)`` on a grid of the picture's cells and two more below and to
    the right (gh = ceil(height / 8) + 2: room for blocks of the coded size, which is padded); blocks
    reaching past it are clipped onto its edge cells. ``picture``
    (N,) and ``count``: the blocks of ``count`` pictures at once, each block on its picture's grid;
    then (count, gh, gw, 2) and (count, gh, gw)."""
    gh, gw = -(-height // 8) + 2, -(-width // 8) + 2
    cells = np.zeros((count * gh * gw, 2), values.dtype)
    has = np.zeros(count * gh * gw, bool)
    size = (cw * ch).astype(np.int64)  # blocks of no cells paint nothing
    block = np.repeat(np.arange(len(size)), size)  # each painted cell's block, blocks in order
    k = np.arange(len(block)) - np.repeat(np.cumsum(size) - size, size)  # its place in the block
    w = cw[block]
    row = np.minimum(np.maximum(cy[block] + k // w, 0), gh - 1)  # clipped onto the grid (np.clip costs 4x)
    col = np.minimum(np.maximum(cx[block] + k % w, 0), gw - 1)
    at = row * gw + col
    if picture is not None:
        at += picture[block].astype(np.int64) * (gh * gw)
    pair = _PAIR.get(values.dtype.itemsize)  # a cell's two values as one number: a 1-D copy (half the time)
    if pair is not None and values.flags.c_contiguous:
        cells.view(pair)[at, 0] = values.view(pair)[block, 0]  # a repeated cell keeps the last block's value
    else:
        cells[at] = values[block]
    has[at] = True
    if picture is None:
        return cells.reshape(gh, gw, 2), has.reshape(gh, gw)
    return cells.reshape(count, gh, gw, 2), has.reshape(count, gh, gw)


_PAIR = {2: np.int32, 4: np.int64}  # an integer as wide as two values of this many bytes


def _paint_cells(cx, cy, cw, ch, vx, vy, height: int, width: int, cell: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised painting on the 8x8 cell grid (:func:`paint_block_cells`), then nearest-neighbour
    upsampling to (height, width) pixels, ``cell`` pixels per cell side (8 at full size)."""
    cells, has = paint_block_cells(np.stack([vx, vy], axis=1), cx, cy, cw, ch, height * (8 // cell),
                                   width * (8 // cell))
    hc, wc = -(-height // cell), -(-width // cell)
    size = (wc * cell, hc * cell)  # upsampling by a whole factor: every pixel gets its cell's value
    mv = cells[:hc, :wc].repeat(cell, axis=0).repeat(cell, axis=1)  # as cv2's nearest resize, in less time
    covered = cv2.resize(has[:hc, :wc].view(np.uint8), size, interpolation=cv2.INTER_NEAREST).view(bool)
    if size != (width, height):
        mv, covered = np.ascontiguousarray(mv[:height, :width]), np.ascontiguousarray(covered[:height, :width])
    return mv, covered


@lru_cache(maxsize=16)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def sampling_maps(mv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where :func:`warp` and :func:`compose` sample each pixel: (H, W) float32 ``x + dx`` and
    (H, W) float32 ``y + dy`` of an (H, W, 2) motion field. Build them once to warp several
    images by the same motion."""
    xs, ys = _grid(*mv.shape[:2])
    maps = np.empty((2,) + mv.shape[:2], np.float32)  # one allocation: half the time of two sums
    np.add(xs, mv[..., 0], out=maps[0])
    np.add(ys, mv[..., 1], out=maps[1])
    return maps[0], maps[1]


def _sample(image: np.ndarray, mv: np.ndarray, maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Bilinear sample of ``image`` at ``(x + dx, y + dy)`` (``maps``: :func:`sampling_maps` of
    ``mv``), edges replicated.

    A 3-channel uint8 image is sampled as 4 channels: OpenCV's remap has a vector kernel for 1 and
    4 channels of uint8, not 3 (about half the time at 640x272). Its uint8 interpolation is integer
    arithmetic on the same quantised coordinates, so each channel comes out bit for bit the same."""
    map_x, map_y = sampling_maps(mv) if maps is None else maps
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        four = cv2.remap(cv2.cvtColor(image, cv2.COLOR_RGB2RGBA), map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        return cv2.cvtColor(four, cv2.COLOR_RGBA2RGB)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)


def warp(image: np.ndarray, mv: np.ndarray, maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Motion-compensated prediction: ``out[y, x] = image[y + dy, x + dx]`` (bilinear).

    Args:
        image: (H, W, C) uint8 reference frame.
        mv: (H, W, 2) float32 motion field in this module's convention.
        maps: :func:`sampling_maps` of ``mv``, if already built (the same result, less work).

    Returns:
        (H, W, C) uint8 prediction. ``warp(ref, mv) + residual`` restores the frame exactly when
        ``residual = frame.astype(int16) - warp(ref, mv)``.
    """
    if image.shape[:2] != mv.shape[:2]:
        raise ValueError(f"image {image.shape} and motion {mv.shape} differ in size")
    return _sample(np.ascontiguousarray(image), mv, maps)


def warp_planes(planes: list[np.ndarray], mv: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """:func:`warp` of several (H, W) uint8 pictures by the same motion, four per remap (as the
    channels of one picture; bit for bit :func:`warp` of each, see :func:`_sample`): the
    candidates' luma of H.264's reference choice. ``maps``: :func:`sampling_maps` of ``mv``.
    Returns one (H, W) uint8 prediction per plane, in order."""
    out: list[np.ndarray] = []
    for k in range(0, len(planes), 4):
        group = planes[k : k + 4]
        if len(group) == 1:
            out.append(warp(group[0], mv, maps))
            continue
        four = cv2.merge(group + group[-1:] * (4 - len(group)))  # padded with a copy, dropped below
        sampled = cv2.remap(four, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out.extend(cv2.split(sampled)[: len(group)])
    return out


def compose(mv: np.ndarray, ref_mv: np.ndarray, maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Chain two motion fields: frame -> reference (``mv``) then reference -> its own reference.

    ``out(p) = mv(p) + ref_mv(p + mv(p))``, ``ref_mv`` sampled bilinearly, so a pixel is traced
    through the reference chain with sub-pixel precision (CoViAR's accumulation, which rounds).
    Shapes (H, W, 2) float32; ``maps``: :func:`sampling_maps` of ``mv``, if already built.
    """
    return mv + _sample(np.ascontiguousarray(ref_mv), mv, maps)


def compose_choice(mv: np.ndarray, fields: list[np.ndarray | None], maps: tuple[np.ndarray, np.ndarray],
                   choice: np.ndarray) -> np.ndarray:
    """:func:`compose` of ``mv`` with a different ``fields[k]`` at each pixel: (H, W, 2) float32,
    ``compose(mv, fields[choice[y, x]], maps)`` at ``(y, x)``, bit for bit, in one remap.

    ``fields``: (H, W, 2) float32 each, None for a zero field; ``choice`` (H, W) uint8. The fields
    are stacked as tiles, each with :data:`_PAD` rows replicated above and below, and each pixel's
    row coordinate moved into its tile; rows beyond a tile's picture are moved into that padding
    keeping their fraction, where they read what ``BORDER_REPLICATE`` reads (OpenCV quantises
    coordinates to 1/32 px, and ``mv`` of block vectors is exact in 1/32 px, so the shift is exact).
    """
    h, w = mv.shape[:2]
    tile = h + 2 * _PAD
    stack = np.empty((len(fields) * tile, w, 2), np.float32)
    for k, f in enumerate(fields):
        if f is None:
            stack[k * tile : (k + 1) * tile] = 0
        else:
            stack[k * tile + _PAD : k * tile + _PAD + h] = f
            stack[k * tile : k * tile + _PAD] = f[:1]
            stack[k * tile + _PAD + h : (k + 1) * tile] = f[-1:]
    map_y = maps[1]
    rows = choice.astype(np.float32)
    rows *= tile
    rows += map_y + _PAD
    outside = (map_y < -1) | (map_y >= h)
    if outside.any():  # rows beyond the picture: into the tile's padding, keeping their fraction
        y = map_y[outside]
        frac = y - np.floor(y)
        rows[outside] += np.where(y < -1, frac - _PAD, frac + h) - y
    sampled = cv2.remap(stack, maps[0], rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return mv + sampled


_PAD = 2  # rows of replicated border around each tile of compose_choice: a bilinear tap reaches 1


def residual(frame: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W, 3) int16 ``frame - prediction`` of two uint8 images."""
    return cv2.subtract(frame, prediction, dtype=cv2.CV_16S).reshape(frame.shape)
