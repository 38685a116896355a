"""Version 7 of the synthetic benchmark (issue 19): the action fills a 10-frame window, an idle actor otherwise."""

from __future__ import annotations

import json

import numpy as np

from ip_tsn.codec import CompressedVideo
from ip_tsn.data.synthetic import TINY_CONFIG, action_window, generate_synthetic, video_rng
from ip_tsn.data.synthetic_render import ACTION_FRAMES, CLASSES, _trajectory_v7, action_progress, render_video
from ip_tsn.evaluation.targets import active_p_positions, no_active_probability


def test_windows_are_ten_frames_inside_the_clip_and_drawn_apart_from_the_pictures():
    starts = [action_window(0, "train", c, i, 48)[0] for c in range(12) for i in range(30)]
    assert all(action_window(0, "train", c, i, 48) == (o, o + ACTION_FRAMES)
               for (c, i), o in zip(((c, i) for c in range(12) for i in range(30)), starts))
    assert min(starts) == 1 and max(starts) == 48 - ACTION_FRAMES  # uniform over 1 .. 48 - A
    assert 30 < len(set(starts)) <= 38
    assert action_window(0, "train", 3, 5, 48) == action_window(0, "train", 3, 5, 48)
    assert action_window(1, "train", 3, 5, 48) != action_window(0, "train", 3, 5, 48) or \
        action_window(1, "train", 3, 6, 48) != action_window(0, "train", 3, 6, 48)
    assert action_window(0, "train", 3, 5, 48, version=6) == (0, 48)


def test_the_body_and_arms_move_only_in_the_window():
    p = action_progress(48, (20, 30))
    assert p[:21].max() == 0 and p[30:].min() == 10 and np.all(np.diff(p)[20:30] == 1)
    for motion in ("WalkRight", "WalkLeft", "Jump", "Stand"):
        body = _trajectory_v7(motion, video_rng(0, "train", 0, 0), p, 64, 64, 1.0)
        step = np.abs(np.diff(body, axis=0)).sum(axis=1)
        assert step[:20].max() == 0 and step[30:].max() == 0, motion
        assert step[20:30].sum() > 5, motion  # walks 12-16 px, a hop 16-22 px, a dip 10-14 px
    right = _trajectory_v7("WalkRight", video_rng(0, "train", 0, 1), p, 64, 64, 1.0)
    left = _trajectory_v7("WalkLeft", video_rng(0, "train", 0, 1), p, 64, 64, 1.0)
    assert right[-1, 0] - right[0, 0] > 6 and left[-1, 0] - left[0, 0] < -6


def test_only_the_window_moves_the_actor():
    """The same video drawn with two windows: identical frames (noise, jitter, ball included) before
    both windows and, for every class, after both; different frames inside them."""
    for name in CLASSES:
        ci = CLASSES.index(name)
        a = render_video(name, video_rng(3, "train", ci, 0), 48, (64, 64), version=7, window=(5, 15))
        b = render_video(name, video_rng(3, "train", ci, 0), 48, (64, 64), version=7, window=(25, 35))
        assert np.array_equal(a[:6], b[:6]) and np.array_equal(a[35:], b[35:]), name
        assert not np.array_equal(a[6:15], b[6:15]), name


def test_tiny_v7_dataset_records_windows_and_has_label_noise(tmp_path):
    summary = generate_synthetic(tmp_path, seed=0, progress=False, **TINY_CONFIG)
    assert summary["version"] == 7
    windows = json.loads((tmp_path / "actions.json").read_text())
    lists = (tmp_path / "splits" / "trainlist01.txt").read_text().split()
    vids = lists[::2]
    assert set(vids) <= set(windows) and len(windows) == 12 * 4
    shares = []
    for vid in vids:
        o, end = windows[vid]
        assert end - o == ACTION_FRAMES and 1 <= o <= TINY_CONFIG["num_frames"] - ACTION_FRAMES
        v = CompressedVideo(tmp_path / "videos" / vid)
        pos = np.array([t for t, c in enumerate(v.frame_types) if c != "I"])
        shares.append(no_active_probability(active_p_positions(pos, windows[vid], v.gop_starts), 3))
    assert 0 <= np.mean(shares) < 1


def test_default_draw_leaves_a_sixth_of_training_draws_without_action():
    """The design's label noise (pre-registered: >= 15% of K-segment draws with no active segment),
    from the windows alone, on 48-frame GOP-12 videos of a full training split."""
    pos = np.array([t for t in range(48) if t % 12])
    shares = [no_active_probability(active_p_positions(pos, action_window(0, "train", c, i, 48), [0, 12, 24, 36]), 3)
              for c in range(12) for i in range(30)]
    assert 0.15 <= np.mean(shares) <= 0.35
