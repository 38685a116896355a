"""TSN segment sampling, crops / flips consistent across segments and modalities, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ip_tsn.data.modalities import num_channels, x_channels
from ip_tsn.data.sampling import segment_indices
from ip_tsn.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, center_crop, eval_views, hflip,
                                    multi_scale_crop_params, normalize, resize_short, three_crop,
                                    to_tensor, train_augment)


# -- sampling --------------------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(30, 3), (100, 7), (7, 7), (31, 25)])
def test_train_indices_fall_in_their_segments(n, k):
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        idx = segment_indices(n, k, train=True, rng=rng)
        assert idx.dtype == np.int64 and idx.shape == (k,)
        for s, i in enumerate(idx):
            assert s * n // k <= i < max((s + 1) * n // k, s * n // k + 1)
        seen.update(idx.tolist())
    assert len(seen) == n  # every frame is reachable


def test_test_indices_are_segment_centres():
    assert segment_indices(30, 3, train=False).tolist() == [5, 15, 25]
    assert segment_indices(100, 4, train=False).tolist() == [12, 37, 62, 87]
    # deterministic, no rng needed
    assert segment_indices(100, 4, train=False).tolist() == segment_indices(100, 4, False).tolist()


def test_fewer_frames_than_segments_repeat_in_order():
    assert segment_indices(2, 4, train=False).tolist() == [0, 0, 1, 1]
    idx = segment_indices(3, 8, train=True, rng=np.random.default_rng(1))
    assert sorted(idx.tolist()) == idx.tolist() and set(idx.tolist()) == {0, 1, 2}


def test_valid_mask_is_respected():
    types = np.array(list("IPPPPPPPPPPP" * 3))
    valid = types != "I"  # CoViAR: mv / residual never from a GOP's first frame
    rng = np.random.default_rng(0)
    for _ in range(100):
        idx = segment_indices(len(types), 5, train=True, rng=rng, valid=valid)
        assert valid[idx].all()
    assert valid[segment_indices(len(types), 25, train=False, valid=valid)].all()
    flow_starts = np.arange(20) <= 20 - 1 - 5  # a full L = 5 stack of the 19 flows
    assert segment_indices(20, 3, False, valid=flow_starts).max() <= 14


def test_sampling_errors():
    with pytest.raises(ValueError, match="no frame"):
        segment_indices(5, 3, True, valid=np.zeros(5, bool))
    with pytest.raises(ValueError, match="shape"):
        segment_indices(5, 3, True, valid=np.ones(4, bool))


# -- geometry ---------------------------------------------------------------------------------
def _ramp(k=3, h=24, w=32, c=2) -> np.ndarray:
    """(K, H, W, C) float32 whose value encodes position: x in channel 0, y in channel 1."""
    y, x = np.mgrid[:h, :w].astype(np.float32)
    frame = np.stack([x, y] + [x + y] * (c - 2), axis=-1)
    return np.stack([frame + 100 * t for t in range(k)])


@pytest.mark.parametrize("modality", ["mv", "p", "flow"])
def test_hflip_negates_x_not_y(modality):
    c = num_channels(modality)
    x = np.random.default_rng(0).normal(size=(2, 6, 8, c)).astype(np.float32)
    xc = x_channels(modality)
    f = hflip(x, xc)
    for ch in range(c):
        sign = -1 if ch in xc else 1
        np.testing.assert_array_equal(f[..., ch], sign * x[:, :, ::-1, ch])
    assert xc == ((0,) if modality != "flow" else (0, 2, 4, 6, 8))
    t = hflip(to_tensor(x), xc)  # the (K, C, H, W) tensor path agrees
    np.testing.assert_array_equal(t.numpy(), to_tensor(f).numpy())


def test_hflip_refuses_unsigned_displacements():
    with pytest.raises(ValueError, match="normalize"):
        hflip(np.zeros((1, 4, 4, 10), np.uint8), x_channels("flow"))
    rgb = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    np.testing.assert_array_equal(hflip(rgb), rgb[:, :, ::-1])


def test_train_augment_same_crop_for_every_segment():
    x = _ramp(k=4, h=48, w=64)  # frame t = frame 0 + 100 t
    flipped = set()
    for seed in range(20):
        out = train_augment(x, 32, np.random.default_rng(seed), x_channels("mv"))
        assert out.shape == (4, 32, 32, 2)
        for t in range(1, 4):  # same window and same flip for every segment
            np.testing.assert_allclose(out[t, ..., 1] - out[0, ..., 1], 100 * t, atol=1e-3)
            np.testing.assert_allclose(np.abs(out[t, ..., 0] - out[0, ..., 0]), 100 * t, atol=1e-3)
        flipped.add(bool(out[0, 0, 0, 0] < 0))  # x negated <=> flipped
    assert flipped == {True, False}


def test_train_augment_without_flip_keeps_direction():
    """flip=False (left/right classes): never mirrored, so x motion keeps its sign and layout."""
    x = _ramp(k=2, h=48, w=64)
    for seed in range(20):
        out = train_augment(x, 32, np.random.default_rng(seed), x_channels("mv"), flip=False)
        assert out[0, 0, 0, 0] >= 0 and np.all(np.diff(out[0, 0, :, 0]) >= 0)  # x ramps left to right


def test_multi_scale_crop_params_follow_tsn():
    rng = np.random.default_rng(0)
    allowed = {int(256 * s) for s in (1, 0.875, 0.75, 0.66)} | {224}
    for _ in range(300):
        top, left, h, w = multi_scale_crop_params(256, 340, 224, rng)
        assert h in allowed and w in allowed and 0 <= top <= 256 - h and 0 <= left <= 340 - w
        assert abs(sorted(allowed, reverse=True).index(h) - sorted(allowed, reverse=True).index(w)) <= 1


def test_center_three_ten_crop_shapes_and_order():
    x = _ramp(k=3, h=40, w=50)
    c = center_crop(x, 32)
    assert c.shape == (3, 32, 32, 2) and c[0, 0, 0, 0] == 9 and c[0, 0, 0, 1] == 4
    three = three_crop(x, 32)
    assert three.shape == (9, 32, 32, 2)
    assert [three[3 * i, 0, 0, 0] for i in range(3)] == [0, 9, 18]  # left / centre / right
    ten = eval_views(x, 32, 10, x_channels("mv"))
    assert ten.shape == (30, 32, 32, 2)
    views = ten.reshape(10, 3, 32, 32, 2)  # crop-major
    assert (views[0, 0, 0, 0, 0], views[0, 0, 0, 0, 1]) == (0, 0)  # top-left
    assert (views[3, 0, 0, 0, 0], views[3, 0, 0, 0, 1]) == (18, 8)  # bottom-right
    np.testing.assert_array_equal(views[5], hflip(views[0], x_channels("mv")))  # its mirror
    assert eval_views(to_tensor(x), 32, 10, (0,)).shape == (30, 2, 32, 32)
    with pytest.raises(ValueError, match="test_crops"):
        eval_views(x, 32, 4)
    with pytest.raises(ValueError, match="mirrored"):
        eval_views(x, 32, 10, flip=False)
    np.testing.assert_array_equal(eval_views(x, 32, 3, flip=False), three)
    with pytest.raises(ValueError, match="scale_size"):
        center_crop(x, 64)


def test_resize_short_keeps_aspect_and_channels():
    x = np.zeros((2, 256, 340, 10), np.float32)
    assert resize_short(x, 128).shape == (2, 128, 170, 10)
    assert resize_short(torch.zeros(2, 10, 340, 256), 128).shape == (2, 10, 170, 128)
    assert resize_short(np.zeros((1, 30, 20, 1), np.float32), 10).shape == (1, 15, 10, 1)


# -- normalisation -----------------------------------------------------------------------------
def test_normalisation_values():
    rgb = np.full((1, 2, 2, 3), 255, np.uint8)
    expect = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(normalize(rgb, "iframe")[0, 0, 0], expect, rtol=1e-5)
    mv = np.array([[[[-40.0, 10.0]]]], np.float32)
    np.testing.assert_allclose(normalize(mv, "mv")[0, 0, 0], [-1.0, 0.5])
    res = np.array([[[[-255, 0, 255]]]], np.int16)
    np.testing.assert_allclose(normalize(res, "residual")[0, 0, 0], [-1, 0, 1])
    p = np.array([[[[30.0, -5.0, -255, 51, 255]]]], np.float32)
    np.testing.assert_allclose(normalize(p, "p")[0, 0, 0], [1, -0.25, -1, 0.2, 1])
    flow = np.array([[[[0, 128] * 5]]], np.uint8)
    np.testing.assert_allclose(normalize(flow, "flow")[0, 0, 0], [-1, 0] * 5)
    for x, m in [(rgb, "rgb"), (mv, "mv"), (res, "residual"), (p, "p"), (flow, "flow")]:
        out = normalize(x, m)
        assert out.dtype == np.float32
        np.testing.assert_allclose(normalize(to_tensor(x.astype(np.float32)), m).numpy(), to_tensor(out).numpy(),
                                   rtol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        normalize(np.zeros((1, 2, 2, 3), np.float32), "mv")
