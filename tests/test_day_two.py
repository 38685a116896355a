"""Day two with ip-tsn (issue 21), through the `ip-tsn` command on the tiny synthetic streams (real
MPEG-4 videos encoded with PyAV): weights that load or refuse, every fit validated at its end, a
sweep's trials each in its own run, fusion of any subset of streams, --print-config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torchvision
import yaml

import ip_tsn
from ip_tsn.atomic import LOCK_NAME
from ip_tsn.cli import main
from ip_tsn.evaluation.scores import load_scores
from ip_tsn.lit.model_settings import MONITORS
from processes import held_by_another

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _offline_or_skip() -> None:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    if (Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name).exists():
        pytest.skip("ImageNet weights are cached locally: nothing fails to load")


def _one_line(capsys, command: str) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"ip-tsn {command}: error: "), err
    return err[0].removeprefix(f"ip-tsn {command}: error: ")


def test_fit_stops_on_weights_it_cannot_load(tiny_streams, tmp_path, capsys):
    """Offline, ImageNet weights asked for: one line, exit 2, before anything is written."""
    _offline_or_skip()
    capsys.readouterr()
    code = main(["fit", str(EXPERIMENTS / "istream.yaml"), *tiny_streams["common"], f"run_root={tmp_path}",
                 "model.net.pretrained=true"])
    line = _one_line(capsys, "fit")
    assert code == 2 and line.startswith("ResNet18_Weights.IMAGENET1K_V1 cannot be loaded")
    assert "model.net.weights=PATH" in line and "model.net.pretrained=false" in line
    assert not (tmp_path / "istream").exists()
    bad = tmp_path / "nowhere" / "resnet18.pth"
    code = main(["fit", str(EXPERIMENTS / "istream.yaml"), *tiny_streams["common"], f"run_root={tmp_path}",
                 f"model.net.weights={bad}"])
    assert code == 2 and _one_line(capsys, "fit").startswith(f"model.net.weights={bad}: not a readable weights file")
    assert not (tmp_path / "istream").exists()


def test_random_init_only_when_allowed_and_recorded(tiny_streams, tmp_path):
    _offline_or_skip()
    code = main(["fit", str(EXPERIMENTS / "istream.yaml"), *tiny_streams["common"], f"run_root={tmp_path}",
                 "model.net.pretrained=true", "model.net.allow_random_init=true"])
    assert code == 0
    fit = json.loads((tmp_path / "istream" / "fit.json").read_text())
    assert fit["weights_from"].startswith("random (ResNet18_Weights.IMAGENET1K_V1 cannot be loaded")
    ckpt = torch.load(tmp_path / "istream" / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["ip_tsn_weights_from"] == fit["weights_from"]


def test_local_weights_file_is_what_training_starts_from(tiny_streams, tmp_path):
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    code = main(["fit", str(EXPERIMENTS / "istream.yaml"), *tiny_streams["common"], f"run_root={tmp_path}",
                 f"model.net.weights={tmp_path / 'r18.pth'}", "trainer.limit_train_batches=1"])
    assert code == 0
    fit = json.loads((tmp_path / "istream" / "fit.json").read_text())
    assert fit["weights_from"] == str(tmp_path / "r18.pth")


def test_every_fit_validates_its_last_epoch(tiny_streams):
    """The synthetic config validates every 10th epoch; a 1-epoch fit still validates at its end."""
    cfg = yaml.safe_load((tiny_streams["runs"] / "istream" / "config.yaml").read_text())
    assert cfg["trainer"]["max_epochs"] == 1 and cfg["trainer"]["check_val_every_n_epoch"] == 10
    fit = json.loads((tiny_streams["runs"] / "istream" / "fit.json").read_text())
    assert fit["val_top1"] is not None and 0.0 <= fit["val_top1"] <= 1.0
    assert fit["weights_from"] == "random"  # the synthetic config: pretrained false
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=EXPERIMENTS.parent, capture_output=True, text=True)
    env = fit["environment"]  # what made the run: the same seeds give other numbers on another CPU kind
    assert env["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert (env["torch"], env["lightning"]) == (torch.__version__, pl.__version__)
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["ip_tsn"] == ip_tsn.__version__
    header, *rows = (tiny_streams["runs"] / "istream" / "logs" / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("val/top1")
    assert any(row.split(",")[column] for row in rows)
    assert set(MONITORS) <= set(header.split(","))  # what checkpoint.monitor may name is logged


def test_a_fit_that_max_steps_ends_mid_epoch_validates_there(tiny_streams, tmp_path):
    """``trainer.max_steps`` ending inside an epoch (2 batches an epoch here, 1 step asked): Lightning
    stopped there without validating, so fit.json had no val_top1 (and a sweep no metric)."""
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *tiny_streams["common"], f"run_root={tmp_path}",
                 "trainer.max_steps=1", "trainer.max_epochs=3"]) == 0
    fit = json.loads((tmp_path / "pstream" / "fit.json").read_text())
    assert fit["val_top1"] is not None and 0.0 <= fit["val_top1"] <= 1.0 and fit["stopped_by"] is None
    assert torch.load(tmp_path / "pstream" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 1


def test_each_sweep_trial_gets_its_own_run(tiny_streams, tmp_path, monkeypatch):
    """What a W&B agent sets for each trial: two trials, two run folders, both finished."""
    monkeypatch.setenv("WANDB_SWEEP_ID", "sw1")
    for trial in ("t1", "t2"):
        monkeypatch.setenv("WANDB_RUN_ID", trial)
        assert main(["fit", str(EXPERIMENTS / "istream.yaml"), *tiny_streams["common"], f"run_root={tmp_path}",
                     "trainer.limit_train_batches=1"]) == 0
    for trial in ("t1", "t2"):
        run = tmp_path / f"istream-{trial}"
        assert (run / "fit.json").is_file()
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["run_name"] == f"istream-{trial}" and cfg["wandb_group"] == "sweep-sw1"
    assert not (tmp_path / "istream").exists()


def _scored_copy(tiny_streams, tmp_path) -> tuple[Path, list[str]]:
    """The I- and P-stream runs copied to ``<tmp_path>/runs`` and scored there (val and test):
    that run_root and the overrides that point at it."""
    runs = tmp_path / "runs"
    for stage in ("istream", "pstream"):
        shutil.copytree(tiny_streams["runs"] / stage, runs / stage)
    common = [*tiny_streams["common"], f"run_root={runs}"]
    for stage in ("istream", "pstream"):
        assert main(["test", str(EXPERIMENTS / f"{stage}.yaml"), *common]) == 0
    return runs, common


def test_fuse_any_subset_of_streams(tiny_streams, tmp_path, capsys):
    """I and plain P only (no teacher, no student): the fusion runs; streams without scores are
    named once and left out; a fused stream without scores is one line."""
    runs, common = _scored_copy(tiny_streams, tmp_path)
    capsys.readouterr()
    code = main(["fuse", str(EXPERIMENTS / "fuse.yaml"), *common, "fuse.fused=[I-stream,P-stream]"])
    out = capsys.readouterr().out
    assert code == 0 and "fuse: left out (no scores): P-stream distilled" in out and "teacher (flow)" in out
    results = json.loads((runs / "fusion" / "results.json").read_text())
    assert set(results["weights"]) == {"I-stream", "P-stream"}
    written = {p.name: p.stat().st_mtime_ns for p in (runs / "fusion").iterdir() if p.name != LOCK_NAME}
    with held_by_another(runs / "fusion", "fuse.out_dir") as other:  # another fusion writing there (until
        # 2026-12-07 both wrote, and results.md, results.json and model.json could come from two fusions)
        assert main(["fuse", str(EXPERIMENTS / "fuse.yaml"), *common, "fuse.fused=[I-stream,P-stream]"]) == 2
        line = _one_line(capsys, "fuse")
        assert line.startswith(f"fuse.out_dir={runs / 'fusion'}: in use by another command (") and \
            f"pid {other.pid} on" in line
    assert {p.name: p.stat().st_mtime_ns for p in (runs / "fusion").iterdir() if p.name != LOCK_NAME} == written
    code = main(["fuse", str(EXPERIMENTS / "fuse.yaml"), *common])  # the default fuses the student
    assert code == 2 and _one_line(capsys, "fuse").startswith("fuse.fused: 'P-stream distilled' has no scores")
    for fused in ("[]", "[I-stream,I-stream]"):  # nothing to fuse, or a stream twice: one line, not a traceback
        code = main(["fuse", str(EXPERIMENTS / "fuse.yaml"), *common, f"fuse.fused={fused}"])
        assert code == 2 and _one_line(capsys, "fuse").startswith("fuse.fused=[")
    # a role or baseline naming no stream: until 2026-12-08 its rows (distilled minus plain, I + plain P) were
    # dropped, or the baseline fused I-stream with itself, without a word
    for role, says in (("fuse.distilled=P-stream distiled", "fuse.distilled: 'P-stream distiled' is not one of"),
                       ("fuse.baseline_fused=[I-stream,I-stream]", "fuse.baseline_fused=['I-stream', 'I-stream']: name "
                                                                   "each stream once")):
        assert main(["fuse", str(EXPERIMENTS / "fuse.yaml"), *common, "fuse.fused=[I-stream,P-stream]", role]) == 2
        assert _one_line(capsys, "fuse").startswith(says)
    assert json.loads((runs / "fusion" / "results.json").read_text()) == results  # nothing rewritten
    none = tmp_path / "none"  # no stream scored there: no list of others to fuse is suggested
    code = main(["fuse", str(EXPERIMENTS / "fuse.yaml"), *tiny_streams["common"], f"run_root={none}"])
    assert code == 2 and _one_line(capsys, "fuse") == (
        f"fuse.fused: 'I-stream' has no scores ({none / 'istream' / 'scores_test.npz'}); train and test it "
        "(no stream of fuse.streams has scores there)")
    # --subsets named twice score once; another modality's checkpoint is named as such, not as other scores
    capsys.readouterr()
    assert main(["test", str(EXPERIMENTS / "istream.yaml"), *common, "--subsets", "val,val"]) == 0
    assert capsys.readouterr().out.count("val: ") == 1
    pstream = str(runs / "pstream" / "checkpoints" / "best.ckpt")
    assert main(["test", str(EXPERIMENTS / "istream.yaml"), *common, "--checkpoint", pstream]) == 2
    assert "a pstream checkpoint (modality 'p'), but the istream config expects" in _one_line(capsys, "test")


def test_scores_record_their_protocol_and_are_not_replaced_by_another(tiny_streams, tmp_path, capsys):
    """Scores record the test protocol (metrics.json too). Scoring the same checkpoint again under
    another one is one line, exit 2, the file kept, unless overwrite=true (the same one reruns);
    fuse refuses a stream whose val and test scores were made under two protocols."""
    runs, common = _scored_copy(tiny_streams, tmp_path)
    scores = runs / "istream" / "scores_test.npz"
    recorded = json.loads(load_scores(scores).protocol)
    assert recorded["test_segments"] == 3 and recorded["crop_size"] == 32 and recorded["test_crops"] == 1
    assert json.loads((runs / "istream" / "metrics.json").read_text())["test"]["protocol"] == recorded
    before = scores.read_bytes()
    test = ["test", str(EXPERIMENTS / "istream.yaml"), *common, "--subsets", "test"]
    capsys.readouterr()
    assert main([*test, "data.test_segments=2"]) == 2
    assert _one_line(capsys, "test") == (f"{scores}: holds the scores of checkpoints/best.ckpt under another test "
                                         "protocol (test_segments: 3 there, 2 asked); pass overwrite=true to replace "
                                         "them, or run_dir=<another folder> to keep both")
    assert scores.read_bytes() == before
    assert main(test) == 0  # the same protocol: scored again
    assert main([*test, "data.test_segments=2", "overwrite=true"]) == 0
    assert json.loads(load_scores(scores).protocol)["test_segments"] == 2
    capsys.readouterr()
    assert main(["fuse", str(EXPERIMENTS / "fuse.yaml"), *common, "fuse.fused=[I-stream,P-stream]"]) == 2
    assert _one_line(capsys, "fuse") == (
        f"{scores}: scored under another test protocol than {runs / 'istream' / 'scores_val.npz'} (test_segments: 3 in "
        "scores_val.npz, 2 here): the subsets of stream 'I-stream' were scored two ways, and fusion weights found on "
        "one would meet the other; score them with one (ip-tsn test)")
    assert not (runs / "fusion").exists()


def test_a_smoke_test_keeps_nothing(tiny_streams, tmp_path, capsys):
    """``trainer.fast_dev_run`` (Lightning's smoke test) and ``trainer.limit_test_batches`` run part of
    the data, and nothing of theirs is kept. Until 2026-12-07 a smoke-tested fit wrote ``best.ckpt``
    and ``fit.json`` (a finished run, which ``make`` then took as trained and ``ip-tsn fit`` refused
    to replace), and ``ip-tsn test`` wrote the scores of the batches it ran as the whole subset's."""
    runs, common = _scored_copy(tiny_streams, tmp_path)
    # every file but the folder's lock (.ip-tsn.lock: which command holds the run, rewritten by each)
    files = lambda: {p: p.read_bytes() for p in sorted((runs / "pstream").rglob("*")) if p.is_file()  # noqa: E731
                     and p.name != LOCK_NAME}
    before = files()
    capsys.readouterr()
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *common, "trainer.fast_dev_run=true"]) == 0
    assert (f"trainer.fast_dev_run=True: 1 training step(s) and validation ran; a smoke test keeps nothing, so "
            f"{runs / 'pstream'} gets no checkpoint and no fit.json") in capsys.readouterr().out
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *common, "run_name=fresh", "trainer.fast_dev_run=2"]) == 0
    assert "trainer.fast_dev_run=2: 2 training step(s)" in capsys.readouterr().out
    assert not (runs / "fresh").exists()
    videos = len((tiny_streams["root"] / "splits" / "testlist01.txt").read_text().splitlines())
    batches = -(-videos // 4)  # the P-stream's data.test_batch_size
    for limit, ran in (("trainer.fast_dev_run=true", "trainer.fast_dev_run=True: 1"), ("trainer.limit_test_batches=2",
                                                                                     "trainer.limit_test_batches=2: 2")):
        assert main(["test", str(EXPERIMENTS / "pstream.yaml"), *common, "--subsets", "test", limit]) == 0
        out = capsys.readouterr().out
        assert (f"only part of a subset scored (test: {ran} of {batches} batches), so nothing is written to "
                f"{runs / 'pstream'} (scores, metrics.json and reports are of whole subsets)") in out
        assert "test: loss " in out  # the numbers are still printed
    assert files() == before
    assert main(["test", str(EXPERIMENTS / "pstream.yaml"), *common, "trainer.limit_test_batches=1.0"]) == 0
    assert "only part" not in capsys.readouterr().out  # the whole loader: written as before


def test_a_checkpoint_of_other_classes_is_refused(tiny_streams, tmp_path, capsys):
    """A data set whose classes come in another order than the checkpoint's (a class list rewritten,
    another subset of the same size): ip-tsn test scored the network's columns against the wrong
    labels, silently. Now one line naming the first difference, exit 2, from test and from a fit
    resumed from that checkpoint (the cache's teacher and the student's teacher are checked the same way)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_streams["root"], root)
    swap = {"1": "2", "2": "1"}  # the first two labels exchanged, in classInd.txt and every list
    for path in (root / "splits").glob("*.txt"):
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        if path.name == "classInd.txt":
            lines = [[swap.get(label, label), name] for label, name in lines]
            lines.sort(key=lambda x: int(x[0]))
        else:
            lines = [[video, swap.get(label, label)] for video, label in lines]
        path.write_text("".join(" ".join(line) + "\n" for line in lines))
    first, second = [line.split()[1] for line in (root / "splits" / "classInd.txt").read_text().splitlines()[:2]]
    runs = tmp_path / "runs"
    shutil.copytree(tiny_streams["runs"] / "pstream", runs / "pstream")
    common = [*tiny_streams["common"], f"data.root={root}", f"run_root={runs}"]
    best = runs / "pstream" / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    assert main(["test", str(EXPERIMENTS / "pstream.yaml"), *common]) == 2
    assert _one_line(capsys, "test") == (
        f"{best}: trained on other classes than data=synthetic ({root}, split 1) lists (class 0 is {second!r} there, "
        f"{first!r} here, the same classes in another order), so its scores would be read against the wrong labels; "
        "use it with the data and class list it was trained on")
    assert not list((runs / "pstream").glob("scores_*.npz"))
    last = runs / "pstream" / "checkpoints" / "last.ckpt"
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *common, "run_name=other", f"ckpt_path={last}"]) == 2
    assert _one_line(capsys, "fit").startswith(f"{last}: trained on other classes than data=synthetic")
    assert not (runs / "other" / "checkpoints").exists()


def test_testing_an_unfinished_run_says_so(tiny_streams, tmp_path, capsys):
    """A run killed before its end has a last.ckpt and no best.ckpt: ``ip-tsn test`` said only
    "best.ckpt: checkpoint file not found"; now it says the training has not finished, at which
    epoch, and the two ways on."""
    runs = tmp_path / "runs"
    shutil.copytree(tiny_streams["runs"] / "pstream", runs / "pstream")
    (runs / "pstream" / "checkpoints" / "best.ckpt").unlink()
    (runs / "pstream" / "fit.json").unlink()
    capsys.readouterr()
    assert main(["test", str(EXPERIMENTS / "pstream.yaml"), *tiny_streams["common"], f"run_root={runs}"]) == 2
    last = runs / "pstream" / "checkpoints" / "last.ckpt"
    assert _one_line(capsys, "test") == (
        f"{runs / 'pstream'}: its training has not finished (no best.ckpt; last.ckpt holds epoch 0): resume it "
        f"(ip-tsn fit ... ckpt_path=last), or test that epoch with --checkpoint {last}")


def test_an_output_folder_that_is_a_file_is_one_line(tiny_streams, tmp_path, capsys):
    """Where a command would write into a folder that is a file (or lies under one), one line
    naming the setting and the file, exit status 2, nothing written (was a traceback from mkdir)."""
    common, afile = tiny_streams["common"], tmp_path / "afile"
    afile.write_text("a file")
    istream = str(tiny_streams["istream"])
    for command, args, setting in [
            ("fit", ["fit", str(EXPERIMENTS / "istream.yaml"), *common, f"run_root={afile}"], f"run_dir={afile}/istream"),
            ("cache", ["cache", str(EXPERIMENTS / "cache.yaml"), *common, f"cache.dir={afile}"], f"cache.dir={afile}"),
            ("test", ["test", str(EXPERIMENTS / "istream.yaml"), *common, f"run_dir={afile}", "--checkpoint", istream],
             f"run_dir={afile}"),
            ("fuse", ["fuse", str(EXPERIMENTS / "fuse.yaml"), *common, f"fuse.out_dir={afile}/fusion"],
             f"fuse.out_dir={afile}/fusion"),
            ("export", ["export", "--istream", istream, "--out", str(afile), "--no-onnx"], f"--out={afile}")]:
        assert main(args) == 2, command
        assert _one_line(capsys, command) == f"{setting}: {afile} is a file, not a folder"
    assert afile.read_text() == "a file"


def test_print_config_shows_every_setting_and_runs_nothing(tmp_path, capsys):
    code = main(["fit", str(EXPERIMENTS / "student.yaml"), "--print-config", f"run_root={tmp_path}",
                 "model.optim.lr=0.01"])
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert code == 0 and not any(tmp_path.iterdir())
    assert cfg["model"]["optim"]["lr"] == 0.01 and cfg["model"]["optim"]["backbone_lr_mult"] == 1.0
    assert cfg["distill"]["temperature"] == 2.0 and cfg["model"]["net"]["weights"] is None
    assert cfg["data"]["val_fraction"] == 0.1 and cfg["logger"]["wandb_project"] == "ip-tsn"
    # each data setting once, in data: the stage's own (modality, teacher_cache) merged in, no datamodule section
    assert cfg["data"]["modality"] == "p" and cfg["data"]["teacher_cache"] == f"{tmp_path}/teacher_cache"
    assert "datamodule" not in cfg


@pytest.mark.parametrize("override, message", [
    ("data.root={missing}", r"^data.root=\S*missing: no such folder \(data=synthetic\)"),
    ("data.split=2", r"^data: \S*trainlist02.txt: split file not found"),  # a second split the data lacks
    ("data=ucf101", r"^data.root=data/ucf101: no such folder \(data=ucf101\)"),
    ("trainer.precision=bf16-mix", r"^trainer: Precision 'bf16-mix' is invalid"),
    ("model.net.arch=resnet181", r"^model: unknown arch 'resnet181'"),
    ("trainer.devices=0", r"^trainer: `Trainer\(devices=0\)` value is not a valid input"),
    ("data.num_segments=-1", r"^data: num_segments must be >= 1, got -1"),
    # until 2026-12-08 "mp4" looked for ..._000mp4 and said no video was there; a subset typo was taken
    ("data.ext=mp4", r"^data: ext is a file extension with its dot \(\.mp4\), got 'mp4' \(the istream config\)$"),
    ("data.test_subset=tset", r"^data: test_subset must be one of train, val, trainval, test, got 'tset'"),
    # Lightning divides by these deep inside a fit (a ZeroDivisionError traceback until 2026-12-08) or, for a
    # negative clipping value, trains unclipped without a word
    ("trainer.accumulate_grad_batches=0", r"^trainer.accumulate_grad_batches must be >= 1, got 0 \(in \S+istream.yaml"),
    ("trainer.check_val_every_n_epoch=0", r"^trainer.check_val_every_n_epoch must be >= 1 \(null: by val_check_interval\)"),
    ("trainer.val_check_interval=0", r"^trainer.val_check_interval must be > 0 "),
    ("seed=-1", r"^seed must be an integer in 0\.\.4294967295, got -1 \(in \S+istream.yaml as composed\)"),
    ("trainer.gradient_clip_val=-1", r"^trainer.gradient_clip_val must be >= 0 \(0 or null: no clipping\), got -1"),
    # the work in spawned processes: fit.json said 0 epochs, stopped by a callback (until 2026-12-07)
    ("trainer.strategy=ddp_spawn", r"^trainer.strategy=ddp_spawn runs the work in processes started from this one.*"
                                   r"use trainer.strategy=ddp"),
])
def test_bad_values_are_one_line_before_anything_is_written(override, message, tiny_streams, tmp_path, capsys):
    import re

    root = tmp_path / "data"
    shutil.copytree(tiny_streams["root"], root)
    (root / "splits" / "trainlist02.txt").unlink()
    capsys.readouterr()
    args = [*tiny_streams["common"], f"data.root={root}", f"run_root={tmp_path / 'runs'}",
            override.format(missing=tmp_path / "missing")]
    if override.startswith("data=ucf101"):
        args = [a for a in args if not a.startswith("data.root=")]
    code = main(["fit", str(EXPERIMENTS / "istream.yaml"), *args])
    line = _one_line(capsys, "fit")
    assert code == 2 and re.search(message, line), line
    assert not (tmp_path / "runs").exists()


def _hevc_copy(src: Path, dst: Path) -> None:
    """``src`` re-encoded as HEVC (x265, real P-frames): FFmpeg exports no motion vectors for it."""
    from ip_tsn.codec import CompressedVideo
    from ip_tsn.codec.encode import encode_video

    frames = np.stack(list(CompressedVideo(src).iter_frames()))
    encode_video(frames, dst, codec="libx265", qscale=None, options={"x265-params": "log-level=error"})


@pytest.fixture
def hevc_data(tiny_streams, tmp_path) -> tuple[Path, str]:
    """A copy of the tiny dataset whose first training video is HEVC (same name)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_streams["root"], root)
    first = (root / "splits" / "trainlist01.txt").read_text().split()[0]
    _hevc_copy(root / "videos" / first, root / "videos" / first)
    return root, first


