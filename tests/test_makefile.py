"""The Makefile's training rules, read by make itself (``make -n``: the commands it would run,
nothing run): a new training, a killed one (resumed), a killed one whose inputs changed since
(started again) and a finished one whose inputs changed (replaced)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fit_command(runs: Path, cache_made: bool = True) -> list[str]:
    """The words of the ``ip-tsn fit`` line ``make student`` would run for ``runs``; ``cache_made``:
    the cache taken as made (``-o``: nothing before it remade, and it counts as old)."""
    made = ["-o", str(runs / "teacher_cache" / "manifest.json")] if cache_made else []
    proc = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), f"RUN_ROOT={runs}", *made,
                           str(runs / "student" / "fit.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if "ip-tsn fit experiments/student.yaml" in line]
    return line.split()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_resumes_a_killed_training_and_replaces_a_stale_one(tmp_path):
    """Until 2026-12-07 every training rule passed overwrite=true, so ``make student`` after a job
    was killed (a time limit, a reboot) started the training again from epoch 0."""
    runs = tmp_path / "runs"
    manifest, last = runs / "teacher_cache" / "manifest.json", runs / "student" / "checkpoints" / "last.ckpt"
    manifest.parent.mkdir(parents=True)
    manifest.touch()
    now = time.time()
    os.utime(manifest, (now - 10, now - 10))
    line = _fit_command(runs)  # nothing trained yet
    assert "ckpt_path=last" not in line and "overwrite=true" not in line
    last.parent.mkdir(parents=True)
    last.touch()
    os.utime(last, (now + 5, now + 5))  # newer than every input (the config files of this checkout too)
    line = _fit_command(runs)
    assert "ckpt_path=last" in line and "overwrite=true" not in line  # killed: resumed
    os.utime(manifest, (now + 10, now + 10))  # the cache made again since the last checkpoint
    line = _fit_command(runs)
    assert "overwrite=true" in line and "ckpt_path=last" not in line  # started again
    (runs / "student" / "fit.json").touch()
    os.utime(runs / "student" / "fit.json", (now, now))  # finished, before the new cache
    line = _fit_command(runs, cache_made=False)  # (make -n lists the chain before it too)
    assert "overwrite=true" in line and "ckpt_path=last" not in line  # replaced
