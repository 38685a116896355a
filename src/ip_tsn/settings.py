"""Settings declared once: a frozen dataclass per group, each field with its one default and its
one documentation line (:func:`setting`).

The groups (``data/preprocess.py``'s ``Preprocess`` and ``data/settings.py``'s ``DataSettings``:
``data.*``; ``lit/model_settings.py``: ``model.net``, ``model.optim``, ``model.*``, ``distill``;
``stages/config_schema.py``: ``cache``, ``logger``) are read by the modules that use them, by the
config check (:func:`schema`: the same fields, for ``OmegaConf.structured``) and by the README's
key table (:func:`key_rows`). A YAML file under ``experiments/`` sets a key only to change it
(``tests/test_settings.py`` fails on a value equal to its default: a default declared twice).

Imports nothing from the package (it sits beside ``atomic``, below every room).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

DOC = "doc"


class SetupWarning(UserWarning):
    """A warning about the data or the settings, given while a command sets up. Every DDP rank sets
    up alike, so the CLI shows rank 0's alone (each rank repeated it until 2026-12-08)."""


def setting(default: Any, doc: str) -> Any:
    """A dataclass field with its default and one line of documentation."""
    return dataclasses.field(default=default, metadata={DOC: doc})


def differences(recorded: Mapping[str, Any], asked: Mapping[str, Any], first: str = "there",
                second: str = "asked") -> str:
    """``"seed: 0 there, 1 asked; ..."``: the settings in which what a file records differs from
    what a run asks (keys of either, sorted), for the one-line refusals that name them."""
    return "; ".join(f"{k}: {recorded.get(k)!r} {first}, {asked.get(k)!r} {second}"
                     for k in sorted(set(recorded) | set(asked)) if recorded.get(k) != asked.get(k))


def types_of(cls: type) -> dict[str, Any]:
    """Field name -> its resolved annotation."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def defaults(cls: type) -> dict[str, Any]:
    """Field name -> its default (``dataclasses.MISSING`` where it has none)."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def docs(cls: type) -> dict[str, str]:
    """Field name -> its documentation line."""
    return {f.name: f.metadata.get(DOC, "") for f in dataclasses.fields(cls)}


def from_mapping(cls: type, data: Mapping[str, Any] | None, source: str) -> Any:
    """``cls`` from a mapping; missing keys take the defaults, tuples accept lists. Raises
    ``ValueError`` naming ``source`` and the unknown keys."""
    data = dict(data or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for name, tp in types_of(cls).items():
        if typing.get_origin(tp) is tuple and isinstance(data.get(name), (list, tuple)):
            data[name] = tuple(data[name])
    return cls(**data)


def plain(settings: Any) -> dict[str, Any]:
    """Plain values (lists, not tuples) for checkpoints that ``weights_only`` loads, and JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()}


def schema(name: str, *groups: type, extra: tuple[tuple[str, Any, Any], ...] = ()) -> type:
    """A mutable dataclass with the fields of ``groups`` (same names, types, defaults) and
    ``extra`` ``(name, type, dataclasses.field(...))``, for ``OmegaConf.structured``: the config
    check's schema is the settings themselves, not a copy."""
    spec: list[tuple[str, Any, Any]] = []
    for group in groups:
        hints = typing.get_type_hints(group)
        for f in dataclasses.fields(group):
            spec.append((f.name, hints[f.name], dataclasses.field(default=f.default, metadata=f.metadata)))
    spec += list(extra)
    names = [s[0] for s in spec]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TypeError(f"{name}: {', '.join(twice)} declared in more than one group")
    return dataclasses.make_dataclass(name, spec)


def key_rows(prefix: str, cls: type) -> list[tuple[str, str, str]]:
    """``(key, default, doc)`` rows of a group for the README's key table (``prefix``: ``model.net``)."""
    rows = []
    for f in dataclasses.fields(cls):
        default = "" if f.default is dataclasses.MISSING else _shown(f.default)
        rows.append((f"{prefix}.{f.name}", default, f.metadata.get(DOC, "")))
    return rows


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def positive_int(text: str) -> int:
    """A command-line count >= 1 (an ``argparse`` type: ``ip-tsn predict --segments``, the
    data_prep scripts' ``--workers``); ``ArgumentTypeError`` otherwise."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
