"""A compact packed batch: the device path's packed samples (:mod:`.packed_p`) flattened, in the
worker, into one buffer per dtype whatever the batch size (issue 20), and unpacked as views on the
batch's device (``device_reconstruct.reconstruct_batch``)."""

from __future__ import annotations

from .packed_p import PICT

#: A compact packed batch (what :func:`pack_batch` returns, under the batch's ``packed`` key): the
#: packed samples' arrays flattened into one buffer per dtype, whatever the batch size (issue 20).
#: ``pictures`` uint8 (every sample's ``frame`` then ``root``), ``vectors`` int8 (``chain``,
#: ``depths``, ``sources``, ``l1_back``, ``l1``, ``choice`` of the samples whose quarter-pixel vectors all fit in int8, i.e. move
#: less than 32 px a step: nearly all), ``vectors_wide`` int16 (the same of the others), ``masks``
#: bool (``only_l1``), ``meta`` int64 (S, 25) per packed sample (``META``: sizes, the
#: sample's ``pict``, buffer offsets, ``wide``: its vectors are in ``vectors_wide``, ``multi``: it
#: ships reference choices), ``aug`` int64 (S, 7),
#: ``slot`` int64 (B,): the packed sample of each batch item, -1 where the worker took the CPU path
#: (that item's ``input`` is in the batch's ``input`` list).
META = ("k", "steps", "refs", "l1", "hc", "wc", "frame_n", "root_n", *PICT, "pictures", "vectors", "masks", "wide", "multi")
_INT8 = (-128, 127)
_PICT_AT = slice(8, 8 + len(PICT))


def pack_batch(packed: list[dict | None]) -> dict:
    """Per-sample packed dicts (torch tensors, ``pack_frames``'s keys and ``aug``; None for CPU-path
    items) -> one compact packed batch (7 tensors; :data:`META`)."""
    import torch

    present = [p for p in packed if p is not None]
    pictures, vectors, masks, meta = [], [[], []], [], []
    offsets = [0, [0, 0], 0]  # pictures, vectors (narrow, wide), masks
    for p in present:
        steps, _, hc, wc = p["chain"].shape
        vec = torch.cat([p["chain"].reshape(-1), p["depths"], p["sources"].reshape(-1), p["l1_back"],
                         p["l1"].reshape(-1), p["choice"].reshape(-1)])
        wide = int(bool(len(vec)) and not (_INT8[0] <= int(vec.min()) and int(vec.max()) <= _INT8[1]))
        meta.append([len(p["depths"]), steps, p["sources"].shape[1], len(p["l1"]), hc, wc, len(p["frame"]), len(p["root"]),
                     *p["pict"].tolist(), offsets[0], offsets[1][wide], offsets[2], wide, int(len(p["choice"]) > 0)])
        pic = [p["frame"], p["root"]]
        msk = [p["only_l1"].reshape(-1)]
        pictures += pic
        vectors[wide].append(vec)
        masks += msk
        offsets[0] += sum(len(t) for t in pic)
        offsets[1][wide] += len(vec)
        offsets[2] += sum(len(t) for t in msk)
    slot, s = [], 0
    for p in packed:
        slot.append(-1 if p is None else s)
        s += p is not None
    cat = lambda parts, dtype: torch.cat(parts).to(dtype) if parts else torch.zeros(0, dtype=dtype)  # noqa: E731
    return {"pictures": cat(pictures, torch.uint8), "vectors": cat(vectors[0], torch.int8),
            "vectors_wide": cat(vectors[1], torch.int16),
            "masks": cat(masks, torch.bool), "meta": torch.tensor(meta, dtype=torch.int64).reshape(-1, len(META)),
            "aug": torch.stack([p["aug"] for p in present]) if present else torch.zeros(0, 7, dtype=torch.int64),
            "slot": torch.tensor(slot, dtype=torch.int64)}


def unpack_batch(batch: dict) -> list[dict | None]:
    """:func:`pack_batch`'s inverse, on whatever device the batch is: per batch item its packed
    dict (views into the buffers, no copy) or None."""
    rows = batch["meta"].tolist()
    pic, msk, buffers = batch["pictures"], batch["masks"], (batch["vectors"], batch["vectors_wide"])
    samples = []
    for s, (k, steps, refs, n_l1, hc, wc, frame_n, root_n, *rest) in enumerate(rows):
        po, vo, mo, wide, multi = rest[len(PICT):]
        vec = buffers[wide]
        cells = hc * wc
        sizes = [("chain", steps * 2 * cells, (steps, 2, hc, wc)), ("depths", k, (k,)),
                 ("sources", steps * refs, (steps, refs)), ("l1_back", steps, (steps,)),
                 ("l1", n_l1 * 2 * cells, (n_l1, 2, hc, wc)),
                 ("choice", (steps if multi else 0) * cells, (steps if multi else 0, hc, wc))]
        sample = {"frame": pic[po : po + frame_n], "root": pic[po + frame_n : po + frame_n + root_n],
                  "pict": batch["meta"][s, _PICT_AT], "only_l1": msk[mo : mo + n_l1 * cells].view(n_l1, hc, wc)}
        for key, size, shape in sizes:
            sample[key] = vec[vo : vo + size].view(shape)
            vo += size
        samples.append(sample)
    aug = batch["aug"]
    return [None if s < 0 else {**samples[s], "aug": aug[s]} for s in batch["slot"].tolist()]
