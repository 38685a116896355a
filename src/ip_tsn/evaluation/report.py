"""Fusion report: results.md, results.json and a confusion-matrix PNG; per-class accuracy of one
stream's test scores (CSV + confusion PNG). All writes are atomic.

The fusion report has, on the test split, every stream and three fusions (the ``fused`` streams
with weights searched on val, the same at 1:1, and a baseline fusion such as I + plain P) with a
bootstrap CI of top-1, and paired differences (paired bootstrap CI, McNemar p) between them; and,
on the validation split only, pre-registered data checks (see :data:`CHECKS`)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ip_tsn.atomic import atomic_path, write_json_atomic, write_text_atomic
from ip_tsn.evaluation.fusion import (DEFAULT_GRID, equal_weights, evaluate, fuse_scores,
                                     search_fusion_weights)
from ip_tsn.evaluation.scores import load_aligned
from ip_tsn.evaluation.stats import accuracy_ci, paired_difference

METRICS = ("top1", "top5", "mean_class_acc")


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(preds, np.int64)), 1)
    return cm


def save_confusion_png(path: str | os.PathLike, cm: np.ndarray,
                       class_names: Sequence[str]) -> None:
    """Row-normalised confusion matrix as a PNG (Agg canvas, no global backend change)."""
    n = len(class_names)
    size = min(30.0, 3.0 + 0.25 * n)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    if n <= 60:
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=6)
        ax.set_yticks(range(n), class_names, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def per_class_accuracy(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n (C,) videos per true class, top1 (C,) float64 recall, NaN where n = 0)`` of a
    confusion matrix ``cm`` (C, C) (rows = true class)."""
    n = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return n, np.where(n > 0, np.diag(cm) / n, np.nan)


def write_class_report(out_dir: str | os.PathLike, subset: str, scores: np.ndarray,
                       labels: np.ndarray, class_names: Sequence[str]) -> dict[str, Path]:
    """``per_class_<subset>.csv`` (``label,class,n,correct,top1``; top1 empty for classes with no
    video) and ``confusion_<subset>.png`` of ``scores`` (N, C) against ``labels`` (N,)."""
    out = Path(out_dir)
    cm = confusion_matrix(labels, np.asarray(scores).argmax(axis=1), len(class_names))
    n, top1 = per_class_accuracy(cm)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["label", "class", "n", "correct", "top1"])
    for c, name in enumerate(class_names):
        writer.writerow([c, name, int(n[c]), int(cm[c, c]), "" if n[c] == 0 else f"{top1[c]:.6f}"])
    paths = {"csv": out / f"per_class_{subset}.csv", "confusion": out / f"confusion_{subset}.png"}
    write_text_atomic(paths["csv"], buf.getvalue())
    save_confusion_png(paths["confusion"], cm, class_names)
    return paths


# ------------------------------------------------------------------------------- fusion report
FUSION, EQUAL, BASELINE = "fusion", "fusion (equal weights)", "I + plain P"
CONFIDENCE, N_RESAMPLES, SEED = 0.95, 9999, 0
CI_NOTE = ("Top-1 95% CIs: percentile bootstrap over the test videos (`scipy.stats.bootstrap`, "
           f"{N_RESAMPLES} resamples, seed {SEED}). Paired differences: the same bootstrap resampling "
           "videos with both outcomes (`paired=True`); McNemar's test (`statsmodels`) exact below 25 "
           "discordant videos, chi-square with continuity correction otherwise.")
# pre-registered data checks, on the validation split: name -> (comparison, default threshold, what)
CHECKS: dict[str, tuple[str, float, str]] = {
    "teacher_minus_plain": (">=", 10.0, "teacher minus plain P, top-1 (points)"),
    "appearance_alone": ("<=", 65.0, "appearance (I) stream alone, top-1 (%)"),
    "plain_alone": ("<=", 65.0, "plain P alone, top-1 (%)"),
    "oracle": (">=", 90.0, "plain P within the true appearance group, top-1 (%)"),
    "idle_entropy": (">=", 0.8, "teacher's mean entropy on idle val rows, in units of ln(classes)"),
    "no_active": (">=", 15.0, "training draws of K segments with no active segment (%)"),
}
PAIRED_TITLES = {"distilled_minus_plain": "distilled P minus plain P",
                 "fused_minus_best": "fusion minus its best input stream",
                 "equal_fused_minus_best": "equal-weight fusion minus the best input stream",
                 "baseline_fused_minus_best": "I + plain P minus its best input stream",
                 "fused_minus_baseline_fused": "fusion (distilled P) minus I + plain P"}


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


