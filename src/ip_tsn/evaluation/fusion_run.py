"""The fusion stage on score files: weights searched on validation, the data checks, every stream
and the fusions evaluated on test, the report written (:func:`run_fusion`; ``ip-tsn fuse`` calls it)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ip_tsn.atomic import read_json
from ip_tsn.evaluation.checks import Roles, data_checks, load_groups
from ip_tsn.evaluation.fusion import DEFAULT_GRID, search_fusion_weights
from ip_tsn.evaluation.report import FUSION, build_report, fusion_rows, write_report
from ip_tsn.evaluation.scores import align_scores, load_aligned, load_scores


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
    provenance: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The fusion stage: search the weights of the ``fused`` streams (default: all) and of
    ``roles.baseline_fused`` on the validation score files ``{stream: .npz}``, run the
    :func:`data_checks` on them (``groups``: a JSON file for :func:`load_groups`, or the mapping),
    evaluate every stream of ``test_paths`` and the fusions on the test score files, write the
    report (``provenance``: each stream's training environment, for its last lines). Returns the
    :func:`build_report` payload."""
    roles = roles or Roles()
    fused = list(fused) if fused is not None else list(test_paths)
    _check_names(fused, roles, val_paths, test_paths)
    _, val_scores, val_labels = load_aligned(val_paths)
    weights = search_fusion_weights(val_scores, val_labels, fused, grid)
    baseline = (search_fusion_weights(val_scores, val_labels, list(roles.baseline_fused), grid)
                if roles.baseline_fused else None)
    mapping, note = (dict(groups), None) if isinstance(groups, Mapping) else load_groups(groups)
    if targets is not None and not isinstance(targets, Mapping):
        what = "the teacher-target report of ip-tsn cache (fuse.targets)"
        targets = read_json(targets, what) if Path(targets).is_file() else None
    checks = data_checks(val_scores, val_labels, class_names, roles, mapping, note, thresholds, targets)
    tables = {name: load_scores(path) for name, path in test_paths.items()}  # read once: scores and protocols
    ids, test_scores, test_labels = align_scores(tables, {name: str(p) for name, p in test_paths.items()})
    protocols = {name: json.loads(t.protocol) if t.protocol else None for name, t in tables.items()}
    rows = fusion_rows(test_scores, fused, weights, baseline)
    report = build_report(ids, rows, test_labels, class_names, fused, roles, weights, baseline,
                          checks, len(val_labels), provenance, protocols)
    write_report(report, out_dir, test_labels, rows[FUSION])
    return report
