"""Helpers of the tests that start real processes and signal them."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``Popen(preexec_fn=...)``: SIGINT back to its default action in the child before exec. A shell
    that starts a job in the background without job control (``make test &`` in a script) passes
    SIGINT on as *ignored*, and Python then never installs its Ctrl-C handler: a test of Ctrl-C
    would see the signal ignored and test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