def correct_of(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) bool: the top-1 class of ``scores`` (N, C) is ``labels`` (N,)."""
    return np.asarray(scores).argmax(axis=1) == np.asarray(labels)


def stream_metrics(scores: np.ndarray, labels: np.ndarray,
                   class_names: Sequence[str]) -> dict[str, Any]:
    """``{"top1", "top1_ci": [low, high], "top5", "mean_class_acc"}`` in percent of ``scores``
    (N, C) against ``labels`` (N,); the CI is :func:`accuracy_ci`'s."""
    res = evaluate(scores, labels, class_names)
    _, low, high = accuracy_ci(correct_of(scores, labels), CONFIDENCE, N_RESAMPLES, SEED)
    return {"top1": 100.0 * res["top1"], "top1_ci": [low, high], "top5": 100.0 * res["top5"],
            "mean_class_acc": 100.0 * res["mean_class_acc"]}


# --------------------------------------------------------------------------------- data checks
def load_groups(path: str | os.PathLike | None) -> tuple[dict[str, str] | None, str | None]:
    """``({class name: appearance group}, None)`` from a JSON file: its ``"groups"`` mapping, or
    the whole file when it is a plain ``{class: group}`` mapping; ``(None, why)`` when ``path`` is
    None, missing or holds no groups."""
    if path is None:
        return None, "no groups file (fuse.groups is null)"
    if not Path(path).is_file():
        return None, f"groups file {path} not found"
    data = json.loads(Path(path).read_text())
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


# ---------------------------------------------------------------------- fusions and comparisons
def fusion_rows(scores: Mapping[str, np.ndarray], fused: Sequence[str], weights: Mapping[str, float],
                baseline_weights: Mapping[str, float] | None) -> dict[str, np.ndarray]:
    """Every stream's scores (N, C), then :data:`FUSION` (``weights``), :data:`EQUAL` (the
    ``fused`` streams at 1:1) and, with ``baseline_weights``, :data:`BASELINE`."""
    clash = [r for r in (FUSION, EQUAL, BASELINE) if r in scores]
    if clash:
        raise ValueError(f"stream name(s) {clash} are reserved for the fusion rows")
    rows = dict(scores)
    rows[FUSION] = fuse_scores(scores, weights)
    rows[EQUAL] = fuse_scores(scores, equal_weights(fused))
    if baseline_weights:
        rows[BASELINE] = fuse_scores(scores, baseline_weights)
    return rows


def best_stream(streams: Sequence[str], top1: Mapping[str, float]) -> str:
    """The stream of ``streams`` with the highest ``top1``; ties: the first in ``streams``."""
    return max(streams, key=lambda s: (top1[s], -list(streams).index(s)))


def paired_comparisons(correct: Mapping[str, np.ndarray], top1: Mapping[str, float],
                       fused: Sequence[str], roles: Roles) -> dict[str, dict[str, Any]]:
    """``{comparison: {"a", "b", **paired_difference(correct[a], correct[b])}}`` (see
    :data:`PAIRED_TITLES`) from per-row correctness (N,) bool and test top-1; "best" is the
    better, by test top-1, of the fusion's own input streams."""
    pairs: dict[str, tuple[str, str]] = {}
    if roles.distilled and roles.plain:
        pairs["distilled_minus_plain"] = (roles.distilled, roles.plain)
    best = best_stream(fused, top1)
    pairs["fused_minus_best"] = (FUSION, best)
    pairs["equal_fused_minus_best"] = (EQUAL, best)
    if roles.baseline_fused and BASELINE in correct:
        pairs["baseline_fused_minus_best"] = (BASELINE, best_stream(roles.baseline_fused, top1))
        pairs["fused_minus_baseline_fused"] = (FUSION, BASELINE)
    return {k: {"a": a, "b": b, **paired_difference(correct[a], correct[b], CONFIDENCE,
                                                    N_RESAMPLES, SEED)}
            for k, (a, b) in pairs.items()}


