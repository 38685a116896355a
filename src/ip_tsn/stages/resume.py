"""Resuming a training (``ckpt_path``): the checkpoint it continues from, whether that holds the
network the config builds, and whether the config keeps the settings the run started with (its
``config.yaml``): a change that shapes the training is refused, one of where and how it runs is
free, a new length is said, and a moved place is checked to hold what the run started with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from ip_tsn.atomic import sha256_file
from ip_tsn.config import ConfigError
from ip_tsn.data.datasets import video_keys
from ip_tsn.lit.checkpoint_info import TRAINED_ON_KEY, read_checkpoint
from ip_tsn.stages.build import expected_kind
from ip_tsn.stages.config_schema import complete


def resume_checkpoint(cfg: DictConfig) -> tuple[str | None, tuple[int, int] | None]:
    """``cfg.ckpt_path`` resolved (``last``: ``<run_dir>/checkpoints/last.ckpt`` if it exists, else
    None: a fresh start), checked readable and of this stage (:func:`read_checkpoint`), and its
    ``(epoch, global_step)``."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.is_file() else None
    if not ckpt_path:
        return None, None
    if not Path(ckpt_path).exists():  # "best: checkpoint file not found" until 2026-12-08
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file (ckpt_path takes last, this run's last.ckpt, or a "
                          "checkpoint file's path)")
    raw = read_checkpoint(ckpt_path, f"ckpt_path of the {cfg.get('stage')} config", **expected_kind(cfg))
    return str(ckpt_path), (int(raw.get("epoch", 0)), int(raw.get("global_step", 0)))


def resume_hint(cfg: DictConfig) -> str:
    """What to do after an interrupted ``fit`` of ``cfg``."""
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    if last.is_file():
        return f"resume with ckpt_path=last ({last})"
    return f"no epoch finished, nothing to resume ({last} not written)"


def check_resume_fits(model: pl.LightningModule, ckpt_path: str) -> None:
    """One line, before anything is written, when the checkpoint to resume holds another network
    than the config builds (another arch, class count, input channels, head): Lightning's strict
    loading would stop inside ``fit`` with a traceback listing every tensor."""
    saved = read_checkpoint(ckpt_path)["state_dict"]
    own = model.state_dict()
    shapes = {k: (tuple(saved[k].shape), tuple(v.shape)) for k, v in own.items() if k in saved
              and tuple(saved[k].shape) != tuple(v.shape)}
    absent, extra = [k for k in own if k not in saved], [k for k in saved if k not in own]
    if not (shapes or absent or extra):
        return
    if shapes:
        key, (was, now) = next(iter(shapes.items()))
        first = f"{key} is {list(was)} there, {list(now)} here"
    else:
        first = f"{(absent or extra)[0]} only {'here' if absent else 'there'}"
    raise ConfigError(f"ckpt_path={ckpt_path}: holds another network than this config builds ({len(shapes)} tensor(s) "
                      f"of other shapes, {len(absent) + len(extra)} not in both; {first}); resume with the settings "
                      "it was trained with (the run's config.yaml)")


#: settings a resumed run may change: where and how it runs, how it logs, its time budget. Every other one
#: shapes the training (the network, the data and its order, the optimiser, the schedule over the run's
#: length), and a change to it would be partly ignored (the optimiser's state comes from the checkpoint)
#: and partly applied, while the run's config.yaml claimed it throughout
FREE_ON_RESUME = ("ckpt_path", "overwrite", "run_name", "wandb_group", "logger", "trainer.devices", "trainer.num_nodes",
                  "trainer.strategy", "trainer.accelerator", "trainer.max_time", "trainer.enable_progress_bar",
                  "trainer.log_every_n_steps", "trainer.enable_model_summary", "trainer.num_sanity_val_steps",
                  "data.num_workers", "data.pin_memory", "data.reconstruct", "data.test_batch_size",
                  "data.predict_batch_size")
#: the run's length: a resumed run may change it (to train on), and is told what that does to the schedule
LENGTH = ("trainer.max_epochs", "trainer.max_steps")
#: where the run and its inputs lie: a resumed run may find them elsewhere (data staged to another node's
#: local scratch, a run folder moved) where they are the same, which :func:`check_moved` checks once the
#: data are read: the training videos and the teacher its checkpoint records (the teacher cache is checked
#: against its teacher and the data by the student's cache check)
MOVABLE = ("run_root", "run_dir", "data.root", "data.video_root", "data.flow_root", "data.teacher_cache",
           "teacher.checkpoint")


