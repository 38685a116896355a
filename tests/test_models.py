"""Models: shapes, cross-modality first-conv init, the weights a network starts from."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torchvision

from ip_tsn.models import TSN, backbones, build_backbone, inflate_conv


@pytest.mark.parametrize("arch,channels,dim", [("resnet18", 3, 512), ("resnet34", 2, 512),
                                               ("resnet50", 5, 2048), ("resnet18", 10, 512)])
def test_tsn_shapes(arch: str, channels: int, dim: int) -> None:
    model = TSN(7, channels, arch=arch, pretrained=False).eval()
    x = torch.randn(2, 3, channels, 32, 32)
    logits, features = model(x)
    assert logits.shape == (2, 7) and features.shape == (2, dim)
    logits, features = model.forward_frames(x[0])
    assert logits.shape == (3, 7) and features.shape == (3, dim)


def test_any_num_segments_and_consensus() -> None:
    model = TSN(4, 5, pretrained=False, input_bn=True).eval()
    x = torch.randn(2, 6, 5, 32, 32)  # e.g. 3 segments x 2 crops at test time
    with torch.no_grad():
        logits, features = model(x)
        seg_logits, seg_features = model.forward_segments(x)
    assert seg_logits.shape == (2, 6, 4)
    torch.testing.assert_close(logits, seg_logits.mean(1))
    torch.testing.assert_close(features, seg_features.mean(1))


def test_forward_frames_equals_forward_for_k1() -> None:
    model = TSN(5, 3, pretrained=False).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a = model.forward_frames(x)
        b = model(x.unsqueeze(1))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_cross_modality_init(tmp_path: Path) -> None:
    torch.manual_seed(3)
    rgb = torchvision.models.resnet18(weights=None).conv1
    torch.save(rgb.state_dict(), tmp_path / "rgb_conv.pt")
    saved = torch.load(tmp_path / "rgb_conv.pt", weights_only=True)["weight"]
    expected = saved.mean(dim=1, keepdim=True).repeat(1, 5, 1, 1)
    torch.testing.assert_close(inflate_conv(rgb, 5).weight, expected)
    torch.manual_seed(3)  # same RNG stream: build_backbone's ResNet gets the same RGB conv1
    backbone, dim = build_backbone("resnet18", 5, pretrained=False, input_bn=True)
    assert dim == 512
    assert isinstance(backbone.input_bn, torch.nn.BatchNorm2d)
    assert backbone.input_bn.num_features == 5
    torch.testing.assert_close(backbone.net.conv1.weight, expected)
    assert backbone(torch.randn(2, 5, 32, 32)).shape == (2, 512)


def test_parameter_groups_cover_model_once() -> None:
    model = TSN(3, 2, pretrained=False, input_bn=True)
    groups = model.parameter_groups(0.01, 0.1)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    by_name = {g["name"]: g for g in groups}
    assert by_name["first_conv"]["lr_mult"] == 0.1 and by_name["head"]["lr_mult"] == 1.0
    assert any(p is model.backbone.net.conv1.weight for p in by_name["first_conv"]["params"])


def _offline_or_skip() -> None:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.exists():
        pytest.skip("ImageNet weights are cached locally; the offline failure is not exercised")


def test_weights_that_cannot_load_stop_in_one_line() -> None:
    """Offline, ImageNet weights asked for (the default) stop with one line naming the file, where
    to put it and the ways out; never a silent random init."""
    _offline_or_skip()
    with pytest.raises(backbones.WeightsError) as e:
        TSN(3, 3, pretrained=True)
    line = str(e.value)
    assert "\n" not in line and line.startswith("ResNet18_Weights.IMAGENET1K_V1 cannot be loaded")
    assert "resnet18-f37072fd.pth" in line and "model.net.weights=PATH" in line and "pretrained=false" in line


def test_allow_random_init_records_it() -> None:
    _offline_or_skip()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = TSN(3, 2, pretrained=True, allow_random_init=True)
    assert model.backbone.weights_from.startswith("random (ResNet18_Weights.IMAGENET1K_V1 cannot be loaded")
    assert any("allow_random_init" in str(w.message) for w in caught)
    assert model(torch.randn(1, 2, 2, 32, 32))[0].shape == (1, 3)
    assert TSN(3, 2, pretrained=False).backbone.weights_from == "random"


def test_weights_from_a_local_file(tmp_path) -> None:
    """``model.net.weights=PATH``: a state dict (plain or under ``state_dict``) loads exactly; a
    file of another network, a corrupt one and a wrong torchvision name are one line each."""
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "imagenet.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model = TSN(3, 3, weights=str(path))
    assert model.backbone.weights_from == str(path)
    torch.testing.assert_close(model.backbone.net.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    inflated = TSN(3, 5, weights=str(path))  # cross-modality init from the loaded RGB kernel
    torch.testing.assert_close(inflated.backbone.net.conv1.weight[:, 0], source.conv1.weight.mean(dim=1))
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(backbones.WeightsError, match=r"r34.pth: (does not fit|not the weights of) "):
        TSN(3, 3, weights=str(tmp_path / "r34.pth"))
    run = {"state_dict": {f"model.{k}": v for k, v in TSN(3, 3, pretrained=False).state_dict().items()}}
    torch.save(run, tmp_path / "best.ckpt")  # a run's checkpoint: "102 missing, 122 unexpected keys" until 2026-12-08
    with pytest.raises(backbones.WeightsError, match=r"best.ckpt: an ip-tsn checkpoint, not ResNet weights \(model.net."
                                                     r"weights takes a torchvision state dict .*pass it as ckpt_path$"):
        TSN(3, 3, weights=str(tmp_path / "best.ckpt"))
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(backbones.WeightsError, match=r"broken.pth: not a readable weights file"):
        TSN(3, 3, weights=str(tmp_path / "broken.pth"))
    with pytest.raises(backbones.WeightsError, match=r"another architecture"):
        TSN(3, 3, weights="ResNet50_Weights.IMAGENET1K_V1")
    with pytest.raises(backbones.WeightsError, match=r"ResNet18_Weights has IMAGENET1K_V1"):
        TSN(3, 3, weights="IMAGENET9K")


def test_unknown_arch() -> None:
    """Any torchvision classification model is a backbone (VGG: 4096-d features, its first conv
    inflated); a name that is none is refused with the closest names."""
    backbone, dim = build_backbone("vgg11", 5, pretrained=False)
    assert dim == 4096 and backbone(torch.randn(2, 5, 32, 32)).shape == (2, 4096)
    with pytest.raises(ValueError, match=r"unknown arch 'resnet181'; did you mean resnet18"):
        build_backbone("resnet181", 3, pretrained=False)
    with pytest.raises(ValueError, match=r"SqueezeNet has no Linear"):
        build_backbone("squeezenet1_0", 3, pretrained=False)