"""Lightning modules, optimisation, the checkpoint reader and the Lightning callbacks (teacher-cache
writer, test-score writer). Fusion, statistics and reports live in :mod:`ip_tsn.evaluation`."""

from ip_tsn.lit.cache_writer import TeacherCacheWriter
from ip_tsn.lit.classifier import StreamClassifier
from ip_tsn.lit.distillation import DistillationModule, kd_loss
from ip_tsn.lit.scores import SaveTestScores

__all__ = ["DistillationModule", "SaveTestScores", "StreamClassifier", "TeacherCacheWriter", "kd_loss"]
