"""The `ip-tsn` command: one entry point for every stage.

    ip-tsn fit   experiments/teacher.yaml [key=value ...]   # train a stream (teacher, istream, pstream, student)
    ip-tsn fit   experiments/student.yaml --print-config    # the composed config, keys and types checked; nothing runs
    ip-tsn cache experiments/cache.yaml   [key=value ...]   # teacher logits/features for the student
    ip-tsn test  experiments/student.yaml [--checkpoint CKPT] [key=value ...]  # TSN test protocol, scores
    ip-tsn fuse  experiments/fuse.yaml    [key=value ...]   # late fusion, results table + confusion PNG
    ip-tsn fuse  experiments/fuse.yaml fuse.splits=[1,2,3]  # the same per split, and each split + mean
    ip-tsn predict VIDEO [VIDEO ...] --model runs/<dataset>/split1/fusion  # fused I+P, top-5, timing
    ip-tsn predict VIDEO --istream I.ckpt --pstream P.ckpt [--weights 2,1] [--json] [--device cuda]
    ip-tsn export --model runs/<dataset>/split1/fusion --out exported/  # TorchScript + ONNX + fusion.json

Overrides are OmegaConf dot-lists (``data=ucf101 trainer.devices=2 model.optim.lr=0.01``), exactly what
a W&B sweep's ``${args_no_hyphens}`` passes, and what every DDP rank parses again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Callable

from .config import ConfigError
from .settings import positive_int


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ip-tsn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [("fit", "train one stream"), ("cache", "write the teacher cache"),
                       ("test", "evaluate a checkpoint with the test protocol"), ("fuse", "late fusion of streams")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("config", help="experiments/<stage>.yaml")
        p.add_argument("overrides", nargs="*", help="key=value (OmegaConf dot-list)")
        p.add_argument("--print-config", action="store_true",
                       help="print the composed config, every setting with its value, and stop (keys and types "
                            "are checked here; ranges such as data.num_segments>=1 when a run sets up, "
                            "before it writes anything)")
        if name == "test":
            p.add_argument("--checkpoint", help="default: <run_dir>/checkpoints/best.ckpt")
            p.add_argument("--subsets", default="val,test",
                           help="comma-separated, of train, val, trainval, test (default val,test)")
    predict = sub.add_parser("predict", help="fused I+P prediction on any video (no optical flow)")
    predict.add_argument("videos", nargs="+", help="video files (H.264, MPEG-4, ...; HEVC: re-encode first)")
    export = sub.add_parser("export", help="TorchScript + ONNX of the stream networks, fusion.json")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--no-onnx", dest="onnx", action="store_false", help="TorchScript only")
    export.add_argument("--overwrite", action="store_true", help="replace the export already in --out")
    for p in (predict, export):
        p.add_argument("--model", help="folder or model.json of `ip-tsn fuse` (predict: or an export folder)")
        p.add_argument("--istream", help="I-stream checkpoint")
        p.add_argument("--pstream", help="P-stream checkpoint (distilled or not)")
        p.add_argument("--weights", type=_floats, help="fusion weights, one per stream, e.g. 2,1 (I,P)")
        p.add_argument("--classes", help="class names (classInd.txt or one per line), if not stored")
        p.add_argument("--segments", type=positive_int, help="TSN segments (default: the checkpoint's test_segments)")
        p.add_argument("--crops", type=int, default=1, choices=(1, 3, 10), help="crops per segment (default 1)")
        p.add_argument("--scale-size", type=positive_int,
                       help="resize the shorter side to this before cropping (default: the checkpoint's; "
                            "for videos smaller than the crop)")
    predict.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    predict.add_argument("--reconstruct", default="auto", choices=("auto", "cpu", "device"),
                         help="where the P-stream's motion and residual are rebuilt: auto (default: the "
                              "device when it is CUDA), cpu (the decoding workers' path) or device")
    predict.add_argument("--top-k", type=positive_int, default=5, help="classes shown (default 5)")
    predict.add_argument("--json", action="store_true", help="one JSON list on stdout")
    return parser


INTERRUPTED = 130  # 128 + SIGINT
_USER_ERRORS = {"predict": (ValueError, RuntimeError), "export": (ValueError, RuntimeError)}


def _user_errors(command: str) -> tuple[type[BaseException], ...]:
    """The errors ``command`` prints as one line (exit 2); imported when one happens."""
    from .atomic import BrokenFileError, OutputError
    from .codec.errors import VideoError
    from .data.split_files import SplitError
    from .data.teacher_cache import StaleCacheError
    from .evaluation.scores import ScoresError

    return (ConfigError, VideoError, SplitError, StaleCacheError, ScoresError, OutputError, BrokenFileError,
            FileNotFoundError, *_USER_ERRORS.get(command, ()))


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 2,1; got {text!r}") from None


def _quiet() -> None:
    """Hide the warnings that only restate our choices (small CPU runs, few workers)."""
    for pattern in (".*does not have many workers.*", ".*GPU available but not used.*",
                    ".*number of training batches.*", ".*is an invalid version and will not be supported.*",
                    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning's own, with torch 2.14
                    r"(?s).*During `trainer.test\(\)`, it is recommended to use `Trainer\(devices=1.*"):  # scores: once each
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.trainer.connectors.signal_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)  # the latter: "Received SIGTERM", which our line says


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse, letting ``key=value`` overrides sit before or after the options (``test CFG
    --checkpoint X key=value``, the order ``--help`` shows)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(not e.count("=") or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def _one_line_warnings(command: str) -> Callable[..., str]:
    """A ``warnings.formatwarning`` that shows the package's own warnings (missing or left-out
    videos, duplicate split lines, a random init) as one line each, ``ip-tsn <command>: warning:
    ...``, as errors are; others as Python formats them. A formatter, not a ``showwarning``, so that
    whoever records warnings (``pytest.warns``, a notebook) still gets them."""
    default, package = warnings.formatwarning, os.path.dirname(os.path.abspath(__file__)) + os.sep

    def one_line(message, category, filename, lineno, line=None) -> str:
        if not os.path.abspath(str(filename)).startswith(package):
            return default(message, category, filename, lineno, line)
        return f"ip-tsn {command}: warning: {message}\n"

    return one_line


def main(argv: list[str] | None = None) -> int:
    _die_with_rank_zero()
    args = _parse(argv)
    formatter = warnings.formatwarning
    with warnings.catch_warnings():  # what follows changes no warning setting of a caller (tests, notebooks)
        _quiet()
        if _rank() > 0:  # a DDP rank sets up as rank 0 did, which said what it found
            from .settings import SetupWarning

            warnings.filterwarnings("ignore", category=SetupWarning)
        warnings.formatwarning = _one_line_warnings(args.command)
        try:
            with _sigterm_stops():
                return _run(args)
        finally:
            warnings.formatwarning = formatter  # catch_warnings does not restore this one


def _rank() -> int:
    """This process's global DDP rank as Lightning reads it from the environment (``RANK``,
    ``LOCAL_RANK`` of the processes it starts, ``SLURM_PROCID``); 0 outside DDP."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def _die_with_rank_zero() -> None:
    """A DDP rank that another process started (``LOCAL_RANK`` > 0: Lightning's rank 0, torchrun's
    agent) is killed when that process dies (Linux's ``PR_SET_PDEATHSIG``). Until 2026-12-07 rank 0
    taken by the out-of-memory killer left the others with a gloo traceback on the CPU and, with NCCL,
    waiting in a collective until its timeout (30 minutes), their GPUs held."""
    if os.environ.get("LOCAL_RANK", "0") not in ("", "0") and sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # 1: PR_SET_PDEATHSIG
            if ctypes.CDLL(None).prctl(1, int(signal.SIGKILL)) == 0 and os.getppid() == 1:  # it died first
                os.kill(os.getpid(), signal.SIGKILL)


