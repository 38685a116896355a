"""Resume that resumes (issue 11.2, 11.6): `last.ckpt` after every epoch, whatever the monitor;
a real SIGKILL mid-training resumed with `ckpt_path=last` from the saved epoch, `metrics.csv`
keeping the earlier epochs' rows (each epoch once); a real SIGINT gives one line, exit 130."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from processes import default_sigint

from ip_tsn.cli import main
from ip_tsn.data.synthetic import TINY_CONFIG, generate_synthetic
from ip_tsn.lit.callbacks import SaveLastEveryEpoch
from ip_tsn.stages.loggers import ResumableCSVLogger

ROOT = Path(__file__).resolve().parents[1]
ISTREAM = str(ROOT / "experiments" / "istream.yaml")
FAST = ["trainer.enable_progress_bar=false", "logger.wandb=false", "data.num_workers=0", "data.crop_size=32",
        "data.test_segments=3", "data.batch_size=8", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1", "model.net.pretrained=false"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, list[str]]:
    """A tiny synthetic dataset and the common overrides pointing at it (``run_root`` per test)."""
    base = tmp_path_factory.mktemp("resume")
    generate_synthetic(base / "synthetic", **TINY_CONFIG, progress=False)
    yield base, [*FAST, f"data.root={base / 'synthetic'}"]
    shutil.rmtree(base, ignore_errors=True)  # GBs of checkpoints: gone once the module is done


def _epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _epochs_with(rows: list[dict[str, str]], key: str) -> list[int]:
    return [int(r["epoch"]) for r in rows if r.get(key)]


def _start_fit(overrides: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ip_tsn.cli", "fit", ISTREAM, *overrides], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # an inherited "ignore SIGINT" would void the test


def _wait_for_epoch(proc: subprocess.Popen, last: Path, epoch: int, timeout: float = 120.0) -> None:
    """Poll until ``last`` holds ``epoch`` or later (reading it only when it changes)."""
    seen, end = None, time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, f"fit ended early: {proc.stderr.read()[-3000:]}"  # type: ignore[union-attr]
        stamp = last.stat().st_mtime_ns if last.is_file() else None
        if stamp is not None and stamp != seen:
            seen = stamp
            if _epoch(last) >= epoch:
                return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{last} did not reach epoch {epoch} in {timeout} s")


def test_last_checkpoint_is_the_final_epoch_without_a_monitor(tiny):
    base, common = tiny
    run_dir = base / "no_monitor" / "istream"
    assert main(["fit", ISTREAM, *common, "trainer.max_epochs=2", "checkpoint.monitor=null",
                 f"run_root={base / 'no_monitor'}"]) == 0
    assert _epoch(run_dir / "checkpoints" / "last.ckpt") == 1
    assert _epoch(run_dir / "checkpoints" / "best.ckpt") == 1  # monitor null: the final epoch's weights
    assert _epochs_with(_rows(run_dir), "val/top1") == [0, 1]
    stored = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, mmap=True)
    assert stored["ip_tsn_stage"] == "istream" and stored["datamodule_hyper_parameters"]["modality"] == "iframe"


def test_sigkill_mid_training_resumes_from_the_saved_epoch(tiny):
    """val/top1 stays flat on this tiny data, so best.ckpt stays at epoch 0: last.ckpt must not."""
    base, common = tiny
    overrides = [*common, "trainer.max_epochs=4", f"run_root={base / 'killed'}"]
    run_dir = base / "killed" / "istream"
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = _start_fit(overrides)
    _wait_for_epoch(proc, last, 1)
    time.sleep(0.1)  # into the next epoch (epochs here take a fraction of a second: longer risks reaching the last)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = _epoch(last)
    assert 1 <= saved < 3 and not (run_dir / "fit.json").exists()
    before = [r for r in _rows(run_dir) if r["epoch"] and int(r["epoch"]) <= saved]

    assert main(["fit", ISTREAM, *overrides, "ckpt_path=last"]) == 0
    rows = _rows(run_dir)
    assert _epochs_with(rows, "val/top1") == [0, 1, 2, 3]  # every epoch once: none retrained
    assert _epochs_with(rows, "train/loss_epoch") == [0, 1, 2, 3]
    kept = [r for r in rows if r["epoch"] and int(r["epoch"]) <= saved]
    assert [{k: v for k, v in r.items() if v} for r in kept] == [{k: v for k, v in r.items() if v} for r in before]
    assert _epoch(last) == 3 and (run_dir / "fit.json").is_file()


def test_a_killed_loader_worker_is_one_line(tiny):
    """A DataLoader worker killed by a signal (what the out-of-memory killer does) was a traceback
    from inside torch; now one line naming it, what to change and how to resume, exit 2."""
    base, common = tiny
    overrides = [*[a for a in common if not a.startswith("data.num_workers")], "data.num_workers=1",
                 "trainer.max_epochs=1000", f"run_root={base / 'worker'}"]
    last = base / "worker" / "istream" / "checkpoints" / "last.ckpt"
    proc = _start_fit(overrides)
    _wait_for_epoch(proc, last, 0)
    workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert workers, "no DataLoader worker"
    os.kill(workers[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    assert re.fullmatch(rf"ip-tsn fit: error: DataLoader worker \(pid\(?s?\)? {workers[-1]}\) (is killed by signal: "
                        rf"Killed|exited unexpectedly) \(the out-of-memory killer does this\): use fewer data.num_workers "
                        rf"or a smaller data.batch_size; resume with ckpt_path=last \({re.escape(str(last))}\)",
                        err.strip().splitlines()[-1]), err[-1000:]


def _file_size_limit() -> None:
    import resource

    default_sigint()
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # below a batch, above config.yaml


def test_a_worker_out_of_shared_memory_is_one_line(tiny):
    """A DataLoader worker that cannot hand its batch over in shared memory (a container's 64 MB
    ``/dev/shm``, Docker's default; here a file-size limit below a batch on the shared-memory file
    the worker makes, which torch refuses in the worker as it does a full ``/dev/shm``) was a
    traceback from inside torch; now one line: what failed, ``/dev/shm``'s room, what to change."""
    base, common = tiny
    overrides = [*[a for a in common if not a.startswith("data.num_workers")], "data.num_workers=1",
                 f"run_root={base / 'shm'}"]
    proc = subprocess.run([sys.executable, "-m", "ip_tsn.cli", "fit", ISTREAM, *overrides], cwd=ROOT,
                          capture_output=True, text=True, preexec_fn=_file_size_limit, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = base / "shm" / "istream" / "checkpoints" / "last.ckpt"
    assert re.fullmatch(r"ip-tsn fit: error: a DataLoader worker ran out of shared memory \(unable to [a-z ]+ "
                        r"(for file )?</torch_\d+_\d+_\d+>.*: File too large \(27\); /dev/shm: \d+ MB free of \d+ MB\): "
                        r"give it more \(a container's default is 64 MB: docker run --shm-size=8g, or --ipc=host\), or "
                        r"use fewer data.num_workers or a smaller data.batch_size; no epoch finished, nothing to resume "
                        rf"\({re.escape(str(last))} not written\)", proc.stderr.strip().splitlines()[-1]), proc.stderr[-1000:]


def test_out_of_memory_is_one_line(tiny):
    """Out of memory (here the CPU's: an address-space limit a little above what the process holds
    before training, then a batch far larger; CUDA's OutOfMemoryError is read the same way) was a
    traceback from inside torch; now one line: what ran out, the batch size to lower, exit 2."""
    big = [*_without(tiny[1], "data.crop_size", "data.batch_size"), "data.crop_size=224", "data.scale_size=256",
           "data.batch_size=24", "trainer.max_epochs=1", f"run_root={tiny[0] / 'oom'}"]
    limited = ("import re, resource, sys\n"
               "from ip_tsn.cli import main\n"
               "import torch, torchvision, pytorch_lightning\n"
               "held = int(re.search(r'VmSize:\\s+(\\d+) kB', open('/proc/self/status').read())[1]) * 1024\n"
               "resource.setrlimit(resource.RLIMIT_AS, (held + (1200 << 20),) * 2)\n"
               "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", limited, "fit", ISTREAM, *big], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = tiny[0] / "oom" / "istream" / "checkpoints" / "last.ckpt"
    assert re.fullmatch(r"ip-tsn fit: error: out of memory \(can't allocate memory: you tried to allocate \d+ bytes\): "
                        r"use a smaller data.batch_size \(24 now\), or trainer.precision=bf16-mixed on a GPU; no epoch "
                        rf"finished, nothing to resume \({re.escape(str(last))} not written\)",
                        proc.stderr.strip().splitlines()[-1]), proc.stderr[-1000:]


def _without(common: list[str], *keys: str) -> list[str]:
    """``common`` without the overrides of ``keys``."""
    return [a for a in common if a.split("=", 1)[0] not in keys]


def test_last_with_nothing_to_resume_says_it_starts_fresh(tiny, capsys):
    """``ckpt_path=last`` (as a requeued SLURM job passes every time) where no last.ckpt exists yet
    trains from epoch 0 and says so, naming the file it looked for (a mistyped run_root shows).
    The same command on the finished run (the job requeued once more) trains nothing and keeps the
    run's record: until 2026-12-07 it rewrote fit.json with the final epoch's val_top1 lost (null)."""
    base, common = tiny
    run_dir = base / "fresh" / "istream"
    last = run_dir / "checkpoints" / "last.ckpt"
    command = ["fit", ISTREAM, *common, "trainer.max_epochs=1", f"run_root={base / 'fresh'}", "ckpt_path=last"]
    capsys.readouterr()
    assert main(command) == 0
    assert f"ckpt_path=last: no {last} yet; training starts at epoch 0" in capsys.readouterr().out
    assert _epoch(last) == 0
    record = (run_dir / "fit.json").read_bytes()
    assert b'"val_top1": null' not in record
    checkpoints = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (last, run_dir / "checkpoints" / "best.ckpt")}
    rows = (run_dir / "logs" / "metrics.csv").read_bytes()
    assert main(command) == 0
    assert (f"ckpt_path=last: {last} already holds every epoch of this run (epoch 0, step 2); nothing to train, "
            f"{run_dir / 'fit.json'} kept") in capsys.readouterr().out
    assert (run_dir / "fit.json").read_bytes() == record
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in checkpoints} == checkpoints  # not even rewritten
    assert (run_dir / "logs" / "metrics.csv").read_bytes() == rows  # the same rows (the logger rewrites it whole)
    for broken, why in [(b'{"best', "not JSON (Unterminated string starting at: line 1 column 2 (char 1))"),
                        (b'{"epochs": 1}', "no best_checkpoint")]:  # json's traceback or a KeyError until 2026-12-08
        (run_dir / "fit.json").write_bytes(broken)
        capsys.readouterr()
        assert main(command) == 2
        assert capsys.readouterr().err.strip() == (
            f"ip-tsn fit: error: {run_dir / 'fit.json'}: {why}; it should hold this finished run's record "
            "(best_checkpoint, val_top1): remove it and run again with ckpt_path=last to write a new one, or "
            "overwrite=true to train again")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in checkpoints} == checkpoints


