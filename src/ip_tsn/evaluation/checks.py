"""The pre-registered data checks of a fusion run, on the validation split only (:data:`CHECKS`):
teacher minus plain P, each single stream alone, the oracle within the true appearance group, and
the teacher-target checks (idle-row entropy, training draws with no active segment); and the
:class:`Roles` that name which stream is which."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ip_tsn.atomic import read_json
from ip_tsn.evaluation.fusion import correct_of


# pre-registered data checks, on the validation split: name -> (comparison, default threshold, what)
CHECKS: dict[str, tuple[str, float, str]] = {
    "teacher_minus_plain": (">=", 10.0, "teacher minus plain P, top-1 (points)"),
    "appearance_alone": ("<=", 65.0, "appearance (I) stream alone, top-1 (%)"),
    "plain_alone": ("<=", 65.0, "plain P alone, top-1 (%)"),
    "oracle": (">=", 90.0, "plain P within the true appearance group, top-1 (%)"),
    "idle_entropy": (">=", 0.8, "teacher's mean entropy on idle val rows, in units of ln(classes)"),
    "no_active": (">=", 15.0, "training draws of K segments with no active segment (%)"),
}


@dataclass(frozen=True)
class Roles:
    """The part each stream (a name of ``fuse.streams``; None: not reported) plays in the report:
    ``baseline_fused``, a second fusion (I + plain P) with weights searched on val like the main
    one; ``distilled`` / ``plain``, the distilled and the plain P-stream (their paired difference,
    the checks); ``teacher`` and ``appearance`` (the I-stream), for the checks."""

    baseline_fused: tuple[str, ...] | None = None
    distilled: str | None = None
    plain: str | None = None
    teacher: str | None = None
    appearance: str | None = None


# --------------------------------------------------------------------------------- data checks
def load_groups(path: str | os.PathLike | None) -> tuple[dict[str, str] | None, str | None]:
    """``({class name: appearance group}, None)`` from a JSON file: its ``"groups"`` mapping, or
    the whole file when it is a plain ``{class: group}`` mapping; ``(None, why)`` when ``path`` is
    None, missing or holds no groups."""
    if path is None:
        return None, "no groups file (fuse.groups is null)"
    if not Path(path).is_file():
        return None, f"groups file {path} not found"
    data = read_json(path, "the class -> appearance group mapping (fuse.groups)")
    if isinstance(data, dict) and isinstance(data.get("groups"), dict):
        data = data["groups"]
    if isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
        return {str(k): v for k, v in data.items()}, None
    return None, f"{path} has no class -> group mapping"



def oracle_top1(scores: np.ndarray, labels: np.ndarray, groups: Sequence[str]) -> float:
    """Top-1 (fraction) of ``scores`` (N, C) when each video's argmax runs only over the classes
    of its true class's group; ``groups`` (C,) is the group of each class. 0 for N = 0."""
    g = np.asarray(groups, dtype=object)
    labels = np.asarray(labels, dtype=np.int64)
    same = g[None, :] == g[labels][:, None]  # (N, C)
    masked = np.where(same, np.asarray(scores, dtype=np.float64), -np.inf)
    return float(np.mean(masked.argmax(axis=1) == labels)) if len(labels) else 0.0



def _val_top1(top1: Mapping[str, float], stream: str | None, role: str) -> tuple[float | None, str | None]:
    if stream is None:
        return None, f"no {role} stream named (fuse.{role})"
    if stream not in top1:
        return None, f"no validation scores for {stream!r}"
    return top1[stream], None



def _oracle(val_scores: Mapping[str, np.ndarray], labels: np.ndarray, class_names: Sequence[str],
            plain: str | None, groups: Mapping[str, str] | None,
            groups_note: str | None) -> tuple[float | None, str | None]:
    if groups is None:
        return None, groups_note or "no groups"
    missing = [c for c in class_names if c not in groups]
    if missing:
        return None, f"classes without a group: {missing[:5]}"
    if plain is None or plain not in val_scores:
        return None, "no plain stream named (fuse.plain)" if plain is None else \
            f"no validation scores for {plain!r}"
    return 100.0 * oracle_top1(val_scores[plain], labels, [groups[c] for c in class_names]), None



def _target(targets: Mapping[str, Any] | None, subset: str, key: str) -> tuple[float | None, str | None]:
    if targets is None:
        return None, "no teacher-target report (fuse.targets)"
    value = targets.get(subset, {}).get(key)
    if value is None:
        return None, f"no {key} on {subset} rows (no action windows, or no {subset} rows in the cache)"
    return float(value), None



def _check(name: str, value: float | None, note: str | None,
           thresholds: Mapping[str, float]) -> dict[str, Any]:
    op, default, what = CHECKS[name]
    threshold = float(thresholds.get(name, default))
    passed = None if value is None else bool(value >= threshold if op == ">=" else value <= threshold)
    entry = {"value": value, "threshold": threshold, "op": op, "pass": passed, "description": what}
    return {**entry, "note": note} if note else entry



def data_checks(val_scores: Mapping[str, np.ndarray], val_labels: np.ndarray,
                class_names: Sequence[str], roles: Roles, groups: Mapping[str, str] | None = None,
                groups_note: str | None = None,
                thresholds: Mapping[str, float] | None = None,
                targets: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The pre-registered :data:`CHECKS` on VALIDATION scores ``{stream: (N, C)}`` and
    ``val_labels`` (N,): ``{check: {"value", "threshold", "op", "pass", "description"[, "note"]}}``;
    value and pass are None (with a note) where a stream or the groups are missing. ``targets``:
    the teacher cache's ``targets.json`` (:func:`ip_tsn.evaluation.targets.target_stats`), for the
    idle-row entropy (val) and the no-active share (train)."""
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown data check(s) {unknown}; checks: {list(CHECKS)}")
    top1 = {s: 100.0 * float(np.mean(correct_of(v, val_labels))) if len(val_labels) else 0.0
            for s, v in val_scores.items()}
    teacher, t_note = _val_top1(top1, roles.teacher, "teacher")
    plain, p_note = _val_top1(top1, roles.plain, "plain")
    values = {
        "teacher_minus_plain": (None if t_note or p_note else teacher - plain, t_note or p_note),
        "appearance_alone": _val_top1(top1, roles.appearance, "appearance"),
        "plain_alone": (plain, p_note),
        "oracle": _oracle(val_scores, val_labels, class_names, roles.plain, groups, groups_note),
        "idle_entropy": _target(targets, "val", "idle_entropy_ratio"),
        "no_active": _target(targets, "train", "no_active_pct"),
    }
    return {name: _check(name, v, note, thresholds) for name, (v, note) in values.items()}
