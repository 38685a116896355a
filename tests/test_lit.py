"""StreamClassifier and DistillationModule with a real CPU Trainer on tiny tensor data."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tiny_data import SignDataset

from ip_tsn.evaluation.scores import load_scores
from ip_tsn.lit import DistillationModule, SaveTestScores, StreamClassifier, kd_loss
from ip_tsn.lit.modules import load_module
from ip_tsn.lit.optim import lr_factor

FAST_NET = {"arch": "resnet18", "pretrained": False, "dropout": 0.0}
FAST_OPTIM = {"optimizer": "adam", "lr": 3e-3, "warmup_epochs": 0.0}
FAST = {"net": FAST_NET, "optim": FAST_OPTIM}


def fast(**optim) -> dict:
    """``FAST``'s ``net`` / ``optim`` with ``optim`` keys replaced."""
    return {"net": dict(FAST_NET), "optim": {**FAST_OPTIM, **optim}}
TEACHER = (2, 16)  # teacher classes, teacher feature dim


def trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    opts = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                enable_model_summary=False, default_root_dir=tmp_path)
    opts.update(kwargs)
    return pl.Trainer(**opts)


def loaders(n_train: int = 64, n_val: int = 32, teacher: tuple | None = None):
    train = DataLoader(SignDataset(n_train, seed=0, teacher=teacher), batch_size=16,
                       shuffle=True)
    val = DataLoader(SignDataset(n_val, seed=1), batch_size=16)
    return train, val


