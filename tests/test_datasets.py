"""load_split on tiny UCF101, HMDB51, Kinetics and synthetic-layout trees of real videos."""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import pytest

from ip_tsn.data.datasets import VideoRecord, load_classes, load_split, video_dir
from ip_tsn.data.split_files import SplitError

UCF_CLASSES = ["ApplyEyeMakeup", "Mum's Dance (slow)", "Yo Yo"]


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _ucf_name(cls: str, g: int, c: int) -> str:
    return f"{cls}/v_{cls.replace(' ', '')}_g{g:02d}_c{c:02d}.avi"


@pytest.fixture
def ucf(tmp_path, tiny_video_bytes) -> Path:
    """3 classes x groups 1..10 x 2 clips; split 1: groups 1-2 test, 3-10 train."""
    root, data = tmp_path / "ucf", tiny_video_bytes("mpeg4")
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)))
    train, test = [], []
    for i, cls in enumerate(UCF_CLASSES, 1):
        for g in range(1, 11):
            for c in (1, 2):
                name = _ucf_name(cls, g, c)
                _put(root / "UCF-101" / name, data)
                (test.append(name) if g <= 2 else train.append(f"{name} {i}"))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root


def _groups(records: list[VideoRecord]) -> set[str]:
    return {re.search(r"_g(\d+)_", r.path).group(1) for r in records}


def test_ucf101_subsets_labels_and_group_carving(ucf):
    assert load_classes("ucf101", ucf) == UCF_CLASSES
    train = load_split("ucf101", ucf, 1, "train")
    val = load_split("ucf101", ucf, 1, "val", val_fraction=0.25)
    val_default = load_split("ucf101", ucf, 1, "val")
    test = load_split("ucf101", ucf, 1, "test")
    trainval = load_split("ucf101", ucf, 1, "trainval")
    assert len(trainval) == 48 and len(test) == 12 and len(val_default) == 6  # 1 of 8 groups
    assert len(load_split("ucf101", ucf, 1, "train", val_fraction=0.25)) + len(val) == 48
    assert _groups(val).isdisjoint(_groups(load_split("ucf101", ucf, 1, "train", val_fraction=0.25)))
    assert _groups(val_default).isdisjoint(_groups(train)) and len(_groups(val)) == 2
    assert {r.class_name for r in val} == set(UCF_CLASSES)  # the same groups for every class
    for r in trainval + test:
        assert r.class_name == r.path.split("/")[0] and UCF_CLASSES[r.label] == r.class_name
        assert (video_dir("ucf101", ucf) / r.path).is_file()
    assert {r.label for r in test} == {0, 1, 2}  # test labels come from the folder
    # deterministic; another seed holds out other groups
    assert load_split("ucf101", ucf, 1, "val", val_fraction=0.25) == val
    others = [_groups(load_split("ucf101", ucf, 1, "val", val_fraction=0.25, seed=s)) for s in range(1, 6)]
    assert any(g != _groups(val) for g in others)


def test_ucf101_missing_videos_warned_once_and_skipped(ucf):
    for name in (_ucf_name("Yo Yo", 3, 1), _ucf_name("Yo Yo", 4, 2), _ucf_name("ApplyEyeMakeup", 5, 1)):
        (ucf / "UCF-101" / name).unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = load_split("ucf101", ucf, 1, "trainval")
    assert len(records) == 45
    assert len(caught) == 1 and "3 of 48" in str(caught[0].message) and "missing" in str(caught[0].message)


