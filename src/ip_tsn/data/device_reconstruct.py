"""Device side of ``reconstruct: device``: packed P-frames (:mod:`.packed_p`) -> the stream's input,
batched with torch ops on the batch's device (``VideoDataModule.on_after_batch_transfer``).

The result equals the CPU path (``CompressedVideo.load`` then the dataset's transforms): motion and
residual bit for bit, the resize / crop / flip / normalisation within float rounding. The CPU path
interpolates with OpenCV's ``remap``, whose arithmetic is repeated here:

- motion fields (two float channels, ``codec.motion.compose``): OpenCV's table path, coordinates
  rounded to 1/32 px (half to even), bilinear weights from its float table, the four products
  summed left to right in float32;
- pictures (uint8, ``codec.motion.warp``): OpenCV's vector kernel: coordinates as given, two
  fused multiply-adds per row and one between rows in float32 (emulated in float64, exact before
  the one rounding to float32), rounded half to even.

A packed sample (``sample["packed"]``) holds ``frame`` / ``root`` (flat uint8 picture windows,
4:2:0 planes or RGB, described by ``pict`` (12,) int64: ``packed_p.PICT``), each frame's steps
(every picture its motion is built from, in decode order, the frame last): ``chain`` (sum of
depths, 2, Hc, Wc) int16 quarter pixels (int8 out of a compact batch, :func:`.packed_batch.pack_batch`)
with ``depths`` (K,), ``sources`` (sum of depths, M) where each step's candidate reference pictures
are in steps back (-1: the root), ``choice`` (sum of depths, Hc, Wc) (H.264's per-cell reference
choice among them; empty where there is none), ``l1_back`` (sum of depths,) (a B-frame step's next
anchor in steps back, -1 for none) with ``l1`` (L, 2, Hc, Wc) int16 and ``only_l1`` (L, Hc, Wc) bool
for the steps that have one (:mod:`.packed_p`); and ``aug`` (7,) int64: ``(mode, top, left, height, width, flipped,
view)``, mode ``packed_p.AUG_EVAL`` (the test views), ``AUG_CROP`` (a TSN multi-scale crop, resized,
mirrored if ``flipped``) or ``AUG_VIEW`` (fixed training view ``view``).

The pictures are put back on full-size (K, H, W, 3) canvases, zero outside their windows: the
frame's window holds all the view reads and the root's all the motion reaches, so every pixel the
view depends on is the CPU path's. 4:2:0 windows become RGB through ``codec.frames``'s table of
FFmpeg's own conversion (one gather), so the pictures are the CPU path's bit for bit.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import torch

from .modalities import x_channels
from ..codec.frames import yuv420_rgb_table
from .packed_batch import unpack_batch
from .packed_p import AUG_CROP, AUG_VIEW, CELL, PACKED, QUARTER, YUV420
from .preprocess import Preprocess
from .transforms import apply_view, eval_views, hflip, normalize, resize, resize_short

TAB = 32  # OpenCV's INTER_TAB_SIZE: remap's coordinate steps per pixel (its float-map table path)
_CHANNELS = {"mv": slice(0, 2), "residual": slice(2, 5), "p": slice(0, 5)}

def _grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) float32 x and y pixel coordinates."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    return xs, ys

def _gather(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, base: torch.Tensor | int = 0) -> torch.Tensor:
    """``image[n, :, ys[n], xs[n]]``: (N, C, H, W), indices (N, H', W') int64 -> (N, C, H', W');
    ``base`` (N, H', W') is added to each flat index (the tile of a stack of fields)."""
    n, c, h, w = image.shape
    flat = (base + ys * w + xs).reshape(n, 1, -1).expand(n, c, -1)
    return image.reshape(n, c, -1).gather(2, flat).reshape(n, c, *ys.shape[1:])

def sample_field(field: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor,
                 which: torch.Tensor | None = None) -> torch.Tensor:
    """OpenCV ``remap`` (bilinear, replicated border) of a float field at (N, H, W) float32
    coordinates: (N, C, H, W) float32 -> (N, C, H, W) float32, as ``codec.motion`` computes it.
    With ``which`` (N, H, W) int64, ``field`` is a stack (N, C, M, H, W) and each pixel samples
    field ``which`` of it (``codec.motion.compose_choice``)."""
    base: torch.Tensor | int = 0
    if which is not None:
        n, c, m, hh, ww = field.shape
        field = field.reshape(n, c, m * hh, ww)  # tiles one under another (a view)
        base = which * (hh * ww)
    h, w = field.shape[-2:] if which is None else (hh, ww)
    t1 = torch.arange(TAB, dtype=torch.float32, device=field.device) * (1.0 / TAB)
    t0 = 1 - t1
    qx, qy = torch.round(map_x * TAB).long(), torch.round(map_y * TAB).long()
    ix, iy, fx, fy = qx >> 5, qy >> 5, qx & (TAB - 1), qy & (TAB - 1)
    x0, x1, y0, y1 = ix.clamp(0, w - 1), (ix + 1).clamp(0, w - 1), iy.clamp(0, h - 1), (iy + 1).clamp(0, h - 1)
    w00, w01 = (t0[fy] * t0[fx]).unsqueeze(1), (t0[fy] * t1[fx]).unsqueeze(1)
    w10, w11 = (t1[fy] * t0[fx]).unsqueeze(1), (t1[fy] * t1[fx]).unsqueeze(1)
    out = _gather(field, y0, x0, base) * w00 + _gather(field, y0, x1, base) * w01
    out = out + _gather(field, y1, x0, base) * w10
    return out + _gather(field, y1, x1, base) * w11

def compose(mv: torch.Tensor, ref_mv: torch.Tensor, which: torch.Tensor | None = None) -> torch.Tensor:
    """``mv(p) + ref_mv(p + mv(p))``: (N, 2, H, W) float32 each (``codec.motion.compose``); with
    ``which`` (N, H, W) int64, ``ref_mv`` (N, 2, M, H, W) and pixel p composes through
    ``ref_mv[:, :, which[p]]`` (``codec.motion.compose_choice``)."""
    xs, ys = _grid(*mv.shape[-2:], mv.device)
    return mv + sample_field(ref_mv, xs + mv[:, 0], ys + mv[:, 1], which)

def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 ``a * b + c`` rounded once (the product and sum are exact in float64 here)."""
    return (a.double() * b.double() + c.double()).float()