def test_hevc_in_a_p_stream_split_is_named_before_training(hevc_data, tiny_streams, tmp_path, capsys):
    root, hevc = hevc_data
    args = [*tiny_streams["common"], f"data.root={root}", f"run_root={tmp_path / 'runs'}"]
    capsys.readouterr()
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *args]) == 2
    line = _one_line(capsys, "fit")
    assert f"{hevc} (codec 'hevc' has no motion vectors in FFmpeg" in line and "data.skip_bad_videos=true" in line
    assert not (tmp_path / "runs" / "pstream" / "checkpoints").exists()
    with pytest.warns(UserWarning, match=r"1 of \d+ videos .* left out \(data.skip_bad_videos=true\)"):
        assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *args, "data.skip_bad_videos=true"]) == 0


def test_test_refuses_a_bad_list_before_scoring_any_subset(tiny_streams, tmp_path, capsys):
    """`ip-tsn test` (val, then test) on a copy whose test list is missing, then shares a video with
    the training list: one line naming the file, exit 2, and no subset scored (val comes first)."""
    root, run_root = tmp_path / "data", tmp_path / "runs"
    shutil.copytree(tiny_streams["root"], root)
    shutil.copytree(tiny_streams["runs"] / "istream", run_root / "istream")
    for scored in (run_root / "istream").glob("scores_*.npz"):  # other tests may have scored the original
        scored.unlink()
    args = [*tiny_streams["common"], f"data.root={root}", f"run_root={run_root}"]
    testlist = root / "splits" / "testlist01.txt"
    text = testlist.read_text()
    testlist.unlink()
    capsys.readouterr()
    for subsets, named in (("val,tset", "'tset'"), (",", "''")):  # a typo in --subsets: named before any work
        assert main(["test", str(EXPERIMENTS / "istream.yaml"), *args, "--subsets", subsets]) == 2
        assert _one_line(capsys, "test") == (f"--subsets {subsets.strip(',')}: {named} is not a subset; choose from "
                                             "train, val, trainval, test (comma-separated)")
    assert main(["test", str(EXPERIMENTS / "istream.yaml"), *args]) == 2
    assert _one_line(capsys, "test").startswith(f"data: {testlist}: split file not found")
    first_train = (root / "splits" / "trainlist01.txt").read_text().split()[0]
    testlist.write_text(text + f"{first_train}\n")
    assert main(["test", str(EXPERIMENTS / "istream.yaml"), *args]) == 2
    line = _one_line(capsys, "test")
    assert f"testlist01.txt:{len(text.splitlines()) + 1}: 1 of the" in line and first_train in line
    assert not list((run_root / "istream").glob("scores_*.npz"))
    testlist.write_text(text)
    assert main(["test", str(EXPERIMENTS / "istream.yaml"), *args]) == 0
    assert sorted(p.name for p in (run_root / "istream").glob("scores_*.npz")) == ["scores_test.npz", "scores_val.npz"]


