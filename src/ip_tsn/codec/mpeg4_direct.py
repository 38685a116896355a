"""MPEG-4 Part 2 B-frames: FFmpeg exports which blocks use which list, but not their vectors (its
MPEG-4 decoder keeps B-frame motion out of the table it exports, so every exported vector is zero,
whatever the block's mode). Their vectors are derived here as MPEG-4's direct mode derives them:
the co-located vector of the next anchor (the B-frame's L1 reference) scaled by the B-frame's
temporal distance, ``L0 = (pb * mv) / pp``, ``L1 = ((pb - pp) * mv) / pp`` (C division, toward
zero; ``pb``: frames from the past anchor, ``pp``: from the past to the next anchor), the coded
delta taken as 0. Exact for direct blocks with a zero delta (what an encoder picks for smooth
motion), an estimate for the other blocks, whose own vectors are not exported; the residual stays
exact by construction either way.
"""

from __future__ import annotations

import numpy as np

from .index import VideoIndex
from .motion import paint_block_cells


def exports_no_vectors(vectors: np.ndarray | None) -> bool:
    """True when every exported vector of a frame is zero (or it has none)."""
    return vectors is None or not (vectors["motion_x"].any() or vectors["motion_y"].any())


def direct_vectors(vectors: np.ndarray, anchor: np.ndarray, pb: int, pp: int, height: int,
                   width: int) -> np.ndarray:
    """A B-frame's exported blocks (FFmpeg's structured records, all vectors zero) with the vectors
    direct mode derives from the next anchor's records ``anchor``: one 8x8 record per 8x8 part of
    each block (a 4MV anchor gives each part its own vector), same lists, fields and dtype.
    ``height`` x ``width``: the picture's size."""
    if len(vectors) == 0 or pp <= 0 or not 0 < pb < pp:
        return vectors
    if len(anchor) and (anchor["motion_scale"] != vectors["motion_scale"][0]).any():
        return vectors  # vectors in other units (not seen): left as exported
    half_w, half_h = anchor["w"].astype(np.int64) // 2, anchor["h"].astype(np.int64) // 2
    cells, _ = paint_block_cells(
        np.stack([anchor["motion_x"], anchor["motion_y"]], axis=1).astype(np.int64),
        (anchor["dst_x"] - half_w) // 8, (anchor["dst_y"] - half_h) // 8,
        anchor["w"].astype(np.int64) // 8, anchor["h"].astype(np.int64) // 8, height, width)
    parts_w, parts_h = np.maximum(vectors["w"] // 8, 1), np.maximum(vectors["h"] // 8, 1)
    count = (parts_w * parts_h).astype(np.int64)
    block = np.repeat(np.arange(len(vectors)), count)
    k = np.arange(len(block)) - np.repeat(np.cumsum(count) - count, count)
    out = vectors[block].copy()
    x0 = vectors["dst_x"][block].astype(np.int64) - vectors["w"][block].astype(np.int64) // 2 + 8 * (k % parts_w[block])
    y0 = vectors["dst_y"][block].astype(np.int64) - vectors["h"][block].astype(np.int64) // 2 + 8 * (k // parts_w[block])
    col = cells[np.clip(y0 // 8, 0, cells.shape[0] - 1), np.clip(x0 // 8, 0, cells.shape[1] - 1)]
    scale = np.where(out["source"] < 0, pb, pb - pp)[:, None]
    derived = col * scale
    derived = np.sign(derived) * (np.abs(derived) // pp)  # C division: toward zero
    out["w"], out["h"] = 8, 8
    out["dst_x"], out["dst_y"] = x0 + 4, y0 + 4
    out["motion_x"], out["motion_y"] = derived[:, 0], derived[:, 1]
    ms = np.maximum(out["motion_scale"].astype(np.int64), 1)
    out["src_x"] = out["dst_x"] + (derived[:, 0] / ms).astype(np.int64)
    out["src_y"] = out["dst_y"] + (derived[:, 1] / ms).astype(np.int64)
    return out


def anchors_needed(index: VideoIndex, frames: set[int]) -> set[int]:
    """The next P-frames of the MPEG-4 B-frames among ``frames``, whose vectors theirs derive from:
    decoded with them, so a B-frame's vectors do not depend on what was asked first."""
    return {a for j in frames if index.frame_types[j] == "B" and (a := index.anchor_after(j)) is not None
            and index.frame_types[a] != "I"}


def derive_b_frames(index: VideoIndex, vectors: dict[int, np.ndarray | None]) -> None:
    """Replace, in ``vectors`` (display index -> FFmpeg's records of a decoded GOP), each MPEG-4
    B-frame's zero vectors by :func:`direct_vectors` from its next P-frame's, where both are there."""
    for j, own in vectors.items():
        ref, nxt = index.reference_of(j), index.anchor_after(j)
        if (index.frame_types[j] == "B" and own is not None and ref is not None and nxt is not None
                and vectors.get(nxt) is not None and index.frame_types[nxt] != "I" and exports_no_vectors(own)):
            vectors[j] = direct_vectors(own, vectors[nxt], j - ref, nxt - ref, index.height, index.width)