@pytest.mark.parametrize("cls", [StreamClassifier, DistillationModule])
def test_fast_dev_run(tmp_path: Path, cls: type) -> None:
    kwargs = dict(teacher_feature_dim=TEACHER[1], feat_weight=1.0) if cls is DistillationModule \
        else {}
    module = cls(num_classes=2, in_channels=3, **FAST, **kwargs)
    train, val = loaders(32, 16, TEACHER)
    before = {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}
    t = trainer(tmp_path, fast_dev_run=True)
    t.fit(module, train, val)
    changed = [k for k, v in module.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed, "one training step changed no weight"
    losses = {k: float(v) for k, v in t.callback_metrics.items() if k.startswith("train/loss")}
    assert losses and all(math.isfinite(x) and x > 0 for x in losses.values()), losses
    assert 0.0 <= float(t.callback_metrics["val/top1"]) <= 1.0


def test_stream_classifier_learns_and_reports_test_scores(tmp_path: Path) -> None:
    pl.seed_everything(0)
    module = StreamClassifier(num_classes=2, in_channels=3, **fast(schedule="cosine", warmup_epochs=0.5))
    train, val = loaders()
    t = trainer(tmp_path, max_epochs=2, enable_checkpointing=False)
    t.fit(module, train, val)
    assert t.callback_metrics["val/top1"] > 0.75
    for key in ("train/loss_step", "train/loss_epoch", "val/loss", "val/top5", "val/mean_class_acc"):
        assert key in t.callback_metrics
    t.test(module, val)
    assert t.callback_metrics["test/top1"] > 0.75
    table = module.test_scores()
    assert table.video_ids == sorted(val.dataset.ids)
    assert table.scores.shape == (32, 2) and table.labels.tolist() == val.dataset.labels.tolist()
    assert abs(table.scores.sum(1) - 1).max() < 1e-5
    preds = t.predict(module, val)
    assert preds[0]["logits"].shape == (16, 2) and preds[0]["features"].shape == (16, 512)
    assert preds[0]["video_id"] == val.dataset.ids[:16]
    t.save_checkpoint(tmp_path / "stream.ckpt")
    old = load_module(_as_flat_checkpoint(tmp_path / "stream.ckpt", tmp_path / "flat.ckpt", drop_kind=True))
    assert type(old) is StreamClassifier and old.optim_settings == module.optim_settings
    assert old.optim_settings.schedule == "cosine" and old.optim_settings.warmup_epochs == 0.5
    for key, value in module.state_dict().items():
        torch.testing.assert_close(old.state_dict()[key], value)


def test_distillation_learns_and_checkpoint_loads_weights_only(tmp_path: Path) -> None:
    pl.seed_everything(0)
    settings = fast(schedule="step", lr_steps=[1])
    settings["net"]["input_bn"] = True  # the student's (experiments/pstream.yaml)
    module = DistillationModule(num_classes=2, in_channels=3, imitation=0.5, feat_weight=0.5,
                                temperature=2.0, teacher_feature_dim=TEACHER[1], **settings)
    train, val = loaders(teacher=TEACHER)
    t = trainer(tmp_path, max_epochs=2)
    t.fit(module, train, val)
    assert t.callback_metrics["val/top1"] > 0.75
    for key in ("train/ce_epoch", "train/kd_epoch", "train/feat_epoch", "train/loss_epoch"):
        assert key in t.callback_metrics
    path = tmp_path / "student.ckpt"
    t.save_checkpoint(path)
    raw = torch.load(path, weights_only=True, map_location="cpu")
    hp = raw["hyper_parameters"]
    assert hp["imitation"] == 0.5 and raw["ip_tsn_module"] == "distill"
    assert hp["net"] == {"arch": "resnet18", "dropout": 0.0, "pretrained": False, "weights": None,
                         "allow_random_init": False, "input_bn": True, "stem": "imagenet"}
    assert hp["optim"]["lr_steps"] == [1.0] and hp["optim"]["momentum"] == 0.9  # complete, plain
    loaded = DistillationModule.load_from_checkpoint(path, weights_only=True, map_location="cpu")
    assert isinstance(loaded.proj, torch.nn.Linear) and loaded.proj.out_features == TEACHER[1]
    for key, value in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    for drop_kind in (False, True):  # checkpoints of the flat layout, with and without their kind
        flat = _as_flat_checkpoint(path, tmp_path / f"flat{drop_kind}.ckpt", drop_kind)
        old = load_module(flat)
        assert type(old) is DistillationModule and old.hparams.imitation == 0.5 and old.hparams.temperature == 2.0
        assert old.optim_settings == module.optim_settings and old.hparams.optim == hp["optim"]
        assert old.net_settings == dataclasses.replace(module.net_settings, pretrained=False)
        for key, value in module.state_dict().items():
            torch.testing.assert_close(old.state_dict()[key], value)


def _as_flat_checkpoint(path: Path, out: Path, drop_kind: bool = False) -> Path:
    """The checkpoint at ``path`` as the code before ``model.net`` / ``model.optim`` wrote it:
    every setting a flat hyperparameter (and, ``drop_kind``, no ``ip_tsn_module``: older still)."""
    raw = torch.load(path, weights_only=True, map_location="cpu")
    hp = dict(raw["hyper_parameters"])
    net, optim = hp.pop("net"), hp.pop("optim")
    raw["hyper_parameters"] = {**hp, **net, **optim}
    assert {"arch", "input_bn", "lr", "lr_steps", "backbone_lr_mult"} <= set(raw["hyper_parameters"])
    if drop_kind:
        del raw["ip_tsn_module"]
    torch.save(raw, out)
    return out


def test_kd_loss_hand_computed() -> None:
    s, t, temp = [1.0, 2.0, 3.0], [3.0, 2.0, 1.0], 2.0

    def softmax(z: list[float]) -> list[float]:
        e = [math.exp(v / temp) for v in z]
        return [v / sum(e) for v in e]

    ps, pt = softmax(s), softmax(t)
    expected = temp ** 2 * sum(a * math.log(a / b) for a, b in zip(pt, ps))
    got = kd_loss(torch.tensor([s]), torch.tensor([t]), temp)
    assert abs(got.item() - expected) < 1e-6
    assert kd_loss(torch.tensor([s]), torch.tensor([s]), temp).item() == pytest.approx(0, abs=1e-7)


def _batch() -> dict:
    data = SignDataset(4, k=3, teacher=(2, 512))
    return next(iter(DataLoader(data, batch_size=4)))


def test_no_distillation_loss_is_cross_entropy() -> None:
    module = DistillationModule(num_classes=2, in_channels=3, imitation=0.0, feat_weight=0.0,
                                projection=False, **FAST).eval()
    batch = _batch()
    with torch.no_grad():
        losses = module.training_losses(batch)
        ce = F.cross_entropy(module(batch["input"])[0], batch["label"])
    assert losses["kd"].item() == 0.0 and losses["feat"].item() == 0.0
    torch.testing.assert_close(losses["loss"], ce)


@pytest.mark.parametrize("per_segment", [False, True])
def test_distillation_terms(per_segment: bool) -> None:
    module = DistillationModule(num_classes=2, in_channels=3, imitation=0.7, feat_weight=0.3,
                                temperature=3.0, projection=False, per_segment=per_segment,
                                **FAST).eval()
    batch = _batch()
    with torch.no_grad():
        losses = module.training_losses(batch)
        seg_logits, seg_feat = module.model.forward_segments(batch["input"])
    if per_segment:
        s, f = seg_logits.flatten(0, 1), seg_feat.flatten(0, 1)
        t, tf = batch["teacher_logits"].flatten(0, 1), batch["teacher_features"].flatten(0, 1)
    else:
        s, f = seg_logits.mean(1), seg_feat.mean(1)
        t, tf = batch["teacher_logits"].mean(1), batch["teacher_features"].mean(1)
    torch.testing.assert_close(losses["kd"], kd_loss(s, t, 3.0))
    cos = F.cosine_similarity(f, tf, dim=-1)  # normalised features: ||a/|a| - b/|b|||^2 = 2 - 2 cos
    torch.testing.assert_close(losses["feat"], (2 - 2 * cos).mean())
    # generalized distillation: a convex mix of hard and soft labels, plus the feature term
    torch.testing.assert_close(losses["loss"],
                               0.3 * losses["ce"] + 0.7 * losses["kd"] + 0.3 * losses["feat"])


@pytest.mark.parametrize("per_segment", [True, False])
def test_spatial_term_compares_each_frame_with_the_teacher_on_the_same_view(per_segment: bool) -> None:
    """The spatial term (issue 19, item 3) is the MSE of the student's layer2 maps to the online
    teacher's on the same (video, segment): checked against both networks run one frame at a time."""
    torch.manual_seed(0)
    student = DistillationModule(num_classes=2, in_channels=3, imitation=0.0, feat_weight=0.0, projection=False,
                                 spatial_weight=2.0, spatial_layer="layer2", per_segment=per_segment, **FAST).eval()
    teacher = StreamClassifier(num_classes=2, in_channels=4, **FAST)
    batch = {"input": torch.randn(2, 3, 3, 32, 32), "teacher_input": torch.randn(2, 3, 4, 32, 32),
             "label": torch.tensor([0, 1])}
    with pytest.raises(ValueError, match="online_teacher"):
        student.training_losses(batch)
    student.set_teacher(teacher)
    with torch.no_grad():
        losses = student.training_losses(batch)

        def layer2(module, x):  # (C, H, W) -> its map at layer2, the frame alone
            net = module.model.backbone.net
            y = net.maxpool(net.relu(net.bn1(net.conv1(module.model.backbone.input_bn(x[None])))))
            return net.layer2(net.layer1(y))[0]

        s = torch.stack([torch.stack([layer2(student, batch["input"][b, k]) for k in range(3)]) for b in range(2)])
        t = torch.stack([torch.stack([layer2(teacher, batch["teacher_input"][b, k]) for k in range(3)])
                         for b in range(2)])
    expected = F.mse_loss(s, t) if per_segment else F.mse_loss(s.mean(1), t.mean(1))
    assert s.shape == (2, 3, 128, 4, 4) and expected > 0
    torch.testing.assert_close(losses["spatial"], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses["loss"], losses["ce"] + 2.0 * losses["spatial"])
    assert losses["kd"] == 0 and losses["feat"] == 0
    with pytest.raises(ValueError, match="spatial_layer='layer9'"):
        DistillationModule(num_classes=2, in_channels=3, spatial_weight=1.0, spatial_layer="layer9", **FAST)


def test_convex_loss_endpoints() -> None:
    """imitation 0 is cross-entropy alone, 1 the soft term alone; values outside [0, 1] refused."""
    batch = _batch()
    for lam in (0.0, 1.0):
        module = DistillationModule(num_classes=2, in_channels=3, imitation=lam, temperature=2.0,
                                    feat_weight=0.0, projection=False, **FAST).eval()
        with torch.no_grad():
            losses = module.training_losses(batch)
        torch.testing.assert_close(losses["loss"], losses["kd"] if lam else losses["ce"])
        assert losses["ce"] > 0 and (losses["kd"] > 0 if lam else losses["kd"] == 0)
    with pytest.raises(ValueError, match="imitation"):
        DistillationModule(num_classes=2, in_channels=3, imitation=1.5, **FAST)


def test_unknown_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"model.optim: unknown key\(s\) lrr; known: optimizer, lr, "):
        StreamClassifier(num_classes=2, in_channels=3, net=FAST_NET, optim={"lrr": 0.1})
    with pytest.raises(ValueError, match=r"model.net: unknown key\(s\) lr; known: arch, "):
        StreamClassifier(num_classes=2, in_channels=3, net={**FAST_NET, "lr": 0.1})


