"""Classification metrics shared by every LightningModule."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """``{prefix}top1``, ``{prefix}top5`` (top-k = min(5, C), micro) and
    ``{prefix}mean_class_acc`` (macro: mean of per-class recalls)."""
    return MetricCollection(
        {
            "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "mean_class_acc": MulticlassAccuracy(num_classes, top_k=1, average="macro"),
        },
        prefix=prefix,
        compute_groups=False,
    )
