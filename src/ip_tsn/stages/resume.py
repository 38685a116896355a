"""Resuming a training (``ckpt_path``): the checkpoint it continues from, whether that holds the
network the config builds, and whether the config keeps the settings the run started with (its
``config.yaml``): a change that shapes the training is refused, one of where and how it runs is
free, and a new length is said."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from ip_tsn.config import ConfigError
from ip_tsn.lit.checkpoint_info import read_checkpoint
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


def check_same_settings(cfg: DictConfig, saved: Path) -> None:
    """One line, before anything is written, when a run resumed from its own ``last.ckpt`` is given
    other settings than ``saved`` (its ``config.yaml``) holds, but for :data:`FREE_ON_RESUME`.
    Until 2026-12-07 ``ckpt_path=last model.optim.lr=0.5`` trained on at the checkpoint's rate (the
    optimiser's state) and rewrote config.yaml to say 0.5. A new length (:data:`LENGTH`) is allowed
    and said: Lightning rebuilds the learning-rate schedule over it."""
    if not saved.is_file():
        return
    try:
        before = _flat(OmegaConf.to_container(complete(OmegaConf.load(saved)), resolve=True))
    except Exception as e:  # noqa: BLE001 - any reason it cannot be read is the same line
        raise ConfigError(f"{saved}: cannot be read ({type(e).__name__}: {e}); it holds the settings the run "
                          "being resumed started with") from None
    now = _flat(OmegaConf.to_container(complete(cfg), resolve=True))
    unset = object()
    changed = [k for k in sorted(before.keys() | now.keys()) if before.get(k, unset) != now.get(k, unset)
               and not any(k == free or k.startswith(free + ".") for free in FREE_ON_RESUME)]
    shown = lambda v: "unset" if v is unset else repr(v)  # noqa: E731
    refused = [k for k in changed if k not in LENGTH]
    if refused:
        key = refused[0]
        more = f" (and {len(refused) - 1} more: {', '.join(refused[1:])})" if len(refused) > 1 else ""
        raise ConfigError(f"ckpt_path={cfg.get('ckpt_path')} resumes a run with the settings it started with "
                          f"({saved}), but {key} is {shown(before.get(key, unset))} there and "
                          f"{shown(now.get(key, unset))} here{more}; resume with them as they were, start "
                          "again in its place (overwrite=true) or start another run (run_name=...)")
    for key in changed:  # a longer (or shorter) run: allowed, and said
        pl.utilities.rank_zero_only(print)(
            f"{key}: {shown(before.get(key, unset))} when this run started, {shown(now.get(key, unset))} now: the "
            "learning-rate schedule is rebuilt over the new length from the resumed step on (a cosine one jumps "
            f"there); {saved.name} keeps the length it started with, fit.json records the new one")


def _flat(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


__all__ = ["resume_checkpoint", "resume_hint", "check_resume_fits", "check_same_settings", "FREE_ON_RESUME", "LENGTH"]
