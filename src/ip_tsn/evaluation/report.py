"""Fusion report: results.md, results.json and a confusion-matrix PNG. All writes are atomic
(one stream's per-class report: ``class_report.py``; the checks: ``checks.py``; the run:
``fusion_run.py``).

The fusion report has, on the test split, every stream and three fusions (the ``fused`` streams
with weights searched on val, the same at 1:1, and a baseline fusion such as I + plain P) with a
bootstrap CI of top-1, and paired differences (paired bootstrap CI, McNemar p) between them; and,
on the validation split only, pre-registered data checks (``checks.CHECKS``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ip_tsn.atomic import write_json_atomic, write_text_atomic
from ip_tsn.evaluation.checks import Roles
from ip_tsn.evaluation.class_report import confusion_matrix, save_confusion_png
from ip_tsn.evaluation.fusion import correct_of, equal_weights, evaluate, fuse_scores
from ip_tsn.evaluation.stats import accuracy_ci, paired_difference

METRICS = ("top1", "top5", "mean_class_acc")


# ------------------------------------------------------------------------------- fusion report
FUSION, EQUAL, BASELINE = "fusion", "fusion (equal weights)", "I + plain P"
CONFIDENCE, N_RESAMPLES, SEED = 0.95, 9999, 0
CI_NOTE = ("Top-1 95% CIs: percentile bootstrap over the test videos (`scipy.stats.bootstrap`, "
           f"{N_RESAMPLES} resamples, seed {SEED}). Paired differences: the same bootstrap resampling "
           "videos with both outcomes (`paired=True`); McNemar's test (`statsmodels`) exact below 25 "
           "discordant videos, chi-square with continuity correction otherwise.")
PAIRED_TITLES = {"distilled_minus_plain": "distilled P minus plain P",
                 "fused_minus_best": "fusion minus its best input stream",
                 "equal_fused_minus_best": "equal-weight fusion minus the best input stream",
                 "baseline_fused_minus_best": "I + plain P minus its best input stream",
                 "fused_minus_baseline_fused": "fusion (distilled P) minus I + plain P"}


def stream_metrics(scores: np.ndarray, labels: np.ndarray,
                   class_names: Sequence[str]) -> dict[str, Any]:
    """``{"top1", "top1_ci": [low, high], "top5", "mean_class_acc"}`` in percent of ``scores``
    (N, C) against ``labels`` (N,); the CI is :func:`accuracy_ci`'s."""
    res = evaluate(scores, labels, class_names)
    _, low, high = accuracy_ci(correct_of(scores, labels), CONFIDENCE, N_RESAMPLES, SEED)
    return {"top1": 100.0 * res["top1"], "top1_ci": [low, high], "top5": 100.0 * res["top5"],
            "mean_class_acc": 100.0 * res["mean_class_acc"]}


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


def provenance_markdown(provenance: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """One line on what trained the streams (their ``fit.json`` ``environment``): the commit and
    CPU kind they share, or each stream's where they differ (the same seeds train differently on
    another CPU kind)."""
    def where(env: Mapping[str, Any] | None) -> str:
        if not env:
            return "not recorded"
        commit = (env.get("git_commit") or "")[:10] or f"ip-tsn {env.get('ip_tsn')}"
        return (f"{commit}{' with uncommitted changes' if env.get('git_dirty') else ''}, "
                f"{env.get('cpu_capability')} CPU{', ' + env['cuda_device'] if env.get('cuda_device') else ''}, "
                f"torch {env.get('torch')}")

    return _per_stream_line("Trained by", {name: where(env) for name, env in provenance.items()})


def _per_stream_line(title: str, each: Mapping[str, str]) -> list[str]:
    """``each`` stream's description in one line: once when every stream's is the same."""
    if not each:
        return []
    if len(set(each.values())) == 1:
        return [f"{title}: {next(iter(each.values()))} (every stream)."]
    return [f"{title} (the streams differ): " + "; ".join(f"{name}: {w}" for name, w in each.items()) + "."]


def protocol_markdown(protocols: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """One line on the test protocol of the streams' test scores (recorded in their score files):
    segments x crops at what size, the same for every stream or each stream's where they differ."""
    def what(p: Mapping[str, Any] | None) -> str:
        if not p:
            return "not recorded"
        segments, crops = p.get("test_segments"), p.get("test_crops")
        scale = "as decoded" if p.get("scale_size") is None else f"shorter side {p.get('scale_size')}"
        return (f"{segments} segment{'s' if segments != 1 else ''} x {crops} crop{'s' if crops != 1 else ''} of "
                f"{p.get('crop_size')} px ({scale})")

    return _per_stream_line("Test protocol", {name: what(p) for name, p in protocols.items()})


def results_markdown(report: Mapping[str, Any]) -> str:
    """``results.md`` of a :func:`build_report` payload: data checks, streams, paired
    differences, fusion weights, the test protocol, what trained the streams, how the CIs were
    computed."""
    parts = [["# Results"], checks_markdown(report["checks"]),
             streams_markdown(report["streams"], report["num_videos"]),
             paired_markdown(report["paired"]),
             _weights_line("Fusion weights (searched on val)", report["weights"])
             + _weights_line(f"{BASELINE} weights (searched on val)", report.get("baseline_weights")),
             protocol_markdown(report.get("protocols") or {}) + provenance_markdown(report.get("provenance") or {}),
             [CI_NOTE]]
    return "\n\n".join("\n".join(p) for p in parts if p) + "\n"


# -------------------------------------------------------------------------------- the payload
def build_report(video_ids: Sequence[str], rows: Mapping[str, np.ndarray], labels: np.ndarray,
                 class_names: Sequence[str], fused: Sequence[str], roles: Roles,
                 weights: Mapping[str, float], baseline_weights: Mapping[str, float] | None,
                 checks: Mapping[str, Any], num_val_videos: int,
                 provenance: Mapping[str, Mapping[str, Any] | None] | None = None,
                 protocols: Mapping[str, Mapping[str, Any] | None] | None = None) -> dict[str, Any]:
    """The ``results.json`` payload from the test ``rows`` ``{row: scores (N, C)}`` (streams and
    fusions, :func:`fusion_rows`) and ``labels`` (N,). Percent / percentage points, except
    ``"results"`` (fractions, the per-row metrics older readers and ``fuse_splits`` use).
    ``provenance``: each stream's training ``environment`` (its ``fit.json``; None: not recorded);
    ``protocols``: each stream's test protocol (its test score file's; None: not recorded)."""
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
        "provenance": dict(provenance or {}),
        "protocols": dict(protocols or {}),
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


