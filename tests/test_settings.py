"""Each setting declared once (issue 22): its default lives in its settings dataclass only; every
config under experiments/ builds, and none sets a key to the value of its default (a default
declared twice); the classes that take the settings repeat no default; the README's key table is
the one the declarations give."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from ip_tsn.config import load_config, to_container
from ip_tsn.data.preprocess import Preprocess
from ip_tsn.data.settings import DataSettings
from ip_tsn.lit.model_settings import ClassifierSettings, DistillSettings, NetSettings, OptimSettings, settings_from
from ip_tsn.stages import config_schema as schema
from ip_tsn.stages.config_check import check_config

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
#: the config sections whose keys are settings with a default in the code
SECTIONS = {"data": schema.DataConfig, "datamodule": schema.DataConfig, "model": schema.ModelConfig,
            "distill": schema.DistillConfig, "cache": schema.CacheConfig, "logger": schema.LoggerConfig}
CONFIG_FILES = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if "sweeps" not in p.parts)
STAGE_FILES = sorted(p for p in CONFIG_FILES if p.parent.name != "data" and p.name != "base.yaml")
DATASETS = sorted(p.stem for p in (EXPERIMENTS / "data").glob("*.yaml"))


def redeclared(node: DictConfig, cls: type, where: str) -> list[str]:
    """The leaves of ``node`` (a section of schema ``cls``) whose value is the field's default."""
    found = []
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for key in node:
        f, value = by_name.get(str(key)), node._get_node(key)  # noqa: SLF001 - the raw, unresolved value
        if f is None:
            continue
        if isinstance(value, DictConfig):
            if dataclasses.is_dataclass(f.default_factory):  # type: ignore[arg-type]
                found += redeclared(value, f.default_factory, f"{where}{key}.")  # type: ignore[arg-type]
            continue
        raw = value._value()  # noqa: SLF001
        if isinstance(raw, str) and "${" in raw:
            continue
        default = f.default
        if isinstance(default, tuple):
            default = list(default)
        if default is dataclasses.MISSING:
            continue
        same = raw is default if isinstance(raw, bool) or isinstance(default, bool) else raw == default
        if same:
            found.append(f"{where}{key}={raw!r}")
    return found


def file_redeclarations(path: Path) -> list[str]:
    cfg = OmegaConf.load(path)
    pieces = [("", cfg)] + [(f"stages.{n}.", cfg.stages[n]) for n in (cfg.get("stages") or {})]
    found = []
    for prefix, piece in pieces:
        for section, cls in SECTIONS.items():
            node = piece.get(section)
            if isinstance(node, DictConfig):
                found += redeclared(node, cls, f"{prefix}{section}.")
    return found


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_no_config_file_declares_a_default_again(path):
    assert file_redeclarations(path) == []


def test_the_check_finds_a_default_declared_twice(tmp_path):
    """The check above can fail: a file that repeats ``model.optim.lr``'s and ``data.flip``'s defaults."""
    bad = tmp_path / "mine.yaml"
    bad.write_text("model:\n  optim: {lr: 0.001}\ndata:\n  flip: true\n  crop_size: 56\n")
    assert sorted(file_redeclarations(bad)) == ["data.flip=True", "model.optim.lr=0.001"]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("path", STAGE_FILES, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_every_config_builds(path, dataset):
    """Every stage file (ablations included) on every dataset composes, passes the check and
    gives settings the classes take: the data section complete, model / distill groups valid."""
    cfg = load_config(path, [f"data={dataset}"])
    check_config(cfg, path, [f"data={dataset}"])
    data = {**to_container(cfg.data), **to_container(cfg.get("datamodule"))}
    data.pop("name")
    assert set(data) == {f.name for f in dataclasses.fields(DataSettings)} | set(Preprocess.keys())
    Preprocess.from_hparams(data)
    settings_from(DataSettings, {k: v for k, v in data.items() if k not in Preprocess.keys()}, "data")
    model = to_container(cfg.get("model"))
    settings_from(NetSettings, model.pop("net", None), "model.net")
    settings_from(OptimSettings, model.pop("optim", None), "model.optim")
    settings_from(ClassifierSettings, model, "model")
    if cfg.get("module") == "distill":
        settings_from(DistillSettings, to_container(cfg.get("distill")), "distill")


def test_the_classes_repeat_no_default():
    """The defaults in the signatures of the classes and functions that take settings are the
    settings' own (read from them, ``_P.crop_size``), never a literal of their own."""
    from ip_tsn.data import datamodule, video_dataset
    from ip_tsn.lit import classifier, distillation, optim
    from ip_tsn.models import backbones, tsn

    literal = re.compile(r"\b(\w+): [^=,]+= (?!_[A-Z]+\.)([^,)]+)")
    groups = {"video_dataset": (video_dataset, ("StreamDataset", "GridDataset"), Preprocess),
              "classifier": (classifier, ("StreamClassifier",), ClassifierSettings),
              "distillation": (distillation, ("DistillationModule",), DistillSettings),
              "tsn": (tsn, ("TSN",), NetSettings),
              "backbones": (backbones, ("build_backbone", "load_resnet"), NetSettings)}
    for name, (module, names, settings) in groups.items():
        fields = {f.name for f in dataclasses.fields(settings)}
        for attr in names:
            obj = getattr(module, attr)
            sig = inspect.getsource(obj.__init__ if inspect.isclass(obj) else obj).split(") ->", 1)[0]
            own = [m.group(1) for m in literal.finditer(sig) if m.group(1) in fields]
            assert not own, f"{name}.{attr} declares its own default for {own}"
    assert list(inspect.signature(datamodule.VideoDataModule).parameters) == ["dataset", "root", "settings"]
    for arg in ("name", "lr", "weight_decay", "momentum", "nesterov", "adam_eps"):
        assert inspect.signature(optim.build_optimizer).parameters[arg].default is inspect.Parameter.empty


def test_the_readme_key_table_is_the_declarations():
    text = (REPO / "README.md").read_text()
    table = text.split("<!-- keys:", 1)[1].split("-->", 1)[1].split("<!-- /keys -->", 1)[0].lstrip("\n")
    assert table == schema.key_table()
    assert "| `distill.temperature` | `2.0` |" in table and "| `model.optim.backbone_lr_mult` | `1.0` |" in table
