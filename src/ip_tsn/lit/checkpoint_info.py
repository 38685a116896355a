"""Stream checkpoints: what they hold besides weights, and the one reader every command uses (the
writing side, atomic files and ``last.ckpt`` after every epoch: :mod:`ip_tsn.lit.callbacks`).

Lightning already stores the DataModule's arguments (``datamodule_hyper_parameters``: modality,
crop and scale sizes, test segments and crops, ...) and the modules store their kind
(``ip_tsn_module``); :class:`SaveStreamInfo` adds the class names (``checkpoint["class_names"]``),
the stage (``ip_tsn_stage``), the stream's preprocessing (``checkpoint["preprocess"]``:
:meth:`ip_tsn.data.preprocess.Preprocess.to_dict`) and the videos it trained on (``ip_tsn_trained_on``:
the data's name and :func:`~ip_tsn.data.datasets.video_keys`, which :func:`check_unseen` compares
with the videos a use scores or teaches), and :func:`stream_info` reads them back.
Checkpoints written before class names were stored get them from the dataset's split files when
these still exist; those written before the preprocessing was stored get it from the DataModule's
arguments (:meth:`~ip_tsn.data.preprocess.Preprocess.from_hparams`).

:func:`read_checkpoint` is the only place a checkpoint file is opened: a missing, empty,
truncated or foreign file, or one of another stage or modality than its use expects, gives a
:class:`CheckpointError` naming the file (the CLI prints it as one line, exit status 2).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ip_tsn.config import ConfigError
from ip_tsn.data.datasets import load_classes, video_keys
from ip_tsn.data.preprocess import Preprocess

CLASS_NAMES_KEY = "class_names"
DATAMODULE_KEY = "datamodule_hyper_parameters"
MODULE_KEY = "ip_tsn_module"
STAGE_KEY = "ip_tsn_stage"
PREPROCESS_KEY = "preprocess"
TRAINED_ON_KEY = "ip_tsn_trained_on"


class CheckpointError(ConfigError):
    """A checkpoint file that cannot be read or does not fit its use; the message names the file."""


def read_checkpoint(path: str | os.PathLike, use: str = "", modality: str | Sequence[str] | None = None,
                    stage: str | None = None) -> dict[str, Any]:
    """The checkpoint dict of ``path`` (memory-mapped, weights only). Raises
    :class:`CheckpointError` naming the file when it is missing, a folder, empty, truncated or
    not a Lightning checkpoint, or when ``modality`` (one, or a tuple of accepted ones) / ``stage``
    are given and the checkpoint records others (``use`` says who expects them, e.g. ``--istream``)."""
    path = Path(path)
    if not path.exists():  # naming who asked for it (until 2026-12-08 the path alone)
        raise CheckpointError(f"{path}: checkpoint file not found{f' ({use})' if use else ''}")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a checkpoint file (a folder?)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
        reason = "empty file" if path.stat().st_size == 0 else "truncated or corrupt"
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from e
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict); was it written by `ip-tsn fit`?")
    check_kind(checkpoint, path, use, modality=modality, stage=stage)
    return checkpoint


def checkpoint_kind(checkpoint: Mapping[str, Any]) -> dict[str, str | None]:
    """``{"module", "stage", "modality"}`` a checkpoint records (None where it does not; the
    module kind of older checkpoints is guessed from their hyperparameters)."""
    hp = dict(checkpoint.get("hyper_parameters") or {})
    module = checkpoint.get(MODULE_KEY) or ("distill" if {"imitation", "kd_weight"} & set(hp) else "classifier")
    return {"module": module, "stage": checkpoint.get(STAGE_KEY),
            "modality": (checkpoint.get(DATAMODULE_KEY) or {}).get("modality")}


def check_kind(checkpoint: Mapping[str, Any], path: str | os.PathLike, use: str = "",
               modality: str | Sequence[str] | None = None, stage: str | None = None) -> None:
    """Refuse (:class:`CheckpointError`, one line) a checkpoint whose recorded modality or stage is
    not an expected one; what a checkpoint does not record is not checked."""
    kind = checkpoint_kind(checkpoint)
    accepted = (modality,) if isinstance(modality, str) else tuple(modality or ())
    wrong_modality = bool(accepted) and kind["modality"] is not None and kind["modality"] not in accepted
    wrong_stage = stage is not None and kind["stage"] is not None and kind["stage"] != stage
    if wrong_modality or wrong_stage:
        have = f"a {kind['stage'] or kind['module']} checkpoint (modality {kind['modality']!r})"
        want = [f"stage {stage!r}"] if stage is not None else []
        want += ["modality " + " or ".join(repr(m) for m in accepted)] if accepted else []
        raise CheckpointError(f"{path}: {have}, but {use or 'this use'} expects {', '.join(want)}")


def checkpoint_preprocess(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> Preprocess:
    """The stream's :class:`~ip_tsn.data.preprocess.Preprocess` a loaded checkpoint dict records
    (``checkpoint["preprocess"]``; older checkpoints: their DataModule arguments). Raises
    ``CheckpointError`` naming ``source`` when it has neither, or a preprocessing it cannot read."""
    dm = dict(checkpoint.get(DATAMODULE_KEY) or {})
    stored = checkpoint.get(PREPROCESS_KEY)
    if stored is None and not dm.get("modality"):
        raise CheckpointError(f"{source}: no preprocessing or DataModule arguments (modality, sizes) in the "
                              "checkpoint; was it written by `ip-tsn fit`?")
    try:
        if stored is not None:
            return Preprocess.from_dict(stored, source)  # its errors name source
        return Preprocess.from_hparams(dm)
    except ValueError as e:
        raise CheckpointError(str(e) if stored is not None else f"{source}: {e}") from None


def stream_info(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """``{"preprocess": Preprocess, "class_names": list[str] | None, "num_classes", "in_channels"}``
    of a loaded checkpoint dict (``torch.load``; :func:`checkpoint_preprocess`).

    Raises ``CheckpointError`` naming ``source`` when the checkpoint records no preprocessing.
    """
    dm = dict(checkpoint.get(DATAMODULE_KEY) or {})
    hp = dict(checkpoint.get("hyper_parameters") or {})
    preprocess = checkpoint_preprocess(checkpoint, source)
    names = checkpoint.get(CLASS_NAMES_KEY)
    if names is None and dm.get("dataset") and dm.get("root"):
        try:  # older checkpoints: the dataset's split files, if they are still there
            names = load_classes(dm["dataset"], dm["root"], int(dm.get("split", 1)),
                                 class_list=dm.get("class_list"))
        except (ValueError, OSError):
            names = None
    return {"preprocess": preprocess, "class_names": list(names) if names is not None else None,
            "num_classes": int(hp["num_classes"]), "in_channels": int(hp["in_channels"])}


def check_classes(path: str | os.PathLike, class_names: Sequence[str], data: str) -> None:
    """:class:`CheckpointError` naming ``path`` when its network was trained on other classes, or
    the same ones in another order, than ``class_names`` (what ``data`` lists): its score columns
    would be read against the wrong labels. Nothing for a checkpoint that records no class names."""
    trained = read_checkpoint(path).get(CLASS_NAMES_KEY)
    listed = list(class_names)
    if trained is None or list(trained) == listed:
        return
    if len(trained) != len(listed):
        diff = f"{len(trained)} classes there, {len(listed)} here"
    else:
        i = next(i for i, (a, b) in enumerate(zip(trained, listed)) if a != b)
        order = ", the same classes in another order" if sorted(trained) == sorted(listed) else ""
        diff = f"class {i} is {trained[i]!r} there, {listed[i]!r} here{order}"
    raise CheckpointError(f"{path}: trained on other classes than {data} lists ({diff}), so its scores would be "
                          "read against the wrong labels; use it with the data and class list it was trained on")


def check_unseen(path: str | os.PathLike, videos: Sequence[str], listed: str, why: str) -> None:
    """:class:`CheckpointError` naming ``path`` when its network was trained on any of ``videos``
    (``listed`` names them, e.g. ``the test list of data=ucf101 (..., split 2)``; ``why`` says what
    that would make of the result): a checkpoint of another split, or of another seed's val carve.
    Nothing for a checkpoint that records no training videos (written before 2026-12-07)."""
    trained = read_checkpoint(path).get(TRAINED_ON_KEY)
    if not trained or not len(videos):
        return
    seen = np.isin(video_keys(videos), np.asarray(trained["videos"]))
    if seen.any():
        raise CheckpointError(f"{path}: trained on {int(seen.sum())} of the {len(videos)} videos of {listed} (e.g. "
                              f"{videos[int(seen.argmax())]}; it trained on {trained['data']}), so {why}")


def read_stream_info(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`stream_info` of the checkpoint file ``path`` (memory-mapped, weights only)."""
    return stream_info(read_checkpoint(path), str(path))
