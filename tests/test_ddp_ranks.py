"""A DDP rank that dies (day-two defects found 2026-12-07): two real CPU processes, one of them
killed by a real SIGKILL, as the out-of-memory killer takes the largest process of a job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processes import default_sigint

from ip_tsn.data.synthetic import TINY_CONFIG, generate_synthetic

ROOT = Path(__file__).resolve().parents[1]
FAST = ["trainer.enable_progress_bar=false", "logger.wandb=false", "data.num_workers=0", "data.crop_size=32",
        "data.test_segments=3", "data.batch_size=4", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
        "model.net.pretrained=false", "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp") / "synthetic"
    generate_synthetic(root, **TINY_CONFIG, progress=False)
    yield root
    shutil.rmtree(root.parent, ignore_errors=True)


def _rank_process(main: int, rank: int, timeout: float = 120.0) -> int:
    """The pid of the DDP rank ``rank`` that process ``main`` started (its child with that LOCAL_RANK)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for pid in Path(f"/proc/{main}/task/{main}/children").read_text().split():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"LOCAL_RANK={rank}".encode() in env:
                return int(pid)
        time.sleep(0.1)
    pytest.fail(f"no rank {rank} under pid {main}")


def _group_left(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` still running (a zombie, dead and not yet reaped, is not)."""
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if os.getpgid(int(entry.name)) == pgid and state != "Z":
                    left.append(int(entry.name))
            except OSError:
                pass
    return left


def _none_left(pgid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while _group_left(pgid) and time.monotonic() < end:  # SIGKILLed: gone as soon as the kernel has them
        time.sleep(0.1)
    return not _group_left(pgid)


def _kill_when(args: list[str], ready: Path, rank: int) -> tuple[subprocess.Popen, int, str]:
    """``ip-tsn *args`` on 2 DDP processes whose rank ``rank`` gets a real SIGKILL once ``ready``
    exists: ``(the main process, rank 1's pid, stderr)``, all its processes gone."""
    proc = subprocess.Popen([sys.executable, "-m", "ip_tsn.cli", *args, *FAST[-3:]], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint)
    try:
        rank1 = _rank_process(proc.pid, 1)
        end = time.monotonic() + 180
        while not ready.is_file():
            assert proc.poll() is None and time.monotonic() < end, proc.communicate()[1][-3000:]
            time.sleep(0.02)
        os.kill(rank1 if rank == 1 else proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)  # the pipe ends once every process that shares it is gone
    finally:
        if _group_left(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc, rank1, err


def _kill_after_an_epoch(data: Path, tmp_path: Path, rank: int) -> tuple[subprocess.Popen, int, str, Path]:
    """A 2-process DDP fit of the I-stream whose rank ``rank`` gets a real SIGKILL once ``last.ckpt``
    holds an epoch: ``(the main process, rank 1's pid, stderr, last.ckpt)``, all its processes gone."""
    last = tmp_path / "istream" / "checkpoints" / "last.ckpt"
    proc, rank1, err = _kill_when(["fit", str(ROOT / "experiments" / "istream.yaml"), *FAST[:-3], f"data.root={data}",
                                   f"run_root={tmp_path}", "trainer.max_epochs=500"], last, rank)
    return proc, rank1, err, last


def test_a_killed_rank_stops_the_job_in_one_line(data, tmp_path):
    """Rank 1 SIGKILLed after rank 0 saved an epoch: one line naming the rank, its pid, the signal,
    what to change and how to resume; exit 2 and no process of the job left. Until 2026-12-07 a gloo
    traceback from rank 0 on the CPU (with NCCL, Lightning's watch SIGKILLed every process: exit 137,
    a line about zombies). The epoch-level training loss is every rank's mean: no Lightning warning
    that it is rank 0's."""
    proc, rank1, err, last = _kill_after_an_epoch(data, tmp_path, rank=1)
    lines = [line for line in err.splitlines() if line.startswith("ip-tsn fit: error: ")]
    assert proc.returncode == 2 and lines == [
        f"ip-tsn fit: error: the process of DDP rank 1 (pid {rank1}) was killed by SIGKILL (the out-of-memory killer "
        "does this: use fewer data.num_workers or a smaller batch size); the other processes were stopped; resume with "
        f"ckpt_path=last ({last})"], err[-3000:]
    assert "zombies" not in err and "Traceback" not in err and "sync_dist" not in err, err[-3000:]
    assert _none_left(proc.pid)
    assert not (tmp_path / "istream" / "failed.json").exists()  # an epoch was saved: the run resumes from it


def test_the_other_ranks_die_with_rank_zero(data, tmp_path):
    """Rank 0 SIGKILLed (the out-of-memory killer's choice, the largest process): rank 1 goes with
    it at once, without a word of its own. Until 2026-12-07 it printed a gloo traceback ("connection
    reset by peer") on the CPU and, with NCCL, waited in a collective for 30 minutes, its GPU held."""
    proc, rank1, err, _ = _kill_after_an_epoch(data, tmp_path, rank=0)
    assert proc.returncode == -signal.SIGKILL and _none_left(proc.pid)
    assert "Traceback" not in err and "[rank1]" not in err and str(rank1) not in err, err[-3000:]


def test_ddp_test_metrics_count_each_video_once(tiny_streams, tmp_path):
    """``ip-tsn test`` on 2 processes and 11 test videos: Lightning's DistributedSampler repeats one
    to even the shares. metrics.json and the printed line are the scores' (each video once), and
    Lightning's advice to test on one device is not printed; until 2026-12-07 they said top-1 over
    12 rows, the repeated video twice."""
    from ip_tsn.evaluation.fusion import evaluate
    from ip_tsn.evaluation.scores import load_scores

    root = tmp_path / "data"
    shutil.copytree(tiny_streams["root"], root)
    lines = (root / "splits" / "testlist01.txt").read_text().splitlines()
    assert len(lines) == 12
    (root / "splits" / "testlist01.txt").write_text("\n".join(lines[:11]) + "\n")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ip_tsn.cli", "test", str(ROOT / "experiments" / "istream.yaml"),
           *tiny_streams["common"], f"data.root={root}", f"run_dir={run}", "--checkpoint", str(tiny_streams["istream"]),
           "--subsets", "test",
           "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = load_scores(run / "scores_test.npz")
    want = evaluate(table.scores, table.labels, [str(i) for i in range(12)])
    written = json.loads((run / "metrics.json").read_text())["test"]
    assert written["videos"] == len(table.video_ids) == 11
    assert {k: written[k] for k in want} == pytest.approx(want, abs=1e-12)
    assert proc.stdout.count("test: ") == 1 and f"top1 {want['top1']:.4f}" in proc.stdout
    assert "DistributedSampler" not in proc.stderr


def test_ddp_validation_counts_each_video_once(data, tmp_path):
    """A DDP fit (2 processes) validating 11 videos: its ``val/top1``, ``val/top5`` and ``val/loss``
    are those of the same weights scored on the same 11 videos in one process (Lightning's synced
    epoch mean divides the ranks' summed losses by their summed batch sizes). Until 2026-12-08 Lightning's
    DistributedSampler repeated one video to even the ranks' shares, and it counted twice."""
    import csv

    root = tmp_path / "data"
    shutil.copytree(data, root)
    lists = root / "splits" / "vallist01.txt"
    lines = lists.read_text().splitlines()
    assert len(lines) == 12
    lists.write_text("\n".join(lines[:11]) + "\n")
    fast = [o for o in FAST if not o.startswith("trainer.limit_val_batches")]  # 6 + 5 videos: 2 batches a rank
    fit = subprocess.run([sys.executable, "-m", "ip_tsn.cli", "fit", str(ROOT / "experiments" / "istream.yaml"), *fast,
                          f"data.root={root}", f"run_root={tmp_path / 'runs'}", "trainer.max_epochs=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=default_sigint)
    assert fit.returncode == 0, fit.stderr[-3000:]
    run = tmp_path / "runs" / "istream"
    with open(run / "logs" / "metrics.csv") as f:
        (row,) = [r for r in csv.DictReader(f) if r.get("val/top1")]
    one = [o for o in fast if not o.startswith("trainer.")]
    scored = subprocess.run([sys.executable, "-m", "ip_tsn.cli", "test", str(ROOT / "experiments" / "istream.yaml"),
                             *one, f"data.root={root}", f"run_dir={tmp_path / 'one'}", "--subsets", "val",
                             "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "trainer.accelerator=cpu",
                             "data.test_segments=3", "data.test_crops=1"],  # the validation protocol: 3 centres
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr[-3000:]
    want = json.loads((tmp_path / "one" / "metrics.json").read_text())["val"]
    assert want["videos"] == 11 and 0 < want["top5"] < 1  # a top-5 that one video counted twice would move
    assert float(row["val/top1"]) == pytest.approx(want["top1"], abs=1e-6)
    assert float(row["val/top5"]) == pytest.approx(want["top5"], abs=1e-6)
    assert float(row["val/loss"]) == pytest.approx(want["loss"], rel=1e-4)  # sum over ranks / videos, exact


def test_a_bad_video_under_ddp_is_one_line_before_the_ranks_start(data, tmp_path):
    """A zero-byte training video and a 2-process fit: one line, exit 2, no run folder. Until
    2026-12-08 every rank's setup checked the videos and said it, one line per process."""
    root = tmp_path / "data"
    shutil.copytree(data, root)
    (root / "videos" / "PoolJump" / "v_PoolJump_train_000.mp4").write_bytes(b"")
    fit = subprocess.run([sys.executable, "-m", "ip_tsn.cli", "fit", str(ROOT / "experiments" / "istream.yaml"), *FAST,
                          f"data.root={root}", f"run_root={tmp_path / 'runs'}", "trainer.max_epochs=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in fit.stderr.splitlines() if "error" in line]
    assert fit.returncode == 2 and len(lines) == 1, fit.stderr[-3000:]
    assert lines[0].startswith(f"ip-tsn fit: error: {root / 'videos'}: 1 of 36 videos listed for train/val cannot be "
                               "read: PoolJump/v_PoolJump_train_000.mp4 (empty file (0 bytes))")
    assert "GLOBAL_RANK" not in fit.stderr + fit.stdout and not (tmp_path / "runs").exists()


def test_a_rank_killed_in_the_second_subset_of_a_test_is_one_line(tiny_streams, tmp_path):
    """``ip-tsn test`` scores val, then test, each with a trainer of its own; only the first starts
    the ranks. Rank 1 SIGKILLed once val is scored: one line naming it, exit 2, no process left, and
    no test scores. Until 2026-12-08 only the first subset was watched."""
    run = tmp_path / "run"
    proc, rank1, err = _kill_when(["test", str(ROOT / "experiments" / "istream.yaml"), *tiny_streams["common"],
                                   f"run_dir={run}", "--checkpoint", str(tiny_streams["istream"]), "data.test_crops=3",
                                   "data.test_segments=10"], run / "scores_val.npz", rank=1)
    lines = [line for line in err.splitlines() if line.startswith("ip-tsn test: error: ")]
    assert proc.returncode == 2 and lines == [
        f"ip-tsn test: error: the process of DDP rank 1 (pid {rank1}) was killed by SIGKILL (the out-of-memory killer "
        "does this: use fewer data.num_workers or a smaller batch size); the other processes were stopped"], err[-3000:]
    assert "Traceback" not in err and _none_left(proc.pid)
    assert not (run / "scores_test.npz").exists() and not (run / "metrics.json").exists()
