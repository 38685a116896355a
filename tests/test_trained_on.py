"""A checkpoint records the videos it trained on, and is never scored on them. UCF101's and HMDB51's
three splits share their videos: split 1's training list holds most of split 2's test videos, so a
split-1 checkpoint tested on split 2 (``--checkpoint``, a colleague's run, a teacher reused to save
time) scored memory as recognition, until 2026-12-07 without a word."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from ip_tsn.cli import main
from ip_tsn.data.datasets import video_keys
from ip_tsn.lit.checkpoint_info import TRAINED_ON_KEY

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_a_video_key_leaves_out_the_extension_only():
    keys = video_keys(["Walk/v_Walk_g01_c01.avi", "Walk/v_Walk_g01_c01.mp4", "Walk/v_Walk_g01_c02.mp4",
                       "Run/v_Walk_g01_c01.mp4"])
    assert keys.dtype == np.int64 and keys[0] == keys[1] and len(set(keys[1:].tolist())) == 3


def test_a_checkpoint_of_another_split_is_not_scored_on_its_training_videos(tiny_streams, tmp_path, capsys):
    """A copy of the data (another root, as a colleague's) whose split 3 tests on split 1's training
    videos: a split-1 checkpoint is one line naming how many and one of them, exit 2, nothing
    scored; on its own split it scores."""
    root = tmp_path / "data"
    shutil.copytree(tiny_streams["root"], root)
    lists = root / "splits"
    train = (lists / "trainlist01.txt").read_text().splitlines()
    (lists / "trainlist03.txt").write_text((lists / "testlist01.txt").read_text())
    (lists / "vallist03.txt").write_text((lists / "vallist01.txt").read_text())
    (lists / "testlist03.txt").write_text("\n".join(train[:5] + [""]))  # 5 of split 1's training videos
    checkpoint = tiny_streams["pstream"]
    record = torch.load(checkpoint, map_location="cpu", weights_only=True)[TRAINED_ON_KEY]
    assert record["data"].startswith("the train subset of data=synthetic (") and len(record["videos"]) == len(train)
    common = [*tiny_streams["common"], f"data.root={root}", f"run_root={tmp_path / 'runs'}"]
    test = ["test", str(EXPERIMENTS / "pstream.yaml"), *common, "--checkpoint", str(checkpoint)]
    capsys.readouterr()
    assert main([*test, "data.split=3"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    first = train[0].split()[0]
    assert line == (f"ip-tsn test: error: {checkpoint}: trained on 5 of the 5 videos of the test subset of data=synthetic "
                    f"({root}, split 3), data.seed=0 (e.g. {first}; it trained on {record['data']}), so its scores "
                    "of them would measure memory, not recognition; test it on the data, split and data.seed it "
                    "trained with")
    assert not (tmp_path / "runs").exists()
    assert main(test) == 0 and (tmp_path / "runs" / "pstream" / "scores_test.npz").is_file()
    # trained on from that checkpoint, on split 3's training videos (split 1's test ones): the new
    # checkpoint has seen both, and is refused on split 3's test list as the one it went on from
    go_on = tmp_path / "go_on"
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *common, "data.split=3", f"run_root={go_on}",
                 f"ckpt_path={checkpoint}", "trainer.max_epochs=2"]) == 0
    later = torch.load(go_on / "pstream/checkpoints/last.ckpt", map_location="cpu", weights_only=True)[TRAINED_ON_KEY]
    split3 = (lists / "trainlist03.txt").read_text().splitlines()
    assert later["data"].endswith(f"split 3), data.seed=0, after {record['data']}")
    assert len(later["videos"]) == len(train) + len(split3)
    assert main(["test", str(EXPERIMENTS / "pstream.yaml"), *common, "data.split=3", f"run_root={go_on}"]) == 2
    assert "trained on 5 of the 5 videos of the test subset" in capsys.readouterr().err
