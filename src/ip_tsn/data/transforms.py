"""Augmentation and normalisation, consistent across the K segments and all modalities.

Every function takes a stack of frames, either a numpy array ``(K, H, W, C)`` or a tensor
``(K, C, H, W)``, and returns the same kind. Geometric transforms apply ONE set of parameters to
all K frames of a sample. Displacement values (mv, flow) are not rescaled when frames are resized
or cropped (as in TSN and CoViAR); a horizontal flip negates their x channels (``x_channels``).

Normalisation (:func:`normalize`, to float32, roughly [-1, 1] or ImageNet statistics):
    rgb / iframe: ``(x / 255 - mean) / std`` with ImageNet mean / std;
    mv: ``clip(mv, -20, 20) / 20``: motion stays float, in pixels, scaled to [-1, 1] (CoViAR's
        ``clip(mv, -20, 20) * 127.5 / 20 + 128`` is the same map onto [0.5, 255.5]);
    residual: ``x / 255`` (int16 in [-255, 255] -> [-1, 1]);
    p: mv channels (0, 1) as mv, residual channels (2, 3, 4) as residual;
    flow: ``(x - 128) / 128`` (uint8 with 128 = zero flow, bound 20 px).
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .modalities import check_modality

Frames = TypeVar("Frames", np.ndarray, torch.Tensor)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MV_BOUND = 20.0
TSN_SCALES = (1.0, 0.875, 0.75, 0.66)
CROP_FIX = "set data.scale_size >= crop_size"  # how a frame smaller than the crop is read (predict words it its way)


def _is_tensor(x: Frames) -> bool:
    return isinstance(x, torch.Tensor)


def _size(x: Frames) -> tuple[int, int]:
    """(H, W) of a frame stack in either layout."""
    return (x.shape[-2], x.shape[-1]) if _is_tensor(x) else (x.shape[1], x.shape[2])


def _channel_view(values: Sequence[float], x: Frames) -> Frames:
    """Per-channel values shaped to broadcast against ``x``."""
    if _is_tensor(x):
        return torch.tensor(values, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    return np.asarray(values, dtype=np.float32)


def _norm_params(modality: str, channels: int) -> list[list[float]]:
    """Per-channel [low clip, high clip, offset, scale]: ``(clip(x) - offset) / scale``."""
    inf = float("inf")
    rgb = [(-inf, inf, 255 * m, 255 * s) for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    mv = [(-MV_BOUND, MV_BOUND, 0.0, MV_BOUND)] * 2
    res = [(-inf, inf, 0.0, 255.0)] * 3
    flow = [(-inf, inf, 128.0, 128.0)] * channels
    rows = {"rgb": rgb, "iframe": rgb, "mv": mv, "residual": res, "p": mv + res, "flow": flow}[modality]
    if len(rows) != channels:
        raise ValueError(f"{modality} frames have {len(rows)} channels, got {channels}")
    return [list(col) for col in zip(*rows)]


def normalize(x: Frames, modality: str) -> Frames:
    """Raw frames of ``modality`` -> float32 normalised frames (module docstring), same shape."""
    channels = x.shape[-3] if _is_tensor(x) else x.shape[-1]
    lo, hi, offset, scale = (_channel_view(v, x) for v in _norm_params(check_modality(modality), channels))
    if _is_tensor(x):
        return (torch.clamp(x.float(), lo, hi) - offset) / scale
    return ((np.clip(x.astype(np.float32), lo, hi) - offset) / scale).astype(np.float32)


def crop(x: Frames, top: int, left: int, height: int, width: int) -> Frames:
    """The window ``[top, top + height) x [left, left + width)`` of every frame."""
    if _is_tensor(x):
        return x[..., top : top + height, left : left + width]
    return x[:, top : top + height, left : left + width]


def resize(x: Frames, height: int, width: int) -> Frames:
    """Bilinear resize of every frame to (height, width)."""
    if _size(x) == (height, width):
        return x
    if _is_tensor(x):
        return F.interpolate(x.float(), size=(height, width), mode="bilinear", align_corners=False)
    out = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in x]
    return np.stack(out).reshape(len(x), height, width, x.shape[-1])


def short_side_size(height: int, width: int, size: int | None) -> tuple[int, int]:
    """(H, W) of a ``height`` x ``width`` frame after :func:`resize_short` (None: unchanged)."""
    if not size:
        return height, width
    if height <= width:
        return size, max(1, round(width * size / height))
    return max(1, round(height * size / width)), size


def resize_short(x: Frames, size: int) -> Frames:
    """Resize so that the shorter side is ``size``, keeping the aspect ratio."""
    return resize(x, *short_side_size(*_size(x), size))


def hflip(x: Frames, x_channels: Sequence[int] = ()) -> Frames:
    """Mirror every frame left-right and negate the displacement channels ``x_channels``
    (signed values: flip after :func:`normalize`)."""
    signed = x.dtype.is_signed if _is_tensor(x) else x.dtype.kind in "if"
    if x_channels and not signed:
        raise ValueError(f"cannot negate channels of unsigned {x.dtype} frames: normalize them first")
    if _is_tensor(x):
        out = torch.flip(x, dims=(-1,))
        if x_channels:
            out[:, list(x_channels)] *= -1
        return out
    out = np.ascontiguousarray(x[:, :, ::-1])
    if x_channels:
        out[..., list(x_channels)] *= -1
    return out


def multi_scale_crop_params(
    height: int,
    width: int,
    crop_size: int,
    rng: np.random.Generator,
    scales: Sequence[float] = TSN_SCALES,
    max_distort: int = 1,
) -> tuple[int, int, int, int]:
    """TSN's ``GroupMultiScaleCrop``: a random window ``(top, left, h, w)``.

    Side lengths are ``min(height, width) * scale`` (snapped to ``crop_size`` within 3 px), h and w
    from scales at most ``max_distort`` apart; the offset is one of 13 fixed positions (corners,
    centre, edge centres, quarter points).
    """
    base = min(height, width)
    sides = [int(base * s) for s in scales]
    sides = [crop_size if abs(s - crop_size) < 3 else s for s in sides]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]
    ch, cw = pairs[rng.integers(len(pairs))]
    ch, cw = min(ch, height), min(cw, width)
    hs, ws = (height - ch) // 4, (width - cw) // 4
    grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
    gy, gx = grid[rng.integers(len(grid))]
    return gy * hs, gx * ws, ch, cw


def train_augment(
    x: Frames,
    crop_size: int,
    rng: np.random.Generator,
    x_channels: Sequence[int] = (),
    scales: Sequence[float] = TSN_SCALES,
    flip: bool = True,
) -> Frames:
    """Multi-scale crop resized to ``crop_size`` then, with probability 1/2, a horizontal flip.

    (K, H, W, C) -> (K, crop_size, crop_size, C) (or the tensor layout).
    """
    top, left, h, w = multi_scale_crop_params(*_size(x), crop_size, rng, scales)
    return crop_view(x, top, left, h, w, crop_size, bool(flip and rng.random() < 0.5), x_channels)


def crop_view(x: Frames, top: int, left: int, height: int, width: int, crop_size: int, flipped: bool,
              x_channels: Sequence[int] = ()) -> Frames:
    """A drawn TSN crop applied: the window resized to ``crop_size``, mirrored when ``flipped``.

    (K, H, W, C) -> (K, crop_size, crop_size, C) (or the tensor layout).
    """
    x = resize(crop(x, top, left, height, width), crop_size, crop_size)
    return hflip(x, x_channels) if flipped else x


def _window(x: Frames, size: int, fy: float, fx: float) -> Frames:
    """A ``size`` x ``size`` window at fractional position (fy, fx) of the free space."""
    h, w = _size(x)
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from frames of {w}x{h} (width x height): {CROP_FIX}")
    return crop(x, round((h - size) * fy), round((w - size) * fx), size, size)


def _cat(parts: list) -> Frames:
    return torch.cat(parts) if _is_tensor(parts[0]) else np.concatenate(parts)


def center_crop(x: Frames, size: int) -> Frames:
    """(K, H, W, C) -> (K, size, size, C): the central window."""
    return _window(x, size, 0.5, 0.5)


def three_crop(x: Frames, size: int) -> Frames:
    """(K, H, W, C) -> (3 * K, size, size, C): start / centre / end of the longer side
    (mmaction2 ``ThreeCrop``), crop-major (``out.reshape(3, K, ...)``)."""
    h, w = _size(x)
    spots = [(0.5, f) for f in (0.0, 0.5, 1.0)] if w >= h else [(f, 0.5) for f in (0.0, 0.5, 1.0)]
    return _cat([_window(x, size, fy, fx) for fy, fx in spots])


def ten_crop(x: Frames, size: int, x_channels: Sequence[int] = ()) -> Frames:
    """(K, H, W, C) -> (10 * K, size, size, C): 4 corners + centre, then their mirror images
    (TSN ``GroupOverSample``), crop-major (``out.reshape(10, K, ...)``)."""
    spots = [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.5)]
    five = [_window(x, size, fy, fx) for fy, fx in spots]
    return _cat(five + [hflip(c, x_channels) for c in five])


def check_crops(num_crops: int, flip: bool = True) -> None:
    """``ValueError`` unless ``num_crops`` is 1, 3 or 10 (10 only with ``flip``: half are mirrors)."""
    if num_crops not in (1, 3, 10):
        raise ValueError(f"test_crops must be 1, 3 or 10, got {num_crops}")
    if num_crops == 10 and not flip:
        raise ValueError("test_crops=10 holds 5 mirrored views, but flip is false (a dataset where "
                         "left and right are different actions): use test_crops=1 or 3")


def eval_views(x: Frames, crop_size: int, num_crops: int = 1, x_channels: Sequence[int] = (),
               flip: bool = True) -> Frames:
    """Evaluation crops: 1 (centre), 3 or 10 (the last only with ``flip``: 5 of them are mirrors).
    (K, H, W, C) -> (num_crops * K, crop, crop, C)."""
    check_crops(num_crops, flip)
    if num_crops == 1:
        return center_crop(x, crop_size)
    if num_crops == 3:
        return three_crop(x, crop_size)
    return ten_crop(x, crop_size, x_channels)


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """(K, H, W, C) numpy -> (K, C, H, W) contiguous float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


