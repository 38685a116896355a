"""Fusion report: results.md, results.json and a confusion-matrix PNG; per-class accuracy of one
stream's test scores (CSV + confusion PNG). All writes are atomic."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ip_tsn.lit.atomic import atomic_path, write_json_atomic, write_text_atomic
from ip_tsn.lit.fusion import DEFAULT_GRID, evaluate_streams, search_fusion_weights
from ip_tsn.lit.scores import load_aligned

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


def results_markdown(results: Mapping[str, Mapping[str, float]],
                     weights: Mapping[str, float] | None) -> str:
    """Markdown table (percent, 2 decimals) of every row of ``results`` plus the weights."""
    lines = ["| stream | top-1 (%) | top-5 (%) | mean class acc. (%) |",
             "|---|---:|---:|---:|"]
    for name, res in results.items():
        cells = " | ".join(f"{100.0 * res[m]:.2f}" for m in METRICS)
        lines.append(f"| {name} | {cells} |")
    if weights:
        lines += ["", "Fusion weights: " + ", ".join(f"{s} {w:g}" for s, w in weights.items())]
    return "# Results\n\n" + "\n".join(lines) + "\n"


def write_report(
    results: Mapping[str, Mapping[str, float]],
    out_dir: str | os.PathLike,
    class_names: Sequence[str],
    labels: np.ndarray,
    fused_scores: np.ndarray,
    weights: Mapping[str, float] | None = None,
) -> dict[str, Path]:
    """Write ``results.md``, ``results.json`` and ``confusion.png`` (of ``fused_scores`` (N, C)
    against ``labels`` (N,)) to ``out_dir``; return their paths."""
    out = Path(out_dir)
    paths = {"markdown": out / "results.md", "json": out / "results.json",
             "confusion": out / "confusion.png"}
    write_text_atomic(paths["markdown"], results_markdown(results, weights))
    payload: dict[str, Any] = {"results": {k: dict(v) for k, v in results.items()},
                               "weights": dict(weights or {}), "num_videos": int(len(labels)),
                               "class_names": list(class_names)}
    write_json_atomic(paths["json"], payload)
    cm = confusion_matrix(labels, np.asarray(fused_scores).argmax(axis=1), len(class_names))
    save_confusion_png(paths["confusion"], cm, class_names)
    return paths


def run_fusion(
    val_paths: Mapping[str, str | os.PathLike],
    test_paths: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    class_names: Sequence[str],
    grid: Sequence[float] = DEFAULT_GRID,
    fused: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The fusion stage: search weights of the ``fused`` streams (default: all) on the
    validation score files ``{stream: .npz}``, evaluate every stream of ``test_paths`` and the
    fusion on the test score files, write the report.

    Returns ``{"weights": {stream: w}, "results": {stream | "fusion": metrics}}``.
    """
    streams = list(fused) if fused is not None else list(test_paths)
    unknown = [s for s in streams if s not in val_paths or s not in test_paths]
    if unknown:
        raise ValueError(f"fused stream(s) {unknown} have no score files; streams: "
                         f"{sorted(test_paths)}")
    _, val_scores, val_labels = load_aligned({s: val_paths[s] for s in streams})
    weights = search_fusion_weights(val_scores, val_labels, streams, grid)
    _, test_scores, test_labels = load_aligned(test_paths)
    results, fused_scores = evaluate_streams(test_scores, test_labels, weights, class_names)
    write_report(results, out_dir, class_names, test_labels, fused_scores, weights)
    return {"weights": weights, "results": results}
