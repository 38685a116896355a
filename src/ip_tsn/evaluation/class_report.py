"""One stream's per-class view of its scores: the confusion matrix (counts and PNG) and per-class
accuracy (CSV). Written atomically."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ip_tsn.atomic import atomic_path, write_text_atomic


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
