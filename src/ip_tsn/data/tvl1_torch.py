"""TV-L1 optical flow in torch, batched over frame pairs, on CUDA or the CPU.

The dual TV-L1 scheme of Zach, Pock and Bischof (2007) with the steps and parameters of OpenCV's
``cv2.optflow.DualTVL1OpticalFlow`` (``ip_tsn.codec.flow.TVL1_PARAMS``): a pyramid of ``nscales``
levels at ``scaleStep`` (bilinear, OpenCV's pixel mapping), at each level ``warps`` warpings of the
second image (bicubic, a = -0.75, zero outside, as ``cv2.remap`` with INTER_CUBIC), and within each
warping ``outerIterations`` x (5x5 median of the flow, ``innnerIterations`` x (thresholding step,
primal step, dual step)), stopped early per pair once the squared update summed over the image falls
to ``epsilon^2 * H * W`` (OpenCV's test). Same convention as ``ip_tsn.codec.flow``: ``flow[y, x] =
(dx, dy)``, pixel (x, y) of ``prev`` moves to (x + dx, y + dy) in ``nxt``. The codec room stays
free of torch, so this lives in ``data/``; ``data_prep/extract_flow.py --method tvl1-torch`` uses it.

    tvl1_batch(prev, nxt, params=TVL1_PARAMS) -> (B, H, W, 2) float32
        prev, nxt: (B, H, W) float32 gray in [0, 255] (any device), or uint8
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

# the same numbers as ip_tsn.codec.flow.TVL1_PARAMS (OpenCV's defaults); repeated here because the
# codec room is imported without torch and this module without OpenCV (the GPU machine's OpenCV
# has no contrib); tests/test_tvl1_torch.py checks the two stay equal.
TVL1_PARAMS: dict[str, Any] = dict(
    tau=0.25, lambda_=0.15, theta=0.3, nscales=5, warps=5, epsilon=0.01,
    innnerIterations=30, outerIterations=10, scaleStep=0.8, gamma=0.0, medianFiltering=5,
)


def _resize(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Bilinear resize of (B, H, W) with OpenCV's mapping (``src = (dst + 0.5) * in / out - 0.5``,
    coordinates clamped at the border) to (B, out_h, out_w)."""
    b, h, w = x.shape
    ys = ((torch.arange(out_h, device=x.device, dtype=x.dtype) + 0.5) * (h / out_h) - 0.5).clamp(0, h - 1)
    xs = ((torch.arange(out_w, device=x.device, dtype=x.dtype) + 0.5) * (w / out_w) - 0.5).clamp(0, w - 1)
    y0 = ys.floor().long().clamp(max=h - 1)
    x0 = xs.floor().long().clamp(max=w - 1)
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    fy, fx = (ys - y0).view(1, -1, 1), (xs - x0).view(1, 1, -1)
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def _pyramid_size(h: int, w: int, step: float) -> tuple[int, int]:
    """OpenCV's ``Size(round(w * step), round(h * step))`` as (h, w)."""
    return int(round(h * step)), int(round(w * step))


def _centered_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences / 2 with replicated borders: (B, H, W) -> dx, dy."""
    p = F.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    return 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]), 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])


def _forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences, 0 on the last column / row: (B, H, W) -> dx, dy."""
    dx = torch.zeros_like(u)
    dy = torch.zeros_like(u)
    dx[:, :, :-1] = u[:, :, 1:] - u[:, :, :-1]
    dy[:, :-1, :] = u[:, 1:, :] - u[:, :-1, :]
    return dx, dy


