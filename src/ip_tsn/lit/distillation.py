"""Generalized distillation of the P-stream student from cached optical-flow teacher targets."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ip_tsn.lit.classifier import Batch, StreamClassifier


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over rows.

    student_logits, teacher_logits: (N, C) -> scalar (Hinton et al.'s T^2 keeps gradient scale).
    """
    t = temperature
    return t * t * F.kl_div(F.log_softmax(student_logits / t, dim=-1),
                            F.log_softmax(teacher_logits / t, dim=-1),
                            reduction="batchmean", log_target=True)


class DistillationModule(StreamClassifier):
    """P-stream student (TSN on mv + residual, 5 channels; or mv / residual only via
    ``in_channels``) trained against teacher targets read from the teacher cache.

    Loss = CE(labels) + kd_weight * :func:`kd_loss` + feat_weight * MSE(proj(s_feat), t_feat).
    Batches add ``teacher_logits`` (B, K, C) and ``teacher_features`` (B, K, D_teacher), the
    teacher's outputs at the sampled frame positions. By default (``per_segment=False``) they are
    averaged over K, the teacher's own TSN consensus, and compared with the student's consensus
    outputs (B, C) / (B, D). With ``per_segment=True`` each of the K student frame outputs is
    compared with the teacher's output at the same frame. CE always uses the consensus logits.
    ``proj`` is ``Linear(D_student, D_teacher)`` (``projection=True`` and ``feat_weight > 0``)
    or identity (with ``projection=False`` the dims must match). The teacher never runs here.
    Ablations: ``kd_weight=feat_weight=0`` (no distillation), logits only, features only, both.
    Validation/test/predict use the CE and metrics of :class:`StreamClassifier` and need no
    teacher targets.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 5,
        input_bn: bool = True,
        kd_weight: float = 1.0,
        feat_weight: float = 0.0,
        temperature: float = 4.0,
        teacher_feature_dim: int | None = None,
        projection: bool = True,
        per_segment: bool = False,
        **kwargs: Any,
    ) -> None:
        """``kwargs``: any :class:`StreamClassifier` argument (arch, optimizer, lr, ...)."""
        super().__init__(num_classes, in_channels, input_bn=input_bn, **kwargs)
        d_student = self.model.feature_dim
        d_teacher = teacher_feature_dim or d_student
        if not projection and d_teacher != d_student:
            raise ValueError(f"projection=False needs teacher_feature_dim ({d_teacher}) == "
                             f"student feature dim ({d_student})")
        # Built only when used: DDP rejects parameters that get no gradient.
        self.proj: nn.Module = nn.Linear(d_student, d_teacher) if projection and feat_weight \
            else nn.Identity()

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``{"loss", "ce", "kd", "feat"}`` for a batch with teacher targets."""
        hp = self.hparams
        seg_logits, seg_features = self.model.forward_segments(batch["input"])  # (B,K,C),(B,K,D)
        logits = seg_logits.mean(dim=1)
        ce = F.cross_entropy(logits, batch["label"], label_smoothing=hp.label_smoothing)
        zero = logits.new_zeros(())
        kd, feat = zero, zero
        if hp.kd_weight or hp.feat_weight:
            s_logits, s_feat, t_logits, t_feat = self._pairs(batch, seg_logits, seg_features)
            if hp.kd_weight:
                kd = kd_loss(s_logits, t_logits, hp.temperature)
            if hp.feat_weight:
                feat = F.mse_loss(self.proj(s_feat), t_feat)
        loss = ce + hp.kd_weight * kd + hp.feat_weight * feat
        return {"loss": loss, "ce": ce, "kd": kd, "feat": feat}

    def _pairs(self, batch: Batch, seg_logits: torch.Tensor,
               seg_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Student/teacher rows to compare: (N, C), (N, D_s), (N, C), (N, D_t) with N = B
        (consensus) or B * K (``per_segment``)."""
        t_logits = batch["teacher_logits"].to(seg_logits.dtype)
        t_feat = batch["teacher_features"].to(seg_features.dtype)
        tensors = (seg_logits, seg_features, t_logits, t_feat)
        if self.hparams.per_segment:
            return tuple(t.flatten(0, 1) for t in tensors)
        return tuple(t.mean(dim=1) for t in tensors)

    def extra_repr(self) -> str:
        hp: Any = self.hparams
        return f"kd_weight={hp.kd_weight}, feat_weight={hp.feat_weight}, T={hp.temperature}"
