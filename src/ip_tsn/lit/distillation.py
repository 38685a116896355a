"""Generalized distillation of the P-stream student from optical-flow teacher targets.

Generalized distillation (Lopez-Paz et al., ICLR 2016): the student minimises
``(1 - lambda) * CE(y, s) + lambda * T^2 * KL(softmax(t / T) || softmax(s / T))`` where ``t`` is
the teacher's output on the privileged input (flow) of the SAME sample, plus (optionally) a feature
term on L2-normalised features, ``feat_weight * ||n(proj(s_feat)) - n(t_feat)||^2`` (cross-modal
feature distillation, Gupta et al. 2016). ``T^2`` keeps the soft term's gradients at the scale of
the hard term's when T changes (Hinton et al. 2015).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ip_tsn.lit.classifier import Batch, StreamClassifier


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over rows.

    student_logits, teacher_logits: (N, C) -> scalar.
    """
    t = temperature
    return t * t * F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                            reduction="batchmean", log_target=True)


def feature_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of L2-normalised rows, ``||s/|s| - t/|t|||^2 = 2 - 2 cos``, in [0, 4].

    student, teacher: (N, D) -> scalar.
    """
    return (F.normalize(student, dim=-1) - F.normalize(teacher, dim=-1)).pow(2).sum(dim=-1).mean()


def distillation_loss(ce: torch.Tensor, kd: torch.Tensor, feat: torch.Tensor, imitation: float,
                      feat_weight: float) -> torch.Tensor:
    """``(1 - imitation) * ce + imitation * kd + feat_weight * feat`` (scalars)."""
    return (1.0 - imitation) * ce + imitation * kd + feat_weight * feat


class DistillationModule(StreamClassifier):
    """P-stream student (TSN on mv + residual, 5 channels; or mv / residual only via
    ``in_channels``) trained against the flow teacher's outputs on the same samples.

    Targets come from the teacher cache (``teacher_logits`` (B, K, C), ``teacher_features``
    (B, K, D) in the batch: the teacher's outputs at the student's positions and view), or, with
    an online teacher (:meth:`set_teacher`), from running the teacher on ``teacher_input`` (B, K,
    2L, H, W): the flow of the same positions and view. ``per_segment=True`` compares each of the
    K student frame outputs with the teacher's output on the same frame and view; ``False``
    compares the consensus (averages over K). CE always uses the consensus logits.
    ``imitation`` is Lopez-Paz's lambda in [0, 1]; ``imitation=feat_weight=0`` is the plain P
    baseline. ``proj`` is ``Linear(D_student, D_teacher)`` (``projection=True`` and
    ``feat_weight > 0``) or identity. Validation/test/predict use :class:`StreamClassifier`'s.
    """

    def __init__(self, num_classes: int, in_channels: int = 5, num_segments: int = 3,
                 net: Mapping[str, Any] | None = None, optim: Mapping[str, Any] | None = None,
                 label_smoothing: float = 0.0, predict_mode: str = "video", frames_chunk: int = 64,
                 imitation: float = 0.5, feat_weight: float = 0.0, temperature: float = 4.0,
                 teacher_feature_dim: int | None = None, projection: bool = True, per_segment: bool = True) -> None:
        """The :class:`StreamClassifier` arguments (``net.input_bn`` defaults to true here: CoViAR's
        BatchNorm on the mv / residual input), then the distillation's own (``distill.*``)."""
        if not 0.0 <= imitation <= 1.0:
            raise ValueError(f"imitation (lambda) must be in [0, 1], got {imitation}")
        super().__init__(num_classes, in_channels, num_segments, {"input_bn": True, **(net or {})}, optim,
                         label_smoothing, predict_mode, frames_chunk)
        d_student = self.model.feature_dim
        d_teacher = teacher_feature_dim or d_student
        if feat_weight and not projection and d_teacher != d_student:
            raise ValueError(f"projection=False needs teacher_feature_dim ({d_teacher}) == student feature dim ({d_student})")
        # Built only when used: DDP rejects parameters that get no gradient.
        self.proj: nn.Module = nn.Linear(d_student, d_teacher) if projection and feat_weight else nn.Identity()
        self._teacher: list[nn.Module] = []  # not a submodule: never trained, never saved

    def set_teacher(self, teacher: StreamClassifier) -> None:
        """Run ``teacher`` (frozen, eval mode) on each batch's ``teacher_input`` instead of cached targets."""
        teacher.eval().requires_grad_(False)
        self._teacher = [teacher]

    def on_fit_start(self) -> None:
        if self._teacher:
            self._teacher[0].to(self.device)

    def teacher_outputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's ``(logits (B, K, C), features (B, K, D))`` for this batch."""
        if self._teacher:
            teacher = self._teacher[0].eval()
            with torch.no_grad():
                return teacher.model.forward_segments(batch["teacher_input"])
        return batch["teacher_logits"], batch["teacher_features"]

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``{"loss", "ce", "kd", "feat"}`` for a batch with teacher targets or inputs."""
        hp = self.hparams
        seg_logits, seg_features = self.model.forward_segments(batch["input"])  # (B,K,C),(B,K,D)
        logits = seg_logits.mean(dim=1)
        ce = F.cross_entropy(logits, batch["label"], label_smoothing=hp.label_smoothing)
        kd = feat = logits.new_zeros(())
        if hp.imitation or hp.feat_weight:
            t_logits, t_feat = self.teacher_outputs(batch)
            s_logits, s_feat, t_logits, t_feat = self._pairs(seg_logits, seg_features, t_logits, t_feat)
            if hp.imitation:
                kd = kd_loss(s_logits, t_logits, hp.temperature)
            if hp.feat_weight:
                feat = feature_loss(self.proj(s_feat), t_feat)
        loss = distillation_loss(ce, kd, feat, hp.imitation, hp.feat_weight)
        return {"loss": loss, "ce": ce, "kd": kd, "feat": feat}

    def _pairs(self, seg_logits: torch.Tensor, seg_features: torch.Tensor, t_logits: torch.Tensor,
               t_feat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Student/teacher rows to compare: (N, C), (N, D_s), (N, C), (N, D_t) with N = B
        (consensus) or B * K (``per_segment``)."""
        tensors = (seg_logits, seg_features, t_logits.to(seg_logits.dtype), t_feat.to(seg_features.dtype))
        if self.hparams.per_segment:
            return tuple(t.flatten(0, 1) for t in tensors)
        return tuple(t.mean(dim=1) for t in tensors)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ip_tsn_module"] = "distill"

    def extra_repr(self) -> str:
        hp: Any = self.hparams
        return f"imitation={hp.imitation}, T={hp.temperature}, feat_weight={hp.feat_weight}"
