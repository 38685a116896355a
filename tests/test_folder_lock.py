"""One command at a time writes a folder: the same job submitted twice, ``make teacher`` started in
a second terminal while the first still trains (make resumes a run with a ``last.ckpt`` and no
``fit.json``), a requeued job whose first copy still runs. Until 2026-12-07 both trained into the
same run, each rewriting the other's checkpoints, logs and ``fit.json``; the second is now one
line naming the first, exit 2, with nothing written. The lock goes with its holder's process."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from ip_tsn.atomic import LOCK_NAME, OutputError, hold_folder
from ip_tsn.cli import main
from processes import held_by_another

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_a_folder_is_held_by_one_writer_or_by_readers(tmp_path):
    folder = tmp_path / "run"
    with held_by_another(folder) as other:
        for shared in (False, True):
            with pytest.raises(OutputError) as refused:
                with hold_folder(folder, "run_dir", shared=shared):
                    pass
            line = str(refused.value)
            assert line.startswith(f"run_dir={folder}: in use by another command (-c {folder} run_dir exclusive, "
                                   f"pid {other.pid} on {socket.gethostname()}, since "), line
            assert line.endswith("); wait for it to end, or use another run_dir") and "\n" not in line
    with hold_folder(folder, "run_dir"):  # its holder killed (SIGKILL): the lock went with it
        assert f"pid {os.getpid()} on" in (folder / LOCK_NAME).read_text()
    with held_by_another(folder, shared=True) as reader:
        with pytest.raises(OutputError, match=rf"^cache.dir={re.escape(str(folder))}: in use .* pid {reader.pid} "):
            with hold_folder(folder, "cache.dir"):
                pass
        with hold_folder(folder, "cache.dir", shared=True):  # readers together
            pass


def test_fit_or_test_into_a_run_in_use_is_one_line_and_writes_nothing(tiny_streams, tmp_path, capsys):
    common = [*tiny_streams["common"], f"run_root={tmp_path}"]
    fit = ["fit", str(EXPERIMENTS / "pstream.yaml"), *common]
    run_dir = tmp_path / "pstream"
    with held_by_another(run_dir) as other:
        capsys.readouterr()
        assert main(fit) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"ip-tsn fit: error: run_dir={run_dir}: in use by another command (") and \
            f"pid {other.pid} on" in err[-1]
        assert [p.name for p in run_dir.iterdir()] == [LOCK_NAME]  # no config, checkpoint, log or W&B run
    assert main(fit) == 0  # the first one killed: its lock is gone with it
    record = (run_dir / "fit.json").read_bytes()
    with held_by_another(run_dir):  # a test of this run while a training replaces it
        assert main(["test", str(EXPERIMENTS / "pstream.yaml"), *common]) == 2
        assert f"run_dir={run_dir}: in use by another command" in capsys.readouterr().err
        assert not list(run_dir.glob("scores_*")) and not (run_dir / "metrics.json").exists()
        assert main([*fit, "overwrite=true"]) == 2 and (run_dir / "fit.json").read_bytes() == record
