"""Huge inputs (issue 21, item 9): videos far larger than the network's input are decoded at 1/2, 1/4
or 1/8 of their size (``CompressedVideo(min_side=...)``, ``data.decode_downscale``), on the real
1280x720 H.264 sample and MPEG-4 clips encoded here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ip_tsn.codec import CompressedVideo
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.packed_p import PACKED
from ip_tsn.data.preprocess import Preprocess
from ip_tsn.data.video_dataset import StreamDataset
from videos import encode, moving_frames, sample_videos


@pytest.fixture(scope="module")
def bunny():
    return sample_videos()["bigbuckbunny.mp4"]  # 1280x720 H.264, P-frames only


def test_the_decode_factor_keeps_the_shorter_side_at_least_min_side(bunny):
    factors = {m: CompressedVideo(bunny, min_side=m).factor for m in (None, 400, 256, 180, 90, 64)}
    assert factors == {None: 1, 400: 1, 256: 2, 180: 4, 90: 8, 64: 8}


def test_pictures_are_scaled_as_they_leave_the_decoder(bunny):
    """The GOP cache holds 320x180 pictures at 1/4, and they are the full picture's area average."""
    small, full = CompressedVideo(bunny, min_side=180), CompressedVideo(bunny)
    for i in (0, 5, 17):
        b = small.load(i, "rgb")
        assert b.shape == (180, 320, 3)
        a = cv2.resize(full.load(i, "rgb"), (320, 180), interpolation=cv2.INTER_AREA)
        assert np.abs(a.astype(float) - b).mean() < 2.5  # measured 1.2 grey levels
    kept = [f for gop in small._gops.values() for f in gop.frames.values()]
    assert kept and all((f.width, f.height) == (320, 180) for f in kept)
    assert (small.height, small.width) == (720, 1280)  # the source's size, as before


def test_motion_at_a_reduced_size_is_the_full_motion_in_source_pixels(bunny):
    """A P-frame's own motion at 1/4 is the full-size field sampled every 4 px, bit for bit (still in
    the source's pixels); accumulated motion and residuals stay close."""
    small, full = CompressedVideo(bunny, min_side=180), CompressedVideo(bunny)
    for i in (1, 4, 9):
        a, b = full.load(i, "mv", accumulate=False), small.load(i, "mv", accumulate=False)
        assert b.shape == (180, 320, 2) and np.array_equal(a[::4, ::4], b)
    a, b = full.load(30, "mv"), small.load(30, "mv")  # |mv| 17.5 px, measured gap 1.4
    assert np.abs(a).mean() > 5
    assert np.abs(cv2.resize(a, (320, 180), interpolation=cv2.INTER_AREA) - b).mean() < 0.12 * np.abs(a).mean()
    assert small.load(30, "residual").shape == (180, 320, 3) and small.load(30, "residual").dtype == np.int16


def test_stream_inputs_keep_their_shape_and_stay_close(bunny):
    """The test protocol's P and I inputs with and without ``decode_downscale`` (1/2 here)."""
    def inputs(modality, downscale):
        ds = StreamDataset([VideoRecord(bunny.name, 0, "")], bunny.parent, modality, num_segments=3, train=False,
                           test_crops=1, scale_size=256, crop_size=224, decode_downscale=downscale)
        return ds[0]["input"].numpy()

    full, small = inputs("p", False), inputs("p", True)
    assert full.shape == small.shape == (3, 5, 224, 224)
    mv = slice(0, 2)
    assert np.abs(full[:, mv] - small[:, mv]).mean() < 0.05 * np.abs(full[:, mv]).mean()  # measured 2.5 %
    full, small = inputs("iframe", False), inputs("iframe", True)
    assert np.abs(full - small).mean() < 0.08 * np.abs(full).mean()  # measured 4 %


def test_the_setting_is_read_back_on_by_default():
    """Checkpoints written before the setting existed (no key) read it as on, so predict scales."""
    stored = Preprocess(modality="p").to_dict()
    del stored["decode_downscale"]
    assert Preprocess.from_dict(stored).decode_downscale is True
    assert Preprocess(modality="p").reader_kwargs()["decode_downscale"] is True


def test_a_reduced_video_takes_the_cpu_path_of_device_reconstruction(tmp_path):
    """``reconstruct=device`` packs full-size pictures only: a video decoded smaller is rebuilt on the
    CPU (its sample has ``input``), one at full size is packed."""
    path = encode(tmp_path / "big.mp4", moving_frames(8, 576, 1024, dx=4, dy=2))

    def sample(downscale):
        ds = StreamDataset([VideoRecord(path.name, 0, "")], tmp_path, "p", num_segments=2, train=False,
                           test_crops=1, scale_size=256, crop_size=224, reconstruct="device",
                           decode_downscale=downscale)
        return ds[0]

    assert PACKED in sample(False)
    reduced = sample(True)
    assert PACKED not in reduced and tuple(reduced["input"].shape) == (2, 5, 224, 224)