def test_check_videos_full_decodes_and_probes(hevc_data):
    root, hevc = hevc_data
    script = Path(__file__).resolve().parents[1] / "data_prep" / "check_videos.py"
    quick = subprocess.run([sys.executable, str(script), str(root / "videos"), "--workers", "1"],
                           capture_output=True, text=True, timeout=300)
    full = subprocess.run([sys.executable, str(script), str(root / "videos"), "--workers", "1", "--full"],
                          capture_output=True, text=True, timeout=300)
    assert quick.returncode == 0, quick.stderr
    assert full.returncode == 1 and hevc.split("/")[-1] in full.stdout + full.stderr
    assert "no motion vectors" in full.stdout + full.stderr


def test_a_video_that_fails_in_a_worker_is_read_around_or_named(tiny_streams, tmp_path):
    """A video that passes the check and then fails while training (here: emptied after the
    check, as a flaky disk would): with data.skip_bad_videos another video of its class takes its
    place, named once; without, one WorkerVideoError line naming it."""
    import pytorch_lightning as pl

    from ip_tsn.data.datamodule import VideoDataModule
    from ip_tsn.data.video_dataset import WorkerVideoError
    from ip_tsn.lit.classifier import StreamClassifier

    root = tmp_path / "data"
    shutil.copytree(tiny_streams["root"], root)
    first = (root / "splits" / "trainlist01.txt").read_text().split()[0]
    for skip in (True, False):
        dm = VideoDataModule("synthetic", str(root), modality="iframe", crop_size=32, scale_size=None, batch_size=4,
                             num_workers=0, pin_memory=False, test_crops=1, test_segments=3, flip=False,
                             skip_bad_videos=skip)
        dm.setup("fit")  # the check passes: the file is whole
        data = (root / "videos" / first).read_bytes()
        (root / "videos" / first).write_bytes(data[:200])  # now it is not
        model = StreamClassifier(dm.num_classes, 3, net={"pretrained": False, "stem": "small"})
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                             enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
        try:
            if skip:
                with pytest.warns(UserWarning, match=rf"{first}: .*replaced by another video of its class"):
                    trainer.fit(model, datamodule=dm)
                assert list(dm.skipped) == [first]
            else:
                with pytest.raises(WorkerVideoError, match=rf"^\S*{first}: "):
                    trainer.fit(model, datamodule=dm)
        finally:
            (root / "videos" / first).write_bytes(data)