# -- a fixed set of training views (teacher and student see the same one) ------------------------
VIEW_SETS = (1, 3, 5)  # the view sets view_boxes draws


def check_views(num_views: int | None) -> None:
    """``ValueError`` unless ``num_views`` (``data.train_views``) is None or one of :data:`VIEW_SETS`."""
    if num_views is not None and num_views not in VIEW_SETS:
        raise ValueError(f"train_views must be {', '.join(map(str, VIEW_SETS[:-1]))} or {VIEW_SETS[-1]} (or null: "
                         f"random crops), got {num_views}")


def view_boxes(height: int, width: int, crop_size: int, num_views: int) -> list[tuple[int, int, int, int]]:
    """The ``num_views`` fixed crop windows ``(top, left, size, size)`` of a ``height`` x ``width``
    frame: 1 = the centre, 3 = start / centre / end of the longer side, 5 = the 4 corners and the
    centre (TSN's corner crops). The distilled stream's augmentation draws from these, and the
    teacher cache holds the teacher's outputs on each of them."""
    if height < crop_size or width < crop_size:
        raise ValueError(f"cannot crop {crop_size}x{crop_size} from frames of {width}x{height} (width x height)")
    fy, fx = height - crop_size, width - crop_size
    spots = {1: [(0.5, 0.5)],
             3: [(0.5, f) for f in (0.0, 0.5, 1.0)] if width >= height else [(f, 0.5) for f in (0.0, 0.5, 1.0)],
             5: [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.5)]}
    check_views(num_views)
    return [(round(fy * a), round(fx * b), crop_size, crop_size) for a, b in spots[num_views]]