def test_ucf101_duplicates_and_wrong_labels(ucf):
    lists = ucf / "ucfTrainTestlist"
    lines = (lists / "trainlist01.txt").read_text().splitlines()
    (lists / "trainlist01.txt").write_text("\n".join(lines + lines[:2]) + "\n")
    with pytest.warns(UserWarning, match=r"2 duplicate line\(s\).*trainlist01.txt:49"):
        assert len(load_split("ucf101", ucf, 1, "trainval")) == 48
    lines[2] = lines[2].rsplit(maxsplit=1)[0] + " 3"  # ApplyEyeMakeup video labelled "Yo Yo"
    (lists / "trainlist01.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"trainlist01.txt:3: label 3 is 'Yo Yo'.*folder 'ApplyEyeMakeup'"):
        load_split("ucf101", ucf, 1, "train")
    (lists / "trainlist01.txt").write_text("Nope/v_Nope_g01_c01.avi 1\n")
    with pytest.raises(ValueError, match=r"trainlist01.txt:1: class folder 'Nope'"):
        load_split("ucf101", ucf, 1, "train")


def test_missing_split_file_names_path_and_layout(ucf, tmp_path):
    with pytest.raises(ValueError, match=r"testlist02.txt: split file not found; expected layout: .*UCF-101"):
        load_split("ucf101", ucf, 2, "test")
    with pytest.raises(ValueError, match=r"classInd.txt: split file not found.*splits"):
        load_split("synthetic", tmp_path / "nothing", 1, "train")
    with pytest.raises(ValueError, match=r"testTrainMulti_7030_splits: no '\*_test_split1.txt'"):
        load_split("hmdb51", tmp_path / "nothing", 1, "train")
    with pytest.raises(ValueError, match=r"train.csv: annotation file not found"):
        load_split("kinetics", tmp_path / "nothing", 1, "train")
    with pytest.raises(ValueError, match="subset"):
        load_split("ucf101", ucf, 1, "validation")


def test_unusable_split_files_are_refused_by_name(ucf):
    """An empty list, a list none of whose videos is there, a test video also listed for training and
    a label that is not a number: one SplitError naming the file; an empty carved val is allowed."""
    lists = ucf / "ucfTrainTestlist"
    train, test = (lists / "trainlist01.txt").read_text(), (lists / "testlist01.txt").read_text()
    assert load_split("ucf101", ucf, 1, "val", val_fraction=0) == []  # no validation: a choice
    (lists / "testlist01.txt").write_text(test + train.splitlines()[5].rsplit(maxsplit=1)[0] + "\n")
    with pytest.raises(SplitError, match=r"testlist01.txt:13: 1 of the 13 test videos of split 1 are also listed for "
                                         r"training.*v_ApplyEyeMakeup_g05_c02.avi"):
        load_split("ucf101", ucf, 1, "test")
    (lists / "testlist01.txt").write_text("\n\n")
    with pytest.raises(SplitError, match=r"ucfTrainTestlist: split 1 lists no test video"):
        load_split("ucf101", ucf, 1, "test")
    (lists / "trainlist01.txt").write_text(train.replace(" 1\n", " one\n", 1))
    with pytest.raises(SplitError, match=r"trainlist01.txt:1: label 'one' after '.*_g03_c01.avi' is not a number"):
        load_split("ucf101", ucf, 1, "train")
    (lists / "trainlist01.txt").write_bytes(b"ApplyEyeMakeup/v_\xe9.avi 1\n")  # Latin-1, not UTF-8
    with pytest.raises(SplitError, match=r"trainlist01.txt: not a text file \(byte 17 is not UTF-8\): split, annotation "
                                         r"and class files are UTF-8 text$"):  # the codec's words alone until 2026-12-08
        load_split("ucf101", ucf, 1, "train")
    (lists / "trainlist01.txt").write_bytes(b"\xef\xbb\xbf" + train.replace("\n", "\r").encode())  # a BOM, old Mac lines
    assert len(load_split("ucf101", ucf, 1, "train", val_fraction=0)) == len(train.splitlines())
    (lists / "trainlist01.txt").write_text(train)
    with pytest.raises(SplitError, match=r"none of the 48 videos listed for trainval \(split 1\) is there "
                                         r"\(e.g. ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.mp4\)"):
        load_split("ucf101", ucf, 1, "trainval", ext=".mp4")


def test_reencoded_copies_via_video_root_and_ext(ucf, tmp_path, tiny_video_bytes):
    for r in load_split("ucf101", ucf, 1, "trainval")[:5]:
        _put(tmp_path / "mp4" / r.path.replace(".avi", ".mp4"), tiny_video_bytes("h264"))
    with pytest.warns(UserWarning, match="43 of 48"):
        records = load_split("ucf101", ucf, 1, "trainval", video_root=tmp_path / "mp4", ext=".mp4")
    assert len(records) == 5 and all(r.path.endswith(".mp4") for r in records)


HMDB_CLASSES = ["brush_hair", "kick_ball", "shoot_bow"]


@pytest.fixture
def hmdb(tmp_path, tiny_video_bytes) -> Path:
    """3 classes x 10 videos: ids 1 (train) x 6, 2 (test) x 3, 0 (unused) x 1."""
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls in reversed(HMDB_CLASSES):  # file order must not matter
        lines = []
        for i in range(10):
            name = f"{cls}_#{i}_(take 2)_it's_u_cm_np1_fr_goo_{i}.avi"
            _put(root / cls / name, tiny_video_bytes())
            lines.append(f"{name} {1 if i < 6 else 2 if i < 9 else 0} ")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root


def test_hmdb51_subsets(hmdb):
    assert load_classes("hmdb51", hmdb) == HMDB_CLASSES
    trainval, test = load_split("hmdb51", hmdb, 1, "trainval"), load_split("hmdb51", hmdb, 1, "test")
    train = load_split("hmdb51", hmdb, 1, "train", val_fraction=1 / 3)
    val = load_split("hmdb51", hmdb, 1, "val", val_fraction=1 / 3)
    assert (len(trainval), len(test), len(train), len(val)) == (18, 9, 12, 6)
    assert {r.path for r in train}.isdisjoint({r.path for r in val})
    assert sorted(r.label for r in val) == [0, 0, 1, 1, 2, 2]  # stratified per class
    assert all(HMDB_CLASSES[r.label] == r.class_name == r.path.split("/")[0] for r in trainval + test)
    assert load_split("hmdb51", hmdb, 1, "val", val_fraction=1 / 3) == val


def test_hmdb51_bad_line_names_file_and_line(hmdb):
    f = hmdb / "testTrainMulti_7030_splits" / "kick_ball_test_split1.txt"
    f.write_text(f.read_text() + "extra.avi 7\n")
    with pytest.raises(ValueError, match=r"kick_ball_test_split1.txt:11: expected '<video>.avi <0\|1\|2>'"):
        load_split("hmdb51", hmdb, 1, "test")


KINETICS = ["abseiling", "passing American football (in game)", "massaging person's head", "zumba"]


@pytest.fixture
def kinetics(tmp_path, tiny_video_bytes) -> Path:
    """4 classes x 5 train clips (flat) and 2 validate clips (per-class folders); one train clip
    missing; classes.txt selects 3 classes."""
    root = tmp_path / "k400"
    (root / "annotations").mkdir(parents=True)
    for csv_name, folder, n in (("train", "train", 5), ("validate", "val", 2)):
        with open(root / "annotations" / f"{csv_name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
            for c, label in enumerate(KINETICS):
                for i in range(n):
                    yid = f"{csv_name[:2]}-{c}_x{i}"
                    w.writerow([label, yid, 10 * i, 10 * i + 10, csv_name, 0])
                    sub = f"{label.replace(' ', '_')}/" if folder == "val" else ""
                    if (c, i) != (1, 4):
                        _put(root / folder / f"{sub}{yid}_{10 * i:06d}_{10 * i + 10:06d}.mp4", tiny_video_bytes())
    (root / "annotations" / "classes.txt").write_text("zumba\npassing American football (in game)\n"
                                                      "massaging person's head\n")
    return root


def test_kinetics_class_list_layouts_and_subsets(kinetics):
    assert load_classes("kinetics", kinetics) == [KINETICS[3], KINETICS[1], KINETICS[2]]
    with pytest.warns(UserWarning, match="1 of 15"):
        trainval = load_split("kinetics", kinetics, subset="trainval")
    test = load_split("kinetics", kinetics, subset="test")
    assert len(trainval) == 14 and len(test) == 6
    assert all(r.path.startswith("train/") and r.path.count("/") == 1 for r in trainval)
    assert all(r.path.startswith("val/") and r.path.count("/") == 2 for r in test)
    assert {r.class_name for r in test} == set(KINETICS[1:])
    assert all(load_classes("kinetics", kinetics)[r.label] == r.class_name for r in trainval + test)
    with pytest.warns(UserWarning):
        train = load_split("kinetics", kinetics, subset="train", val_fraction=0.2)
        val = load_split("kinetics", kinetics, subset="val", val_fraction=0.2)
    assert len(val) + len(train) == 14 and len(val) >= 2 and {r.path for r in val}.isdisjoint(r.path for r in train)


def test_kinetics_class_list_errors(kinetics, tmp_path):
    (tmp_path / "bad.txt").write_text("zumba\n# comment\nbreakdancing\n")
    with pytest.raises(ValueError, match=r"bad.txt:3: class 'breakdancing' does not occur"):
        load_split("kinetics", kinetics, subset="test", class_list=tmp_path / "bad.txt")
    (kinetics / "annotations" / "classes.txt").unlink()
    assert load_classes("kinetics", kinetics) == sorted(KINETICS)


@pytest.fixture
def synthetic(tmp_path, tiny_video_bytes) -> Path:
    root = tmp_path / "syn"
    classes = ["Disc Left", "Spin CW"]
    (root / "splits").mkdir(parents=True)
    (root / "splits" / "classInd.txt").write_text("1 Disc Left\n2 Spin CW\n")
    for subset, n in (("train", 3), ("val", 1), ("test", 2)):
        lines = []
        for i, cls in enumerate(classes):
            for j in range(n):
                name = f"{cls}/v_{subset}_{j:03d}.mp4"
                _put(root / "videos" / name, tiny_video_bytes())
                lines.append(f"{name} {i + 1}")
        (root / "splits" / f"{subset}list01.txt").write_text("\n".join(lines) + "\n")
    return root


def test_synthetic_layout_reads_every_list(synthetic):
    sizes = {s: len(load_split("synthetic", synthetic, 1, s)) for s in ("train", "val", "trainval", "test")}
    assert sizes == {"train": 6, "val": 2, "trainval": 8, "test": 4}
    val = load_split("synthetic", synthetic, 1, "val")
    assert val == [VideoRecord("Disc Left/v_val_000.mp4", 0, "Disc Left"),
                   VideoRecord("Spin CW/v_val_000.mp4", 1, "Spin CW")]


def test_video_smaller_than_the_crop_names_the_file(tmp_path, tiny_video_bytes):
    """48x64 frames, a 64-px centre crop: the error names the video, in the main process and
    from a DataLoader worker (one line, no worker traceback)."""
    from torch.utils.data import DataLoader

    from ip_tsn.codec import VideoError
    from ip_tsn.data.video_dataset import StreamDataset

    _put(tmp_path / "videos" / "Walk" / "small.mp4", tiny_video_bytes("mpeg4"))
    ds = StreamDataset([VideoRecord("Walk/small.mp4", 0, "Walk")], tmp_path / "videos", "rgb", 3, False,
                       crop_size=64, scale_size=None)
    with pytest.raises(VideoError, match=r"videos/Walk/small.mp4: cannot crop 64x64 from frames of 64x48 \(width x height\)"):
        ds[0]
    with pytest.raises(VideoError, match=r"videos/Walk/small.mp4: cannot crop 64x64 from frames of 64x48 \(width x height\)") as caught:
        next(iter(DataLoader(ds, batch_size=1, num_workers=1)))
    assert "\n" not in str(caught.value) and "DataLoader worker" not in str(caught.value)
