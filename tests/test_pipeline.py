"""End to end on a tiny synthetic dataset: teacher -> cache -> student -> I-stream -> test -> fuse,
through the `ip-tsn` CLI; a stale cache refused; DDP on 2 CPU processes; one W&B sweep trial."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ip_tsn.cli import main
from ip_tsn.data.synthetic import TINY_CONFIG, generate_synthetic
from ip_tsn.data.teacher_cache import TeacherCache
from ip_tsn.evaluation.scores import load_scores
from processes import held_by_another

ROOT = Path(__file__).resolve().parents[1]
FAST = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger.wandb=false",
        "data.num_workers=0", "data.crop_size=32", "data.test_segments=3", "data.batch_size=8",
        "trainer.limit_train_batches=2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny synthetic dataset with DIS flow, and the common overrides pointing at it."""
    base = tmp_path_factory.mktemp("pipeline")
    data = base / "synthetic"
    generate_synthetic(data, **TINY_CONFIG, progress=False)
    subprocess.run([sys.executable, str(ROOT / "data_prep" / "extract_flow.py"), str(data), "--method", "dis", "--videos", "source",
                    "--workers", "1", "--no-progress"], check=True, capture_output=True, timeout=300)
    yield base, FAST + [f"data.root={data}", f"run_root={base / 'runs'}"]
    shutil.rmtree(base, ignore_errors=True)  # GBs of checkpoints: gone once the module is done


def run(*args: str) -> None:
    assert main(list(args)) == 0, args


