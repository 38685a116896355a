"""Shared helpers for the data_prep scripts: sharding, atomic writes, a fault-tolerant parallel map.

Every script follows the same pattern::

    items = shard(sorted_items, *parse_shard(args.shard))
    results = parallel_map(process_one, items, workers=args.workers, desc="flow")
    return summarize(results, "flow")      # exit status: 1 if any item failed

``process_one(item)`` returns a short status string ("done", "skipped", "done (note)") or raises;
a raised exception becomes a per-item failure (file + message) instead of stopping the run.

Workers exit when the script dies, even by SIGKILL (``PR_SET_PDEATHSIG`` on Linux, and a thread
watching the parent everywhere), and ignore Ctrl-C: the script's ``main`` run through
:func:`run_main` stops them, prints one line (what was done, how to resume) and exits 130. A bad
input that stops the whole run (a split file, a folder that is not the layout) is one line naming
it, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from ip_tsn.atomic import OutputError, atomic_path, check_output_dir, remove_stale_temps, write_json_atomic
from ip_tsn.codec.errors import VideoError
from ip_tsn.data.split_files import SplitError
from ip_tsn.settings import differences, positive_int

TMP_MARK = ".tmp-"  # temp outputs: ".<final name>.tmp-<pid>" (ip_tsn.atomic.temp_name)


# --------------------------------------------------------------------------------------- sharding
def parse_shard(text: str | None = None, environ=os.environ) -> tuple[int, int]:
    """``"i/n"`` (0-based, 0 <= i < n) -> ``(i, n)``.

    Without ``text``, a SLURM array job's ``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` /
    ``SLURM_ARRAY_TASK_COUNT`` are used when set (so ``--array=0-9`` and ``--array=1-10`` both
    work); otherwise ``(0, 1)``, i.e. everything.
    """
    if text is None:
        if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
            index = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
            return _check_shard(index, int(environ["SLURM_ARRAY_TASK_COUNT"]), "SLURM_ARRAY_*")
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects i/n, e.g. 0/4, got {text!r}") from None
    return _check_shard(index, count, text)


def _check_shard(index: int, count: int, text: str) -> tuple[int, int]:
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= i < n, got i={index}, n={count}")
    return index, count


def shard(items: Iterable, index: int, count: int) -> list:
    """Deterministic round-robin part ``index`` of ``count`` of ``sorted(items)``.

    The parts are disjoint, cover every item, and differ in length by at most one.
    """
    return sorted(items)[index::count]


# --------------------------------------------------------------------------------------- files
def find_files(root: str, extensions: Sequence[str]) -> list[str]:
    """Sorted paths relative to ``root`` of the files under it with one of ``extensions``
    (case-insensitive, e.g. ``(".mp4", ".avi")``), skipping hidden files and temp outputs."""
    exts = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.lower().endswith(exts) and not name.startswith(".") and TMP_MARK not in name:
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """``ip_tsn.atomic.atomic_path`` as a ``str``: yield a temp path next to ``path``, renamed to
    ``path`` on success and removed on an exception, so ``path`` only ever names a complete file.
    Temp files left by killed earlier runs for the same ``path`` are removed first."""
    remove_stale_temps(path)
    with atomic_path(path) as tmp:
        yield os.fspath(tmp)


# ----------------------------------------------------------------- one set of settings per folder
SETTINGS_FILE = "settings.json"


class SettingsError(ValueError):
    """An output folder that holds outputs made with other settings (one line, exit status 2)."""


def up_to_date(dst: str, src: str, fits: Callable[[], bool]) -> bool:
    """An output ``dst`` there for the input ``src`` that still fits it: newer than the input, or
    ``fits()`` (its length matches the input's: a copied data set keeps its outputs whatever their
    file times). Stale: the input replaced since by one of another length, as a download cut short
    and fetched again is; the output is made again (so is an unreadable one)."""
    if not os.path.exists(dst):
        return False
    if not os.path.exists(src) or os.path.getmtime(dst) >= os.path.getmtime(src):
        return True
    try:
        return fits()
    except VideoError:
        return False


def claim_folder(folder: str, settings: dict, what: str, extension: str, overwrite: bool = False) -> None:
    """Record in ``<folder>/settings.json`` the ``settings`` its outputs (``what``: files ending
    in ``extension``) are made with, or check them against those recorded there.

    A rerun skips the outputs that exist (resume), so a run with other settings would leave a
    folder of two kinds without a word; it raises :class:`SettingsError` instead, naming the folder
    and every setting that differs, before anything is written. ``--overwrite`` recomputes outputs
    with the recorded settings, never with others: a folder holds one kind. Outputs there with no
    record (an older version's, or the record was removed) are never taken on trust, since nothing
    in them says how they were made: the run is refused, naming the record that would adopt them,
    unless ``overwrite`` (the caller's ``--overwrite``: they are recomputed with ``settings``).
    Shards started together agree: each writes the same file, atomically, before any output (so a
    shard that counts another's first outputs finds its record too: it looks for it after counting)."""
    settings = json.loads(json.dumps(settings))  # as it reads back: tuples are lists
    check_output_dir(folder, "output folder")
    path = os.path.join(folder, SETTINGS_FILE)
    counted = not os.path.isfile(path) and os.path.isdir(folder) and not overwrite
    older = len(find_files(folder, (extension,))) if counted else 0
    if not os.path.isfile(path):  # looked for after counting: a shard started together records before its outputs
        if older:
            raise SettingsError(f"{folder}: holds {what} ({older}) and no {SETTINGS_FILE} saying how they were made; "
                                f"if they were made with these settings, write {json.dumps(settings)} to {path} to "
                                "resume, else pass --overwrite to remake them with these settings")
        write_json_atomic(path, settings)  # makes the folder
        return
    try:
        with open(path) as f:
            recorded = json.load(f)
    except (OSError, ValueError) as e:
        raise SettingsError(f"{path}: not readable ({(str(e).splitlines() or [type(e).__name__])[0]}); remove it "
                            f"if {folder} holds {what} made with {settings}") from None
    if recorded != settings:
        differ = differences(recorded, settings) if isinstance(recorded, dict) else f"{recorded!r} there"
        raise SettingsError(f"{folder}: holds {what} made with other settings ({differ}); rerun with the "
                            f"recorded settings to resume, or remove {folder} to start again with these")


# --------------------------------------------------------------------------------------- running
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 0.5


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) during :func:`parallel_map`: the message says what was done and how to
    resume; ``status``: the shell's for the signal (130, 143)."""

    def __init__(self, message: str, status: int = 130) -> None:
        super().__init__(message)
        self.status = status


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job's time limit, ``scancel``, a preemption): the run stops as on Ctrl-C, and says
    which it was (it died without a word until 2026-12-07)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def die_with_parent(parent: int) -> None:
    """Make this process exit when process ``parent`` dies, SIGKILL included: the kernel's
    ``PR_SET_PDEATHSIG`` (Linux) and, as a fallback, a daemon thread polling ``os.getppid()``."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the thread alone
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker_init(parent: int, initializer: Callable | None, initargs: tuple) -> None:
    """Every pool worker: Ctrl-C is the parent's to handle; exit with the parent; then ``initializer``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a worker dies of it; the parent says what was done
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes now (their current items are abandoned)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


def _interrupted(desc: str, results: dict, total: int, terminated: bool) -> Interrupted:
    failed = sum(not r.ok for r in results.values())
    how = "terminated (SIGTERM)" if terminated else "interrupted"
    return Interrupted(f"{desc or 'run'}: {how} after {len(results)} of {total} files ({len(results) - failed} "
                       f"finished, {failed} failed); finished outputs are kept: run the same command again "
                       "to resume (it skips them)", 143 if terminated else 130)


def run_main(main: Callable[[], int]) -> int:
    """``main()``'s exit status; Ctrl-C: one line on stderr instead of a traceback, status 130, and
    SIGTERM the same, status 143; a bad split file, input or output folder that stops the run
    (``SplitError``, ``VideoError``, ``SettingsError``, ``OutputError``): one line, status 2."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return main()
    except (SplitError, VideoError, SettingsError, OutputError) as e:
        print(f"{os.path.basename(sys.argv[0])}: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(e, file=sys.stderr)
        return e.status
    except KeyboardInterrupt as e:
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"{how}; run the same command again to resume (finished outputs are skipped)", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Result:
    item: object          # what was processed (usually an input path)
    ok: bool
    message: str          # status string on success, "ErrorType: message" on failure


def _run_one(fn: Callable, item) -> Result:
    try:
        return Result(item, True, str(fn(item) or "done"))
    except Exception as e:  # noqa: BLE001 - reported per item, the run goes on
        problem = getattr(e, "problem", None)  # ip_tsn VideoError: the item already names the file
        message = problem if isinstance(problem, str) else f"{type(e).__name__}: {e}".strip()
        if os.environ.get("DATA_PREP_TRACEBACK"):
            message += "\n" + traceback.format_exc()
        return Result(item, False, message)


def parallel_map(fn: Callable, items: Sequence, workers: int = 1, desc: str = "",
                 progress: bool | None = None, initializer: Callable | None = None,
                 initargs: tuple = ()) -> list[Result]:
    """Apply ``fn`` to every item in ``workers`` processes (in-process if ``workers <= 1``).

    Never raises for a bad item: each failure is a ``Result(ok=False)`` with the error message.
    If a worker process dies (segfault, out of memory), the items not finished by then are
    reported as failed; a rerun (which skips finished outputs) retries them. Ctrl-C (or SIGTERM,
    under :func:`run_main`) stops the workers and raises :class:`Interrupted`; workers exit if this
    process dies.
    ``progress``: tqdm bar (``None``: only on a terminal). Results come back in input order.
    """
    from tqdm import tqdm

    items = list(items)
    results: dict[int, Result] = {}
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=(None if progress is None
                                                                   else not progress))

    failed = [0]

    def record(i: int, result: Result) -> None:
        results[i] = result
        bar.update(1)
        if not result.ok:
            failed[0] += 1
            bar.set_postfix(failed=failed[0], refresh=False)
            bar.write(f"FAILED {result.item}: {result.message.splitlines()[0]}", file=sys.stderr)

    try:
        if workers <= 1:
            if initializer is not None:
                initializer(*initargs)
            for i, item in enumerate(items):
                record(i, _run_one(fn, item))
        else:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                       initargs=(os.getpid(), initializer, initargs))
            stopped = False
            try:
                futures = {pool.submit(_run_one, fn, item): i for i, item in enumerate(items)}
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        record(i, future.result())
                    except BrokenProcessPool:
                        record(i, Result(items[i], False, "worker process died (crash or out of "
                                                          "memory) before this item finished"))
            except KeyboardInterrupt:
                stopped = True
                _stop_workers(pool)
                raise
            finally:  # drop queued items instead of finishing them
                pool.shutdown(wait=not stopped, cancel_futures=True)
    except KeyboardInterrupt as e:
        raise _interrupted(desc, results, len(items), isinstance(e, Terminated)) from None
    finally:
        bar.close()
    return [results[i] for i in sorted(results)]


def summarize(results: Sequence[Result], what: str = "files", out=None) -> int:
    """Print counts, every note and every failure (file and why); return the exit status."""
    out = out or sys.stdout
    failed = [r for r in results if not r.ok]
    skipped = sum(r.ok and r.message.startswith("skipped") for r in results)
    done = len(results) - len(failed) - skipped
    print(f"{what}: {len(results)} total, {done} done, {skipped} skipped (already there), "
          f"{len(failed)} failed", file=out)
    for r in results:
        if r.ok and r.message not in ("done", "skipped"):
            print(f"  note {r.item}: {r.message}", file=out)
    for r in failed:
        print(f"  FAILED {r.item}: {r.message}", file=out)
    out.flush()
    return 1 if failed else 0


def add_common_args(parser: argparse.ArgumentParser, default_workers: int | None = None) -> None:
    """``--workers``, ``--shard i/n``, ``--overwrite``, ``--no-progress``."""
    # --workers 0 or -1: taken as 1 without a word until 2026-12-08
    parser.add_argument("--workers", type=positive_int, default=default_workers or os.cpu_count() or 1,
                        help="worker processes (default: all cores; 1 = run in this process)")
    parser.add_argument("--shard", type=parse_shard, default=None, metavar="i/n",
                        help="process part i (0-based) of n of the sorted file list; default: "
                             "from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT if set, else all")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo outputs that already exist (default: skip them, i.e. resume)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no progress bar (default: shown on a terminal)")
