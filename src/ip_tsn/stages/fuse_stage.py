"""``ip-tsn fuse``: late fusion of trained streams' test scores (weights searched on val), its
report and the fused model's ``model.json`` (each stream's checkpoint: the one its scores name);
and the same over several splits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import DictConfig

from ip_tsn.atomic import check_output_dir, hold_folder, sha256_file
from ip_tsn.config import ConfigError, load_config, to_container
from ip_tsn.deploy.fused_model import StreamEntry, write_fused_model
from ip_tsn.evaluation.checks import Roles
from ip_tsn.evaluation.fusion_run import run_fusion
from ip_tsn.evaluation.scores import ScoresError, load_scores, protocol_difference
from ip_tsn.evaluation.splits import write_splits_report
from ip_tsn.lit.checkpoint_info import checkpoint_preprocess, read_checkpoint
from ip_tsn.stages.build import build_datamodule


def fuse(cfg: DictConfig) -> dict:
    """Late fusion of the streams in ``cfg.fuse.streams`` (weights searched on val): the report
    (``results.{md,json}``, ``confusion.png``: every stream, the fusion, the same at 1:1 and
    ``fuse.baseline_fused``, with bootstrap CIs, paired differences and the data checks on val)
    and ``model.json`` (the fused streams' checkpoints, those their scores name, and weights, for
    ``ip-tsn predict`` / ``ip-tsn export``) in ``cfg.fuse.out_dir``. A stream whose val and test
    scores name two checkpoints, or one written again since, or two test protocols, is refused before
    anything is written, and so is a fusion while another command writes ``fuse.out_dir`` (its lock,
    :func:`~ip_tsn.atomic.hold_folder`); the report says what trained each stream (its ``fit.json``
    ``environment``)."""
    check_output_dir(cfg.fuse.out_dir, "fuse.out_dir")
    runs = to_container(cfg.fuse.streams)
    fused = list(cfg.fuse.fused)
    scored = {name for name, run in runs.items() if (Path(run) / "scores_test.npz").is_file()}
    if not fused or len(set(fused)) < len(fused):
        raise ConfigError(f"fuse.fused={fused}: name each stream to fuse once, from fuse.streams ({', '.join(runs)})")
    for name in fused:
        if name not in runs:
            raise ConfigError(f"fuse.fused: {name!r} is not one of fuse.streams ({', '.join(runs)})")
        if name not in scored:
            others = f", or fuse others: fuse.fused=[{','.join(sorted(scored))}]" if scored else \
                " (no stream of fuse.streams has scores there)"
            raise ConfigError(f"fuse.fused: {name!r} has no scores ({Path(runs[name]) / 'scores_test.npz'}); "
                              f"train and test it{others}")
    for key in ("distilled", "plain", "teacher", "appearance"):  # a role's stream may lack scores, never a name
        if (name := cfg.fuse.get(key)) is not None and name not in runs:  # (a typo dropped its rows until 2026-12-08)
            raise ConfigError(f"fuse.{key}: {name!r} is not one of fuse.streams ({', '.join(runs)}); null: no {key} row")
    baseline = list(cfg.fuse.get("baseline_fused") or [])
    if len(set(baseline)) < len(baseline) or any(name not in runs for name in baseline):
        raise ConfigError(f"fuse.baseline_fused={baseline}: name each stream once, from fuse.streams "
                          f"({', '.join(runs)}); null: no baseline fusion")
    left_out = sorted(set(runs) - scored)  # reported streams without scores: any subset fuses
    if left_out:
        print(f"fuse: left out (no scores): {', '.join(f'{n} ({runs[n]})' for n in left_out)}")
    runs = {name: run for name, run in runs.items() if name in scored}
    dm = build_datamodule(cfg, None)
    baseline = cfg.fuse.get("baseline_fused")
    baseline = tuple(baseline) if baseline and all(n in scored for n in baseline) else None
    roles = Roles(baseline_fused=baseline, **{k: cfg.fuse.get(k) if cfg.fuse.get(k) in scored else None
                                              for k in ("distilled", "plain", "teacher", "appearance")})
    val = {name: Path(run) / "scores_val.npz" for name, run in runs.items()}
    needed = {*fused, *(roles.baseline_fused or ())}
    val = {name: p for name, p in val.items() if name in needed or p.is_file()}
    tst = {name: Path(run) / "scores_test.npz" for name, run in runs.items()}
    scored_by = {name: _scored_by(name, Path(run), [p for p in (val.get(name), tst[name]) if p])
                 for name, run in runs.items()}  # before anything is written
    with hold_folder(cfg.fuse.out_dir, "fuse.out_dir"):  # one fusion writes its report and model.json at a time
        result = run_fusion(val, tst, cfg.fuse.out_dir, dm.class_names, fused=fused, roles=roles,
                            groups=cfg.fuse.get("groups"), thresholds=to_container(cfg.fuse.get("checks")),
                            targets=cfg.fuse.get("targets"),
                            provenance={name: _environment(Path(run)) for name, run in runs.items()})
        entries = [_fused_entry(name, float(w), *scored_by[name]) for name, w in result["weights"].items()]
        write_fused_model(Path(cfg.fuse.out_dir) / "model.json", entries, dm.class_names)
    return {**result, "markdown": str(Path(cfg.fuse.out_dir) / "results.md")}


def _scored_by(name: str, run_dir: Path, paths: list[Path]) -> tuple[Path, str | None]:
    """The checkpoint that scored stream ``name``'s score files ``paths``, which must all name the
    same one, still as it was then, and its SHA-256; the run's ``checkpoints/best.ckpt`` (and None)
    where they do not say (files of older versions)."""
    tables = {path: load_scores(path) for path in paths if path.is_file()}
    said = {path: t.checkpoint for path, t in tables.items() if t.checkpoint is not None}
    if len(set(said.values())) > 1:
        (one, a), (other, b) = list(said.items())[:2]
        raise ScoresError(f"{other}: the scores of {b}, but {one} holds those of {a}: stream {name!r} was scored by "
                          "two checkpoints; score its subsets with one (ip-tsn test --checkpoint ...)")
    protocols = {path: t.protocol for path, t in tables.items() if t.protocol is not None}
    if len(set(protocols.values())) > 1:  # weights searched on val scores would meet test scores of another kind
        (one, a), (other, b) = list(protocols.items())[:2]
        differ = protocol_difference(a, b, f"in {one.name}", "here")
        raise ScoresError(f"{other}: scored under another test protocol than {one} ({differ}): the subsets of "
                          f"stream {name!r} were scored two ways, and fusion weights found on one would meet the "
                          "other; score them with one (ip-tsn test)")
    checkpoint = run_dir / (next(iter(said.values())) if said else "checkpoints/best.ckpt")
    hashes = {path: t.checkpoint_sha256 for path, t in tables.items() if t.checkpoint_sha256 is not None}
    now = sha256_file(checkpoint) if hashes and checkpoint.is_file() else None
    for path, sha in hashes.items():
        if now is not None and sha != now:
            raise ScoresError(f"{path}: scored by an earlier {checkpoint} (it was written again since: a new "
                              "training or a resumed one); score it again with ip-tsn test")
    return checkpoint, next(iter(hashes.values()), None)


def _environment(run_dir: Path) -> dict | None:
    """The ``environment`` a run's ``fit.json`` records, or None (not there, or an older run)."""
    try:
        env = json.loads((run_dir / "fit.json").read_text()).get("environment")
    except (OSError, ValueError, AttributeError):
        return None
    return env if isinstance(env, dict) else None


