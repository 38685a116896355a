"""Evaluation: per-video score files, late fusion, statistics and reports, in plain numpy.

Imports numpy, scipy, statsmodels, matplotlib, :mod:`ip_tsn.atomic` and at most :mod:`ip_tsn.data`;
never :mod:`ip_tsn.models`, :mod:`ip_tsn.lit`, torch or Lightning (importing this package loads
neither; ``tests/test_layout.py`` checks it).

- ``scores.py``: the score file of one stream (``<stream>.npz``) and aligning streams by video id;
- ``fusion.py``: weighted sums of stream scores, the weight search, top-k / mean class accuracy;
- ``stats.py``: bootstrap CIs, paired differences, McNemar;
- ``report.py``: the fusion report (``results.{md,json}``, confusion PNG) and per-class reports;
- ``splits.py``: results over several splits (each split and the mean).
"""

from ip_tsn.evaluation.fusion import evaluate, evaluate_streams, fuse_scores, search_fusion_weights
from ip_tsn.evaluation.fusion_run import run_fusion
from ip_tsn.evaluation.report import write_report
from ip_tsn.evaluation.scores import ScoreTable, align_scores, load_aligned, load_scores, save_scores

__all__ = [
    "ScoreTable", "align_scores", "evaluate", "evaluate_streams", "fuse_scores", "load_aligned",
    "load_scores", "run_fusion", "save_scores", "search_fusion_weights", "write_report",
]