def test_a_test_video_that_fails_in_a_worker_is_left_out_and_recorded(tiny_streams, tmp_path, capsys):
    """With data.skip_bad_videos, a test video that passes the check and fails while read (here two
    clips of two sizes joined, as captures are: the size change shows only when its second clip is
    decoded) was said to be "replaced by another video of its class", and the test's top-1 was over
    the others with nothing in metrics.json saying so. The test protocol scores each video under its
    own id, so it is missing: the warning, a line and metrics.json (``videos``, ``skipped_videos``)
    say so."""
    from videos import encode, moving_frames

    root = tmp_path / "data"
    shutil.copytree(tiny_streams["root"], root)
    listed = (root / "splits" / "testlist01.txt").read_text().splitlines()
    name, label = listed[0].split()
    joined = Path(name).with_suffix(".ts").as_posix()
    first = encode(tmp_path / "a.ts", moving_frames(24, 64, 64), codec="mpeg4", gop=12)
    second = encode(tmp_path / "b.ts", moving_frames(24, 48, 48, seed=1), codec="mpeg4", gop=12)
    (root / "videos" / joined).write_bytes(first.read_bytes() + second.read_bytes())
    (root / "splits" / "testlist01.txt").write_text("\n".join([f"{joined} {label}", *listed[1:]]) + "\n")
    runs = tmp_path / "runs"
    shutil.copytree(tiny_streams["runs"] / "istream", runs / "istream")
    common = [*tiny_streams["common"], f"data.root={root}", f"run_root={runs}", "data.skip_bad_videos=true"]
    capsys.readouterr()
    with pytest.warns(UserWarning, match=rf"{joined}: its frame size changes mid-stream .*; left out of the test scores"):
        assert main(["test", str(EXPERIMENTS / "istream.yaml"), *common, "--subsets", "test"]) == 0
    n = len(listed)
    assert (f"test: 1 video(s) failed while read and are left out of the scores (data.skip_bad_videos): {n - 1} of "
            f"{n} scored; metrics.json names them") in capsys.readouterr().out
    metrics = json.loads((runs / "istream" / "metrics.json").read_text())["test"]
    assert metrics["videos"] == n - 1 and list(metrics["skipped_videos"]) == [joined]
    assert metrics["skipped_videos"][joined].startswith("its frame size changes mid-stream (64x64, then 48x48")
    assert len(load_scores(runs / "istream" / "scores_test.npz").video_ids) == n - 1
    assert joined not in load_scores(runs / "istream" / "scores_test.npz").video_ids


