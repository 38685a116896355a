"""What made a run, recorded in its ``fit.json`` (``environment``): the package's version and, when
it runs from a git checkout, its commit and whether the tree held uncommitted changes; Python,
torch and Lightning versions; the CPU's torch kernel capability and the CUDA device. The same seeds
give other numbers on another CPU kind (README, "The same command on another machine"), so a run
says which it had."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytorch_lightning as pl
import torch

import ip_tsn

PACKAGE = Path(ip_tsn.__file__).resolve().parent


def environment() -> dict:
    """``{"ip_tsn", "git_commit", "git_dirty", "python", "torch", "lightning", "cpu_capability",
    "cuda_device"}``; the git keys are None outside a checkout of this package."""
    return {"ip_tsn": ip_tsn.__version__, **_git(), "python": platform.python_version(), "torch": torch.__version__,
            "lightning": pl.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _git() -> dict:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(PACKAGE), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or (Path(top) / "src" / "ip_tsn").resolve() != PACKAGE:  # an installed copy, or another repo
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": None if status is None else bool(status)}


__all__ = ["environment"]