def warp_pictures(image: torch.Tensor, mv: torch.Tensor) -> torch.Tensor:
    """Motion-compensated prediction ``out[y, x] = image[y + dy, x + dx]`` (bilinear, replicated
    border), as ``codec.motion.warp`` computes it: (N, 3, H, W) uint8, (N, 2, H, W) -> uint8."""
    xs, ys = _grid(*mv.shape[-2:], mv.device)
    map_x, map_y = xs + mv[:, 0], ys + mv[:, 1]
    fx, fy = torch.floor(map_x), torch.floor(map_y)
    ax, ay = (map_x - fx).unsqueeze(1), (map_y - fy).unsqueeze(1)
    h, w = image.shape[-2:]
    ix, iy = fx.long(), fy.long()
    x0, x1, y0, y1 = ix.clamp(0, w - 1), (ix + 1).clamp(0, w - 1), iy.clamp(0, h - 1), (iy + 1).clamp(0, h - 1)
    pic = image.float()
    p00, p01 = _gather(pic, y0, x0), _gather(pic, y0, x1)
    p10, p11 = _gather(pic, y1, x0), _gather(pic, y1, x1)
    top, bottom = _fma(ax, p01 - p00, p00), _fma(ax, p11 - p10, p10)
    return torch.round(_fma(ay, bottom - top, top)).clamp(0, 255).to(torch.uint8)