def check_same_settings(cfg: DictConfig, saved: Path) -> dict[str, tuple[Any, Any]]:
    """One line, before anything is written, when a run resumed from its own ``last.ckpt`` is given
    other settings than ``saved`` (its ``config.yaml``) holds, but for :data:`FREE_ON_RESUME`.
    Until 2026-12-07 ``ckpt_path=last model.optim.lr=0.5`` trained on at the checkpoint's rate (the
    optimiser's state) and rewrote config.yaml to say 0.5. A new length (:data:`LENGTH`) is allowed
    and said: Lightning rebuilds the learning-rate schedule over it. Returns the places that moved
    (:data:`MOVABLE`: key -> (there, here)), for :func:`check_moved`."""
    if not saved.is_file():
        return {}
    try:
        before = _flat(OmegaConf.to_container(complete(OmegaConf.load(saved)), resolve=True))
    except Exception as e:  # noqa: BLE001 - any reason it cannot be read is the same line
        why = " ".join(str(e).split())  # YAML's message spans lines (one line since 2026-12-08)
        raise ConfigError(f"{saved}: cannot be read ({type(e).__name__}: {why}); it holds the settings the run "
                          "being resumed started with: restore it, or train again with overwrite=true") from None
    now = _flat(OmegaConf.to_container(complete(cfg), resolve=True))
    unset = object()
    changed = [k for k in sorted(before.keys() | now.keys()) if before.get(k, unset) != now.get(k, unset)
               and not any(k == free or k.startswith(free + ".") for free in FREE_ON_RESUME)]
    shown = lambda v: "unset" if v is unset else repr(v)  # noqa: E731
    refused = [k for k in changed if k not in LENGTH and k not in MOVABLE]
    if refused:
        key = refused[0]
        more = f" (and {len(refused) - 1} more: {', '.join(refused[1:])})" if len(refused) > 1 else ""
        raise ConfigError(f"ckpt_path={cfg.get('ckpt_path')} resumes a run with the settings it started with "
                          f"({saved}), but {key} is {shown(before.get(key, unset))} there and "
                          f"{shown(now.get(key, unset))} here{more}; resume with them as they were, start "
                          "again in its place (overwrite=true) or start another run (run_name=...)")
    for key in (k for k in changed if k in LENGTH):  # a longer (or shorter) run: allowed, and said
        pl.utilities.rank_zero_only(print)(
            f"{key}: {shown(before.get(key, unset))} when this run started, {shown(now.get(key, unset))} now: the "
            "learning-rate schedule is rebuilt over the new length from the resumed step on (a cosine one jumps "
            f"there); {saved.name} keeps the length it started with, fit.json records the new one")
    return {k: (before.get(k), now.get(k)) for k in changed if k in MOVABLE}


def check_moved(moved: dict[str, tuple[Any, Any]], ckpt_path: str, train_videos: list[str],
                teacher: str | None) -> None:
    """A resumed run whose places moved (:func:`check_same_settings`) goes on where it finds what it
    started with: the training videos (by path) and the teacher (by SHA-256) its checkpoint records;
    said in one line. Else, or where the checkpoint records neither (written before 2026-12-07), one
    line naming the first moved setting. Until 2026-12-07 any moved place was refused, so a run could
    not be resumed on data staged to another node's local scratch."""
    if not moved:
        return
    record = read_checkpoint(ckpt_path).get(TRAINED_ON_KEY) or {}
    data = [k for k in moved if k.startswith("data.") and k != "data.teacher_cache"]
    why = ""
    if data and "videos" not in record:
        why = "its checkpoint records no training videos to compare (written before 2026-12-07)"
    elif data:
        here, there = set(video_keys(train_videos).tolist()), set(np.asarray(record["videos"]).tolist())
        if here != there:
            why = (f"the training videos differ ({len(here - there)} of the {len(here)} here were not trained on, "
                   f"{len(there - here)} trained on are not here)")
    if not why and "teacher.checkpoint" in moved and teacher is not None:
        if record.get("teacher_sha256") is None:
            why = "its checkpoint records no teacher to compare (written before 2026-12-07)"
        elif sha256_file(teacher) != record["teacher_sha256"]:
            why = f"{teacher} is another teacher than the one it trained with (another SHA-256)"
    key = (data or list(moved))[0]
    was, now = moved[key]
    if why:
        raise ConfigError(f"ckpt_path={ckpt_path}: {key} is {was!r} where this run started and {now!r} here, and "
                          f"{why}; resume with them as they were, start again in its place (overwrite=true) or start "
                          "another run (run_name=...)")
    same = " and ".join(w for w, checked in (("training videos", data), ("teacher", "teacher.checkpoint" in moved))
                        if checked)
    pl.utilities.rank_zero_only(print)(
        f"ckpt_path={ckpt_path}: {', '.join(moved)} moved since this run started ({key}: {was!r} -> {now!r})"
        + (f"; the same {same}, so it resumes there" if same else "; it resumes there"))


def _flat(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


__all__ = ["resume_checkpoint", "resume_hint", "check_resume_fits", "check_same_settings", "check_moved",
           "FREE_ON_RESUME", "LENGTH", "MOVABLE"]