class _Line(pl.LightningModule):
    """A one-weight regression, logging its loss per step and per epoch as the classifier does."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.w(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=len(x))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _ReadCsvWhenLastIsWritten(Checkpoint):
    """Runs right after :class:`SaveLastEveryEpoch` (checkpoint callbacks keep their order): the
    epochs with a ``train/loss_epoch`` row in ``metrics.csv`` at the moment ``last.ckpt`` holds an
    epoch, which is what a SIGKILL there would leave."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.seen = run_dir, []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seen.append((_epoch(self.run_dir / "last.ckpt"), _epochs_with(_rows(self.run_dir), "train/loss_epoch")))


def test_the_csv_holds_an_epochs_training_row_before_last_ckpt_holds_the_epoch(tmp_path):
    """Lightning logs an epoch's ``train/*_epoch`` row after the epoch-end hooks, i.e. after
    ``last.ckpt`` was written: a kill between the two lost the row for good (CI, 2026-12-05:
    ``[0, 1, 3]`` after a resume). The row is written first, once, at Lightning's step."""
    x = torch.linspace(-1, 1, 32).unsqueeze(1)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, 3 * x), batch_size=8)
    probe = _ReadCsvWhenLastIsWritten(tmp_path)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=ResumableCSVLogger(str(tmp_path), name="logs", version=""),
                         callbacks=[SaveLastEveryEpoch(tmp_path / "last.ckpt"), probe], enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(_Line(), data)
    assert probe.seen == [(0, [0]), (1, [0, 1]), (2, [0, 1, 2])]
    rows = _rows(tmp_path)
    assert _epochs_with(rows, "train/loss_epoch") == [0, 1, 2]  # once each: Lightning's own call logged nothing more
    assert [int(r["step"]) for r in rows if r.get("train/loss_epoch")] == [3, 7, 11]  # each epoch's last step, as Lightning logs it
    assert trainer.callback_metrics["train/loss_epoch"] == pytest.approx(float(rows[-1]["train/loss_epoch"]))