def _divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward differences with zeros before the first column / row (the adjoint of
    :func:`_forward_gradient`): (B, H, W) x 2 -> (B, H, W)."""
    return (px - F.pad(px[:, :, :-1], (1, 0))) + (py - F.pad(py[:, :-1, :], (0, 0, 1, 0)))


def _median(u: torch.Tensor, k: int) -> torch.Tensor:
    """k x k median with replicated borders (``cv2.medianBlur`` on float images, k = 3 or 5)."""
    r = k // 2
    p = F.pad(u[:, None], (r, r, r, r), mode="replicate")
    return F.unfold(p, k).median(dim=1).values.view_as(u)


def _warp_cubic(images: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """Sample (B, C, H, W) at (x + u1, y + u2), bicubic, zero outside: -> (B, C, H, W)."""
    b, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=u1.device, dtype=u1.dtype),
                            torch.arange(w, device=u1.device, dtype=u1.dtype), indexing="ij")
    gx = (2 * (xs + u1) + 1) / w - 1
    gy = (2 * (ys + u2) + 1) / h - 1
    return F.grid_sample(images, torch.stack([gx, gy], dim=-1), mode="bicubic", padding_mode="zeros",
                         align_corners=False)


def _inner_step(u1: torch.Tensor, u2: torch.Tensor, p11: torch.Tensor, p12: torch.Tensor, p21: torch.Tensor,
                p22: torch.Tensor, active: torch.Tensor, i1wx: torch.Tensor, i1wy: torch.Tensor, grad: torch.Tensor,
                rho_c: torch.Tensor, l_t: float, theta: float, taut: float, eps2: float) -> tuple[torch.Tensor, ...]:
    """One inner iteration (thresholding, primal and dual steps) for the pairs still ``active``
    (B,): returns the new ``(u1, u2, p11, p12, p21, p22, active)``."""
    a = active.view(-1, 1, 1)
    tiny = torch.finfo(u1.dtype).eps
    rho = rho_c + i1wx * u1 + i1wy * u2
    fi = torch.where(grad > tiny, -rho / grad.clamp_min(tiny), torch.zeros_like(rho))
    fi = torch.where(rho < -l_t * grad, torch.full_like(rho, l_t), fi)
    fi = torch.where(rho > l_t * grad, torch.full_like(rho, -l_t), fi)
    n1 = u1 + fi * i1wx + theta * _divergence(p11, p12)
    n2 = u2 + fi * i1wy + theta * _divergence(p21, p22)
    error = ((n1 - u1) ** 2 + (n2 - u2) ** 2).sum(dim=(1, 2))
    u1, u2 = torch.where(a, n1, u1), torch.where(a, n2, u2)
    u1x, u1y = _forward_gradient(u1)
    u2x, u2y = _forward_gradient(u2)
    ng1 = 1 + taut * torch.hypot(u1x, u1y)
    ng2 = 1 + taut * torch.hypot(u2x, u2y)
    p11 = torch.where(a, (p11 + taut * u1x) / ng1, p11)
    p12 = torch.where(a, (p12 + taut * u1y) / ng1, p12)
    p21 = torch.where(a, (p21 + taut * u2x) / ng2, p21)
    p22 = torch.where(a, (p22 + taut * u2y) / ng2, p22)
    return u1, u2, p11, p12, p21, p22, active & (error > eps2)


_COMPILED: dict = {}


def _step_fn(compiled: bool):
    """:func:`_inner_step`, or its ``torch.compile``d version (one fused kernel set per shape)."""
    if not compiled:
        return _inner_step
    if "step" not in _COMPILED:
        _COMPILED["step"] = torch.compile(_inner_step, dynamic=True)
    return _COMPILED["step"]


def _one_scale(i0: torch.Tensor, i1: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor,
               p: Mapping[str, Any], compiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's ``procOneScale`` on a batch: (B, H, W) images and flow -> refined flow."""
    b, h, w = i0.shape
    eps2 = float(p["epsilon"]) ** 2 * h * w
    l_t = float(p["lambda_"]) * float(p["theta"])
    taut = float(p["tau"]) / float(p["theta"])
    theta = float(p["theta"])
    step = _step_fn(compiled)
    i1x, i1y = _centered_gradient(i1)
    stack = torch.stack([i1, i1x, i1y], dim=1)
    p11, p12, p21, p22 = (torch.zeros_like(u1) for _ in range(4))
    for _ in range(int(p["warps"])):
        warped = _warp_cubic(stack, u1, u2)
        i1w, i1wx, i1wy = warped[:, 0], warped[:, 1], warped[:, 2]
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u1 - i1wy * u2 - i0
        active = torch.ones(b, dtype=torch.bool, device=i0.device)  # error > eps2, per pair
        for _ in range(int(p["outerIterations"])):
            if not bool(active.any()):
                break
            if int(p["medianFiltering"]) > 1:
                a = active.view(-1, 1, 1)
                u1 = torch.where(a, _median(u1, int(p["medianFiltering"])), u1)
                u2 = torch.where(a, _median(u2, int(p["medianFiltering"])), u2)
            for _ in range(int(p["innnerIterations"])):
                if not bool(active.any()):
                    break
                u1, u2, p11, p12, p21, p22, active = step(u1, u2, p11, p12, p21, p22, active, i1wx, i1wy, grad,
                                                          rho_c, l_t, theta, taut, eps2)
    return u1, u2


def tvl1_batch(prev: torch.Tensor, nxt: torch.Tensor, params: Mapping[str, Any] | None = None,
               compiled: bool = False) -> torch.Tensor:
    """TV-L1 flow of each pair: (B, H, W) gray ``prev`` and ``nxt`` (uint8, or float in [0, 255];
    any device) -> (B, H, W, 2) float32 on that device, ``flow[..., 0] = dx``, ``[..., 1] = dy``.
    ``compiled``: run the inner iteration through ``torch.compile`` (fewer, fused kernels; for GPUs)."""
    p = {**TVL1_PARAMS, **(params or {})}
    if prev.shape != nxt.shape or prev.dim() != 3:
        raise ValueError(f"prev and nxt must be (B, H, W) of one shape, got {tuple(prev.shape)} and {tuple(nxt.shape)}")
    i0s, i1s = [prev.float()], [nxt.float()]
    for _ in range(1, int(p["nscales"])):
        h, w = _pyramid_size(*i0s[-1].shape[1:], float(p["scaleStep"]))
        if h < 16 or w < 16:  # OpenCV stops the pyramid below 16 px
            break
        i0s.append(_resize(i0s[-1], h, w))
        i1s.append(_resize(i1s[-1], h, w))
    u1 = torch.zeros_like(i0s[-1])
    u2 = torch.zeros_like(i0s[-1])
    for s in range(len(i0s) - 1, -1, -1):
        u1, u2 = _one_scale(i0s[s], i1s[s], u1, u2, p, compiled)
        if s:
            h, w = i0s[s - 1].shape[1:]
            u1 = _resize(u1, h, w) / float(p["scaleStep"])
            u2 = _resize(u2, h, w) / float(p["scaleStep"])
    return torch.stack([u1, u2], dim=-1)
