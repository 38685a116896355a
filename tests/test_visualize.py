"""data_prep/visualize.py and ip_tsn.codec.viz on a real encoded video."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from ip_tsn.codec.viz import motion_to_rgb, residual_to_rgb
from videos import encode, moving_frames

ROOT = Path(__file__).resolve().parents[1]


def test_motion_colours():
    right = np.zeros((4, 4, 2), np.float32)
    right[..., 0] = 3.0
    down = right[..., ::-1].copy()
    assert tuple(motion_to_rgb(right, 3.0)[0, 0]) == (255, 0, 0)  # hue 0: red
    r, g, b = motion_to_rgb(down, 3.0)[0, 0]
    assert g > 200 and b < 10  # hue 90 degrees: yellow-green
    assert motion_to_rgb(np.zeros((2, 2, 2), np.float32), 1.0).max() == 0  # no motion: black
    res = np.array([[[-128, 0, 200]]], np.int16)
    assert residual_to_rgb(res).tolist() == [[[0, 128, 255]]]


def test_visualize_cli_writes_png(tmp_path):
    video = encode(tmp_path / "v.mp4", moving_frames(14, 64, 96, dx=2), "mpeg4")
    out = tmp_path / "viz" / "frame.png"
    proc = subprocess.run([sys.executable, str(ROOT / "data_prep" / "visualize.py"), str(video), "--frame", "5",
                           "--per-frame", "--out", str(out), "--flow", "dis"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    stats = dict(item.split("=") for item in proc.stdout.strip().split(": ", 1)[1].split(", "))
    assert stats["frame_type"] == "P" and stats["mean_abs_mv"] == "1.00"  # |dx| = 2 px, dy = 0
    assert abs(float(stats["mean_abs_flow"]) - 1.0) < 0.15  # flow agrees with the vectors
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] > 4 * image.shape[0]  # six panels side by side
    assert not list(out.parent.glob("*.tmp*")) and len(list(out.parent.iterdir())) == 1


def test_visualize_bad_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    proc = subprocess.run([sys.executable, str(ROOT / "data_prep" / "visualize.py"), str(bad), "--out",
                           str(tmp_path / "x.png")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "broken.mp4" in proc.stderr and "Traceback" not in proc.stderr