def test_metrics_csv_is_replaced_whole_never_written_in_place(tmp_path):
    """Every save of metrics.csv goes through a temporary file renamed over it (Lightning appends
    in place and rewrites the file in place when a column is added: a kill mid-write left a cut
    row or a cut file). The file a reader holds open stays whole; the new one has every row."""
    logger = ResumableCSVLogger(str(tmp_path), name="logs", version="")
    path = tmp_path / "logs" / "metrics.csv"
    logger.log_metrics({"train/loss_step": 1.5}, step=0)
    logger.save()
    with open(path, "rb") as held:
        first = held.read()
        logger.log_metrics({"train/loss_step": 0.5}, step=1)
        logger.save()  # a row appended
        logger.log_metrics({"val/top1": 0.25, "epoch": 0}, step=1)
        logger.save()  # new columns: the header rewritten
        held.seek(0)
        assert held.read() == first == b"step,train/loss_step\r\n0,1.5\r\n"
        assert os.fstat(held.fileno()).st_ino != path.stat().st_ino
    assert path.read_bytes() == b"epoch,step,train/loss_step,val/top1\r\n,0,1.5,\r\n,1,0.5,\r\n0,1,,0.25\r\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.csv"]


def test_sigint_says_how_to_resume_and_exits_130(tiny):
    base, common = tiny
    run_dir = base / "interrupted" / "istream"
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = _start_fit([*common, "trainer.max_epochs=50", f"run_root={base / 'interrupted'}"])
    _wait_for_epoch(proc, last, 0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"ip-tsn fit: interrupted; resume with ckpt_path=last ({last})"
    assert not (run_dir / "fit.json").exists() and _epoch(last) >= 0


def test_sigterm_to_the_job_says_how_to_resume_and_exits_143(tiny):
    """SIGTERM to every process of the run, loader workers included, as ``scancel``, a job's time
    limit or ``docker stop`` sends it: one line, the shell's status for SIGTERM, no process left.
    Until 2026-12-07 the worker's death was blamed on the out-of-memory killer (exit 2)."""
    base, common = tiny
    run_dir = base / "terminated" / "istream"
    last = run_dir / "checkpoints" / "last.ckpt"
    overrides = [*[a for a in common if not a.startswith("data.num_workers")], "data.num_workers=1",
                 "trainer.max_epochs=1000", f"run_root={base / 'terminated'}"]
    proc = subprocess.Popen([sys.executable, "-m", "ip_tsn.cli", "fit", ISTREAM, *overrides], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_epoch(proc, last, 0)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err and "Received SIGTERM" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == ("ip-tsn fit: terminated (SIGTERM: a job's time limit, scancel, a preemption "
                                            f"or docker stop); resume with ckpt_path=last ({last})")
    assert not (run_dir / "fit.json").exists() and _epoch(last) >= 0
    time.sleep(1)
    with pytest.raises(ProcessLookupError):  # nothing of the group is left
        os.killpg(proc.pid, 0)


def test_training_does_not_depend_on_the_validation_schedule(tiny):
    """Validating every epoch or only at the end gives the same final weights: the evaluation
    loaders draw no numbers from the training's random stream."""
    base, common = tiny
    weights = {}
    for every in (1, 3):
        root = base / f"val_every_{every}"
        assert main(["fit", ISTREAM, *common, "trainer.max_epochs=3", "checkpoint.monitor=null",
                     f"trainer.check_val_every_n_epoch={every}", f"run_root={root}"]) == 0
        weights[every] = torch.load(root / "istream" / "checkpoints" / "last.ckpt", map_location="cpu",
                                    weights_only=True)["state_dict"]
        validated = _epochs_with(_rows(root / "istream"), "val/top1")
        assert validated == ([0, 1, 2] if every == 1 else [2])
    assert weights[1].keys() == weights[3].keys()
    for key in weights[1]:
        assert torch.equal(weights[1][key], weights[3][key]), key


def test_without_a_monitor_best_is_the_final_epoch_whatever_the_validation_schedule(tiny):
    """Validation every 5th epoch and a 2-epoch fit: only the final epoch is validated (every fit
    validates its end, issue 21), and best.ckpt is the final epoch's weights (equal to last.ckpt's)."""
    base, common = tiny
    root = base / "val_every_5"
    assert main(["fit", ISTREAM, *common, "trainer.max_epochs=2", "checkpoint.monitor=null",
                 "trainer.check_val_every_n_epoch=5", f"run_root={root}"]) == 0
    ckpts = root / "istream" / "checkpoints"
    assert _epoch(ckpts / "best.ckpt") == 1 == _epoch(ckpts / "last.ckpt")
    best, last = (torch.load(ckpts / n, map_location="cpu", weights_only=True)["state_dict"]
                  for n in ("best.ckpt", "last.ckpt"))
    assert all(torch.equal(best[k], last[k]) for k in last)
    assert _epochs_with(_rows(root / "istream"), "val/top1") == [1]


def test_a_run_killed_before_its_record_gets_its_score_back(tiny, capsys):
    """Killed after its final checkpoint and before fit.json (what ``make`` then resumes): nothing is
    left to train, and the record it writes had val_top1 null (no epoch validated in that session);
    the final checkpoint is validated again for it, giving the same score."""
    base, common = tiny
    run_dir = base / "unrecorded" / "istream"
    args = [*common, "trainer.max_epochs=1", f"run_root={base / 'unrecorded'}"]
    assert main(["fit", ISTREAM, *args]) == 0
    record = json.loads((run_dir / "fit.json").read_text())
    (run_dir / "fit.json").unlink()
    capsys.readouterr()
    assert main(["fit", ISTREAM, *args, "ckpt_path=last"]) == 0
    assert (f"ckpt_path=last: {run_dir / 'checkpoints' / 'last.ckpt'} already holds every epoch of this run; "
            f"validating it for its record ({run_dir / 'fit.json'})") in capsys.readouterr().out
    again = json.loads((run_dir / "fit.json").read_text())
    assert record["val_top1"] is not None and again["val_top1"] == pytest.approx(record["val_top1"])
    assert again["epochs"] == record["epochs"] == 1


def test_a_resumed_run_keeps_the_settings_it_started_with(tiny, capsys):
    """``ckpt_path=last`` with another setting that shapes the training: one line naming it, nothing
    written. Until 2026-12-07 ``model.optim.lr=0.5`` on resume trained on at the checkpoint's rate
    (the optimiser's state) while config.yaml was rewritten to say 0.5. Where and how it runs
    (``data.num_workers`` here) may change silently; a new length trains on, said, and config.yaml
    keeps the one the run started with."""
    base, common = tiny
    run_dir = base / "settings" / "istream"
    args = [*common, f"run_root={base / 'settings'}"]
    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=1"]) == 0
    files = lambda: {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}  # noqa: E731
    before = files()
    capsys.readouterr()
    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=1", "ckpt_path=last", "model.optim.lr=0.5",
                 "data.batch_size=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"ip-tsn fit: error: ckpt_path=last resumes a run with the settings it started with "
                   f"({run_dir / 'config.yaml'}), but data.batch_size is 8 there and 4 here (and 1 more: "
                   "model.optim.lr); resume with them as they were, start again in its place (overwrite=true) or start "
                   "another run (run_name=...)")
    assert files() == before
    (run_dir / "config.yaml").write_text("data: [\n")  # a broken record: YAML's message was 3 lines until 2026-12-08
    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=1", "ckpt_path=last"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ip-tsn fit: error: {run_dir / 'config.yaml'}: cannot be read (ParserError: while parsing a flow node did not "
        f"find expected node content in \"{run_dir / 'config.yaml'}\", line 2, column 1); it holds the settings the "
        "run being resumed started with: restore it, or train again with overwrite=true")
    (run_dir / "config.yaml").write_bytes(before[run_dir / "config.yaml"])
    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=2", "ckpt_path=last", "data.num_workers=1"]) == 0
    assert ("trainer.max_epochs: 1 when this run started, 2 now: the learning-rate schedule is rebuilt over the new "
            "length from the resumed step on") in capsys.readouterr().out
    assert _epoch(run_dir / "checkpoints" / "last.ckpt") == 1
    assert (run_dir / "config.yaml").read_bytes() == before[run_dir / "config.yaml"]
    assert json.loads((run_dir / "fit.json").read_text())["max_epochs"] == 2
    (run_dir / "fit.json").unlink()  # as a run killed after its last checkpoint leaves it
    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=1", "ckpt_path=last", "model.optim.lr=0.5",
                 "overwrite=true"]) == 0  # what the refusal says to pass: a fresh start in its place
    assert (f"overwrite=true: ckpt_path=last set aside; training starts at epoch 0 and replaces the run in "
            f"{run_dir}") in capsys.readouterr().out
    assert _epoch(run_dir / "checkpoints" / "last.ckpt") == 0
    assert "lr: 0.5" in (run_dir / "config.yaml").read_text()