def _run(args: argparse.Namespace) -> int:
    cfg, fit_stage = None, None
    try:
        if args.command in ("predict", "export"):
            return _predict_or_export(args)
        from .stages.config_check import load_checked  # no torch, no Lightning: a typo answers at once

        cfg = load_checked(args.config, args.overrides)  # refused here: unknown keys, wrong types
        if args.command == "fit":
            from .config import sweep_trial

            cfg = sweep_trial(cfg)  # a W&B sweep's trial: its own run folder
        if args.print_config:
            from omegaconf import OmegaConf

            from .stages.config_schema import complete

            print(OmegaConf.to_yaml(complete(cfg), resolve=True), end="")
            return 0
        from .stages import cache_stage, eval_stage, fit_stage, fuse_stage  # the heavy imports, once the config is good

        if args.command == "fit":
            best = fit_stage.fit(cfg)
            if best is not None:  # None: a smoke test (trainer.fast_dev_run), which keeps nothing
                _say(f"best checkpoint: {best}")
        elif args.command == "cache":
            manifest = cache_stage.cache(cfg)
            if manifest is not None:  # None: part of the videos ran, no manifest
                _say(f"teacher cache: {manifest}")
        elif args.command == "test":
            metrics = eval_stage.test(cfg, args.checkpoint, tuple(args.subsets.split(",")))
            for subset, values in metrics.items():
                _say(subset + ": " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(values.items())))
        elif args.command == "fuse" and cfg.fuse.get("splits"):
            print(open(fuse_stage.fuse_splits(args.config, args.overrides, list(cfg.fuse.splits))["markdown"]).read())
        elif args.command == "fuse":
            result = fuse_stage.fuse(cfg)
            print(open(result["markdown"]).read() if "markdown" in result else result)
    except Exception as e:
        if isinstance(e, _user_errors(args.command)):
            line = re.sub(r"\s*\n\s*", " ", str(e).strip())  # one line, whatever a message quotes
            print(f"ip-tsn {args.command}: error: {line}", file=sys.stderr)
            return 2
        from .stages.failures import BATCH_KEYS, out_of_memory, shared_memory, shm_free, worker_killed

        hint = _resume_hint(args.command, fit_stage, cfg)
        key = BATCH_KEYS.get(args.command, "data.batch_size")
        if (what := shared_memory(e)) is not None:  # a container's 64 MB /dev/shm, most often
            print(f"ip-tsn {args.command}: error: a DataLoader worker ran out of shared memory ({what}; {shm_free()}): "
                  "give it more (a container's default is 64 MB: docker run --shm-size=8g, or --ipc=host), or use "
                  f"fewer data.num_workers or a smaller {key}{hint}", file=sys.stderr)
            return 2
        if worker_killed(e) and "signal: Terminated" in str(e):  # SIGTERM to every process of the job (scancel)
            return _terminated(args.command, fit_stage, cfg)
        if worker_killed(e):  # the system's out-of-memory killer, most often
            print(f"ip-tsn {args.command}: error: {str(e).strip().rstrip('.')} (the out-of-memory killer does this): use fewer "
                  f"data.num_workers or a smaller data.batch_size{hint}", file=sys.stderr)
            return 2
        if (short := out_of_memory(e)) is not None:
            now = cfg.data.get(key.split(".", 1)[1]) if cfg is not None else None  # every key is a data.* one
            print(f"ip-tsn {args.command}: error: out of memory ({short}): use a smaller {key}"
                  f"{f' ({now} now)' if now is not None else ''}, or trainer.precision=bf16-mixed on a GPU{hint}",
                  file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:  # Ctrl-C: one line and the shell's status for SIGINT, no fit.json
        print(f"ip-tsn {args.command}: interrupted{_resume_hint(args.command, fit_stage, cfg)}", file=sys.stderr)
        return INTERRUPTED
    except Terminated:
        return _terminated(args.command, fit_stage, cfg)
    return 0


class Terminated(BaseException):
    """SIGTERM reached the command: a job's time limit, ``scancel``, a preemption, ``docker stop``."""


TERMINATED = 143  # 128 + SIGTERM


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """For the command, SIGTERM raises :class:`Terminated`, so it stops as Ctrl-C stops it: one line,
    the shell's status, what finished kept (Lightning's own handler, which passes the signal on to
    the processes it started, runs first). A forked DataLoader worker, which inherits the handler,
    dies of the signal as it would without it. Until 2026-12-07 a SIGTERM to the job's processes
    (``scancel``) was blamed on the out-of-memory killer, and one to the main process alone stopped
    it at the next batch as an interrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pid = os.getpid()

    def stop(signum: int, frame: object) -> None:
        if os.getpid() != pid:  # a forked worker: the default action
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(command: str, fit_stage, cfg) -> int:
    """One line (from rank zero only: Lightning passes the signal on to every rank) and 143. The
    loaders' workers die of the same signal, and torch's SIGCHLD handler, still set while their
    loader is not yet collected, raised "DataLoader worker ... killed by signal: Terminated" in
    whatever ran as this process exited: a traceback after the line, now and then (seen 2026-12-07)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    lightning = sys.modules.get("pytorch_lightning.utilities.rank_zero")
    if getattr(getattr(lightning, "rank_zero_only", None), "rank", 0) == 0:
        print(f"ip-tsn {command}: terminated (SIGTERM: a job's time limit, scancel, a preemption or docker stop)"
              f"{_resume_hint(command, fit_stage, cfg)}", file=sys.stderr)
    return TERMINATED


def _resume_hint(command: str, fit_stage, cfg) -> str:
    """``"; resume with ckpt_path=last (...)"`` after a fit or a cache run that stopped; "" for other
    commands, or before the stage (never imported here: a signal's line is quick) or the config was loaded."""
    stage = fit_stage if command == "fit" else sys.modules.get("ip_tsn.stages.cache_stage") if command == "cache" else None
    return f"; {stage.resume_hint(cfg)}" if stage and cfg is not None else ""


def _say(result: str) -> None:
    """Print a command's result once: on the global rank zero of a DDP job (every rank runs the
    command), as Lightning knows it from the launcher's or SLURM's environment."""
    from pytorch_lightning.utilities import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) == 0:
        print(result)


