"""Models: shapes, cross-modality first-conv init, offline pretrained fallback."""

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


def test_pretrained_offline_warns_once_and_works() -> None:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.exists():
        pytest.skip("ImageNet weights are cached locally; the offline fallback is not exercised")
    backbones._warned[0] = False
    backbones._unavailable.discard("resnet18")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = TSN(3, 3, pretrained=True)
        b = TSN(3, 2, pretrained=True)
    ours = [w for w in caught if "could not be loaded" in str(w.message)]
    assert len(ours) == 1 and "random initialisation" in str(ours[0].message)
    assert a(torch.randn(1, 2, 3, 32, 32))[0].shape == (1, 3)
    assert b(torch.randn(1, 2, 2, 32, 32))[0].shape == (1, 3)


def test_unknown_arch() -> None:
    with pytest.raises(ValueError, match="unknown arch"):
        build_backbone("vgg16", 3, pretrained=False)