def num_view_ids(num_views: int, flip: bool) -> int:
    """View ids of a view set: each box, and with ``flip`` its mirror image (id ``2 * box + 1``)."""
    return num_views * (2 if flip else 1)


def center_view(num_views: int, flip: bool) -> int:
    """The id of the centre box (unmirrored) in a view set: the evaluation crop."""
    box = {1: 0, 3: 1, 5: 4}[num_views]
    return 2 * box if flip else box


def apply_view(x: Frames, view: int, crop_size: int, num_views: int, flip: bool,
               x_channels: Sequence[int] = ()) -> Frames:
    """View ``view`` of :func:`view_boxes` (with ``flip``: box ``view // 2``, mirrored when
    ``view`` is odd). (K, H, W, C) -> (K, crop, crop, C), after :func:`normalize`."""
    if not 0 <= view < num_view_ids(num_views, flip):
        raise ValueError(f"view {view} out of range for {num_views} views (flip={flip})")
    box = view // 2 if flip else view
    top, left, h, w = view_boxes(*_size(x), crop_size, num_views)[box]
    out = crop(x, top, left, h, w)
    return hflip(out, x_channels) if flip and view % 2 else out


def all_views(x: Frames, crop_size: int, num_views: int, flip: bool, x_channels: Sequence[int] = ()) -> Frames:
    """Every view of every frame, position-major: (G, H, W, C) -> (G * V, crop, crop, C) with row
    ``g * V + v`` = view ``v`` of frame ``g`` (V = :func:`num_view_ids`)."""
    views = [apply_view(x, v, crop_size, num_views, flip, x_channels) for v in range(num_view_ids(num_views, flip))]
    stacked = np.stack(views, axis=1) if not _is_tensor(x) else torch.stack(views, dim=1)
    return stacked.reshape(-1, *stacked.shape[2:])
