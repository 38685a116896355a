"""The package's one encoder (``ip_tsn.codec.encode``) and atomic writes (``ip_tsn.atomic``), on real frames."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from videos import decode_all, moving_frames

from ip_tsn.atomic import atomic_path, temp_name, write_text_atomic
from ip_tsn.codec import CompressedVideo, clear_index_cache
from ip_tsn.codec.encode import encode_video
from ip_tsn.codec.index import get_index

DATA_PREP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data_prep")


def psnr(decoded: list[np.ndarray], source: np.ndarray) -> float:
    mse = np.mean((np.stack(decoded).astype(np.float64) - source.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return moving_frames(24, 64, 96, dx=2, dy=1)


def test_fixed_quantiser_takes_effect(frames, tmp_path):
    """Higher qscale: strictly smaller files and frames measurably further from the source."""
    sizes, quality = {}, {}
    for q in (2, 10, 31):
        path = encode_video(frames, tmp_path / f"q{q}.mp4", qscale=q)
        decoded, types = decode_all(path)
        assert len(decoded) == len(frames) and types == ("I" + "P" * 11) * 2
        sizes[q], quality[q] = path.stat().st_size, psnr(decoded, frames)
    assert sizes[2] > sizes[10] > sizes[31], sizes
    assert sizes[2] > 2 * sizes[31], sizes  # not a rounding difference: the quantiser is real
    assert quality[2] > quality[10] > quality[31], quality
    assert quality[2] - quality[31] > 5.0, quality  # dB


def test_reencode_quantiser_takes_effect(frames, tmp_path):
    """data_prep's re-encoder builds its stream with the same encoder settings: qscale is real."""
    sys.path.insert(0, DATA_PREP)
    try:
        import reencode
    finally:
        sys.path.remove(DATA_PREP)
    src = encode_video(frames, tmp_path / "src.mp4", qscale=1)
    sizes = {}
    for q in (2, 31):
        dst = tmp_path / f"out{q}.mp4"
        assert reencode.reencode_video(str(src), str(dst), size=(96, 64), gop=12, qscale=q) == "done"
        sizes[q] = dst.stat().st_size
        assert CompressedVideo(dst).frame_types == ("I" + "P" * 11) * 2
    assert sizes[2] > 2 * sizes[31], sizes
    assert sorted(os.listdir(tmp_path)) == ["out2.mp4", "out31.mp4", "src.mp4"]


@pytest.mark.parametrize("codec, gop, bframes", [("mpeg4", 8, 0), ("mpeg4", 5, 0), ("libx264", 8, 2)])
def test_gop_is_pinned_across_a_scene_cut(codec, gop, bframes, tmp_path):
    """An I-frame every ``gop`` frames and nowhere else, even where the content changes at once."""
    cut = np.concatenate([moving_frames(11, 64, 96, seed=0), moving_frames(19, 64, 96, dx=-3, seed=7)])
    path = encode_video(cut, tmp_path / "cut.mp4", codec=codec, gop_size=gop, max_b_frames=bframes)
    types = CompressedVideo(path).frame_types
    assert len(types) == 30
    assert [t for t, c in enumerate(types) if c == "I"] == list(range(0, 30, gop)), types
    assert ("B" in types) == (bframes > 0), types


def test_bad_frames_raise_before_anything_is_written(frames, tmp_path):
    target = tmp_path / "v.mp4"
    for bad in (frames.astype(np.float32), frames[..., :2], frames[0], frames[:0], frames[:, :63]):
        with pytest.raises(ValueError, match="v.mp4"):
            encode_video(bad, target)
    assert os.listdir(tmp_path) == []


def test_failed_encode_keeps_the_old_file_and_leaves_no_temp(frames, tmp_path):
    """A failure after the temporary file was opened (unknown encoder, bad quantiser) removes it and
    leaves the previous complete video in place."""
    target = encode_video(frames[:12], tmp_path / "v.mp4")
    before = target.read_bytes()
    with pytest.raises(Exception):
        encode_video(frames, target, codec="no_such_encoder")
    with pytest.raises(ValueError, match="qscale"):
        encode_video(frames, target, qscale=0)
    assert os.listdir(tmp_path) == ["v.mp4"] and target.read_bytes() == before
    assert CompressedVideo(target).num_frames == 12


def test_atomic_path_exception_keeps_target_and_removes_temp(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            assert tmp == temp_name(target) and tmp.parent == target.parent
            tmp.write_text("half")
            assert target.read_text() == "old\n"  # nothing visible until the block succeeds
            raise RuntimeError("killed")
    assert target.read_text() == "old\n" and os.listdir(target.parent) == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n" and os.listdir(target.parent) == ["out.txt"]


def test_clear_index_cache(frames, tmp_path):
    path = str(encode_video(frames[:12], tmp_path / "v.mp4"))
    first = get_index(path)
    assert get_index(path) is first  # memoised
    clear_index_cache()
    again = get_index(path)
    assert again is not first and again.frame_types == first.frame_types
