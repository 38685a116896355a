"""Optimizers (SGD / Adam / AdamW) over learning-rate-multiplier groups, and LR schedules."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from ip_tsn.lit.model_settings import OPTIMIZERS, SCHEDULES


def split_weight_decay(groups: list[dict], weight_decay: float) -> list[dict]:
    """Split each ``{"name", "params", "lr_mult"}`` group into a decayed part (weights, ndim > 1)
    and an undecayed part (biases and norm scales, ndim <= 1)."""
    out = []
    for group in groups:
        params = [p for p in group["params"] if p.requires_grad]
        for suffix, chosen, wd in (
            ("", [p for p in params if p.ndim > 1], weight_decay),
            ("/no_decay", [p for p in params if p.ndim <= 1], 0.0),
        ):
            if chosen:
                out.append({**group, "name": group["name"] + suffix, "params": chosen,
                            "weight_decay": wd})
    return out


def build_optimizer(
    groups: list[dict],
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    adam_eps: float,
) -> torch.optim.Optimizer:
    """An optimizer whose group ``i`` runs at ``lr * groups[i]["lr_mult"]``.

    ``name``: ``sgd`` (momentum, nesterov), ``adam`` or ``adamw`` (eps ``adam_eps``). The values
    come from :class:`~ip_tsn.lit.model_settings.OptimSettings`, whose defaults are the only ones.
    """
    param_groups = [
        {**g, "lr": lr * g["lr_mult"]} for g in split_weight_decay(groups, weight_decay)
    ]
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(param_groups, lr=lr, eps=adam_eps)
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, eps=adam_eps)
    raise ValueError(f"unknown optimizer {name!r}; choose {', '.join(OPTIMIZERS)}")


def lr_factor(
    step: int,
    total_steps: int,
    schedule: str,
    warmup_steps: int = 0,
    milestones: Sequence[int] = (),
    gamma: float = 1.0,
) -> float:
    """Multiplier of the base learning rate at optimizer step ``step``.

    Linear warmup from ``1 / (warmup_steps + 1)`` over ``warmup_steps``; then ``cosine`` (to 0 at
    ``total_steps``), ``step`` (times ``gamma`` at each milestone passed) or ``constant``.
    """
    warm = min(1.0, (step + 1) / (warmup_steps + 1)) if warmup_steps > 0 else 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, max(0.0, (step - warmup_steps) / span))
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return warm * gamma ** sum(step >= m for m in milestones)
    if schedule == "constant":
        return warm
    raise ValueError(f"unknown schedule {schedule!r}; choose {', '.join(SCHEDULES)}")


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    **schedule: Any) -> LambdaLR:
    """A per-step ``LambdaLR`` applying :func:`lr_factor` (``schedule``: its keyword
    arguments) to every group."""
    if "milestones" in schedule:
        schedule["milestones"] = tuple(int(m) for m in schedule["milestones"])
    return LambdaLR(optimizer, functools.partial(lr_factor, total_steps=total_steps, **schedule))