def cell_motion(cells: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 2, Hc, Wc) int16 quarter-pixel cell vectors -> (N, 2, H, W) float32 pixels."""
    mv = cells.float() / QUARTER
    return mv.repeat_interleave(CELL, -2).repeat_interleave(CELL, -1)[..., :height, :width]

def _cell_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return mask.repeat_interleave(CELL, -2).repeat_interleave(CELL, -1)[..., :height, :width]

def rebuild(frame: torch.Tensor, root: torch.Tensor, chain: torch.Tensor, sources: torch.Tensor, host: list,
            l1_back: list[list[int]], l1: torch.Tensor, only_l1: torch.Tensor,
            choice: torch.Tensor | None = None) -> torch.Tensor:
    """Motion and residual of N packed frames: (N, 5, H, W) float32, channels (dx, dy) in pixels
    then the int16-valued residual (frame minus the root warped by the motion). ``frame`` / ``root``
    (N, H, W, 3) uint8; ``chain`` (N, D, 2, Hc, Wc) each frame's steps, front-padded (a padded step's
    motion is zero); ``sources`` (N, D, M) int64 where each step's candidates are, in steps back (0
    the step before, -1 the root: zero motion; ``host``: the same as lists);
    ``choice`` (N, D, Hc, Wc) the candidate each cell composes through (None: the first);
    ``l1_back`` per frame and step (host lists, unpadded) how many steps back the anchor its
    L1-only cells are traced through is (-1: none), those steps' L1 vectors ``l1`` (L, 2, Hc, Wc)
    and cells ``only_l1`` (L, Hc, Wc) in frame then step order."""
    n, h, w, _ = frame.shape
    depth, device = chain.shape[1], frame.device
    reach = 1 + max(0, *(b for f in host for s in f for b in s), *(b for f in l1_back for b in f))
    zero = reach  # the ring's last field stays zero: the root's motion
    ring = torch.zeros(n, 2, reach + 1, h, w, dtype=torch.float32, device=device)  # step t's motion in t % reach
    first = [[s[0] for s in f] for f in host]  # (N, D): each step's first candidate
    pads = [depth - len(f) for f in l1_back]
    traced = [[-1] * pad + list(f) for pad, f in zip(pads, l1_back)]  # front-padded as the steps are
    number = itertools.count()
    rows = [[next(number) if b >= 0 else -1 for b in f] for f in traced]  # each traced step's row of l1
    for t in range(depth):
        mv = cell_motion(chain[:, t], h, w)
        # where each frame's step reads; a padded step, or a first step reading the root, reads zero
        # from any slot (every slot of that frame is still zero)
        slots = {zero if f[t] < 0 else (t - 1 - f[t]) % reach for f, pad in zip(first, pads)
                 if t > pad or (t == pad and f[t] >= 0)}
        if choice is None and len(slots) <= 1:  # every frame's step reads one field: no stack
            made = compose(mv, ring[:, :, slots.pop() if slots else zero])
        else:
            cells = chain.shape[-2] * chain.shape[-1]
            back = (sources[:, t, :1].expand(-1, cells) if choice is None
                    else sources[:, t].gather(1, choice[:, t].flatten(1).long()))  # (N, cells)
            slot = torch.where(back < 0, zero, (t - 1 - back) % reach).view(n, *chain.shape[-2:])
            made = compose(mv, ring, _cell_mask(slot, h, w))
        sel = [k for k in range(n) if traced[k][t] >= 0]
        if sel:  # B-frame steps: L1-only cells through their next anchor's motion
            nslot = torch.tensor([(t - 1 - traced[k][t]) % reach for k in sel], device=device)
            idx = torch.tensor([rows[k][t] for k in sel], dtype=torch.int64, device=device)
            at = torch.tensor(sel, dtype=torch.int64, device=device)
            through = compose(cell_motion(l1[idx], h, w), ring[at, :, nslot])
            made[at] = torch.where(_cell_mask(only_l1[idx], h, w).unsqueeze(1), through, made[at])
        ring[:, :, t % reach] = made
    pred = warp_pictures(root.permute(0, 3, 1, 2), made)
    res = frame.permute(0, 3, 1, 2).to(torch.int16) - pred.to(torch.int16)
    return torch.cat([made, res.float()], dim=1)

_TABLES: dict[tuple[str, int], torch.Tensor] = {}


def _rgb_table(colorspace: int, device: torch.device) -> torch.Tensor:
    """(2**24, 3) uint8 on ``device``: row ``Y << 16 | U << 8 | V`` is that pixel's RGB."""
    key = (str(device), colorspace)
    if key not in _TABLES:
        _TABLES[key] = torch.from_numpy(yuv420_rgb_table(colorspace)).reshape(-1, 3).to(device)
    return _TABLES[key]


