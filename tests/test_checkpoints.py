"""Broken or wrong checkpoints (issue 11.5): a truncated or empty `.ckpt` given to `predict`,
`test --checkpoint` or `fit ckpt_path=` gives one line naming the file, exit 2; a checkpoint of
another stream (modality) is refused by name, in `test` and with `predict`'s streams swapped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ip_tsn.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


@pytest.fixture(scope="module")
def broken(tiny_streams, tmp_path_factory) -> dict[str, Path]:
    """A real trained I-stream checkpoint cut to half its size, and an empty one."""
    folder = tmp_path_factory.mktemp("broken_ckpt")
    data = Path(tiny_streams["istream"]).read_bytes()
    (folder / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (folder / "empty.ckpt").write_bytes(b"")
    return {"truncated": folder / "truncated.ckpt", "empty": folder / "empty.ckpt"}


@pytest.fixture(scope="module")
def video(tiny_video_bytes, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ckpt_video") / "clip.mp4"
    path.write_bytes(tiny_video_bytes("mpeg4"))
    return str(path)


def _one_error_line(capsys, verb: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ip-tsn {verb}: error: "), lines
    return lines[0]


@pytest.mark.parametrize("kind", ["truncated", "empty"])
def test_broken_checkpoint_is_one_line_naming_it(kind, broken, tiny_streams, video, tmp_path, capsys):
    path, common = broken[kind], tiny_streams["common"]
    reason = "empty file" if kind == "empty" else "truncated or corrupt"
    expected = f"{path}: not a readable checkpoint ({reason})"
    capsys.readouterr()
    assert main(["predict", video, "--istream", str(path)]) == 2
    assert _one_error_line(capsys, "predict") == f"ip-tsn predict: error: {expected}"
    assert main(["test", str(EXPERIMENTS / "istream.yaml"), "--checkpoint", str(path), *common]) == 2
    assert _one_error_line(capsys, "test") == f"ip-tsn test: error: {expected}"
    assert main(["fit", str(EXPERIMENTS / "istream.yaml"), *common, f"run_root={tmp_path}", f"ckpt_path={path}"]) == 2
    assert _one_error_line(capsys, "fit") == f"ip-tsn fit: error: {expected}"
    assert not (tmp_path / "istream").exists()  # refused before anything was written


def test_truncated_checkpoint_exit_status_of_the_command(broken, video):
    proc = subprocess.run([sys.executable, "-m", "ip_tsn.cli", "predict", video, "--istream", str(broken["truncated"])],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"ip-tsn predict: error: {broken['truncated']}: "
                                                   "not a readable checkpoint (truncated or corrupt)")


def test_test_refuses_a_checkpoint_of_another_stream(tiny_streams, capsys):
    pstream = tiny_streams["pstream"]
    capsys.readouterr()
    code = main(["test", str(EXPERIMENTS / "istream.yaml"), "--checkpoint", str(pstream), *tiny_streams["common"]])
    line = _one_error_line(capsys, "test")
    assert code == 2
    assert line == (f"ip-tsn test: error: {pstream}: a pstream checkpoint (modality 'p'), but the istream config "
                    "expects stage 'istream', modality 'iframe'")
    assert not (tiny_streams["runs"] / "istream" / "scores_val.npz").exists()


def test_predict_refuses_swapped_streams(tiny_streams, video, capsys):
    istream, pstream = tiny_streams["istream"], tiny_streams["pstream"]
    capsys.readouterr()
    assert main(["predict", video, "--istream", str(pstream), "--pstream", str(istream)]) == 2
    line = _one_error_line(capsys, "predict")
    assert line == (f"ip-tsn predict: error: {pstream}: a pstream checkpoint (modality 'p'), but --istream "
                    "expects modality 'iframe' or 'rgb'")
    assert main(["predict", video, "--pstream", str(istream)]) == 2
    assert f"{istream}: a istream checkpoint (modality 'iframe'), but --pstream" in _one_error_line(capsys, "predict")


def test_missing_checkpoint_and_folder_are_named(tiny_streams, video, tmp_path, capsys):
    capsys.readouterr()
    assert main(["predict", video, "--istream", str(tmp_path / "nope.ckpt")]) == 2
    missing = f"{tmp_path / 'nope.ckpt'}: checkpoint file not found (--istream)"  # who asked: since 2026-12-08
    assert _one_error_line(capsys, "predict").endswith(missing)
    assert main(["predict", video, "--istream", str(tmp_path)]) == 2
    assert _one_error_line(capsys, "predict").endswith(f"{tmp_path}: not a checkpoint file (a folder?)")
    fit = ["fit", str(EXPERIMENTS / "istream.yaml"), *tiny_streams["common"], f"run_root={tmp_path / 'runs'}"]
    assert main([*fit, "ckpt_path=best"]) == 2  # "best: checkpoint file not found" until 2026-12-08
    assert _one_error_line(capsys, "fit") == ("ip-tsn fit: error: ckpt_path=best: no such file (ckpt_path takes last, "
                                              "this run's last.ckpt, or a checkpoint file's path)")
    assert not (tmp_path / "runs").exists()
    student = ["fit", str(EXPERIMENTS / "student.yaml"), *tiny_streams["common"], f"run_root={tmp_path / 'runs'}"]
    assert main(student) == 2  # the student before its teacher: the path alone until 2026-12-08
    teacher = tmp_path / "runs" / "teacher" / "checkpoints" / "best.ckpt"
    assert _one_error_line(capsys, "fit") == (f"ip-tsn fit: error: {teacher}: checkpoint file not found "
                                              "(teacher.checkpoint)")
    assert main([*student, f"teacher.checkpoint={tiny_streams['istream']}"]) == 2
    assert _one_error_line(capsys, "fit").endswith("a istream checkpoint (modality 'iframe'), but teacher.checkpoint "
                                                   "expects modality 'flow'")
    assert not (tmp_path / "runs").exists()


def test_resuming_another_network_is_one_line(tiny_streams, tmp_path, capsys):
    """`fit ckpt_path=X` where X holds another network than the config builds (here: a ResNet-34 or
    a small stem where ResNet-18 with the ImageNet stem was trained): one line, nothing written,
    instead of Lightning's state_dict traceback from inside fit."""
    istream, common = tiny_streams["istream"], tiny_streams["common"]
    for change, first in (("model.net.arch=resnet34", "only here"),
                          ("model.net.stem=small", "model.backbone.net.conv1.weight is [64, 3, 7, 7] there, [64, 3, 3, 3] here")):
        capsys.readouterr()
        code = main(["fit", str(EXPERIMENTS / "istream.yaml"), *common, f"run_root={tmp_path}", f"ckpt_path={istream}",
                     "model.net.pretrained=false", change])
        line = _one_error_line(capsys, "fit")
        assert code == 2 and line.startswith(f"ip-tsn fit: error: ckpt_path={istream}: holds another network than this "
                                             "config builds ("), line
        assert first in line and line.endswith("resume with the settings it was trained with (the run's config.yaml)")
        assert not (tmp_path / "istream").exists()