def _fused_entry(name: str, weight: float, checkpoint: Path, sha256: str | None) -> StreamEntry:
    """A ``model.json`` stream: its checkpoint (and the hash it had when scored), weight and (when
    the checkpoint is there) a copy of the checkpoint's preprocessing."""
    preprocess = None
    if checkpoint.is_file():
        preprocess = checkpoint_preprocess(read_checkpoint(checkpoint), str(checkpoint)).to_dict()
    return StreamEntry(name, weight, checkpoint=str(checkpoint), preprocess=preprocess, checkpoint_sha256=sha256)


def fuse_splits(config: str | os.PathLike, overrides: list[str], splits: list[int]) -> dict:
    """:func:`fuse` on each of ``splits`` (the config composed again with ``data.split=k``, so
    ``run_root`` follows the split), then a table of each split and the mean in
    ``fuse.splits_dir`` (default ``<run_root of the first split>/../<run_name>_splits``)."""
    cfgs = {k: load_config(config, [*overrides, f"data.split={k}", "fuse.splits=null"]) for k in splits}
    roots = {str(Path(c.run_root).resolve()) for c in cfgs.values()}
    if len(roots) < len(cfgs):
        raise ConfigError(f"{config}: run_root ({cfgs[splits[0]].run_root}) does not depend on data.split; "
                          "splits would overwrite each other (use run_root=.../split${data.split})")
    first = cfgs[splits[0]]
    out_dir = check_output_dir(first.fuse.get("splits_dir") or Path(first.run_root).parent / f"{first.run_name}_splits",
                               "fuse.splits_dir")
    per_split = {k: fuse(c) for k, c in cfgs.items()}
    with hold_folder(out_dir, "fuse.splits_dir"):
        return write_splits_report(per_split, out_dir)


__all__ = ["fuse", "fuse_splits"]
