"""data_prep/prepare_dataset.py on tiny UCF101, HMDB51 and Kinetics downloads of real videos
(AVI MPEG-4, AVI / MP4 H.264 with B-frames): re-encoded copies, flow, split files that load_split
and the data configs read, shards, resume, and the final report of a corrupt video."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from videos import encode, moving_frames

from ip_tsn.codec import CompressedVideo
from ip_tsn.codec.flow import load_flow
from ip_tsn.config import load_config
from ip_tsn.data.datasets import load_classes, load_split
from ip_tsn.stages.build import build_datamodule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data_prep"))
import extract_flow  # noqa: E402
import prepare_dataset  # noqa: E402

FAST = ["--workers", "1", "--no-progress", "--size", "64x48", "--flow-method", "dis"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    """Bytes of real 20-frame 64x48 clips: ``avi`` (MPEG-4 Part 2), ``avi_b`` (H.264 with
    B-frames in AVI) and ``mp4_b`` (H.264 with B-frames in MP4)."""
    folder, frames = tmp_path_factory.mktemp("clips"), moving_frames(20, 48, 64)
    made = {"avi": encode(folder / "a.avi", frames, "mpeg4", gop=12),
            "avi_b": encode(folder / "b.avi", frames, "libx264", gop=12, bframes=2),
            "mp4_b": encode(folder / "c.mp4", frames, "libx264", gop=12, bframes=2)}
    assert "B" in CompressedVideo(made["mp4_b"]).frame_types
    return {k: p.read_bytes() for k, p in made.items()}


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _prepare(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = prepare_dataset.main([*args, *FAST])
    return code, capsys.readouterr().out


def _ucf_tree(root: Path, clips: dict[str, bytes]) -> Path:
    """2 classes x groups 1-3 (group 1: test); a corrupt extra train clip of class 2."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 ApplyLipstick\n2 Yo Yo\n")
    train, test = [], []
    for i, cls in enumerate(("ApplyLipstick", "Yo Yo"), 1):
        for g in (1, 2, 3):
            name = f"{cls}/v_{cls.replace(' ', '')}_g{g:02d}_c01.avi"
            _put(root / "UCF-101" / name, clips["avi" if g < 3 else "avi_b"])
            (test.append(name) if g == 1 else train.append(f"{name} {i}"))
    bad = root / "UCF-101/Yo Yo/v_YoYo_g03_c02.avi"
    _put(bad, b"\x00not a video" * 100)
    train.append("Yo Yo/v_YoYo_g03_c02.avi 2")
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return bad


def test_a_bad_download_is_one_line_and_nothing_written(tmp_path, clips, capsys):
    """A malformed classInd.txt, a test list sharing a video with the training list, a download
    without its split folder: one line naming the file, exit status 2, no --out folder."""
    download, out = tmp_path / "ucf101", tmp_path / "prepared"
    _ucf_tree(download, clips)
    lists = download / "ucfTrainTestlist"

    def prepare() -> str:
        capsys.readouterr()
        assert prepare_dataset.run_main(lambda: prepare_dataset.main(["ucf101", str(download), "--out", str(out),
                                                                      *FAST])) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ": error: " in err[0] and not out.exists(), err  # prog: sys.argv[0]
        return err[0]

    (lists / "classInd.txt").write_text("1 ApplyLipstick\nYo Yo\n")
    assert f"{lists / 'classInd.txt'}:2: expected '<id> <class name>', got 'Yo Yo'" in prepare()
    (lists / "classInd.txt").write_text("1 ApplyLipstick\n2 Yo Yo\n")
    with open(lists / "testlist01.txt", "a") as f:
        f.write("Yo Yo/v_YoYo_g02_c01.avi\n")  # a training video
    assert f"{lists / 'testlist01.txt'}:3: 1 of the 3 test videos of split 1 are also listed for training" in prepare()
    (lists / "testlist01.txt").rename(tmp_path / "kept.txt")
    for name in os.listdir(lists):
        (lists / name).unlink()
    lists.rmdir()
    assert f"{lists / 'classInd.txt'}: split file not found; expected layout: " in prepare()