def _predict_or_export(args: argparse.Namespace) -> int:
    """``predict``: every video, errors per video on stderr (exit 2 if any); ``export``."""
    from .deploy.predict import FusedPredictor, format_prediction

    export = args.command == "export"
    predictor = FusedPredictor.load(args.model, args.istream, args.pstream, args.weights, args.classes,
                                    "cpu" if export else args.device, args.segments, args.crops, args.scale_size,
                                    "cpu" if export else args.reconstruct)
    if args.command == "export":
        from .deploy.export import export_model

        report = export_model(predictor, args.out, onnx=args.onnx, overwrite=args.overwrite)
        for name, rep in report["streams"].items():
            files = ", ".join(str(rep[k]) for k in ("torchscript", "onnx") if rep[k])
            diffs = ", ".join(f"{k} {v:.1e}" for k, v in rep["max_abs_diff"].items())
            print(f"{name}: {files} (max |logit - checkpoint|: {diffs})"
                  + "".join(f"\n  {k} not written: {v}" for k, v in rep["errors"].items()))
        print(f"fusion: {report['fusion']}")
        return 0
    results, failed = [], 0
    for video in args.videos:
        try:
            results.append(predictor.predict(video, args.top_k))
        except (ValueError, OSError) as e:  # VideoError is a ValueError naming the file
            failed += 1
            results.append({"video": video, "error": str(e)})
            print(f"ip-tsn predict: error: {e}", file=sys.stderr)
            continue
        if not args.json:
            print(format_prediction(results[-1]), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
