"""Results over several splits (UCF101 and HMDB51 have 3): each split and the mean, as the
papers' tables report them. Input: the ``results.json`` payload of each split's fusion run."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ip_tsn.atomic import write_json_atomic, write_text_atomic
from ip_tsn.evaluation.report import METRICS

TITLES = {"top1": "top-1 (%)", "top5": "top-5 (%)", "mean_class_acc": "mean class accuracy (%)"}


def combine_splits(per_split: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Combine ``{split: {"results": {row: {metric: value}}, "weights": {...}}}``.

    Returns ``{"splits": [k, ...], "results": {row: {metric: {"splits": {k: v}, "mean", "std"}}},
    "weights": {k: weights}}``, rows in the first split's order. ``std`` is the population
    standard deviation over splits. A row missing from a split raises ``ValueError``.
    """
    splits = sorted(per_split)
    if not splits:
        raise ValueError("no split to combine")
    rows = list(per_split[splits[0]]["results"])
    combined: dict[str, dict[str, Any]] = {}
    for row in rows:
        missing = [k for k in splits if row not in per_split[k]["results"]]
        if missing:
            raise ValueError(f"row {row!r} is missing from split(s) {missing}")
        combined[row] = {}
        for metric in METRICS:
            values = {k: float(per_split[k]["results"][row][metric]) for k in splits}
            arr = np.array(list(values.values()), dtype=np.float64)
            combined[row][metric] = {"splits": values, "mean": float(arr.mean()),
                                     "std": float(arr.std())}
    weights = {k: dict(per_split[k].get("weights", {})) for k in splits}
    return {"splits": splits, "results": combined, "weights": weights}


def splits_markdown(combined: Mapping[str, Any]) -> str:
    """One Markdown table per metric: a row per stream (and fusion), a column per split, the
    mean; percentages with 2 decimals; the fusion weights of each split below."""
    splits = combined["splits"]
    head = "| stream | " + " | ".join(f"split {k}" for k in splits) + " | mean |"
    rule = "|---|" + "---:|" * (len(splits) + 1)
    parts = [f"# Results over splits {', '.join(str(k) for k in splits)}"]
    for metric in METRICS:
        lines = [f"## {TITLES[metric]}", "", head, rule]
        for row, res in combined["results"].items():
            cells = [f"{100.0 * res[metric]['splits'][k]:.2f}" for k in splits]
            lines.append(f"| {row} | " + " | ".join(cells) + f" | {100.0 * res[metric]['mean']:.2f} |")
        parts.append("\n".join(lines))
    weights = [f"split {k}: " + ", ".join(f"{s} {w:g}" for s, w in combined["weights"][k].items())
               for k in splits if combined["weights"][k]]
    if weights:
        parts.append("Fusion weights (searched on each split's validation set): " + "; ".join(weights))
    return "\n\n".join(parts) + "\n"


def write_splits_report(per_split: Mapping[int, Mapping[str, Any]],
                        out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``results.md`` and ``results.json`` (:func:`combine_splits`) to ``out_dir``.

    Returns the combined dict plus ``"markdown"`` and ``"json"`` paths (str)."""
    combined = combine_splits(per_split)
    out = Path(out_dir)
    paths = {"markdown": str(out / "results.md"), "json": str(out / "results.json")}
    write_text_atomic(paths["markdown"], splits_markdown(combined))
    write_json_atomic(paths["json"], combined)  # split numbers become "1", "2", ... keys
    return {**combined, **paths}