def test_a_run_resumes_where_its_data_and_folder_moved(tiny, tmp_path, capsys):
    """Data staged to another node's local scratch and the run folder moved: ``ckpt_path=last``
    resumes there, said, where the training videos are the ones its checkpoint records. Other
    training lists there are one line, nothing written. Until 2026-12-07 any moved place was refused
    as another setting, so a run could not go on in a new job whose scratch had another path."""
    base, common = tiny
    data, moved = tmp_path / "node1" / "synthetic", tmp_path / "node2" / "synthetic"
    shutil.copytree(base / "synthetic", data)
    assert main(["fit", ISTREAM, *common, f"data.root={data}", f"run_root={tmp_path / 'first'}",
                 "trainer.max_epochs=1"]) == 0
    moved.parent.mkdir()
    shutil.move(data, moved)
    shutil.move(tmp_path / "first", tmp_path / "second")
    run_dir = tmp_path / "second" / "istream"
    here = [*common, f"data.root={moved}", f"run_root={tmp_path / 'second'}", "ckpt_path=last"]
    capsys.readouterr()
    assert main(["fit", ISTREAM, *here, "trainer.max_epochs=2"]) == 0
    assert (f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}: data.root, run_dir, run_root moved since this run "
            f"started (data.root: '{data}' -> '{moved}'); the same training videos, so it resumes there"
            ) in capsys.readouterr().out
    assert _epoch(run_dir / "checkpoints" / "last.ckpt") == 1
    train = moved / "splits" / "trainlist01.txt"
    train.write_text("\n".join(train.read_text().splitlines()[1:]) + "\n")  # one training video fewer
    (run_dir / "fit.json").unlink()
    files = lambda: {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}  # noqa: E731
    before = files()
    assert main(["fit", ISTREAM, *here, "trainer.max_epochs=3"]) == 2
    trained = len(train.read_text().splitlines()) + 1
    assert capsys.readouterr().err.strip() == (
        f"ip-tsn fit: error: ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}: data.root is '{data}' where this run "
        f"started and '{moved}' here, and the training videos differ (0 of the {trained - 1} here were not trained on, "
        "1 trained on are not here); resume with them as they were, start again in its place (overwrite=true) or "
        "start another run (run_name=...)")
    assert files() == before