def test_projection_false_needs_matching_dims() -> None:
    with pytest.raises(ValueError, match="teacher_feature_dim"):
        DistillationModule(num_classes=2, projection=False, feat_weight=1.0, teacher_feature_dim=7, **FAST)


def test_optimizer_groups_and_schedule(tmp_path: Path) -> None:
    module = StreamClassifier(num_classes=2, in_channels=2,
                              net={"arch": "resnet18", "pretrained": False, "input_bn": True},
                              optim={"optimizer": "sgd", "nesterov": True, "lr": 0.1, "backbone_lr_mult": 0.01,
                                     "first_conv_lr_mult": 0.1, "schedule": "constant", "warmup_epochs": 0})
    t = trainer(tmp_path, max_epochs=1)
    module.trainer = t
    optimizer = module.configure_optimizers()["optimizer"]
    lrs = {g["name"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert lrs["first_conv"] == (pytest.approx(0.01), 1e-4)
    assert lrs["backbone"][0] == pytest.approx(0.001) and lrs["head"][0] == pytest.approx(0.1)
    assert lrs["head/no_decay"][1] == 0.0
    assert lr_factor(0, 100, "cosine", warmup_steps=4) == pytest.approx(0.2)
    assert lr_factor(100, 100, "cosine") == pytest.approx(0.0)
    assert lr_factor(60, 100, "step", milestones=[30, 50], gamma=0.1) == pytest.approx(0.01)


def test_ddp_test_scores_are_gathered(tmp_path: Path) -> None:
    """Under DDP (2 CPU processes, padded sampler) rank 0 saves every video exactly once."""
    module = StreamClassifier(num_classes=2, in_channels=3, **FAST)
    data = SignDataset(5, seed=2)
    t = trainer(tmp_path, strategy="ddp_spawn", devices=2,
                callbacks=[SaveTestScores(tmp_path / "test_scores.npz")])
    t.test(module, DataLoader(data, batch_size=2))
    table = load_scores(tmp_path / "test_scores.npz")
    assert table.video_ids == data.ids
    assert table.labels.tolist() == data.labels.tolist()
    assert table.scores.shape == (5, 2)
