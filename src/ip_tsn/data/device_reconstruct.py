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
4:2:0 planes or RGB, described by ``pict`` (12,) int64: ``packed_p.PICT``), ``chain``
(sum of depths, 2, Hc, Wc) int16 quarter pixels (int8 out of a compact batch, :func:`.packed_batch.pack_batch`; the K chains one after another) with ``depths`` (K,),
``choice`` (sum of depths, Hc, Wc) / ``nxt_choice`` (L, Hc, Wc) (H.264's per-cell reference choice, the
step before that each cell composes through, 0 the nearest; empty where there is none),
``l1`` / ``nxt`` (L, 2, Hc, Wc) int16 and ``only_l1`` (L, Hc,
Wc) bool, ``use_l1`` (K,) bool and ``aug`` (7,) int64: ``(mode, top, left, height, width, flipped,
view)``, mode ``packed_p.AUG_EVAL`` (the test views), ``AUG_CROP`` (a TSN multi-scale crop, resized,
mirrored if ``flipped``) or ``AUG_VIEW`` (fixed training view ``view``).

The pictures are put back on full-size (K, H, W, 3) canvases, zero outside their windows: the
frame's window holds all the view reads and the root's all the motion reaches, so every pixel the
view depends on is the CPU path's. 4:2:0 windows become RGB through ``codec.frames``'s table of
FFmpeg's own conversion (one gather), so the pictures are the CPU path's bit for bit.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .modalities import x_channels
from ..codec.frames import yuv420_rgb_table
from ..codec.reconstruct import MAX_REFERENCES
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
    With ``which`` (N, H, W) int64, ``field`` is a stack (N, M, C, H, W) and each pixel samples
    field ``which`` of it (``codec.motion.compose_choice``)."""
    base: torch.Tensor | int = 0
    if which is not None:
        n, m, c, hh, ww = field.shape
        field = field.transpose(1, 2).reshape(n, c, m * hh, ww)  # tiles one under another
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
    ``which`` (N, H, W) int64, ``ref_mv`` (N, M, 2, H, W) and pixel p composes through
    ``ref_mv[:, which[p]]`` (``codec.motion.compose_choice``)."""
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

def _through(mv: torch.Tensor, ring: list[torch.Tensor], choice: torch.Tensor | None) -> torch.Tensor:
    """``mv`` (N, 2, H, W) composed through the field of ``ring`` (the steps before, nearest first)
    that ``choice`` (N, Hc, Wc) names per cell, or through the nearest (``choice`` None)."""
    if choice is None:
        return compose(mv, ring[0])
    h, w = mv.shape[-2:]
    return compose(mv, torch.stack(ring, 1), _cell_mask(choice.long(), h, w))

def rebuild(frame: torch.Tensor, root: torch.Tensor, chain: torch.Tensor, l1: torch.Tensor,
            only_l1: torch.Tensor, nxt: torch.Tensor, sel: torch.Tensor, choice: torch.Tensor | None = None,
            nxt_choice: torch.Tensor | None = None) -> torch.Tensor:
    """Motion and residual of N packed frames: (N, 5, H, W) float32, channels (dx, dy) in pixels
    then the int16-valued residual (frame minus the root warped by the motion). ``frame`` / ``root``
    (N, H, W, 3) uint8, ``chain`` (N, D, 2, Hc, Wc) front-padded; ``l1`` / ``nxt`` (L, 2, Hc, Wc) and
    ``only_l1`` (L, Hc, Wc) belong to the frames ``sel`` (L,) that trace L1-only cells. With H.264's
    several reference pictures, ``choice`` (N, D, Hc, Wc) names per cell the step before (0 the
    nearest, up to ``MAX_REFERENCES`` - 1; the root's motion is zero) each step composes through,
    and ``nxt_choice`` (L, Hc, Wc) the same for ``nxt``; None: always the nearest."""
    n, h, w, _ = frame.shape
    ring = [torch.zeros(n, 2, h, w, dtype=torch.float32, device=frame.device)] * MAX_REFERENCES
    for step in range(chain.shape[1] - 1):  # the anchors back to the root (zero steps keep zero)
        made = _through(cell_motion(chain[:, step], h, w), ring, None if choice is None else choice[:, step])
        ring = [made, *ring[:-1]]
    out = _through(cell_motion(chain[:, -1], h, w), ring, None if choice is None else choice[:, -1])
    if len(sel):
        via = _through(cell_motion(nxt, h, w), [r[sel] for r in ring], nxt_choice)
        through = compose(cell_motion(l1, h, w), via)
        mask = _cell_mask(only_l1, h, w).unsqueeze(1)
        out[sel] = torch.where(mask, through, out[sel])
    pred = warp_pictures(root.permute(0, 3, 1, 2), out)
    res = frame.permute(0, 3, 1, 2).to(torch.int16) - pred.to(torch.int16)
    return torch.cat([out, res.float()], dim=1)

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


def padded_chains(chain: torch.Tensor, depths: list[int]) -> torch.Tensor:
    """K chains one after another (sum of ``depths``, 2, Hc, Wc) -> (K, D, 2, Hc, Wc), D the longest,
    the shorter ones front-padded with zero steps (a zero step composes to nothing)."""
    deepest = max(depths)
    rows = [k * deepest + deepest - d + j for k, d in enumerate(depths) for j in range(d)]
    out = chain.new_zeros(len(depths) * deepest, *chain.shape[1:])
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


def _choices(samples: Sequence[dict[str, torch.Tensor]]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The samples' reference choices one after another: ``choice`` (sum of depths, Hc, Wc) and
    ``nxt_choice`` (L, Hc, Wc), zero (the nearest step) for samples that ship none; (None, None)
    when no sample ships any."""
    if not any(len(p.get("choice", ())) for p in samples):
        return None, None
    def own(p: dict, key: str, rows: int) -> torch.Tensor:
        return p[key] if len(p[key]) else p["chain"].new_zeros(rows, *p["chain"].shape[2:])
    return (torch.cat([own(p, "choice", len(p["chain"])) for p in samples]),
            torch.cat([own(p, "nxt_choice", len(p["nxt"])) for p in samples]))


def rebuild_packed(samples: Sequence[dict[str, torch.Tensor]], picts: list[list[int]] | None = None) -> torch.Tensor:
    """The motion and residual of packed samples of one frame size, all their frames at once:
    (sum of K, 5, H, W) float32 (:func:`rebuild`), equal to ``CompressedVideo.load``'s ``mv`` and
    ``residual`` bit for bit inside each sample's frame window. ``picts``: their ``pict`` as lists,
    if already read (one device sync for a batch)."""
    picts = [p["pict"].tolist() for p in samples] if picts is None else picts
    ks = [len(p["use_l1"]) for p in samples]
    cat = {key: torch.cat([p[key] for p in samples]) for key in ("chain", "depths", "l1", "only_l1", "nxt", "use_l1")}
    depths, use_l1 = cat["depths"].tolist(), cat["use_l1"].tolist()
    frame, root = (canvases([p[key] for p in samples], picts, ks, key) for key in ("frame", "root"))
    sel = torch.tensor([i for i, u in enumerate(use_l1) if u], dtype=torch.int64, device=frame.device)
    choice, nxt_choice = _choices(samples)
    return rebuild(frame, root, padded_chains(cat["chain"], depths), cat["l1"], cat["only_l1"], cat["nxt"], sel,
                   None if choice is None else padded_chains(choice, depths), nxt_choice)


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
        ks = [len(packed[b]["use_l1"]) for b in members]
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