def test_ucf101_shards_check_resume_and_failure_report(tmp_path, clips, capsys):
    download, out = tmp_path / "ucf101", tmp_path / "prepared"
    bad = _ucf_tree(download, clips)
    codes = [_prepare(capsys, "ucf101", str(download), "--out", str(out), "--shard", f"{i}/2") for i in (0, 1)]
    assert sorted(code for code, _ in codes) == [0, 1]  # the corrupt video fails in one shard
    assert all("--check" in text for _, text in codes)
    code, text = _prepare(capsys, "ucf101", str(download), "--out", str(out), "--check")
    assert code == 1 and "7 total, 6 done" in text
    assert "FAILED Yo Yo/v_YoYo_g03_c02.avi: not written (it failed, or its shard has not run" in text

    with pytest.warns(UserWarning, match="1 of 5 listed videos are missing"):
        train = load_split("ucf101", out, 1, "trainval", video_root=out / "videos", ext=".mp4")
    test = load_split("ucf101", out, 1, "test", video_root=out / "videos", ext=".mp4")
    assert len(train) == 4 and len(test) == 2 and load_classes("ucf101", out) == ["ApplyLipstick", "Yo Yo"]
    for r in train + test:
        video = CompressedVideo(out / "videos" / r.path)
        assert (video.width, video.height) == (64, 48) and video.frame_types == "I" + "P" * 11 + "I" + "P" * 7
        flow = load_flow(out / "flow" / Path(r.path).with_suffix(".npy"))
        assert flow.shape == (19, 48, 64, 2) and flow.dtype == np.uint8

    code, text = _prepare(capsys, "ucf101", str(download), "--out", str(out))  # resume: all skipped
    assert code == 1 and "0 done, 6 skipped (already there), 1 failed" in text
    assert "FAILED Yo Yo/v_YoYo_g03_c02.avi: not a readable video (corrupt or truncated)" in text  # the why
    assert "FAILED Yo Yo/v_YoYo_g03_c02.avi: not prepared: not a readable video (corrupt" in text
    bad.write_bytes(clips["avi"])
    code, text = _prepare(capsys, "ucf101", str(download), "--out", str(out))
    assert code == 0 and "1 done, 6 skipped" in text and "7 total, 7 done, 0 skipped (already there), 0 failed" in text

    # the copy's videos and flow each hold one set of settings: another is one line, nothing written
    capsys.readouterr()
    assert prepare_dataset.run_main(lambda: prepare_dataset.main(["ucf101", str(download), "--out", str(out),
                                                                  *FAST[:-1], "tvl1"])) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{Path(sys.argv[0]).name}: error: {out / 'flow'}: holds flow files made with other settings (flow: 'dis' "
        f"there, 'tvl1' asked); rerun with the recorded settings to resume, or remove {out / 'flow'} to start again "
        "with these"]
    assert extract_flow.main([str(out), "--method", "dis", "--workers", "1", "--no-progress"]) == 0  # the same record
    assert "7 total, 0 done, 7 skipped" in capsys.readouterr().out

    overrides = ["data=ucf101", f"data.root={out}", "data.num_workers=0"]  # experiments/data/ucf101.yaml
    dm = build_datamodule(load_config(ROOT / "experiments/istream.yaml", overrides))
    assert len(dm.records("train")) + len(dm.records("val")) == 5 and dm.flow_root == os.path.join(out, "flow")


