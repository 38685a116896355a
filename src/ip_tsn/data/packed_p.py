"""Worker side of ``reconstruct: device``: what a P-stream frame's reconstruction needs, compactly.

For each sampled frame ``i`` (display order) with its *root* picture ``r`` (the GOP's I-frame when
accumulating, else ``i``'s own reference) the worker only demuxes and decodes, and delivers:

- ``frame`` / ``root``: the decoded pictures of ``i`` and ``r``, (H, W, 3) uint8 RGB;
- ``chain``: the L0 block vectors of the anchors that lead from ``r`` to ``i`` (oldest first, ``i``
  last), painted on the 8x8 cell grid in quarter pixels, (D, 2, Hc, Wc) int16 (Hc = ceil(H / 8));
- for a B-frame whose L1-only blocks are traced through the next anchor ``n`` (a P-frame with the
  same reference): ``l1`` (2, Hc, Wc) int16 (its L1 vectors), ``only_l1`` (Hc, Wc) bool (cells with
  an L1 and no L0 vector), ``nxt`` (2, Hc, Wc) int16 (``n``'s L0 vectors) and ``use_l1`` True.

No dense or float field is built here: ``device_reconstruct`` turns these into the motion and the
residual ``CompressedVideo.load`` gives, bit for bit. The cell painting is codec's own rule
(``codec/motion.py``'s ``paint_block_cells``: a block's vector on every cell it covers, intra cells
zero, later blocks over earlier ones). What the device path cannot reproduce makes :func:`plan_frame` return None, and the
sample takes the CPU path: H.264 frames whose motion, when accumulated, picks among several
reference pictures per 8x8 cell by matching (FFmpeg does not export the reference index), B-frames
traced through a reference B-frame, unaligned blocks and motion scales other than 1, 2 or 4, and
videos decoded at a reduced size (``CompressedVideo.factor`` > 1: huge inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec import CompressedVideo
from ..codec.motion import paint_block_cells
from ..codec.reconstruct import l0_candidates, l1_anchor

CELL = 8  # FFmpeg's motion blocks are 8 or 16 px, on the 8-px grid
QUARTER = 4  # cell vectors are stored in quarter pixels
AUG_EVAL, AUG_CROP, AUG_VIEW = 0, 1, 2  # a packed sample's augmentation: test views, TSN crop, fixed view
PACKED = "packed"  # the sample / batch key of packed inputs (a batch: a list, None where a worker took the CPU path)


@dataclass(frozen=True)
class FramePlan:
    """How frame ``frame`` is rebuilt: L0 motion chained through ``anchors`` (oldest first) back to
    ``root``; with ``nxt``, its L1-only cells through the next anchor ``nxt``."""

    frame: int
    root: int
    anchors: tuple[int, ...]
    nxt: int | None


def _single_reference(video: CompressedVideo, j: int, g: int) -> bool:
    """Whether frame ``j``'s accumulated L0 motion has one candidate reference picture (codec's
    rule, :func:`~ip_tsn.codec.reconstruct.l0_candidates`)."""
    return len(l0_candidates(video.index, j, g)) == 1


def plan_frame(video: CompressedVideo, i: int, accumulate: bool) -> FramePlan | None:
    """The reconstruction plan of P/B-frame ``i``, or None where only the CPU path reproduces it."""
    idx, types = video.index, video.frame_types
    ref = idx.reference_of(i)
    if ref is None:
        return None
    g = video.gop_of(i)
    anchors: list[int] = []
    if accumulate:
        if not _single_reference(video, i, g):
            return None
        k = ref
        while k != g:
            if types[k] != "P" or not _single_reference(video, k, g):
                return None
            anchors.append(k)
            nk = idx.reference_of(k)
            if nk is None or nk < g:
                return None
            k = nk
    nxt = l1_anchor(video.index, i, accumulate)
    if nxt is not None:
        if types[nxt] != "P" or idx.reference_of(nxt) != ref:
            return None
        if accumulate and not _single_reference(video, nxt, g):
            return None
    return FramePlan(i, g if accumulate else ref, tuple(reversed(anchors)), nxt)


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


def pack_frames(video: CompressedVideo, index: np.ndarray, accumulate: bool) -> dict[str, np.ndarray] | None:
    """The packed inputs of frames ``index`` (K,) (module docstring), chains front-padded with zero
    steps to one length D; None if any frame needs the CPU path. Decodes each GOP once."""
    if video.factor > 1:
        return None
    plans = [plan_frame(video, int(i), accumulate) for i in index]
    if any(p is None for p in plans):
        return None
    h, w = video.height, video.width
    hc, wc = -(-h // CELL), -(-w // CELL)
    k_count = len(plans)
    depth = max(len(p.anchors) + 1 for p in plans)  # type: ignore[union-attr]
    out = {"frame": np.empty((k_count, h, w, 3), np.uint8), "root": np.empty((k_count, h, w, 3), np.uint8),
           "chain": np.zeros((k_count, depth, 2, hc, wc), np.int16), "l1": np.zeros((k_count, 2, hc, wc), np.int16),
           "only_l1": np.zeros((k_count, hc, wc), bool), "nxt": np.zeros((k_count, 2, hc, wc), np.int16),
           "use_l1": np.zeros(k_count, bool)}
    gops = [video.gop_of(p.frame) for p in plans]  # type: ignore[union-attr]
    for g in sorted(set(gops)):  # GOP by GOP: the video's GOP cache then decodes each once
        members = [k for k, gk in enumerate(gops) if gk == g]
        wanted = sorted({j for k in members for j in (*plans[k].anchors, plans[k].frame,  # type: ignore[union-attr]
                                                       *([plans[k].nxt] if plans[k].nxt is not None else []))})
        found = dict(zip(wanted, video.block_vectors(wanted)))
        for k in members:
            p = plans[k]
            assert p is not None
            steps = [paint_cells(_vectors(video, j, found), h, w, -1) for j in (*p.anchors, p.frame)]
            if any(s is None for s in steps):
                return None
            for s, step in enumerate(steps, depth - len(steps)):
                out["chain"][k, s] = step[0]  # type: ignore[index]
            if p.nxt is not None:
                l1 = paint_cells(_vectors(video, p.frame, found), h, w, +1)
                nxt = paint_cells(_vectors(video, p.nxt, found), h, w, -1)
                if l1 is None or nxt is None:
                    return None
                out["l1"][k], out["nxt"][k] = l1[0], nxt[0]
                out["only_l1"][k] = l1[1] & ~steps[-1][1]  # type: ignore[index]
                out["use_l1"][k] = True
            out["frame"][k] = video.load(p.frame, "rgb")
            out["root"][k] = video.load(p.root, "rgb")
    return out


# ------------------------------------------------------------------- a batch in a handful of tensors
#: A compact packed batch (what :func:`pack_batch` returns, under the batch's ``packed`` key): the
#: packed samples' arrays flattened into one buffer per dtype, whatever the batch size (issue 20).
#: ``pictures`` uint8 (every sample's ``frame`` then ``root``), ``vectors`` int16 (``chain``, ``l1``,
#: ``nxt``), ``masks`` bool (``only_l1``, ``use_l1``), ``meta`` int64 (S, 9) per packed sample
#: (``META``), ``aug`` int64 (S, 7), ``slot`` int64 (B,): the packed sample of each batch item, -1
#: where the worker took the CPU path (that item's ``input`` is in the batch's ``input`` list).
META = ("k", "h", "w", "depth", "hc", "wc", "pictures", "vectors", "masks")  # the last three: offsets


def pack_batch(packed: list[dict | None]) -> dict:
    """Per-sample packed dicts (torch tensors, ``pack_frames``'s keys and ``aug``; None for CPU-path
    items) -> one compact packed batch (6 tensors; :data:`META`)."""
    import torch

    present = [p for p in packed if p is not None]
    pictures, vectors, masks, meta = [], [], [], []
    offsets = [0, 0, 0]
    for p in present:
        k, depth, _, hc, wc = p["chain"].shape
        h, w = p["frame"].shape[1:3]
        meta.append([k, h, w, depth, hc, wc, *offsets])
        pic = [p["frame"].reshape(-1), p["root"].reshape(-1)]
        vec = [p["chain"].reshape(-1), p["l1"].reshape(-1), p["nxt"].reshape(-1)]
        msk = [p["only_l1"].reshape(-1), p["use_l1"].reshape(-1)]
        pictures += pic
        vectors += vec
        masks += msk
        offsets = [offsets[0] + sum(len(t) for t in pic), offsets[1] + sum(len(t) for t in vec),
                   offsets[2] + sum(len(t) for t in msk)]
    slot, s = [], 0
    for p in packed:
        slot.append(-1 if p is None else s)
        s += p is not None
    cat = lambda parts, dtype: torch.cat(parts) if parts else torch.zeros(0, dtype=dtype)  # noqa: E731
    return {"pictures": cat(pictures, torch.uint8), "vectors": cat(vectors, torch.int16),
            "masks": cat(masks, torch.bool), "meta": torch.tensor(meta, dtype=torch.int64).reshape(-1, len(META)),
            "aug": torch.stack([p["aug"] for p in present]) if present else torch.zeros(0, 7, dtype=torch.int64),
            "slot": torch.tensor(slot, dtype=torch.int64)}


def unpack_batch(batch: dict) -> list[dict | None]:
    """:func:`pack_batch`'s inverse, on whatever device the batch is: per batch item its packed
    dict (views into the buffers, no copy) or None."""
    meta = batch["meta"].tolist()
    samples = []
    for k, h, w, depth, hc, wc, po, vo, mo in meta:
        n, cells = k * h * w * 3, k * 2 * hc * wc
        pic, vec, msk = batch["pictures"], batch["vectors"], batch["masks"]
        chain_n = k * depth * 2 * hc * wc
        samples.append({
            "frame": pic[po : po + n].view(k, h, w, 3), "root": pic[po + n : po + 2 * n].view(k, h, w, 3),
            "chain": vec[vo : vo + chain_n].view(k, depth, 2, hc, wc),
            "l1": vec[vo + chain_n : vo + chain_n + cells].view(k, 2, hc, wc),
            "nxt": vec[vo + chain_n + cells : vo + chain_n + 2 * cells].view(k, 2, hc, wc),
            "only_l1": msk[mo : mo + k * hc * wc].view(k, hc, wc),
            "use_l1": msk[mo + k * hc * wc : mo + k * hc * wc + k],
        })
    aug = batch["aug"]
    return [None if s < 0 else {**samples[s], "aug": aug[s]} for s in batch["slot"].tolist()]