def test_a_test_with_no_batch_is_one_line(tiny_streams, tmp_path, capsys):
    """``trainer.limit_test_batches=0``: one line, nothing written; until 2026-12-08 a ValueError
    traceback after the test loop ran no batch."""
    capsys.readouterr()
    assert main(["test", str(EXPERIMENTS / "istream.yaml"), *tiny_streams["common"], f"run_dir={tmp_path / 'run'}",
                 "--checkpoint", str(tiny_streams["istream"]), "trainer.limit_test_batches=0"]) == 2
    assert _one_line(capsys, "test") == "trainer.limit_test_batches=0: no batch to score (the istream config)"
    assert not (tmp_path / "run").exists()


def test_a_fit_that_ran_no_step_is_one_line_and_marked_failed(tiny_streams, tmp_path, capsys):
    """No training batch (as DDP with fewer batches than ranks): one line saying why, the folder
    marked failed.json (never a run in progress, never a missing last.ckpt traceback); the next
    fit there runs and removes the mark."""
    args = [*tiny_streams["common"], f"run_root={tmp_path}"]
    capsys.readouterr()
    assert main(["fit", str(EXPERIMENTS / "istream.yaml"), *args, "trainer.limit_train_batches=0"]) == 2
    line = _one_line(capsys, "fit")
    assert "no training step ran: 0 training batches per process (1 process(es), batch_size 8" in line
    run = tmp_path / "istream"
    assert json.loads((run / "failed.json").read_text())["error"].startswith("no training step ran")
    assert not (run / "fit.json").exists() and not (run / "checkpoints" / "best.ckpt").exists()
    assert main(["fit", str(EXPERIMENTS / "istream.yaml"), *args]) == 0
    assert (run / "fit.json").is_file() and not (run / "failed.json").exists()
    # the same over that finished run with overwrite=true: until 2026-12-08 its old last.ckpt hid that no step
    # ran, and the new fit.json named the old run's checkpoint as its best (exit 0)
    capsys.readouterr()
    assert main(["fit", str(EXPERIMENTS / "istream.yaml"), *args, "trainer.limit_train_batches=0", "overwrite=true"]) == 2
    assert "no training step ran" in _one_line(capsys, "fit")
    assert not (run / "fit.json").exists() and not list((run / "checkpoints").iterdir())