def test_hmdb51_from_download_to_load_split(tmp_path, clips, capsys):
    download, out = tmp_path / "hmdb51", tmp_path / "prepared"
    (download / "testTrainMulti_7030_splits").mkdir(parents=True)
    for cls in ("brush_hair", "wave"):
        lines = []
        for i in range(3):
            name = f"{cls}_clip_#{i}_u_cm_np1_fr_goo_{i}.avi"
            _put(download / cls / name, clips["avi_b"])
            lines.append(f"{name} {(1, 2, 0)[i]}")
        (download / "testTrainMulti_7030_splits" / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    code, text = _prepare(capsys, "hmdb51", str(download), "--out", str(out))
    assert code == 0 and "4 total, 4 done" in text  # train + test videos; the unused ones are not listed
    for subset, n in (("trainval", 2), ("test", 2)):
        records = load_split("hmdb51", out, 1, subset, video_root=out / "videos", ext=".mp4")
        assert len(records) == n and all("B" not in CompressedVideo(out / "videos" / r.path).frame_types
                                         for r in records)
        assert all((out / "flow" / Path(r.path).with_suffix(".npy")).is_file() for r in records)


def test_kinetics_class_subset(tmp_path, clips, capsys):
    download, out = tmp_path / "kinetics", tmp_path / "prepared"
    (download / "annotations").mkdir(parents=True)
    for csv_name, folder in (("train", "train"), ("validate", "val")):
        with open(download / "annotations" / f"{csv_name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for label in ("abseiling", "zumba"):
                for i in range(2):
                    yid = f"{label[:3]}{csv_name[:2]}{i}"
                    writer.writerow([label, yid, 10 * i, 10 * i + 10, csv_name])
                    _put(download / folder / label / f"{yid}_{10 * i:06d}_{10 * i + 10:06d}.mp4", clips["mp4_b"])
    (tmp_path / "subset.txt").write_text("zumba\n")
    code, text = _prepare(capsys, "kinetics", str(download), "--out", str(out), "--class-list",
                          str(tmp_path / "subset.txt"))
    assert code == 0 and "4 total, 4 done" in text
    assert (out / "annotations/classes.txt").read_text() == "zumba\n"
    test = load_split("kinetics", out, 1, "test", video_root=out / "videos", ext=".mp4")
    assert [r.path for r in test] == [f"val/zumba/zumva{i}_{10 * i:06d}_{10 * i + 10:06d}.mp4" for i in (0, 1)]
    assert all((out / "flow" / Path(r.path).with_suffix(".npy")).is_file() for r in test)
    assert not (out / "videos/train/abseiling").exists()


def _kinetics_download(root: Path, clips: dict[str, bytes], names: dict[str, str]) -> None:
    """A 2-class Kinetics download whose annotation CSVs are called ``names[train|validate]``."""
    (root / "annotations").mkdir(parents=True)
    for csv_name, folder in (("train", "train"), ("validate", "val")):
        with open(root / "annotations" / names[csv_name], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for label in ("abseiling", "zumba"):
                yid = f"{label[:3]}{csv_name[:2]}"
                writer.writerow([label, yid, 0, 10, csv_name])
                _put(root / folder / label / f"{yid}_000000_000010.mp4", clips["mp4_b"])


@pytest.mark.parametrize("train, val", [("train.csv", "val.csv"), ("train.csv", "validate.csv"),
                                        ("kinetics_400_train.csv", "kinetics_400_val.csv"),
                                        ("kinetics400_train.csv", "kinetics400_val.csv"),
                                        ("Kinetics-700-2020_train.csv", "kinetics-700-2020_validate.csv")])
def test_kinetics_annotation_names_of_the_downloads(tmp_path, clips, capsys, train, val):
    download, out = tmp_path / "kinetics", tmp_path / "prepared"
    _kinetics_download(download, clips, {"train": train, "validate": val})
    code, text = _prepare(capsys, "kinetics", str(download), "--out", str(out), "--flow-method", "none")
    assert code == 0 and "4 total, 4 done" in text, text
    assert f"kinetics train annotations: {download / 'annotations' / train}" in text
    assert f"kinetics validate annotations: {download / 'annotations' / val}" in text
    test = load_split("kinetics", out, 1, "test", video_root=out / "videos", ext=".mp4")
    assert sorted(r.path for r in test) == ["val/abseiling/absva_000000_000010.mp4", "val/zumba/zumva_000000_000010.mp4"]
    assert load_classes("kinetics", out) == ["abseiling", "zumba"]


def test_kinetics_annotation_names_refused_clearly(tmp_path):
    from ip_tsn.data.split_files import find_kinetics_csv

    folder = tmp_path / "annotations"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"validate.csv: annotation file not found \(also looked for validate.csv, "
                                         r"val.csv, validation.csv and kinetics_400_val.csv-style names\)"):
        find_kinetics_csv(folder, "validate", "LAYOUT")
    for name in ("kinetics_400_val.csv", "kinetics_600_val.csv", "interval.csv"):
        (folder / name).write_text("label,youtube_id,time_start,time_end,split\n")
    with pytest.raises(ValueError, match="several validate annotation files .kinetics_400_val.csv, kinetics_600_val.csv."):
        find_kinetics_csv(folder, "validate", "LAYOUT")
    (folder / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n")
    assert find_kinetics_csv(folder, "validate", "LAYOUT") == folder / "val.csv"  # the plain name wins
