"""Tiny tensor datasets of dict samples for the models/lit/cache tests (importable by spawned
DDP workers, so they live in a module rather than in a test file)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset


class SignDataset(Dataset):
    """Learnable 2-class samples: ``label = 1`` iff channel 0 has a positive mean (offset +-1 on
    unit noise). ``{"input": (K, C, H, W), "label", "video_id", "frame_index": (K,)}``; with
    ``teacher=(C_t, D_t)`` also ``teacher_logits`` (K, C_t) (class 1 shifted by +-3 with the
    label) and ``teacher_features`` (K, D_t)."""

    def __init__(self, n: int, k: int = 2, channels: int = 3, size: int = 16, seed: int = 0,
                 teacher: tuple[int, int] | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        self.inputs = torch.randn(n, k, channels, size, size, generator=g)
        self.inputs[:, :, 0] += (2.0 * self.labels - 1.0).view(n, 1, 1, 1)
        self.frames = torch.arange(k).repeat(n, 1) * 3
        self.teacher = None
        if teacher is not None:
            logits = torch.randn(n, k, teacher[0], generator=g)
            logits[:, :, 1] += 3.0 * (2.0 * self.labels - 1.0).view(n, 1)  # a teacher that knows
            self.teacher = (logits, torch.randn(n, k, teacher[1], generator=g))
        self.ids = [f"video_{i:03d}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"input": self.inputs[i], "label": self.labels[i], "video_id": self.ids[i],
                "frame_index": self.frames[i]}
        if self.teacher is not None:
            item["teacher_logits"], item["teacher_features"] = (t[i] for t in self.teacher)
        return item


class GridDataset(Dataset):
    """One video per item with inputs at every grid position and view: ``{"input": (G * V, C, H,
    W)`` position-major, ``"video_id", "frame_index": (G,) = stride * arange(G), "label"}``.
    ``order`` lists the video numbers to serve (repeat one to imitate sampler padding)."""

    def __init__(self, lengths: Sequence[int], channels: int = 2, size: int = 16,
                 stride: int = 3, order: Sequence[int] | None = None, seed: int = 0, views: int = 1) -> None:
        g = torch.Generator().manual_seed(seed)
        self.videos = [torch.randn(n * views, channels, size, size, generator=g) for n in lengths]
        self.stride, self.views = stride, views
        self.order = list(order) if order is not None else list(range(len(lengths)))

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> dict[str, Any]:
        v = self.order[i]
        x = self.videos[v]
        return {"input": x, "video_id": f"video_{v:03d}", "label": v % 2,
                "frame_index": torch.arange(len(x) // self.views, dtype=torch.int64) * self.stride}
