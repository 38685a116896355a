"""Pictures of motion: HSV colour wheel, arrows, and a side-by-side panel saved as PNG."""

from __future__ import annotations

import os

import cv2
import numpy as np

from ip_tsn.atomic import atomic_path


def motion_to_rgb(mv: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(H, W, 2) motion -> (H, W, 3) uint8 RGB: hue = direction, brightness = magnitude.

    ``max_magnitude`` maps to full brightness (default: the field's 99th percentile).
    """
    dx, dy = mv[..., 0].astype(np.float32), mv[..., 1].astype(np.float32)
    mag, ang = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    top = max_magnitude or float(np.percentile(mag, 99)) or 1.0
    hsv = np.zeros((*mv.shape[:2], 3), np.uint8)
    hsv[..., 0] = (ang / 2).astype(np.uint8)  # OpenCV hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / top * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def draw_arrows(image: np.ndarray, mv: np.ndarray, step: int = 16, scale: float = 1.0) -> np.ndarray:
    """Arrows from each sampled pixel toward where it comes from in the reference.

    Args:
        image: (H, W, 3) uint8 background. mv: (H, W, 2) motion. step: grid spacing in pixels.
    Returns: (H, W, 3) uint8 copy with arrows drawn.
    """
    out = np.ascontiguousarray(image.copy())
    for y in range(step // 2, mv.shape[0], step):
        for x in range(step // 2, mv.shape[1], step):
            dx, dy = mv[y, x] * scale
            if abs(dx) + abs(dy) < 0.25:
                continue
            cv2.arrowedLine(out, (x, y), (int(round(x + dx)), int(round(y + dy))), (255, 255, 0), 1,
                            cv2.LINE_AA, tipLength=0.3)
    return out


def residual_to_rgb(res: np.ndarray) -> np.ndarray:
    """(H, W, 3) int16 residual -> (H, W, 3) uint8, zero at mid-grey."""
    return np.clip(res.astype(np.int32) + 128, 0, 255).astype(np.uint8)


def save_panels(path: str | os.PathLike, panels: list[tuple[str, np.ndarray]], title: str = "") -> None:
    """Save titled (H, W, 3) uint8 images side by side as one PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, img) in zip(axes[0], panels):
        ax.imshow(img)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")  # the temp name has no .png suffix
    finally:
        plt.close(fig)