def canvases(flat: list[torch.Tensor], picts: list[list[int]], ks: list[int], which: str) -> torch.Tensor:
    """S samples' ``frame`` or ``root`` (``which``) windows -> (sum K, H, W, 3) uint8 RGB pictures,
    zero outside the windows; one set of ops for all (the samples share H and W)."""
    buf = torch.cat(flat)
    device, h, w = buf.device, picts[0][2], picts[0][3]
    at = 4 if which == "frame" else 8
    rows, base = [], 0
    for f, pict, k in zip(flat, picts, ks):
        y0, x0, bh, bw = pict[at : at + 4]
        size = len(f) // k  # one picture's bytes
        rows += [[pict[0], pict[1], base + j * size, y0, x0, bh, bw, (bh + 1) // 2, (bw + 1) // 2]  # even y0, x0
                 for j in range(k)]
        base += len(f)
    out = torch.zeros(len(rows), h, w, 3, dtype=torch.uint8, device=device)
    for fmt, space in sorted({(r[0], r[1]) for r in rows}):
        sel = [i for i, r in enumerate(rows) if (r[0], r[1]) == (fmt, space)]
        t = torch.tensor([rows[i] for i in sel], dtype=torch.int64, device=device)[:, 2:, None, None]
        start, y0, x0, bh, bw, ch, cw = t.unbind(1)  # each (P, 1, 1)
        ys = torch.arange(h, device=device)[None, :, None] - y0
        xs = torch.arange(w, device=device)[None, None, :] - x0
        inside = (ys >= 0) & (ys < bh) & (xs >= 0) & (xs < bw)  # (P, H, W)
        ys, xs = ys.clamp(min=0), xs.clamp(min=0)
        if fmt == YUV420:
            luma = torch.where(inside, start + ys * bw + xs, 0)
            u_at = torch.where(inside, start + bh * bw + (ys // 2) * cw + xs // 2, 0)
            y, u, v = buf[luma].long(), buf[u_at].long(), buf[u_at + ch * cw].long()
            rgb = _rgb_table(space, device)[(y << 16) | (u << 8) | v]
        else:
            at3 = torch.where(inside, start + (ys * bw + xs) * 3, 0).unsqueeze(-1)
            rgb = buf[at3 + torch.arange(3, device=device)]
        out[sel] = torch.where(inside.unsqueeze(-1), rgb, 0)
    return out


def padded_chains(chain: torch.Tensor, depths: list[int], fill: int = 0) -> torch.Tensor:
    """K frames' steps one after another (sum of ``depths``, ...) -> (K, D, ...), D the deepest, the
    shorter ones front-padded with ``fill`` (zero vectors: a step that composes to nothing; -1
    sources: the root)."""
    deepest = max(depths)
    rows = [k * deepest + deepest - d + j for k, d in enumerate(depths) for j in range(d)]
    out = chain.new_full((len(depths) * deepest, *chain.shape[1:]), fill)
    out[torch.tensor(rows, device=chain.device)] = chain
    return out.view(len(depths), deepest, *chain.shape[1:])


def _batched_views(x: torch.Tensor, augs: list[list[int]], pre: Preprocess, xch: tuple[int, ...]) -> list[torch.Tensor]:
    """The views of S samples, as the dataset draws them (``aug``: the test views, a fixed training
    view or a TSN crop, resized, mirrored if drawn so): ``x`` (S, K, C, H, W) normalised frames ->
    each sample's (N, C, crop, crop), one set of ops per kind of view (the test views; each fixed
    view id; each crop size), not per sample."""
    n, k = x.shape[:2]
    out: list[Any] = [None] * n
    evals = [i for i, a in enumerate(augs) if a[0] not in (AUG_VIEW, AUG_CROP)]
    if evals:  # crop-major per sample: (crops, E, K, ...) -> sample e's (crops * K, ...)
        v = eval_views(x[evals].flatten(0, 1), pre.crop_size, pre.test_crops, xch, pre.flip)
        v = v.view(-1, len(evals), k, *v.shape[1:]).transpose(0, 1)
        for j, i in enumerate(evals):
            out[i] = v[j].flatten(0, 1)
    for view in sorted({a[6] for a in augs if a[0] == AUG_VIEW}):
        members = [i for i, a in enumerate(augs) if a[0] == AUG_VIEW and a[6] == view]
        v = apply_view(x[members].flatten(0, 1), view, pre.crop_size, pre.train_views, pre.flip, xch)  # type: ignore[arg-type]
        for j, i in enumerate(members):
            out[i] = v[j * k : (j + 1) * k]
    for size in sorted({(a[3], a[4]) for a in augs if a[0] == AUG_CROP}):
        members = [i for i, a in enumerate(augs) if a[0] == AUG_CROP and (a[3], a[4]) == size]
        idx = torch.tensor([[augs[i][1], augs[i][2]] for i in members], device=x.device)
        rows = idx[:, :1] + torch.arange(size[0], device=x.device)  # (M, h)
        cols = idx[:, 1:] + torch.arange(size[1], device=x.device)  # (M, w)
        m = torch.arange(len(members), device=x.device)[:, None, None]
        win = x[members][m, :, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 4, 1, 2)  # (M, K, C, h, w)
        v = resize(win.flatten(0, 1), pre.crop_size, pre.crop_size).view(len(members), k, *win.shape[2:3],
                                                                         pre.crop_size, pre.crop_size)
        flipped = [j for j, i in enumerate(members) if augs[i][5]]
        if flipped:
            v = v.clone()
            v[flipped] = hflip(v[flipped].flatten(0, 1), xch).view(len(flipped), *v.shape[1:])
        for j, i in enumerate(members):
            out[i] = v[j]
    return out


def _choices(samples: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor | None:
    """The samples' reference choices one after another (sum of depths, Hc, Wc), zero (the first
    candidate) for samples that ship none; None when no sample ships any."""
    if not any(len(p.get("choice", ())) for p in samples):
        return None
    return torch.cat([p["choice"] if len(p["choice"]) else p["chain"].new_zeros(len(p["chain"]), *p["chain"].shape[2:])
                      for p in samples])


def rebuild_packed(samples: Sequence[dict[str, torch.Tensor]], picts: list[list[int]] | None = None) -> torch.Tensor:
    """The motion and residual of packed samples of one frame size, all their frames at once:
    (sum of K, 5, H, W) float32 (:func:`rebuild`), equal to ``CompressedVideo.load``'s ``mv`` and
    ``residual`` bit for bit inside each sample's frame window. ``picts``: their ``pict`` as lists,
    if already read (one device sync for a batch)."""
    picts = [p["pict"].tolist() for p in samples] if picts is None else picts
    ks = [len(p["depths"]) for p in samples]
    cat = {key: torch.cat([p[key] for p in samples]) for key in ("chain", "depths", "sources", "l1_back", "l1", "only_l1")}
    small = torch.cat([cat["depths"].long(), cat["l1_back"].long(), cat["sources"].long().flatten()]).tolist()  # one sync
    k_all, steps, refs = len(cat["depths"]), len(cat["l1_back"]), cat["sources"].shape[1]
    depths, flat, src = small[:k_all], small[k_all : k_all + steps], small[k_all + steps :]
    starts = [sum(depths[:k]) for k in range(len(depths))]
    l1_back = [flat[a : a + d] for a, d in zip(starts, depths)]
    deepest = max(depths)
    host = [[[-1] * refs] * (deepest - d) + [src[(a + j) * refs : (a + j + 1) * refs] for j in range(d)]
            for a, d in zip(starts, depths)]
    frame, root = (canvases([p[key] for p in samples], picts, ks, key) for key in ("frame", "root"))
    choice = _choices(samples)
    return rebuild(frame, root, padded_chains(cat["chain"], depths), padded_chains(cat["sources"].long(), depths, -1),
                   host, l1_back, cat["l1"], cat["only_l1"], None if choice is None else padded_chains(choice, depths))


def packed_inputs(packed: Sequence[dict[str, torch.Tensor]], pre: Preprocess) -> list[torch.Tensor]:
    """The network input (N, C, crop, crop) float32 of each packed sample, rebuilt together
    (samples of one frame size at once; their views too where they have the same K)."""
    out: list[Any] = [None] * len(packed)
    picts = torch.stack([p["pict"] for p in packed]).tolist()  # one sync, not one per sample
    augs = torch.stack([p["aug"] for p in packed]).tolist()
    groups: dict[tuple[int, int], list[int]] = {}
    for b, pict in enumerate(picts):
        groups.setdefault((pict[2], pict[3]), []).append(b)
    xch = x_channels(pre.modality, pre.flow_length)
    for members in groups.values():
        ks = [len(packed[b]["depths"]) for b in members]
        raw = rebuild_packed([packed[b] for b in members], [picts[b] for b in members])
        x_all = normalize(raw, "p")[:, _CHANNELS[pre.modality]]
        if pre.scale_size:
            x_all = resize_short(x_all, pre.scale_size)
        if len(set(ks)) == 1:  # one K: every view of the group in a fixed number of ops
            k = ks[0]
            views = _batched_views(x_all.view(len(members), k, *x_all.shape[1:]), [augs[b] for b in members], pre, xch)
            for b, x in zip(members, views):
                out[b] = x.contiguous()
            continue
        start = 0
        for b, k in zip(members, ks):
            x = x_all[start : start + k]
            start += k
            out[b] = _batched_views(x[None], [augs[b]], pre, xch)[0].contiguous()
    return out

def reconstruct_batch(batch: dict[str, Any], pre: Preprocess) -> dict[str, Any]:
    """A collated batch with ``packed`` (a compact packed batch, ``packed_batch.pack_batch``; items the
    worker took the CPU path for have their result in ``input``) -> the same batch with ``input``
    (B, N, C, crop, crop)."""
    packed = batch.pop(PACKED, None)
    if packed is None:  # every sample took the CPU path: collated as usual
        return batch
    packed = unpack_batch(packed)
    inputs = list(batch["input"]) if isinstance(batch.get("input"), (list, tuple)) else [None] * len(packed)
    todo = [b for b, p in enumerate(packed) if p is not None]
    for b, x in zip(todo, packed_inputs([packed[b] for b in todo], pre)):
        inputs[b] = x
    batch["input"] = torch.stack(inputs)
    return batch
