"""The training losses as plain torch functions (no Lightning): the student's generalized
distillation terms, which :class:`~ip_tsn.lit.distillation.DistillationModule` calls.

Generalized distillation (Lopez-Paz et al., ICLR 2016): the student minimises
``(1 - lambda) * CE(y, s) + lambda * T^2 * KL(softmax(t / T) || softmax(s / T))`` where ``t`` is
the teacher's output on the privileged input (flow) of the SAME sample, plus (optionally) a feature
term on L2-normalised features, ``feat_weight * ||n(proj(s_feat)) - n(t_feat)||^2`` (cross-modal
feature distillation, Gupta et al. 2016), plus (optionally) a spatial term, ``spatial_weight *
MSE(s_map, t_map)`` between the two networks' feature maps at one layer on the same view (FitNets,
Romero et al. 2015; MARS, Crasto et al. 2019, weight 50 on the flow stream's features). ``T^2``
keeps the soft term's gradients at the scale of the hard term's when T changes (Hinton et al. 2015).

A new term: its weight in ``lit/model_settings.py``'s ``DistillSettings`` and its function here,
added in :func:`distillation_terms`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


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


def spatial_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of feature maps (MARS's MSE); a teacher map of another spatial size is
    average-pooled to the student's first.

    student (N, C, h, w), teacher (N, C, h', w') -> scalar.
    """
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(f"spatial term: the student's map has {student.shape[1]} channels, the teacher's "
                         f"{teacher.shape[1]} (use the same backbone, or another distill.spatial_layer)")
    if teacher.shape[-2:] != student.shape[-2:]:
        teacher = F.adaptive_avg_pool2d(teacher, student.shape[-2:])
    return F.mse_loss(student, teacher.to(student.dtype))


def distillation_loss(ce: torch.Tensor, kd: torch.Tensor, feat: torch.Tensor, imitation: float,
                      feat_weight: float, spatial: torch.Tensor | None = None,
                      spatial_weight: float = 0.0) -> torch.Tensor:
    """``(1 - imitation) * ce + imitation * kd + feat_weight * feat + spatial_weight * spatial`` (scalars)."""
    loss = (1.0 - imitation) * ce + imitation * kd + feat_weight * feat
    return loss + spatial_weight * spatial if spatial_weight and spatial is not None else loss


def paired_rows(seg_logits: torch.Tensor, seg_features: torch.Tensor, t_logits: torch.Tensor, t_feat: torch.Tensor,
                per_segment: bool) -> tuple[torch.Tensor, ...]:
    """Student / teacher rows to compare: (B, K, C), (B, K, D_s), (B, K, C), (B, K, D_t) ->
    (N, C), (N, D_s), (N, C), (N, D_t) with N = B * K (``per_segment``) or B (consensus)."""
    tensors = (seg_logits, seg_features, t_logits.to(seg_logits.dtype), t_feat.to(seg_features.dtype))
    if per_segment:
        return tuple(t.flatten(0, 1) for t in tensors)
    return tuple(t.mean(dim=1) for t in tensors)


def distillation_terms(seg_logits: torch.Tensor, seg_features: torch.Tensor, labels: torch.Tensor,
                       teacher: Callable[[], tuple[torch.Tensor, torch.Tensor]], *, imitation: float,
                       temperature: float, feat_weight: float, per_segment: bool, label_smoothing: float,
                       proj: Callable[[torch.Tensor], torch.Tensor], spatial_weight: float = 0.0,
                       maps: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """``{"loss", "ce", "kd", "feat"}`` (and ``"spatial"`` when weighted) of a batch: CE on the consensus of ``seg_logits``
    (B, K, C) against ``labels`` (B,); the teacher's ``(logits (B, K, C), features (B, K, D))`` asked
    of ``teacher()`` only when a term needs them; ``proj`` maps the student's features to the
    teacher's; ``maps()``: the student's and the teacher's feature maps (B * K, C, h, w), frame by
    frame on the same views, called after ``teacher()`` when ``spatial_weight`` > 0."""
    logits = seg_logits.mean(dim=1)
    ce = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    kd = feat = spatial = logits.new_zeros(())
    if imitation or feat_weight or spatial_weight:
        t_logits, t_feat = teacher()
        s_logits, s_feat, t_logits, t_feat = paired_rows(seg_logits, seg_features, t_logits, t_feat, per_segment)
        if imitation:
            kd = kd_loss(s_logits, t_logits, temperature)
        if feat_weight:
            feat = feature_loss(proj(s_feat), t_feat)
        if spatial_weight and maps is not None:
            s_map, t_map = maps()
            if not per_segment:  # the consensus: maps averaged over the K segments
                b, k = seg_logits.shape[:2]
                s_map, t_map = (m.view(b, k, *m.shape[1:]).mean(dim=1) for m in (s_map, t_map))
            spatial = spatial_loss(s_map, t_map)
    loss = distillation_loss(ce, kd, feat, imitation, feat_weight, spatial, spatial_weight)
    return {"loss": loss, "ce": ce, "kd": kd, "feat": feat, **({"spatial": spatial} if spatial_weight else {})}
