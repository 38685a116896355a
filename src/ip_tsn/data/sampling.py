"""TSN segment sampling: which K frames of a video a sample uses."""

from __future__ import annotations

import numpy as np


def segment_indices(
    num_frames: int,
    num_segments: int,
    train: bool,
    rng: np.random.Generator | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Pick one frame in each of ``num_segments`` equal segments (TSN).

    The allowed frames (all of ``range(num_frames)``, or those where the boolean ``(num_frames,)``
    mask ``valid`` is true, e.g. non-I frames for mv / residual) are split, in order, into K
    equal segments: ``train`` picks a uniformly random frame in each (``rng``, a fresh generator if
    None), otherwise the segment centres. With fewer allowed frames than segments, frames repeat
    in order (K = 4 over frames [a, b] gives a, a, b, b).

    Returns:
        (K,) int64 frame indices, non-decreasing.
    Raises:
        ValueError: no frame is allowed, or K < 1.
    """
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    if valid is None:
        candidates = np.arange(max(num_frames, 0), dtype=np.int64)
    else:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (num_frames,):
            raise ValueError(f"valid mask has shape {valid.shape}, expected ({num_frames},)")
        candidates = np.flatnonzero(valid).astype(np.int64)
    n = len(candidates)
    if n == 0:
        raise ValueError(f"no frame to sample from ({num_frames} frames, none allowed)")
    k = np.arange(num_segments)
    if train:
        lo = k * n // num_segments
        hi = np.maximum((k + 1) * n // num_segments, lo + 1)
        rng = np.random.default_rng() if rng is None else rng
        pos = rng.integers(lo, hi)
    else:
        pos = (2 * k + 1) * n // (2 * num_segments)
    return candidates[pos].astype(np.int64)