def test_a_full_disk_is_one_line_naming_the_file(tiny):
    """A checkpoint that cannot be written (a full disk or quota; here a file-size limit,
    RLIMIT_FSIZE, which hands the writer the same kind of OSError) was a traceback from inside
    Lightning; now one line naming the file and what to do, exit 2, the previous last.ckpt whole
    and no temporary file left."""
    base, common = tiny
    args = [*common, f"run_root={base / 'full'}"]
    last = base / "full" / "istream" / "checkpoints" / "last.ckpt"
    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=1"]) == 0
    kept = last.read_bytes()
    limited = ("import resource, sys\n"
               "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
               "from ip_tsn.cli import main\n"
               "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", limited, "fit", ISTREAM, *args, "trainer.max_epochs=2", "ckpt_path=last"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"ip-tsn fit: error: {last}: could not be written: File too large (the disk is full, or a quota or a file-size "
        f"limit was reached); the file there is unchanged; once there is room, resume with ckpt_path=last ({last})")
    assert last.read_bytes() == kept and not [p for p in last.parent.iterdir() if ".tmp-" in p.name]


def test_a_resumed_training_logs_to_the_w_and_b_run_it_started(tiny, monkeypatch):
    """W&B (offline, real): a training resumed with ``ckpt_path=last`` (a requeued SLURM job)
    continues the W&B run it started, whose id ``<run_dir>/wandb_run.json`` keeps; until 2026-12-07
    each resume was a new W&B run. A fresh start (``overwrite=true``) is a new run; under a sweep
    agent (``WANDB_RUN_ID``) the id is the agent's."""
    from ip_tsn.stages.loggers import wandb_run

    base, common = tiny
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    args = [a for a in common if not a.startswith("logger.wandb")] + [
        "logger.wandb=true", "logger.wandb_mode=offline", f"run_root={base / 'wb'}", "trainer.limit_train_batches=1"]
    run_dir = base / "wb" / "istream"

    def ids() -> list[str]:  # wandb's offline folders: offline-run-<date>_<time>-<run id>[-<n>]
        return [p.name.split("-")[3] for p in sorted((run_dir / "wandb").glob("offline-run-*"))]

    def recorded() -> str:
        return json.loads((run_dir / "wandb_run.json").read_text())["id"]

    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=1"]) == 0
    first = recorded()
    assert ids() == [first]
    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=2", "ckpt_path=last"]) == 0
    assert recorded() == first and ids() == [first, first]  # two sessions of one W&B run
    assert main(["fit", ISTREAM, *args, "trainer.max_epochs=1", "overwrite=true"]) == 0
    assert recorded() != first and sorted(ids()) == sorted([first, first, recorded()])
    monkeypatch.setenv("WANDB_RUN_ID", "agent1")
    assert wandb_run(run_dir, (0, 1)) == {}  # the agent's id, not the record's


