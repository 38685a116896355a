"""ip_tsn.codec.flow on real pixels: known translations, quantization, storage, whole videos."""

from __future__ import annotations

import os

import cv2
import numpy as np
from pathlib import Path

import pytest

from videos import encode as encode_video
from videos import moving_frames

from ip_tsn.codec.errors import VideoError
from ip_tsn.codec.flow import (compute_flow, dequantize_flow, load_flow, quantize_flow, save_flow,
                               video_flow)


def translating_frames(n: int, h: int, w: int, dx: int, dy: int, seed: int = 0) -> list[np.ndarray]:
    """n (h, w, 3) uint8 RGB frames whose content moves by (dx, dy) pixels per frame."""
    return list(moving_frames(n, h, w, dx, dy, seed))


def encode(path, frames, codec="mpeg4", gop=12):
    """Write RGB frames to a video file with PyAV (fixed quantiser for mpeg4)."""
    return encode_video(Path(path), np.stack(frames), codec, gop=gop)


@pytest.mark.parametrize("method", ["tvl1", "tvl1-fast", "dis"])
def test_compute_flow_recovers_translation_and_sign(method):
    a, b = translating_frames(2, 64, 80, dx=3, dy=-2)
    flow = compute_flow(a, b, method)
    assert flow.shape == (64, 80, 2) and flow.dtype == np.float32
    inner = flow[8:-8, 8:-8].reshape(-1, 2)
    assert np.median(inner[:, 0]) == pytest.approx(3.0, abs=0.5)
    assert np.median(inner[:, 1]) == pytest.approx(-2.0, abs=0.5)
    # the other direction gives the opposite motion; gray input works the same
    back = compute_flow(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), method)
    assert np.median(back[8:-8, 8:-8, 0]) == pytest.approx(-3.0, abs=0.5)
    assert np.median(back[8:-8, 8:-8, 1]) == pytest.approx(2.0, abs=0.5)


def test_compute_flow_subpixel_and_zero_motion():
    a = translating_frames(1, 64, 64, 0, 0, seed=3)[0]
    shifted = cv2.warpAffine(a, np.float32([[1, 0, 1.5], [0, 1, 0.5]]), (64, 64),
                             flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    flow = compute_flow(a, shifted, "tvl1")[8:-8, 8:-8]
    assert np.median(flow[..., 0]) == pytest.approx(1.5, abs=0.25)
    assert np.median(flow[..., 1]) == pytest.approx(0.5, abs=0.25)
    assert np.abs(compute_flow(a, a, "dis")).max() < 0.1


def test_compute_flow_rejects_bad_input():
    a = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="method"):
        compute_flow(a, a, "farneback")
    with pytest.raises(ValueError, match="differ"):
        compute_flow(a, np.zeros((32, 30, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        compute_flow(a.astype(np.float32), a)


def test_quantize_dequantize():
    bound = 20.0
    assert quantize_flow(np.zeros((2, 2, 2), np.float32)).tolist() == [[[128, 128]] * 2] * 2
    assert abs(dequantize_flow(np.uint8(128))) <= bound / 255 + 1e-5  # 127.5 is not a code
    q = quantize_flow(np.array([[-25.0, 25.0], [-20.0, 20.0], [-1e9, 1e9]], np.float32))
    assert q.dtype == np.uint8 and q.tolist() == [[0, 255], [0, 255], [0, 255]]
    assert dequantize_flow(np.array([0, 255], np.uint8)).tolist() == [-20.0, 20.0]
    flow = np.random.default_rng(0).uniform(-bound, bound, (50, 40, 2)).astype(np.float32)
    back = dequantize_flow(quantize_flow(flow, bound), bound)
    assert back.dtype == np.float32 and back.shape == flow.shape
    assert np.abs(back - flow).max() <= bound / 255 + 1e-5
    # another bound scales the step; values beyond it clip
    assert np.abs(dequantize_flow(quantize_flow(flow / 4, 5.0), 5.0) - flow / 4).max() <= 5.0 / 255 + 1e-5
    assert dequantize_flow(quantize_flow(np.float32([7.0]), 5.0), 5.0)[0] == pytest.approx(5.0)


def test_save_load_round_trip_memory_mapped(tmp_path):
    flows = np.random.default_rng(1).integers(0, 256, (5, 12, 16, 2), dtype=np.uint8)
    path = tmp_path / "sub" / "v.npy"
    save_flow(path, flows)
    loaded = load_flow(path)
    assert isinstance(loaded, np.memmap) and loaded.shape == (5, 12, 16, 2) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, flows)
    save_flow(path, flows[:2])  # overwrite in place, atomically
    assert load_flow(str(path)).shape == (2, 12, 16, 2)
    assert sorted(os.listdir(tmp_path / "sub")) == ["v.npy"]  # no temp files left
    with pytest.raises(ValueError, match="uint8"):
        save_flow(tmp_path / "bad.npy", flows.astype(np.float32))
    assert not (tmp_path / "bad.npy").exists()


def test_load_flow_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.npy"
    with pytest.raises(VideoError, match="missing.npy.*does not exist"):
        load_flow(missing)
    good = tmp_path / "good.npy"
    save_flow(good, np.zeros((4, 8, 8, 2), np.uint8))
    data = good.read_bytes()
    for name, cut in [("short_data.npy", len(data) - 100), ("short_header.npy", 20), ("empty.npy", 0)]:
        (tmp_path / name).write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"{name}.*truncated"):
            load_flow(tmp_path / name)
    np.save(tmp_path / "float.npy", np.zeros((4, 8, 8, 2), np.float32))
    np.save(tmp_path / "shape.npy", np.zeros((4, 8, 8), np.uint8))
    for name in ["float.npy", "shape.npy"]:
        with pytest.raises(VideoError, match=f"{name}.*expected \\(N, H, W, 2\\) uint8"):
            load_flow(tmp_path / name)


def test_video_flow_translation(tmp_path):
    path = tmp_path / "move.mp4"
    encode(path, translating_frames(24, 64, 64, dx=2, dy=1))
    flows = video_flow(path, "tvl1")
    assert flows.shape == (23, 64, 64, 2) and flows.dtype == np.uint8
    motion = dequantize_flow(flows[:, 8:-8, 8:-8])
    assert np.median(motion[..., 0]) == pytest.approx(2.0, abs=0.5)
    assert np.median(motion[..., 1]) == pytest.approx(1.0, abs=0.5)
    assert np.median(np.median(motion[..., 0], axis=(1, 2))) == pytest.approx(2.0, abs=0.5)
    half = video_flow(str(path), "dis", size=(32, 32))  # resized: half the motion
    assert half.shape == (23, 32, 32, 2)
    motion = dequantize_flow(half[:, 4:-4, 4:-4])
    assert np.median(motion[..., 0]) == pytest.approx(1.0, abs=0.5)
    assert np.median(motion[..., 1]) == pytest.approx(0.5, abs=0.5)


def test_video_flow_bad_videos(tmp_path):
    one = tmp_path / "one.mp4"
    encode(one, translating_frames(1, 32, 32, 0, 0))
    with pytest.raises(VideoError, match="one.mp4.*at least 2 frames"):
        video_flow(one, "dis")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="junk.mp4"):
        video_flow(junk, "dis")
