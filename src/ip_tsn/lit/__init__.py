"""Lightning modules, optimisation, fusion and the teacher-cache writer."""

from ip_tsn.lit.cache_writer import TeacherCacheWriter
from ip_tsn.lit.classifier import StreamClassifier
from ip_tsn.lit.distillation import DistillationModule, kd_loss
from ip_tsn.lit.fusion import evaluate, evaluate_streams, fuse_scores, search_fusion_weights
from ip_tsn.lit.report import run_fusion, write_report
from ip_tsn.lit.scores import (SaveTestScores, ScoreTable, align_scores, load_aligned,
                               load_scores, save_scores)

__all__ = [
    "DistillationModule", "SaveTestScores", "ScoreTable", "StreamClassifier",
    "TeacherCacheWriter", "align_scores", "evaluate", "evaluate_streams", "fuse_scores",
    "kd_loss", "load_aligned", "load_scores", "run_fusion", "save_scores",
    "search_fusion_weights", "write_report",
]
