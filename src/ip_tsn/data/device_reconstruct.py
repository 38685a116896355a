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

A packed sample (``sample["packed"]``) holds ``frame`` / ``root`` (K, H, W, 3) uint8, ``chain``
(K, D, 2, Hc, Wc) int16 quarter pixels, ``l1`` / ``nxt`` (K, 2, Hc, Wc) int16, ``only_l1`` (K, Hc,
Wc) bool, ``use_l1`` (K,) bool and ``aug`` (7,) int64: ``(mode, top, left, height, width, flipped,
view)``, mode ``packed_p.AUG_EVAL`` (the test views), ``AUG_CROP`` (a TSN multi-scale crop, resized,
mirrored if ``flipped``) or ``AUG_VIEW`` (fixed training view ``view``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .modalities import x_channels
from .packed_p import AUG_CROP, AUG_VIEW, CELL, PACKED, QUARTER, unpack_batch
from .preprocess import Preprocess
from .transforms import apply_view, eval_views, hflip, normalize, resize, resize_short

TAB = 32  # OpenCV's INTER_TAB_SIZE: remap's coordinate steps per pixel (its float-map table path)
_CHANNELS = {"mv": slice(0, 2), "residual": slice(2, 5), "p": slice(0, 5)}

def _grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) float32 x and y pixel coordinates."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    return xs, ys

def _gather(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """``image[n, :, ys[n], xs[n]]``: (N, C, H, W), indices (N, H', W') int64 -> (N, C, H', W')."""
    n, c, h, w = image.shape
    flat = (ys * w + xs).reshape(n, 1, -1).expand(n, c, -1)
    return image.reshape(n, c, h * w).gather(2, flat).reshape(n, c, *ys.shape[1:])

def sample_field(field: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor) -> torch.Tensor:
    """OpenCV ``remap`` (bilinear, replicated border) of a float field at (N, H, W) float32
    coordinates: (N, C, H, W) float32 -> (N, C, H, W) float32, as ``codec.motion`` computes it."""
    h, w = field.shape[-2:]
    t1 = torch.arange(TAB, dtype=torch.float32, device=field.device) * (1.0 / TAB)
    t0 = 1 - t1
    qx, qy = torch.round(map_x * TAB).long(), torch.round(map_y * TAB).long()
    ix, iy, fx, fy = qx >> 5, qy >> 5, qx & (TAB - 1), qy & (TAB - 1)
    x0, x1, y0, y1 = ix.clamp(0, w - 1), (ix + 1).clamp(0, w - 1), iy.clamp(0, h - 1), (iy + 1).clamp(0, h - 1)
    w00, w01 = (t0[fy] * t0[fx]).unsqueeze(1), (t0[fy] * t1[fx]).unsqueeze(1)
    w10, w11 = (t1[fy] * t0[fx]).unsqueeze(1), (t1[fy] * t1[fx]).unsqueeze(1)
    out = _gather(field, y0, x0) * w00 + _gather(field, y0, x1) * w01
    out = out + _gather(field, y1, x0) * w10
    return out + _gather(field, y1, x1) * w11

def compose(mv: torch.Tensor, ref_mv: torch.Tensor) -> torch.Tensor:
    """``mv(p) + ref_mv(p + mv(p))``: (N, 2, H, W) float32 each (``codec.motion.compose``)."""
    xs, ys = _grid(*mv.shape[-2:], mv.device)
    return mv + sample_field(ref_mv, xs + mv[:, 0], ys + mv[:, 1])

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

def rebuild(frame: torch.Tensor, root: torch.Tensor, chain: torch.Tensor, l1: torch.Tensor,
            only_l1: torch.Tensor, nxt: torch.Tensor, use_l1: torch.Tensor) -> torch.Tensor:
    """Motion and residual of N packed frames: (N, 5, H, W) float32, channels (dx, dy) in pixels
    then the int16-valued residual (frame minus the root warped by the motion)."""
    n, h, w, _ = frame.shape
    acc = torch.zeros(n, 2, h, w, dtype=torch.float32, device=frame.device)
    for step in range(chain.shape[1] - 1):  # the anchors back to the root (zero steps keep zero)
        acc = compose(cell_motion(chain[:, step], h, w), acc)
    out = compose(cell_motion(chain[:, -1], h, w), acc)
    if bool(use_l1.any()):
        sel = torch.nonzero(use_l1).squeeze(1)
        through = compose(cell_motion(l1[sel], h, w), compose(cell_motion(nxt[sel], h, w), acc[sel]))
        mask = _cell_mask(only_l1[sel], h, w).unsqueeze(1)
        out[sel] = torch.where(mask, through, out[sel])
    pred = warp_pictures(root.permute(0, 3, 1, 2), out)
    res = frame.permute(0, 3, 1, 2).to(torch.int16) - pred.to(torch.int16)
    return torch.cat([out, res.float()], dim=1)

def _front_pad(chain: torch.Tensor, depth: int) -> torch.Tensor:
    """(K, D, ...) -> (K, depth, ...), zero steps first."""
    missing = depth - chain.shape[1]
    if missing == 0:
        return chain
    return torch.cat([chain.new_zeros(chain.shape[0], missing, *chain.shape[2:]), chain], dim=1)

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


def packed_inputs(packed: Sequence[dict[str, torch.Tensor]], pre: Preprocess) -> list[torch.Tensor]:
    """The network input (N, C, crop, crop) float32 of each packed sample, rebuilt together
    (samples of one frame size at once; their views too where they have the same K)."""
    out: list[Any] = [None] * len(packed)
    groups: dict[tuple[int, int], list[int]] = {}
    for b, p in enumerate(packed):
        groups.setdefault(tuple(p["frame"].shape[1:3]), []).append(b)
    xch = x_channels(pre.modality, pre.flow_length)
    for members in groups.values():
        depth = max(packed[b]["chain"].shape[1] for b in members)
        cat = {key: torch.cat([packed[b][key] for b in members]) for key in ("frame", "root", "l1", "only_l1",
                                                                             "nxt", "use_l1")}
        chain = torch.cat([_front_pad(packed[b]["chain"], depth) for b in members])
        raw = rebuild(cat["frame"], cat["root"], chain, cat["l1"], cat["only_l1"], cat["nxt"], cat["use_l1"])
        x_all = normalize(raw, "p")[:, _CHANNELS[pre.modality]]
        if pre.scale_size:
            x_all = resize_short(x_all, pre.scale_size)
        ks = {packed[b]["frame"].shape[0] for b in members}
        if len(ks) == 1:  # one K: every view of the group in a fixed number of ops
            k = ks.pop()
            views = _batched_views(x_all.view(len(members), k, *x_all.shape[1:]),
                                   [packed[b]["aug"].tolist() for b in members], pre, xch)
            for b, x in zip(members, views):
                out[b] = x.contiguous()
            continue
        start = 0
        for b in members:
            k = packed[b]["frame"].shape[0]
            x = x_all[start : start + k]
            start += k
            out[b] = _batched_views(x[None], [packed[b]["aug"].tolist()], pre, xch)[0].contiguous()
    return out

def reconstruct_batch(batch: dict[str, Any], pre: Preprocess) -> dict[str, Any]:
    """A collated batch with ``packed`` (a compact packed batch, ``packed_p.pack_batch``; items the
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