# ------------------------------------------------------------------------------------ markdown
def _p(p: float) -> str:
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def checks_markdown(checks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The "Data checks (validation split)" table; notes of the checks that could not run."""
    lines = ["## Data checks (validation split)", "", "| check | value | threshold | pass |",
             "|---|---:|---:|---|"]
    notes = []
    for name, c in checks.items():
        value = "n/a" if c["value"] is None else f"{c['value']:.2f}"
        verdict = "n/a" if c["pass"] is None else ("pass" if c["pass"] else "FAIL")
        lines.append(f"| {name}: {c['description']} | {value} | {c['op']} {c['threshold']:g} | {verdict} |")
        if c.get("note"):
            notes.append(f"{name}: n/a, {c['note']}")
    return lines + ([""] + ["; ".join(notes) + "."] if notes else [])


def streams_markdown(streams: Mapping[str, Mapping[str, Any]], num_videos: int) -> list[str]:
    """The stream table of the test split: top-1 with its 95% CI, top-5, mean class accuracy."""
    lines = [f"## Test split ({num_videos} videos)", "",
             "| stream | top-1 (%) | top-1 95% CI | top-5 (%) | mean class acc. (%) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in streams.items():
        low, high = r["top1_ci"]
        lines.append(f"| {name} | {r['top1']:.2f} | [{low:.2f}, {high:.2f}] | {r['top5']:.2f} | "
                     f"{r['mean_class_acc']:.2f} |")
    return lines


def paired_markdown(paired: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The "Paired differences (test split, percentage points)" table."""
    lines = ["## Paired differences (test split, percentage points)", "",
             "| comparison | A minus B | mean | 95% CI | McNemar p | n |", "|---|---|---:|---:|---:|---:|"]
    for name, d in paired.items():
        lines.append(f"| {name} | {d['a']} minus {d['b']} | {d['mean']:+.2f} | "
                     f"[{d['low']:+.2f}, {d['high']:+.2f}] | {_p(d['mcnemar_p'])} | {d['n']} |")
    return lines


def _weights_line(title: str, weights: Mapping[str, float] | None) -> list[str]:
    return [f"{title}: " + ", ".join(f"{s} {w:g}" for s, w in weights.items())] if weights else []


def results_markdown(report: Mapping[str, Any]) -> str:
    """``results.md`` of a :func:`build_report` payload: data checks, streams, paired
    differences, fusion weights, how the CIs were computed."""
    parts = [["# Results"], checks_markdown(report["checks"]),
             streams_markdown(report["streams"], report["num_videos"]),
             paired_markdown(report["paired"]),
             _weights_line("Fusion weights (searched on val)", report["weights"])
             + _weights_line(f"{BASELINE} weights (searched on val)", report.get("baseline_weights")),
             [CI_NOTE]]
    return "\n\n".join("\n".join(p) for p in parts if p) + "\n"


# -------------------------------------------------------------------------------- the payload
def build_report(video_ids: Sequence[str], rows: Mapping[str, np.ndarray], labels: np.ndarray,
                 class_names: Sequence[str], fused: Sequence[str], roles: Roles,
                 weights: Mapping[str, float], baseline_weights: Mapping[str, float] | None,
                 checks: Mapping[str, Any], num_val_videos: int) -> dict[str, Any]:
    """The ``results.json`` payload from the test ``rows`` ``{row: scores (N, C)}`` (streams and
    fusions, :func:`fusion_rows`) and ``labels`` (N,). Percent / percentage points, except
    ``"results"`` (fractions, the per-row metrics older readers and ``fuse_splits`` use)."""
    correct = {r: correct_of(s, labels) for r, s in rows.items()}
    streams = {r: stream_metrics(s, labels, class_names) for r, s in rows.items()}
    top1 = {r: m["top1"] for r, m in streams.items()}
    return {
        "streams": streams,
        "paired": paired_comparisons(correct, top1, fused, roles),
        "checks": dict(checks),
        "weights": dict(weights), "baseline_weights": dict(baseline_weights or {}),
        "num_videos": int(len(labels)), "num_val_videos": int(num_val_videos),
        "class_names": list(class_names),
        "roles": {"fused": list(fused), **{k: (list(v) if isinstance(v, tuple) else v)
                                           for k, v in asdict(roles).items()}},
        "ci": {"method": "percentile bootstrap over videos", "confidence": CONFIDENCE,
               "n_resamples": N_RESAMPLES, "seed": SEED},
        "per_video": {"video_ids": list(video_ids), "labels": [int(x) for x in labels],
                      "correct": {r: c.astype(int).tolist() for r, c in correct.items()}},
        "results": {r: evaluate(s, labels, class_names) for r, s in rows.items()},
    }


def write_report(report: Mapping[str, Any], out_dir: str | os.PathLike, labels: np.ndarray,
                 fused_scores: np.ndarray) -> dict[str, Path]:
    """Write ``results.md``, ``results.json`` (``report``, :func:`build_report`) and
    ``confusion.png`` (of ``fused_scores`` (N, C) against ``labels`` (N,)) to ``out_dir``."""
    out = Path(out_dir)
    paths = {"markdown": out / "results.md", "json": out / "results.json",
             "confusion": out / "confusion.png"}
    write_text_atomic(paths["markdown"], results_markdown(report))
    write_json_atomic(paths["json"], report)
    names = report["class_names"]
    cm = confusion_matrix(labels, np.asarray(fused_scores).argmax(axis=1), len(names))
    save_confusion_png(paths["confusion"], cm, names)
    return paths


def _check_names(fused: Sequence[str], roles: Roles, val_paths: Mapping[str, Any],
                 test_paths: Mapping[str, Any]) -> None:
    """Fused streams need val and test scores; every named role must be a test stream."""
    unknown = [s for s in [*fused, *(roles.baseline_fused or ())]
               if s not in val_paths or s not in test_paths]
    named = [roles.distilled, roles.plain, roles.teacher, roles.appearance]
    unknown += [s for s in named if s is not None and s not in test_paths]
    if unknown:
        raise ValueError(f"stream(s) {unknown} have no score files; streams: {sorted(test_paths)}")


def run_fusion(
    val_paths: Mapping[str, str | os.PathLike],
    test_paths: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    class_names: Sequence[str],
    grid: Sequence[float] = DEFAULT_GRID,
    fused: Sequence[str] | None = None,
    roles: Roles | None = None,
    groups: str | os.PathLike | Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    targets: str | os.PathLike | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fusion stage: search the weights of the ``fused`` streams (default: all) and of
    ``roles.baseline_fused`` on the validation score files ``{stream: .npz}``, run the
    :func:`data_checks` on them (``groups``: a JSON file for :func:`load_groups`, or the mapping),
    evaluate every stream of ``test_paths`` and the fusions on the test score files, write the
    report. Returns the :func:`build_report` payload."""
    roles = roles or Roles()
    fused = list(fused) if fused is not None else list(test_paths)
    _check_names(fused, roles, val_paths, test_paths)
    _, val_scores, val_labels = load_aligned(val_paths)
    weights = search_fusion_weights(val_scores, val_labels, fused, grid)
    baseline = (search_fusion_weights(val_scores, val_labels, list(roles.baseline_fused), grid)
                if roles.baseline_fused else None)
    mapping, note = (dict(groups), None) if isinstance(groups, Mapping) else load_groups(groups)
    if targets is not None and not isinstance(targets, Mapping):
        targets = json.loads(Path(targets).read_text()) if Path(targets).is_file() else None
    checks = data_checks(val_scores, val_labels, class_names, roles, mapping, note, thresholds, targets)
    ids, test_scores, test_labels = load_aligned(test_paths)
    rows = fusion_rows(test_scores, fused, weights, baseline)
    report = build_report(ids, rows, test_labels, class_names, fused, roles, weights, baseline,
                          checks, len(val_labels))
    write_report(report, out_dir, test_labels, rows[FUSION])
    return report
