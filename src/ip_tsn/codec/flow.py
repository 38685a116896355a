"""Optical flow (the distillation teacher's input): compute, quantize, store one .npy per video.

Convention everywhere: ``flow[y, x] = (dx, dy)`` means pixel ``(x, y)`` of ``prev`` moves to
``(x + dx, y + dy)`` in ``nxt`` (OpenCV's ``calc(prev, nxt)``: ``prev(p) ~ nxt(p + flow(p))``).
Flow ``t`` of a video is the flow from frame ``t`` to frame ``t + 1`` (display order).

Storage follows TSN / mmaction2: clip to ``[-bound, bound]`` and map linearly to uint8
``[0, 255]``, ``q = round((f + bound) * 255 / (2 * bound))``; zero motion is stored as 128
(127.5 rounded), and ``dequantize_flow(128) = +0.078`` for ``bound = 20``.
"""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np

from ip_tsn.atomic import atomic_path
from ip_tsn.codec.errors import VideoError

METHODS = ("tvl1", "tvl1-fast", "tvl1-tiny", "dis")

# TV-L1 parameters: OpenCV's defaults, which are those of cv::cuda::OpticalFlowDual_TVL1 as used
# by TSN's dense_flow and mmaction2's denseflow (300 iterations = 10 outer x 30 inner on the CPU).
TVL1_PARAMS = dict(
    tau=0.25, lambda_=0.15, theta=0.3, nscales=5, warps=5, epsilon=0.01,
    innnerIterations=30, outerIterations=10, scaleStep=0.8, gamma=0.0, medianFiltering=5,
)
# TV-L1 with fewer pyramid levels, warps and iterations: ~2x faster, for small frames and small
# motion (the synthetic default: <= 5 px per frame at 64x64). Same energy, so still TV-L1 flow.
TVL1_FAST_PARAMS = {**TVL1_PARAMS, "nscales": 3, "warps": 3, "innnerIterations": 10, "outerIterations": 4}
# TV-L1 for tiny frames with motion of a few pixels (the synthetic default, 64x64): 2 scales, 2 warps,
# 2 x 5 iterations. On the synthetic videos its end-point error against full TV-L1 is 0.09 px at
# ~7 ms per frame (full TV-L1 ~50 ms, tvl1-fast ~25 ms on one core of the CI machine).
TVL1_TINY_PARAMS = {**TVL1_PARAMS, "nscales": 2, "warps": 2, "innnerIterations": 5, "outerIterations": 2}
TVL1_PARAMS_BY_METHOD = {"tvl1": TVL1_PARAMS, "tvl1-fast": TVL1_FAST_PARAMS, "tvl1-tiny": TVL1_TINY_PARAMS}
# DIS: the MEDIUM preset (FAST is ~3x faster and noticeably less accurate on small motion).
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM

_local = threading.local()  # one estimator per thread (and, after fork, per process)


def _estimator(method: str):
    key = (method, os.getpid())
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    if key not in cache:
        if method in ("tvl1", "tvl1-fast", "tvl1-tiny"):
            cache[key] = cv2.optflow.DualTVL1OpticalFlow_create(**TVL1_PARAMS_BY_METHOD[method])
        elif method == "dis":
            cache[key] = cv2.DISOpticalFlow_create(DIS_PRESET)
        else:
            raise ValueError(f"unknown flow method {method!r}; expected one of {METHODS}")
    return cache[key]


def _gray(image: np.ndarray, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB or (H, W) uint8 -> (H, W) uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    raise ValueError(f"{name}: expected (H, W, 3) RGB or (H, W) gray, got shape {image.shape}")


def compute_flow(prev: np.ndarray, nxt: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Dense flow from ``prev`` to ``nxt``: (H, W, 3) uint8 RGB or (H, W) uint8 -> (H, W, 2) float32.

    ``method``: ``"tvl1"`` (TV-L1, ``TVL1_PARAMS``) or ``"dis"`` (DIS, MEDIUM preset).
    """
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; expected one of {METHODS}")
    a, b = _gray(prev, "prev"), _gray(nxt, "nxt")
    if a.shape != b.shape:
        raise ValueError(f"prev and nxt differ in size: {a.shape} vs {b.shape}")
    flow = _estimator(method).calc(a, b, None)
    return np.asarray(flow, dtype=np.float32)


def quantize_flow(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """(..., 2) float flow -> uint8 of the same shape: clip to [-bound, bound], map to [0, 255]."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantize_flow(q: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """uint8 (..., 2) -> float32 flow in [-bound, bound]; error <= bound / 255 inside the bound."""
    return (np.asarray(q, dtype=np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound))


def video_flow(video_path, method: str = "tvl1", bound: float = 20.0, size=None,
               progress: bool = False) -> np.ndarray:
    """Quantized flow of a whole video: -> (N - 1, H, W, 2) uint8, flow t = frame t -> t + 1.

    ``size``: optional ``(width, height)``; frames are resized (bilinear) before the flow.
    Raises ``VideoError`` for unreadable videos and ones with fewer than 2 frames.
    """
    from ip_tsn.codec.video import CompressedVideo  # written alongside; imported lazily

    video = CompressedVideo(video_path)
    frames = video.iter_frames()
    if progress:
        from tqdm import tqdm
        frames = tqdm(frames, total=video.num_frames, desc=os.path.basename(str(video_path)),
                      unit="frame")
    flows, prev = [], None
    for frame in frames:
        gray = _gray(frame, "frame")
        if size is not None:
            gray = cv2.resize(gray, (int(size[0]), int(size[1])), interpolation=cv2.INTER_LINEAR)
        if prev is not None:
            flows.append(quantize_flow(compute_flow(prev, gray, method), bound))
        prev = gray
    if not flows:
        raise VideoError(video_path, f"optical flow needs at least 2 frames, "
                                     f"got {0 if prev is None else 1}")
    return np.stack(flows)


def save_flow(path, flows: np.ndarray) -> None:
    """Write (N - 1, H, W, 2) uint8 flow to ONE .npy, atomically (``ip_tsn.atomic.atomic_path``;
    the data is fsynced before the rename)."""
    flows = np.asarray(flows)
    if flows.dtype != np.uint8 or flows.ndim != 4 or flows.shape[-1] != 2:
        raise ValueError(f"{path}: expected (N, H, W, 2) uint8 flow, got {flows.shape} {flows.dtype}")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save adds no ".npy"
        np.save(f, np.ascontiguousarray(flows), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def load_flow(path) -> np.ndarray:
    """Memory-map a flow file: -> (N - 1, H, W, 2) uint8 (read-only ``np.memmap``).

    Raises ``VideoError`` (a ``ValueError`` whose message starts with the path) if the file is
    missing, truncated, not a .npy, or holds the wrong dtype / shape.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(path, "flow file does not exist (run data_prep/extract_flow.py)")
    try:
        flows = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # truncated header/data, not an .npy at all, ...
        raise VideoError(path, f"unreadable flow file (truncated or not a .npy): {e}") from e
    if flows.dtype != np.uint8 or flows.ndim != 4 or flows.shape[-1] != 2:
        raise VideoError(path, f"expected (N, H, W, 2) uint8 flow, got {flows.shape} {flows.dtype}")
    return flows