def test_ddp_with_fewer_batches_than_ranks_is_one_line(tiny_streams, tmp_path):
    """Two DDP processes on the CPU, 12 training videos each and batch_size 16 (the incomplete
    batch dropped): no step runs; one line says why, exit 2, the run folder marked failed.json, no
    traceback and no "best checkpoint". The training list also names a video that is not there:
    the package's warning is one line too (``ip-tsn fit: warning: ...``), not Python's two, and
    rank 0's alone (until 2026-12-08 each rank set up and said it)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_streams["root"], root)
    with open(root / "splits" / "trainlist01.txt", "a") as f:
        f.write("PoolJump/v_PoolJump_gone.mp4 3\n")
    args = [a for a in tiny_streams["common"] if not a.startswith("data.batch_size=")] + [f"data.root={root}"]
    cmd = [sys.executable, "-m", "ip_tsn.cli", "fit", str(EXPERIMENTS / "istream.yaml"), *args, f"run_root={tmp_path}",
           "data.batch_size=16", "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    err = [line for line in proc.stderr.splitlines() if line.startswith("ip-tsn fit: error: ")]
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]  # from rank 0 alone (each rank's until 2026-12-08)
    assert "no training step ran: 0 training batches per process (2 process(es), batch_size 16" in err[0]
    assert "Traceback" not in proc.stderr and "best checkpoint" not in proc.stdout
    warned = [line for line in proc.stderr.splitlines() if "v_PoolJump_gone.mp4" in line]
    assert warned == [f"ip-tsn fit: warning: synthetic train split 1: 1 of 25 listed videos are missing under "
                      f"{root / 'videos'} (e.g. PoolJump/v_PoolJump_gone.mp4); skipped"]  # rank 0's (each rank's before)
    assert "UserWarning" not in proc.stderr
    assert (tmp_path / "istream" / "failed.json").is_file() and not (tmp_path / "istream" / "fit.json").exists()


def test_any_torchvision_backbone_by_name(tiny_streams, tmp_path, capsys):
    """A MobileNet P-stream (5 input channels: its first conv inflated, its classifier's last Linear
    the feature layer) trains through the same command; a misspelt name is one line."""
    args = [*tiny_streams["common"], f"run_root={tmp_path}", "trainer.limit_train_batches=1"]
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *args, "model.net.arch=mobilenet_v3_small"]) == 0
    ckpt = torch.load(tmp_path / "pstream" / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["hyper_parameters"]["net"]["arch"] == "mobilenet_v3_small"
    assert ckpt["state_dict"]["model.backbone.net.features.0.0.weight"].shape[1] == 5
    capsys.readouterr()
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *args, "model.net.arch=mobilenet_v3_smal",
                 f"run_root={tmp_path / 'typo'}"]) == 2
    assert "did you mean mobilenet_v3_small" in _one_line(capsys, "fit")


def test_compile_option_gives_the_same_outputs():
    from ip_tsn.lit.classifier import StreamClassifier

    torch.manual_seed(0)
    eager = StreamClassifier(3, 5, net={"pretrained": False}).eval()
    torch.manual_seed(0)
    compiled = StreamClassifier(3, 5, net={"pretrained": False}, compile="eager").eval()
    assert compiled.model.forward_frames is not type(compiled.model).forward_frames
    x = torch.randn(2, 3, 5, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled.model(x)[0], eager.model(x)[0])
    assert compiled.state_dict().keys() == eager.state_dict().keys()


def test_wandb_that_cannot_go_online_logs_offline_or_says_so(tiny_streams, tmp_path, monkeypatch, capsys):
    """A W&B key configured and no route to W&B's server (a cluster's compute node): the run, online
    because a key exists, is logged offline, said in one line; asked online (logger.wandb_mode=online),
    one line, exit 2, before training. Both were a traceback from inside wandb after its timeout."""
    for var in ("WANDB_MODE", "WANDB_RUN_ID", "WANDB_SWEEP_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: nothing answers there
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "2")
    import wandb

    wandb.teardown()  # wandb reads its settings once per process: an earlier test's run set them up
    args = [a for a in tiny_streams["common"] if not a.startswith("logger.wandb")] + ["logger.wandb=true",
                                                                                     f"run_root={tmp_path}"]
    capsys.readouterr()
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *args]) == 0
    out = capsys.readouterr().out
    assert "W&B: the online run could not start (" in out  # wandb's reason (its words vary with its state)
    assert f"logging offline instead: upload it later with wandb sync {tmp_path / 'pstream' / 'wandb'}/offline-run-*" in out
    run_id = json.loads((tmp_path / "pstream" / "wandb_run.json").read_text())["id"]
    assert list((tmp_path / "pstream" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert (tmp_path / "pstream" / "fit.json").is_file()
    assert main(["fit", str(EXPERIMENTS / "pstream.yaml"), *args, "run_name=asked", "logger.wandb_mode=online"]) == 2
    line = _one_line(capsys, "fit")
    assert line.startswith("W&B could not start its online run (")
    assert line.endswith("on a machine without network set logger.wandb_mode=offline and upload the run later with "
                         "wandb sync, or set logger.wandb=false")
    assert not (tmp_path / "asked" / "checkpoints").exists()


def test_tensorboard_logger(tiny_streams, tmp_path):
    pytest.importorskip("tensorboard")
    assert main(["fit", str(EXPERIMENTS / "istream.yaml"), *tiny_streams["common"], f"run_root={tmp_path}",
                 "trainer.limit_train_batches=1", "logger.tensorboard=true"]) == 0
    events = list((tmp_path / "istream" / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
