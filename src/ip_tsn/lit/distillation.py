"""Generalized distillation of the P-stream student from optical-flow teacher targets: the
LightningModule. The loss terms are plain functions in :mod:`ip_tsn.models.losses`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ip_tsn.lit.classifier import Batch, StreamClassifier
from ip_tsn.lit.model_settings import DistillSettings
from ip_tsn.models.losses import distillation_terms, kd_loss

__all__ = ["DistillationModule", "kd_loss"]
_DS = DistillSettings()  # distill.* defaults (lit/model_settings.py), the only ones


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
    ``feat_weight > 0``) or identity. ``spatial_weight > 0`` adds the MSE between the student's
    and the online teacher's feature maps at ``spatial_layer`` (B * K, C, h, w) on the same views
    (forward hooks keep both maps; not cached: see the README's cache projection). Validation/test/
    predict use :class:`StreamClassifier`'s.
    """

    def __init__(self, num_classes: int, in_channels: int = 5, num_segments: int = 3, *,
                 imitation: float = _DS.imitation, feat_weight: float = _DS.feat_weight,
                 temperature: float = _DS.temperature, teacher_feature_dim: int | None = _DS.teacher_feature_dim,
                 projection: bool = _DS.projection, per_segment: bool = _DS.per_segment,
                 spatial_weight: float = _DS.spatial_weight, spatial_layer: str = _DS.spatial_layer,
                 **classifier: Any) -> None:
        """The distillation's own arguments (``distill.*``, :class:`~.model_settings.DistillSettings`)
        and, by keyword, :class:`StreamClassifier`'s (``net``, ``optim``, ``model.*``)."""
        DistillSettings(imitation=imitation, temperature=temperature, feat_weight=feat_weight,  # checks the values
                        spatial_weight=spatial_weight)
        super().__init__(num_classes, in_channels, num_segments, **classifier)
        d_student = self.model.feature_dim
        d_teacher = teacher_feature_dim or d_student
        if feat_weight and not projection and d_teacher != d_student:
            raise ValueError(f"projection=False needs teacher_feature_dim ({d_teacher}) == student feature dim ({d_student})")
        # Built only when used: DDP rejects parameters that get no gradient.
        self.proj: nn.Module = nn.Linear(d_student, d_teacher) if projection and feat_weight else nn.Identity()
        self._teacher: list[nn.Module] = []  # not a submodule: never trained, never saved
        self._maps = {"student": KeepOutput(), "teacher": KeepOutput()}  # the spatial term's feature maps
        if spatial_weight:
            self.model.map_module(spatial_layer).register_forward_hook(self._maps["student"])

    def set_teacher(self, teacher: StreamClassifier) -> None:
        """Run ``teacher`` (frozen, eval mode) on each batch's ``teacher_input`` instead of cached targets."""
        teacher.eval().requires_grad_(False)
        self._teacher = [teacher]
        if self.hparams.spatial_weight:
            teacher.model.map_module(self.hparams.spatial_layer).register_forward_hook(self._maps["teacher"])

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
        """``{"loss", "ce", "kd", "feat"}`` for a batch with teacher targets or inputs
        (:func:`ip_tsn.models.losses.distillation_terms`)."""
        hp = self.hparams
        if hp.spatial_weight and not self._teacher:
            raise ValueError("distill.spatial_weight > 0 needs the online teacher (distill.online_teacher=true): "
                             "feature maps are not cached")
        seg_logits, seg_features = self.model.forward_segments(batch["input"])  # (B,K,C),(B,K,D)
        return distillation_terms(seg_logits, seg_features, batch["label"], lambda: self.teacher_outputs(batch),
                                  imitation=hp.imitation, temperature=hp.temperature, feat_weight=hp.feat_weight,
                                  per_segment=hp.per_segment, label_smoothing=hp.label_smoothing, proj=self.proj,
                                  spatial_weight=hp.spatial_weight, maps=self.feature_maps)

    def feature_maps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's and the teacher's last feature maps at ``spatial_layer`` (B * K, C, h, w)."""
        return self._maps["student"].take(), self._maps["teacher"].take()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ip_tsn_module"] = "distill"

    def extra_repr(self) -> str:
        hp: Any = self.hparams
        spatial = f", spatial_weight={hp.spatial_weight} at {hp.spatial_layer}" if hp.spatial_weight else ""
        return f"imitation={hp.imitation}, T={hp.temperature}, feat_weight={hp.feat_weight}{spatial}"


class KeepOutput:
    """A forward hook that keeps its module's last output until :meth:`take` (picklable, for DDP spawn)."""

    def __init__(self) -> None:
        self.output: torch.Tensor | None = None

    def __call__(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self.output = output

    def take(self) -> torch.Tensor:
        out, self.output = self.output, None
        if out is None:
            raise RuntimeError("no feature map was kept: the hooked module did not run")
        return out
