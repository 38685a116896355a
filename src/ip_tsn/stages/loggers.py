"""The loggers of a run: CSV (``<run_dir>/logs/metrics.csv``, resumable: a run continued from a
checkpoint keeps the rows of the epochs it holds, each once) and W&B (resumable: a run continued
from a checkpoint continues the W&B run it started, whose id ``<run_dir>/wandb_run.json`` keeps)."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import string
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from ip_tsn.atomic import write_json_atomic, write_text_atomic
from ip_tsn.config import ConfigError, to_container
from ip_tsn.stages.config_schema import WANDB_ALIASES, LoggerConfig, filled


def asked_wandb_mode(cfg: DictConfig) -> str | None:
    """The W&B mode the user set: ``logger.wandb_mode``, else ``WANDB_MODE`` (its older names
    ``dryrun`` and ``run`` as ``offline`` and ``online``); None where neither says."""
    mode = filled(cfg.get("logger"), LoggerConfig).wandb_mode or os.environ.get("WANDB_MODE") or None
    return WANDB_ALIASES.get(mode, mode) if mode else None


def wandb_mode(cfg: DictConfig) -> str:
    """``logger.wandb_mode``, else ``WANDB_MODE``, else online only if an API key is configured."""
    mode = asked_wandb_mode(cfg)
    if mode:
        return mode
    netrc = Path.home() / ".netrc"
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
    return "online" if has_key else "offline"


def kept_metric_rows(path: Path, epoch: int, global_step: int) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a ``metrics.csv`` that belong to epochs up to ``epoch``: rows with an
    ``epoch`` up to it, rows without one (learning rates, logged at an epoch's first step) logged
    before step ``global_step`` (the checkpoint's). ``([], [])`` when there is no file."""
    if not path.is_file():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = list(reader.fieldnames or [])

    def kept(row: dict[str, str]) -> bool:
        if row.get("epoch"):
            return int(float(row["epoch"])) <= epoch
        return bool(row.get("step")) and int(float(row["step"])) < global_step
    return header, [r for r in rows if kept(r)]


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, which deletes an existing ``metrics.csv``, keeping the rows of the
    epochs a resumed checkpoint holds instead; new rows are added as Lightning adds them (a column
    first logged later rewrites the header), every write atomic (:meth:`save`). ``written``: the
    rows in the file, kept so that a save does not read it back."""

    def __init__(self, log_dir: str, resume: tuple[int, int] | None) -> None:
        self._resume = resume
        self.written: list[dict[str, Any]] = []
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self._resume is None:
            return super()._check_log_dir_exists()
        header, rows = kept_metric_rows(Path(self.metrics_file_path), *self._resume)
        if not rows:
            Path(self.metrics_file_path).unlink(missing_ok=True)
            return
        write_text_atomic(self.metrics_file_path, _csv_text(header, rows))
        self.metrics_keys, self.written = header, rows

    def save(self) -> None:
        """What Lightning's ``save`` writes (the rows so far, then the new ones, under the sorted
        columns), through a temporary file renamed over ``metrics.csv``: Lightning appends in place
        and rewrites the whole file when a column is added, so a kill mid-write left a cut row or
        a cut file; here it leaves the previous file whole."""
        if not self.metrics:
            return
        self._record_new_keys()
        self.written += self.metrics
        write_text_atomic(self.metrics_file_path, _csv_text(self.metrics_keys, self.written))
        self.metrics = []


def _csv_text(header: list[str], rows: list[dict[str, Any]]) -> str:
    """``header`` and ``rows`` as Lightning's CSV writer writes them (``csv`` defaults)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that, with ``resume=(epoch, global_step)`` of the checkpoint training resumes
    from, keeps the earlier epochs' rows of ``metrics.csv`` (each epoch once) and appends."""

    def __init__(self, *args: Any, resume: tuple[int, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume = resume

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self.resume)
        return self._experiment


WANDB_RUN = "wandb_run.json"  # in a run folder: the id of the W&B run its training logs to


def wandb_run(run_dir: Path, resume: tuple[int, int] | None) -> dict[str, str]:
    """``WandbLogger``'s ``id`` (it passes ``resume="allow"``): a resumed training (``resume``, the
    checkpoint's epoch and step) continues the W&B run ``<run_dir>/wandb_run.json`` names, so a
    SLURM job requeued N times is one W&B run, not N; a fresh start gets a new id. Nothing under a
    W&B sweep agent or with ``WANDB_RUN_ID`` set, whose id is W&B's to give."""
    if os.environ.get("WANDB_RUN_ID"):
        return {}
    record = run_dir / WANDB_RUN
    if resume is not None and record.is_file():
        try:
            return {"id": str(json.loads(record.read_text())["id"])}
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{record}: not a W&B run record ({{\"id\": ...}}); delete it to log the resumed "
                              "training to a new W&B run") from None
    return {"id": "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))}  # W&B's kind


def remember_wandb_run(loggers: list[Logger], run_dir: Path) -> None:
    """Write ``<run_dir>/wandb_run.json`` (the W&B run id the training logs to), on rank zero, so
    that a resumed training continues it (:func:`wandb_run`); nothing without W&B or under a sweep agent."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        run_id = logger.version if isinstance(logger, WandbLogger) else None  # the id passed, no run started
        if run_id and not os.environ.get("WANDB_RUN_ID"):
            write_json_atomic(run_dir / WANDB_RUN, {"id": run_id})


def start_wandb(loggers: list[Logger], cfg: DictConfig) -> None:
    """Start the W&B run now, on rank zero (Lightning would, inside the training). An online run
    that cannot start (a compute node without network, a wrong key): where online was chosen because
    a key is configured, the run is logged offline instead, said in one line (``wandb sync`` uploads it
    later); where ``logger.wandb_mode`` or ``WANDB_MODE`` asked for online, one line and exit 2. Until
    2026-12-07 it was a traceback from inside wandb, after its 90 s timeout."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        init = getattr(logger, "_wandb_init", None)
        if not isinstance(logger, WandbLogger) or not isinstance(init, dict) or init.get("mode") != "online":
            continue
        try:
            logger.experiment  # noqa: B018 - wandb.init on rank zero, a stand-in elsewhere
        except Exception as e:  # noqa: BLE001 - wandb's errors (CommError, UsageError, ...) and the network's
            reason = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())[:300] or type(e).__name__
            if asked_wandb_mode(cfg):
                raise ConfigError(f"W&B could not start its online run ({reason}); on a machine without network set "
                                  "logger.wandb_mode=offline and upload the run later with wandb sync, or set "
                                  "logger.wandb=false") from None
            import wandb

            wandb.teardown()  # the failed run's id stays taken in wandb's service process until it ends
            init["mode"] = "offline"
            print(f"W&B: the online run could not start ({reason}); logging offline instead: upload it later with "
                  f"wandb sync {Path(logger.save_dir or '.') / 'wandb'}/offline-run-*")
            logger.experiment  # noqa: B018


def finish_wandb(loggers: list[Logger]) -> None:
    """End the W&B run this process's training logged to (wandb's ``finish``: flushed, closed), so
    that the next training in the same process (``ip_tsn.cli.main`` called twice) starts its own
    run instead of Lightning reusing this one."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        run = getattr(logger, "_experiment", None) if isinstance(logger, WandbLogger) else None
        if run is not None and hasattr(run, "finish"):
            run.finish()


def build_loggers(cfg: DictConfig, run_dir: Path, resume: tuple[int, int] | None = None) -> list[Logger]:
    """CSV (``<run_dir>/logs/metrics.csv``; ``resume``: see :class:`ResumableCSVLogger`), W&B and
    TensorBoard (``<run_dir>/tb``), as ``logger.*`` says."""
    loggers: list[Logger] = []
    settings = filled(cfg.get("logger"), LoggerConfig)
    if settings.csv:
        loggers.append(ResumableCSVLogger(str(run_dir), name="logs", version="", resume=resume))
    if settings.wandb:
        from pytorch_lightning.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        wandb_logger = WandbLogger(project=settings.wandb_project, name=cfg.run_name, group=cfg.get("wandb_group"),
                                   save_dir=str(run_dir), mode=wandb_mode(cfg), config=to_container(cfg),
                                   **wandb_run(run_dir, resume))
        # Lightning always passes wandb's deprecated `anonymous` (None), which makes wandb warn on every
        # run that it has no effect: leave it out of the init arguments
        getattr(wandb_logger, "_wandb_init", {}).pop("anonymous", None)
        loggers.append(wandb_logger)
    if settings.tensorboard:
        try:
            from pytorch_lightning.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(str(run_dir), name="tb", version="", default_hp_metric=False))
        except ModuleNotFoundError as e:  # neither tensorboard nor tensorboardX
            raise ConfigError(f"logger.tensorboard=true needs TensorBoard ({e}): pip install 'ip-tsn[tensorboard]'") from None
    return loggers
