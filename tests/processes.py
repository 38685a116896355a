"""Helpers of the tests that start real processes and signal them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def default_sigint() -> None:
    """``Popen(preexec_fn=...)``: SIGINT back to its default action in the child before exec. A shell
    that starts a job in the background without job control (``make test &`` in a script) passes
    SIGINT on as *ignored*, and Python then never installs its Ctrl-C handler: a test of Ctrl-C
    would see the signal ignored and test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


_HOLD = """
import sys, time
from ip_tsn.atomic import hold_folder
with hold_folder(sys.argv[1], sys.argv[2], shared=sys.argv[3] == "shared"):
    print("held", flush=True)
    time.sleep(600)
"""


@contextmanager
def held_by_another(folder: str | os.PathLike, setting: str = "run_dir", shared: bool = False) -> Iterator[subprocess.Popen]:
    """Another process holding ``folder``'s lock (:func:`ip_tsn.atomic.hold_folder`) for the block, as
    a second command writing (or, ``shared``, reading) that folder would; SIGKILLed at the end."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder), setting, "shared" if shared else "exclusive"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
