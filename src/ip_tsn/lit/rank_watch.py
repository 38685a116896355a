"""A DDP job whose other ranks this process started (``trainer.strategy=ddp`` on one machine; not
under SLURM's ``srun``, which starts every rank itself) stops at once, in one line, when one of
them dies: :class:`WatchRanks`.

Until 2026-12-07 a rank taken by the out-of-memory killer gave, on the CPU (gloo), a traceback of
this process from inside the backward pass ("connection closed by peer") and exit 1; with NCCL,
which waits, Lightning's own watch found the dead rank within 5 s and SIGKILLed every process: exit
137 and a log line about zombies. Neither said which rank died, of what, or how to resume.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from subprocess import Popen, TimeoutExpired

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

# a rank's status that its own line already explains, or that the whole job got (Ctrl-C, SIGTERM to
# every process: this one says so itself): left to the usual path
STOPPED_BY_SIGNAL = frozenset({130, 143, -signal.SIGINT, -signal.SIGTERM})
ONE_LINE = 2  # the status of a command that printed its one-line error


class WatchRanks(Callback):
    """On global rank zero, a thread per rank started here waits for its process: when one ends
    with a failure during a trainer call (``fit``, ``test``, ``predict``: where the ranks wait on
    each other), it prints one line (``ip-tsn <command>: error: ...``, plus ``hint()``; none where
    the rank printed its own one-line error, status 2), calls ``mark(why)`` (``fit``:
    ``failed.json`` where no epoch finished), stops the other ranks and exits with 2 (the rank's
    own status where it exited with one). An error of this process is that death where a rank has
    just died (gloo's "connection closed" from the dead peer may come first); otherwise it is this
    rank's own, Lightning stops the others, and the watch is disarmed.

    A command of several trainer calls on the same ranks (``ip-tsn test``: one per subset; only the
    first launches the ranks) gives each the same watch and ``trainer_calls``: it stays armed from
    the first call's ``setup`` to the last one's ``teardown``, between calls too (a trainer's first
    collectives come before its callbacks' ``setup``, and Lightning's own watch SIGKILLs the job
    within 5 s of a death). Until 2026-12-08 only the first call was watched."""

    def __init__(self, command: str, hint: Callable[[], str] = lambda: "",
                 mark: Callable[[str], None] | None = None, trainer_calls: int = 1) -> None:
        self.command, self.hint, self.mark = command, hint, mark
        self.armed = False
        self.calls_left = trainer_calls
        self._ranks: list[tuple[int, Popen]] = []
        self._stopping = threading.Lock()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        procs: list[Popen] = list(getattr(getattr(trainer.strategy, "launcher", None), "procs", None) or [])
        if trainer.is_global_zero and procs and not self._ranks:  # the ranks start once, in the first call
            first = trainer.node_rank * (len(procs) + 1)  # this node's ranks: first, first + 1, ...
            self._ranks = list(enumerate(procs, start=first + 1))
            for rank, proc in self._ranks:
                threading.Thread(target=self._wait, args=(rank, proc), daemon=True,
                                 name=f"ip-tsn-rank-{rank}").start()
        self.armed = bool(self._ranks) and self.calls_left > 0

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        end = time.monotonic() + DEATH_WAIT_S
        for rank, proc in self._ranks if self.armed else []:
            try:
                status = proc.wait(max(end - time.monotonic(), 0.0))
            except TimeoutExpired:
                continue
            if _failed(status):
                self._stop(rank, proc, status)
        self.armed = False

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.calls_left -= 1
        if self.calls_left <= 0:  # the last trainer call is over: what a rank does after it is its own
            self.armed = False

    def _wait(self, rank: int, proc: Popen) -> None:
        status = proc.wait()
        if _failed(status) and self.armed:
            self._stop(rank, proc, status)

    def _stop(self, rank: int, proc: Popen, status: int) -> None:
        self._stopping.acquire()  # once: the other caller waits here until this process is gone
        why = rank_death(rank, proc.pid, status)
        if sys.stdout.isatty():  # the progress bar's line, which Lightning would end, ends here
            print(flush=True)
        if status != ONE_LINE:
            print(f"ip-tsn {self.command}: error: {why}; the other processes were stopped{self.hint()}",
                  file=sys.stderr, flush=True)
        for _, other in self._ranks:
            if other is not proc and other.poll() is None:
                other.kill()  # they may wait in a collective for the dead rank: SIGKILL, as Lightning does
        if self.mark is not None:
            try:
                self.mark(why)
            except Exception:  # noqa: BLE001 - the exit below matters more than the mark
                pass
        sys.stdout.flush()
        os._exit(status if status > 0 else ONE_LINE)


DEATH_WAIT_S = 0.5  # how long an error of this process waits for a rank's death it may come from


def _failed(status: int) -> bool:
    return status != 0 and status not in STOPPED_BY_SIGNAL


def rank_death(rank: int, pid: int, status: int) -> str:
    """How a rank's process ended, in words: ``status`` as :class:`subprocess.Popen` gives it
    (negative: the signal that killed it)."""
    if status < 0:
        name = signal.Signals(-status).name if -status in signal.valid_signals() else f"signal {-status}"
        why = (" (the out-of-memory killer does this: use fewer data.num_workers or a smaller batch size)"
               if -status == signal.SIGKILL else "")
        return f"the process of DDP rank {rank} (pid {pid}) was killed by {name}{why}"
    said = " (its error is above)" if status == ONE_LINE else " (its traceback is above)" if status == 1 else ""
    return f"the process of DDP rank {rank} (pid {pid}) stopped with exit status {status}{said}"