def test_teacher_cache_student_fusion(tiny, capsys):
    base, common = tiny
    runs = base / "runs"
    run("fit", str(ROOT / "experiments/teacher.yaml"), *common)
    assert (runs / "teacher/checkpoints/best.ckpt").is_file() and (runs / "teacher/checkpoints/last.ckpt").is_file()
    saved = yaml.safe_load((runs / "teacher/config.yaml").read_text())
    assert saved["data"]["modality"] == "flow" and saved["run_dir"] == str(runs / "teacher")

    run("cache", str(ROOT / "experiments/cache.yaml"), *common)
    cache = TeacherCache(runs / "teacher_cache")
    assert len(cache.video_ids) == 36  # 12 classes x (2 train + 1 val), each once (train rows + val rows for the report)
    grid = cache.frames(cache.video_ids[0])  # 24 frames, GOP 12: every P-frame (stacks padded at the start), stride 1
    assert grid.tolist() == [t for t in range(24) if t % 12] and cache.num_views == 5
    targets = json.loads((runs / "teacher_cache" / "targets.json").read_text())
    assert targets["train"]["videos"] == 24 and targets["val"]["videos"] == 12
    assert targets["train"]["rows"] == 24 * 22 * 5 and 0 <= targets["val"]["top1"] <= 100
    assert 0 < targets["val"]["idle_entropy_ratio"] <= 1.0 + 1e-6 or targets["val"]["idle_rows"] == 0
    logits, features = cache.lookup(cache.video_ids[0], grid[[0, 3, 8]], view=4)
    assert logits.shape == (3, 12) and features.shape == (3, 512) and np.isfinite(logits).all()

    for stage in ("student", "pstream", "istream"):
        run("fit", str(ROOT / f"experiments/{stage}.yaml"), *common)
    for stage in ("teacher", "pstream", "student", "istream"):
        run("test", str(ROOT / f"experiments/{stage}.yaml"), *common)
        scores = load_scores(runs / stage / "scores_test.npz")
        assert len(scores.video_ids) == 12 and scores.scores.shape == (12, 12)
        np.testing.assert_allclose(scores.scores.sum(1), 1.0, rtol=1e-4)  # softmax scores per video
    capsys.readouterr()
    run("fuse", str(ROOT / "experiments/fuse.yaml"), *common)
    table = capsys.readouterr().out
    for row in ("teacher (flow)", "P-stream", "P-stream distilled", "I-stream", "fusion"):
        assert f"| {row} " in table
    results = json.loads((runs / "fusion/results.json").read_text())
    assert 0.0 <= results["results"]["fusion"]["top1"] <= 1.0
    for name, row in results["streams"].items():
        low, high = row["top1_ci"]
        assert 0.0 <= low <= row["top1"] <= high <= 100.0, name
    for key in ("distilled_minus_plain", "fused_minus_best"):
        diff = results["paired"][key]
        assert diff["low"] <= diff["mean"] <= diff["high"] and 0.0 <= diff["mcnemar_p"] <= 1.0
    assert set(results["checks"]) == {"teacher_minus_plain", "appearance_alone", "plain_alone", "oracle", "idle_entropy",
                                      "no_active"}
    assert results["checks"]["no_active"]["value"] is not None  # from the cache's targets.json
    assert results["checks"]["oracle"]["value"] is not None  # groups read from synthetic.json
    assert (runs / "fusion/confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    envs = results["provenance"]  # what trained each stream, from its fit.json: one machine and commit here
    assert set(envs) == {"teacher (flow)", "P-stream", "P-stream distilled", "I-stream"}
    assert all(e["torch"] == torch.__version__ for e in envs.values()) and len({e["git_commit"] for e in envs.values()}) == 1
    assert "\nTrained by: " in table and "(every stream)." in table


def test_student_refuses_a_stale_cache(tiny, capsys):
    base, common = tiny
    runs = base / "runs"
    if not (runs / "teacher_cache/manifest.json").is_file():
        pytest.skip("needs the pipeline test's cache")
    other = runs / "other_teacher.ckpt"
    other.write_bytes((runs / "teacher/checkpoints/best.ckpt").read_bytes() + b"changed")
    code = main(["fit", str(ROOT / "experiments/student.yaml"), *common, f"teacher.checkpoint={other}", "overwrite=true"])
    err = capsys.readouterr().err
    assert code == 2 and "teacher_cache" in err and "teacher_sha256" in err


def test_feature_imitation_refuses_a_cache_without_features(tiny, tmp_path, capsys):
    """A cache made with ``cache.features=false`` and a student whose ``distill.feat_weight`` is
    above 0: one line naming both, nothing written. Until 2026-12-08 a RuntimeError (512 against 0)
    at the first training step."""
    base, common = tiny
    runs = base / "runs"
    if not (runs / "teacher/checkpoints/best.ckpt").is_file():
        pytest.skip("needs the pipeline test's teacher")
    cache = tmp_path / "cache"
    run("cache", str(ROOT / "experiments/cache.yaml"), *common, f"cache.dir={cache}", "cache.features=false")
    student = [*common, f"data.teacher_cache={cache}", f"run_root={tmp_path / 'runs'}",
               f"teacher.checkpoint={runs / 'teacher/checkpoints/best.ckpt'}"]
    capsys.readouterr()
    assert main(["fit", str(ROOT / "experiments/student.yaml"), *student]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ip-tsn fit: error: distill.feat_weight=1.0 imitates the teacher's features, but the teacher cache {cache} "
        "holds none (made with cache.features=false): make it again with cache.features=true, or set "
        "distill.feat_weight=0")
    assert not (tmp_path / "runs").exists()


def test_the_cache_of_a_copied_data_set_is_used_and_of_other_videos_is_stale(tiny, tmp_path, capsys):
    """Data staged to a node's local scratch (a copy at another root): the student trains on the
    teacher cache made from the original, which until 2026-12-07 it refused as stale (the cache named
    its data set by its root's path). A training video replaced by another of another size (another
    draw, another re-encoding) still makes the cache stale, in one line."""
    base, common = tiny
    if not (base / "runs/teacher_cache/manifest.json").is_file():
        pytest.skip("needs the pipeline test's cache")
    data = Path(next(c for c in common if c.startswith("data.root=")).split("=", 1)[1])
    copy = tmp_path / "scratch"
    shutil.copytree(data, copy)
    student = ["fit", str(ROOT / "experiments/student.yaml"), *common, f"data.root={copy}", "run_name=on_scratch"]
    run(*student)
    assert (base / "runs/on_scratch/fit.json").is_file()
    videos = sorted(copy.glob("videos/*/*_train_000.mp4"))
    replaced, other = videos[0], next(v for v in videos if v.stat().st_size != videos[0].stat().st_size)
    shutil.copyfile(other, replaced)
    capsys.readouterr()
    assert main([*student, "overwrite=true"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"ip-tsn fit: error: teacher cache {base / 'runs/teacher_cache'} is stale: dataset.videos is "
                           "'36 videos of trainval (paths and sizes: sha256 ") and line.endswith("; rebuild the cache")


def test_a_student_resumes_where_its_teacher_and_cache_moved(tiny, tmp_path, capsys):
    """The runs moved (teacher, cache, a student killed before its record): the student resumes with
    the teacher and cache at their new places, which its checkpoint's teacher SHA-256 vouches for."""
    base, common = tiny
    runs, moved = base / "runs", tmp_path / "runs"
    if not (runs / "student/checkpoints/last.ckpt").is_file():
        pytest.skip("needs the pipeline test's student")
    shutil.copytree(runs / "teacher_cache", moved / "teacher_cache")
    (moved / "teacher/checkpoints").mkdir(parents=True)
    shutil.copyfile(runs / "teacher/checkpoints/best.ckpt", moved / "teacher/checkpoints/best.ckpt")
    shutil.copytree(runs / "student", moved / "student", ignore=shutil.ignore_patterns("best.ckpt", "fit.json"))
    capsys.readouterr()
    assert main(["fit", str(ROOT / "experiments/student.yaml"), *common, f"run_root={moved}", "ckpt_path=last",
                 "trainer.max_epochs=2"]) == 0
    assert (f"data.teacher_cache, run_dir, run_root, teacher.checkpoint moved since this run started "
            f"(data.teacher_cache: '{runs / 'teacher_cache'}' -> '{moved / 'teacher_cache'}'); the same teacher, so it "
            "resumes there") in capsys.readouterr().out
    assert json.loads((moved / "student/fit.json").read_text())["epochs"] == 2


def test_a_cache_is_not_replaced_while_a_student_reads_it(tiny, capsys):
    """``ip-tsn cache overwrite=true`` while a student trains on that cache (it rewrites the shards
    the student reads), and a student started while a cache is being written: one line each, exit 2,
    nothing replaced."""
    base, common = tiny
    runs = base / "runs"
    cache_dir, student = runs / "teacher_cache", runs / "student"
    if not (cache_dir / "manifest.json").is_file() or not (student / "fit.json").is_file():
        pytest.skip("needs the pipeline test's cache and student")
    manifest, record = (cache_dir / "manifest.json").read_bytes(), (student / "fit.json").read_bytes()
    capsys.readouterr()
    with held_by_another(cache_dir, "cache.dir", shared=True) as reader:
        assert main(["cache", str(ROOT / "experiments/cache.yaml"), *common, "overwrite=true"]) == 2
        assert f"cache.dir={cache_dir}: in use by another command" in capsys.readouterr().err
    with held_by_another(cache_dir, "cache.dir") as writer:
        assert main(["fit", str(ROOT / "experiments/student.yaml"), *common, "overwrite=true"]) == 2
        err = capsys.readouterr().err
        assert f"cache.dir={cache_dir}: in use by another command" in err and f"pid {writer.pid} on" in err
    assert (cache_dir / "manifest.json").read_bytes() == manifest and (student / "fit.json").read_bytes() == record
    assert reader.returncode and writer.returncode  # both killed, as the blocks end


def test_a_teacher_trained_on_the_students_test_videos_is_refused(tiny, capsys):
    """A teacher reused for another split (to save its training) whose training list holds test
    videos of the student's split: the cache and the student with an online teacher are one line
    each, exit 2, before anything is written; the student would learn those labels from it."""
    base, common = tiny
    teacher = base / "runs" / "teacher/checkpoints/best.ckpt"
    if not teacher.is_file():
        pytest.skip("needs the pipeline test's teacher")
    lists = Path(next(c for c in common if c.startswith("data.root=")).split("=", 1)[1]) / "splits"
    for name, source in (("trainlist04.txt", "testlist01.txt"), ("vallist04.txt", "vallist01.txt")):
        (lists / name).write_text((lists / source).read_text())
    (lists / "testlist04.txt").write_text("\n".join((lists / "trainlist01.txt").read_text().splitlines()[:3] + [""]))
    other = [*common, "data.split=4", f"teacher.checkpoint={teacher}", f"run_root={base / 'runs4'}"]
    capsys.readouterr()
    for command in (["cache", str(ROOT / "experiments/cache.yaml"), *other],
                    ["fit", str(ROOT / "experiments/student.yaml"), *other, "distill.online_teacher=true"]):
        assert main(command) == 2, command
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert (f"{teacher}: trained on 3 of the 3 videos of the test subset of data=synthetic" in line and
                "split 4), data.seed=0" in line and line.endswith(
                    "so the student would learn their labels from its targets and be scored on memory; use a teacher "
                    "trained on this split")), line
    assert not (base / "runs4").exists()


def test_scores_name_their_checkpoint_and_fuse_follows_them(tiny, capsys):
    """A run's scores name the checkpoint that made them: scoring another checkpoint into the run is
    one line, exit 2, the scores kept, unless overwrite=true; fuse refuses a stream whose val and test
    scores name two checkpoints or one written again since, and its model.json holds the one the
    scores name."""
    base, common = tiny
    runs = base / "runs"
    run_dir = runs / "istream"
    if not (run_dir / "scores_val.npz").is_file() or not (runs / "fusion/model.json").is_file():
        pytest.skip("needs the pipeline test's scores")
    scores = run_dir / "scores_test.npz"
    assert load_scores(scores).checkpoint == "checkpoints/best.ckpt"
    test = ["test", str(ROOT / "experiments/istream.yaml"), *common, "--checkpoint", str(run_dir / "checkpoints/last.ckpt")]
    before = scores.read_bytes()
    capsys.readouterr()
    assert main([*test, "--subsets", "test"]) == 2
    assert (f"{scores}: holds the scores of checkpoints/best.ckpt, not of checkpoints/last.ckpt; pass overwrite=true"
            in capsys.readouterr().err) and scores.read_bytes() == before
    run(*test, "--subsets", "test", "overwrite=true")
    assert load_scores(scores).checkpoint == "checkpoints/last.ckpt"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["val"]["checkpoint"], metrics["test"]["checkpoint"]) == ("checkpoints/best.ckpt", "checkpoints/last.ckpt")

    results = (runs / "fusion/results.json").read_bytes()
    fuse = ["fuse", str(ROOT / "experiments/fuse.yaml"), *common]
    capsys.readouterr()
    assert main(fuse) == 2
    err = capsys.readouterr().err
    assert f"{scores}: the scores of checkpoints/last.ckpt, but {run_dir / 'scores_val.npz'} holds those of " \
           "checkpoints/best.ckpt: stream 'I-stream' was scored by two checkpoints" in err, err
    assert (runs / "fusion/results.json").read_bytes() == results
    run(*test, "--subsets", "val", "overwrite=true")
    run(*fuse)
    entries = {s["name"]: s for s in json.loads((runs / "fusion/model.json").read_text())["streams"]}
    assert entries["I-stream"]["checkpoint"] == "../istream/checkpoints/last.ckpt"
    assert entries["P-stream distilled"]["checkpoint"] == "../student/checkpoints/best.ckpt"
    assert entries["I-stream"]["checkpoint_sha256"] == load_scores(scores).checkpoint_sha256
    shutil.copyfile(runs / "pstream/checkpoints/best.ckpt", run_dir / "checkpoints/last.ckpt")  # new bytes, as a training
    assert main(fuse) == 2
    assert f"{run_dir / 'scores_val.npz'}: scored by an earlier {run_dir / 'checkpoints/last.ckpt'} (it was written again" in \
        capsys.readouterr().err
    assert main(["predict", str(scores), "--model", str(runs / "fusion")]) == 2  # nor predicts with the new network
    assert "stream 'I-stream' was fused from the scores of an earlier" in capsys.readouterr().err


def test_spatial_term_trains_with_the_online_teacher_only(tiny, capsys):
    """``ablations/spatial_only.yaml`` (issue 19, item 3): the layer4 maps of the online teacher on the
    student's exact views; without the online teacher it is one line, exit 2, nothing written."""
    import csv

    base, common = tiny
    runs = base / "runs"
    if not (runs / "teacher/checkpoints/best.ckpt").is_file():
        pytest.skip("needs the pipeline test's teacher")
    config = str(ROOT / "experiments/ablations/spatial_only.yaml")
    capsys.readouterr()
    code = main(["fit", config, *common, "distill.online_teacher=false", "name=spatial_cached"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "distill.spatial_weight > 0 needs distill.online_teacher=true" in err[-1]
    assert not (runs / "spatial_cached").exists()
    run("fit", config, *common)
    rows = list(csv.DictReader((runs / "student_spatial_only/logs/metrics.csv").open()))
    row = next(r for r in rows if r.get("train/loss_epoch"))
    spatial, kd, ce = (float(row[f"train/{k}_epoch"]) for k in ("spatial", "kd", "ce"))
    assert spatial > 0 and kd == 0.0 and float(row["train/loss_epoch"]) == pytest.approx(ce + 50.0 * spatial, rel=1e-4)


def test_a_killed_cache_is_resumed(tiny, capsys):
    """``ip-tsn cache`` stopped mid-way by a time limit (SIGTERM: one line saying the same command
    resumes it, exit 143; SIGKILL, where the limit's grace ends, leaves the same shards): the same
    command again computes only the videos the stopped run's finished shards lack, and the cache
    equals one computed in one go, video for video. Until 2026-12-08 the line said nothing of resuming."""
    import signal
    import time

    base, common = tiny
    whole = base / "runs" / "teacher_cache"
    if not (whole / "manifest.json").is_file():
        pytest.skip("needs the pipeline test's cache")
    out = base / "resumed_cache"
    cmd = ["cache", str(ROOT / "experiments/cache.yaml"), *common, f"cache.dir={out}", "cache.chunk_videos=2"]
    assert main([*cmd, "trainer.limit_predict_batches=0"]) == 2  # was a ValueError traceback after an empty loop
    assert capsys.readouterr().err.strip() == ("ip-tsn cache: error: trainer.limit_predict_batches=0: no batch to cache "
                                               "(the cache config)")
    assert not out.exists()
    proc = subprocess.Popen([sys.executable, "-m", "ip_tsn.cli", *cmd], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(list(out.glob("shard-*.index.json"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and not (out / "manifest.json").exists(), err[-3000:]
    assert err.strip().splitlines()[-1] == (
        "ip-tsn cache: terminated (SIGTERM: a job's time limit, scancel, a preemption or docker stop); the same "
        "command resumes it, keeping the videos its finished shards hold (a shard every cache.chunk_videos videos)")
    kept = {v["video_id"] for f in out.glob("shard-*.index.json") for v in json.loads(f.read_text())["videos"]}
    assert 6 <= len(kept) < 36
    capsys.readouterr()
    assert main(cmd) == 0
    said = capsys.readouterr().out
    assert f"teacher cache: resuming {out}: {len(kept)} of 36 videos already cached" in said
    resumed, reference = TeacherCache(out), TeacherCache(whole)
    resumed.verify()
    assert resumed.video_ids == reference.video_ids and len(resumed.video_ids) == 36
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
    assert sum(s["num_rows"] for s in resumed.manifest["shards"]) == sum(s["num_rows"] for s in reference.manifest["shards"])
    for vid in reference.video_ids:  # each video computed once, by one run or the other: the same rows
        np.testing.assert_array_equal(resumed.video_logits(vid), reference.video_logits(vid))
    (out / "manifest.json").unlink()  # killed after the last shard, before the manifest: nothing left to compute
    (out / ".shard-x-0-9.logits.bin.tmp-4194304").write_bytes(b"\0" * 64)  # and a temporary a kill left
    assert main(cmd) == 0
    assert "resuming" in capsys.readouterr().out and TeacherCache(out).video_ids == reference.video_ids
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]


def test_bad_override_and_missing_config_are_clear(capsys):
    assert main(["fit", "experiments/nope.yaml"]) == 2
    assert "nope.yaml: config file not found" in capsys.readouterr().err
    assert main(["fit", str(ROOT / "experiments/teacher.yaml"), "data=imagenet"]) == 2
    assert "experiments/data/imagenet.yaml" in capsys.readouterr().err


def _cli(args: list[str], env: dict | None = None, timeout: int = 400) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ip_tsn.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_ddp_two_cpu_processes_train_and_cache(tiny, capsys):
    """Teacher training and cache writing under DDP (2 processes, gloo): every video cached once,
    each command's result printed once.
    A finished cache (here one process's) is kept from a second ``cache`` (one line, exit 2) and
    from an ``overwrite=true`` whose teacher does not load; a working ``overwrite=true`` under DDP
    replaces it (each process passes the check; the new manifest is the only one)."""
    base, common = tiny
    ddp = ["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu", f"run_root={base / 'ddp'}"]
    fitted = _cli(["fit", str(ROOT / "experiments/teacher.yaml"), *common, *ddp])
    assert (base / "ddp/teacher/checkpoints/last.ckpt").is_file()
    assert fitted.stdout.count("best checkpoint: ") == 1  # the result once, from rank zero
    assert fitted.stdout.count("2 processes (trainer.devices x trainer.num_nodes), each a batch of data.batch_size=8: "
                               "16 videos a step") == 1  # a step's batch is each process's times the processes
    record = json.loads((base / "ddp/teacher/fit.json").read_text())
    assert (record["processes"], record["global_batch_size"]) == (2, 16)

    path, cache = base / "ddp/teacher_cache/manifest.json", ["cache", str(ROOT / "experiments/cache.yaml"), *common,
                                                              f"run_root={base / 'ddp'}", "cache.subset=val"]
    assert main([*cache, "trainer.accelerator=cpu"]) == 0  # one process: one shard
    before = path.read_bytes()
    assert len(json.loads(before)["shards"]) == 1
    capsys.readouterr()
    assert main(cache) == 2
    assert f"{path.parent} holds a finished teacher cache ({path}); pass overwrite=true" in capsys.readouterr().err
    assert main([*cache, "overwrite=true", f"teacher.checkpoint={base / 'nope.ckpt'}"]) == 2
    assert "nope.ckpt" in capsys.readouterr().err and path.read_bytes() == before  # the old cache kept whole
    assert _cli([*cache, *ddp, "overwrite=true", "cache.subset=trainval"]).stdout.count(f"teacher cache: {path}") == 1
    manifest = json.loads(path.read_text())
    assert len(manifest["shards"]) == 2  # one per process: the one-process cache is gone
    assert manifest["num_videos"] == len(manifest["videos"]) == 36  # trainval: 12 classes x (2 train + 1 val)
    rows = sum(s["num_rows"] for s in manifest["shards"])
    assert sum(v["count"] for v in manifest["videos"].values()) * manifest["num_views"] == rows
    TeacherCache(path.parent).verify()


def test_wandb_sweep_trial_runs_offline(tiny):
    """One trial of experiments/sweeps/student.yaml, its command expanded as the W&B agent does."""
    base, common = tiny
    if not (base / "runs/teacher_cache/manifest.json").is_file():
        pytest.skip("needs the pipeline test's cache")
    sweep = yaml.safe_load((ROOT / "experiments/sweeps/student.yaml").read_text())
    params = {"distill.temperature": 2, "distill.imitation": 0.5, "distill.feat_weight": 0.25, "model.optim.lr": 0.003}
    assert set(params) == set(sweep["parameters"])
    command = []
    for part in sweep["command"]:
        if part == "${env}":
            continue
        if part == "${interpreter}":
            command.append(sys.executable)
        elif part == "${args_no_hyphens}":
            command += [f"{k}={v}" for k, v in params.items()]
        else:
            command.append(part)
    overrides = [o for o in common if not o.startswith("logger.wandb")] + ["run_name=sweep_trial", "name=sweep_trial"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_API_KEY": "", "WANDB_DIR": str(base)}
    proc = subprocess.run(command + overrides, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = yaml.safe_load((base / "runs/sweep_trial/config.yaml").read_text())
    assert saved["distill"]["temperature"] == 2 and saved["model"]["optim"]["lr"] == 0.003
    assert list((base / "runs/sweep_trial/wandb").glob("offline-run-*")), "no offline W&B run written"
    assert "anonymous" not in proc.stderr  # wandb's warning on the deprecated setting Lightning passes


def test_a_training_beside_another_gives_the_same_weights(tiny):
    """`make demo` trains the plain P- and I-stream beside the teacher chain (DEMO_JOBS=2). A
    training that shares the machine with another one (same data root, loader workers on) ends with
    the same weights, bit for bit, as the same training alone."""
    base, common = tiny
    longer = ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "data.num_workers=2"]

    def fit(stage: str, root: Path) -> list[str]:
        return ["fit", str(ROOT / f"experiments/{stage}.yaml"), *common, *longer, f"run_root={root}"]

    def checkpoint(root: Path) -> dict:
        return torch.load(root / "pstream/checkpoints/last.ckpt", map_location="cpu", weights_only=False)

    _cli(fit("pstream", base / "alone"))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # as make demo runs them
    logs = {stage: base / f"beside_{stage}.log" for stage in ("pstream", "istream")}
    procs = {}
    for stage, log in logs.items():  # stderr to a file, not a pipe: neither run waits for its reader
        with log.open("w") as err:
            procs[stage] = subprocess.Popen([sys.executable, "-m", "ip_tsn.cli", *fit(stage, base / "beside")],
                                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    for stage, proc in procs.items():
        assert proc.wait(timeout=400) == 0, logs[stage].read_text()[-3000:]
    alone, beside = checkpoint(base / "alone"), checkpoint(base / "beside")
    assert alone["global_step"] == beside["global_step"] == 6  # 2 epochs x 3 batches
    a, b = alone["state_dict"], beside["state_dict"]
    assert a.keys() == b.keys() and len(a) > 50
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