def test_a_run_cut_by_max_time_says_so(tiny, capsys):
    """``trainer.max_time`` (a time budget, as SLURM users set one): a run it stops before
    ``max_epochs`` says so and its fit.json records it (until 2026-12-07 it looked like a run of its
    whole length); resumed with the same budget, which Lightning's timer carries on from the
    checkpoint, nothing trains and the record is kept; a budget that ends before the first epoch
    is one line, not "no training step ran ... use a smaller data.batch_size"."""
    base, common = tiny
    args = [*common, "trainer.max_epochs=10000", "trainer.limit_train_batches=1", f"run_root={base / 'timed'}"]
    run_dir = base / "timed" / "istream"
    capsys.readouterr()
    assert main(["fit", ISTREAM, *args, "trainer.max_time=00:00:00:03"]) == 0
    record = json.loads((run_dir / "fit.json").read_text())
    assert record["stopped_by"] == "trainer.max_time=00:00:00:03" and record["max_epochs"] == 10000
    assert 1 <= record["epochs"] < 10000 and _epoch(run_dir / "checkpoints" / "last.ckpt") >= 0
    out = capsys.readouterr().out
    assert f"stopped by trainer.max_time=00:00:00:03 after {record['epochs']} of 10000 epochs" in out
    kept = (run_dir / "fit.json").read_bytes()
    assert main(["fit", ISTREAM, *args, "trainer.max_time=00:00:00:03", "ckpt_path=last"]) == 0
    assert "is past trainer.max_time=00:00:00:03 (raise it to train on); nothing to train" in capsys.readouterr().out
    assert (run_dir / "fit.json").read_bytes() == kept

    assert main(["fit", ISTREAM, *args, "trainer.max_time=00:00:00:00", f"run_root={base / 'untimed'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("trainer.max_time=00:00:00:00 ran out before the first epoch ended (step 0 of 1 per epoch), "
                        "so no checkpoint was saved; give it more time") and len(err.splitlines()) == 1
    assert (base / "untimed" / "istream" / "failed.json").is_file()
