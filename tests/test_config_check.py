"""Config errors end in one line naming the key, where it came from and the closest known key or
the expected type (exit status 2 through the CLI), for every kind of typo a user makes; every file
under experiments/ composes and checks with every dataset; the schema stays in step with the code."""

from __future__ import annotations

import dataclasses
import inspect
import re
import shlex
import typing
from pathlib import Path

import pytest

from omegaconf import OmegaConf

from ip_tsn.cli import main
from ip_tsn.config import ConfigError, load_config
from ip_tsn.stages import config_schema as schema
from ip_tsn.stages.config_check import check_config, load_checked

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
STAGE_FILES = sorted(EXPERIMENTS.glob("*.yaml")) + sorted((EXPERIMENTS / "ablations").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (EXPERIMENTS / "data").glob("*.yaml"))


def _sweep_overrides() -> list[str]:
    """One ``key=value`` per parameter of each W&B sweep (its first value, or its minimum)."""
    out = []
    for sweep in sorted((EXPERIMENTS / "sweeps").glob("*.yaml")):
        for key, spec in OmegaConf.to_container(OmegaConf.load(sweep).parameters).items():
            out.append(f"{key}={spec['values'][0] if 'values' in spec else spec['min']}")
    return out


def _command_lines() -> list[tuple[Path, list[str]]]:
    """``(stage file, arguments)`` of each ``ip-tsn`` call in experiments/slurm/*.sbatch."""
    calls = []
    for script in sorted((EXPERIMENTS / "slurm").glob("*.sbatch")):
        text = script.read_text().replace("\\\n", " ")
        for match in re.finditer(r"ip-tsn (?:fit|cache|test|fuse) (\S+\.yaml)([^\n]*)", text):
            calls.append((ROOT / match[1], [a for a in shlex.split(match[2]) if "=" in a]))
    return calls


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_experiment_file_composes_and_checks(dataset, monkeypatch):
    assert len(STAGE_FILES) >= 10 and set(DATASETS) >= {"synthetic", "ucf101", "hmdb51", "kinetics"}
    for path in STAGE_FILES:
        if path.name == "base.yaml":
            continue
        cfg = load_config(path, [f"data={dataset}"])
        check_config(cfg, path, [f"data={dataset}"])
        assert cfg.data.dataset == dataset
    sweep = [f"data={dataset}", *_sweep_overrides()]
    assert len(sweep) >= 5
    check_config(load_config(EXPERIMENTS / "student.yaml", sweep), EXPERIMENTS / "student.yaml", sweep)
    calls = _command_lines()
    assert calls
    monkeypatch.setenv("SLURM_JOB_ID", "1")  # as sbatch runs them: srun starts each node's processes
    for path, args in calls:
        check_config(load_config(path, args), path, args)


def test_more_than_one_node_needs_a_launcher(monkeypatch, tmp_path, capsys):
    """``trainer.num_nodes=2`` with nothing to start the other nodes: one line, nothing written.
    Until 2026-12-08 rank 0 waited 30 minutes for them, deaf to SIGTERM and Ctrl-C meanwhile."""
    from ip_tsn.stages.config_check import NODE_LAUNCHERS

    for key in NODE_LAUNCHERS:
        monkeypatch.delenv(key, raising=False)
    args = ["fit", str(EXPERIMENTS / "istream.yaml"), f"run_root={tmp_path / 'runs'}", "trainer.num_nodes=2"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        "ip-tsn fit: error: trainer.num_nodes=2, but nothing starts this command on the other nodes: under SLURM run "
        "it with srun (experiments/slurm/student.sbatch); by hand set MASTER_ADDR, MASTER_PORT and NODE_RANK on each "
        "node (torchrun sets them); on one machine use trainer.devices")
    assert not (tmp_path / "runs").exists()
    for key in ("SLURM_JOB_ID", "NODE_RANK", "MASTER_ADDR"):  # a launcher there: checked as any config
        monkeypatch.setenv(key, "0")
        assert main([*args, "--print-config"]) == 0
        monkeypatch.delenv(key)


def test_the_check_changes_nothing():
    """The schema only checks: the config that runs is the composed one, value for value (but for a
    number given where the schema declares a string, next test)."""
    over = ["data=ucf101", "distill.temperature=3", "trainer.devices=2"]
    checked = load_checked(EXPERIMENTS / "student.yaml", over)
    assert checked == load_config(EXPERIMENTS / "student.yaml", over)
    assert checked.distill.temperature == 3 and isinstance(checked.distill.temperature, int)
    assert "momentum" not in checked.model  # the model's defaults stay in the code
    assert checked.data.val_fraction == 0.1 and checked.data.batch_size == 32  # data: every setting, for ${data.*}


def test_a_data_override_sets_what_a_stage_file_sets_under_datamodule():
    """A stage's data settings (``datamodule:`` in the stage file and in a dataset file's
    ``stages.<stage>``) are merged into ``data``, so ``data.X=`` on the command line sets X (the
    student's ``data.teacher_cache=`` was silently ignored in favour of the stage file's) and the
    composed config holds each setting once; ``datamodule.X=`` still works."""
    student = load_checked(EXPERIMENTS / "student.yaml", ["run_root=r"])
    assert (student.data.modality, student.data.teacher_cache, len(student.datamodule)) == ("p", "r/teacher_cache", 0)
    given = load_checked(EXPERIMENTS / "student.yaml", ["run_root=r", "data.teacher_cache=elsewhere/cache"])
    assert given.data.teacher_cache == "elsewhere/cache" and len(given.datamodule) == 0
    for over, views in (([], 5), (["data.train_views=2"], 2), (["datamodule.train_views=3"], 3)):
        cfg = load_checked(EXPERIMENTS / "pstream.yaml", ["data=ucf101", *over])  # ucf101.yaml: stages.pstream.datamodule
        assert (cfg.data.train_views, cfg.data.modality, len(cfg.datamodule)) == (views, "p", 0)
    assert load_checked(EXPERIMENTS / "istream.yaml", ["data=ucf101"]).data.train_views is None


def test_a_data_section_in_a_stage_file_is_whole_or_refused(tmp_path):
    """In a stage file ``data:`` names the dataset file; a mapping there is the whole data config.
    A mapping that names no dataset, or one a dataset file would replace, was silently dropped or
    an interpolation error in three lines: now one line pointing at ``datamodule:``. A whole one
    gets every default (``${data.split}`` resolves); a bad interpolation is one line naming its key."""
    part, whole = tmp_path / "part.yaml", tmp_path / "whole.yaml"
    part.write_text(f"_base_: {EXPERIMENTS / 'pstream.yaml'}\ndata: {{num_segments: 5}}\n")
    whole.write_text(f"_base_: {EXPERIMENTS / 'pstream.yaml'}\ndata: {{dataset: synthetic, root: d, num_segments: 5}}\n")
    with pytest.raises(ConfigError, match=rf"^{part}: a data: section in a stage file is the whole data config, and it "
                                          r"names no dataset; set a stage's data settings under datamodule: "):
        load_checked(part)
    with pytest.raises(ConfigError, match=r"the dataset file data=ucf101 replaces it; set a stage's data settings"):
        load_checked(part, ["data=ucf101"])
    cfg = load_checked(whole)
    assert (cfg.data.num_segments, cfg.data.split, cfg.data.modality, cfg.run_root) == (5, 1, "p", "runs/synthetic/split1")
    with pytest.raises(ConfigError) as e:
        load_checked(EXPERIMENTS / "pstream.yaml", ["run_root=${nope.x}"])
    assert str(e.value).endswith("pstream.yaml: Interpolation key 'nope.x' not found (in run_root)") and "\n" not in str(e.value)


def test_a_number_given_for_a_path_or_name_is_that_string():
    """``fuse.out_dir=2026`` is the folder "2026" (``Path`` refuses the int OmegaConf parses): every
    string the schema declares reaches the run as a string; numbers stay numbers elsewhere and in
    the open ``trainer``. ``ip-tsn fuse`` with ``fuse.groups=3`` was a TypeError traceback; it is
    the missing groups file "3"."""
    cfg = load_checked(EXPERIMENTS / "fuse.yaml", ["run_root=2026", "name=7", "fuse.groups=3", "fuse.targets=1.5",
                                                   "fuse.streams.mine=12", "seed=5", "trainer.devices=2"])
    assert (cfg.run_root, cfg.name, cfg.fuse.groups, cfg.fuse.targets, cfg.fuse.streams.mine) == \
        ("2026", "7", "3", "1.5", "12")
    assert cfg.seed == 5 and cfg.trainer.devices == 2  # int where the schema says int; trainer: open
    assert cfg.fuse.out_dir == "2026/7"  # ${run_root}/${name}, resolved from the strings
    assert all(isinstance(x, str) for x in (cfg.run_root, cfg.fuse.groups))
    assert load_checked(EXPERIMENTS / "fuse.yaml", ["fuse.groups=null"]).fuse.groups is None
    cfg = load_checked(EXPERIMENTS / "fuse.yaml", ["fuse.streams.2=runs/x", "fuse.fused=[2,I-stream]", "fuse.splits=[1,2]"])
    assert list(cfg.fuse.fused) == ["2", "I-stream"] and list(cfg.fuse.splits) == [1, 2]  # names; split numbers


def test_run_name_names_the_run_folder_as_well_as_the_wandb_run():
    """``run_name=`` used to rename only the W&B run: the folder stayed ``<run_root>/<name>``, so
    ``ip-tsn fit experiments/pstream.yaml run_name=lr3`` trained into (or was refused by) the
    stage's own ``pstream/``. Now the folder follows ``run_name``, and ``name=`` still sets both."""
    for over, folder in (([], "pstream"), (["run_name=lr3"], "lr3"), (["name=lr3"], "lr3")):
        cfg = load_checked(EXPERIMENTS / "pstream.yaml", ["run_root=r", *over])
        assert (cfg.run_name, cfg.run_dir) == (folder, f"r/{folder}")
    fuse = load_checked(EXPERIMENTS / "fuse.yaml", ["run_root=r", "run_name=mine"])
    assert fuse.fuse.out_dir == "r/mine"


OVERRIDE = r"\(command-line override of \S*experiments/student.yaml\)"


@pytest.mark.parametrize("override,message", [
    ("model.lrr=2", rf"^model.lrr: unknown key {OVERRIDE}; did you mean model.optim.lr\?$"),
    ("model.lr=0.01", rf"^model.lr: unknown key {OVERRIDE}; did you mean model.optim.lr\?$"),  # flat, as before
    ("model.arch=resnet50", r"^model.arch: unknown key .*; did you mean model.net.arch\?$"),
    ("model.optim.lrr=2", r"^model.optim.lrr: unknown key .*; did you mean model.optim.lr\?$"),
    ("ckpt_pth=last", rf"^ckpt_pth: unknown key {OVERRIDE}; did you mean ckpt_path\?$"),
    ("logger.wandbb=false", r"did you mean logger.wandb\?"),
    ("checkpoint.monitr=val/top1", r"did you mean checkpoint.monitor\?"),
    ("seeds=3", rf"^seeds: unknown key {OVERRIDE}; did you mean seed\?$"),
    ("distill.temprature=2", r"^distill.temprature: unknown key .*; did you mean distill.temperature\?$"),
    ("trainer.max_epoch=3", r"^trainer.max_epoch: unknown key .*; did you mean trainer.max_epochs\?$"),
    ("data.crop_sise=32", r"did you mean data.crop_size\?"),
    ("stage=istrem", rf"^stage=istrem: unknown value {OVERRIDE}; did you mean istream\?$"),
    ("module=distil", r"^module=distil: unknown value .*; did you mean distill\?$"),
    ("model.optim.lr=fast", rf"^model.optim.lr: expected a number, got 'fast' {OVERRIDE}$"),
    ("data.batch_size=1.5", r"^data.batch_size: expected an integer, got 1.5 "),
    ("trainer.max_epochs=many", r"^trainer.max_epochs: expected an integer or null, got 'many' "),
    ("data.flip=maybe", r"^data.flip: expected true or false, got 'maybe' "),
    ("model.optim.lr_steps=3", r"^model.optim.lr_steps: expected a list of numbers, got 3 "),
    ("checkpoint.mode=highest", r"^checkpoint.mode=highest: unknown value .*; choose from min, max$"),
    ("trainer.logger=false", r"^trainer.logger: set by ip-tsn itself .*; use logger.csv / logger.wandb$"),
    ("model=3", r"^model: expected a mapping, got 3 "),
    # values out of range: refused by the settings themselves, before any data is read
    ("model.optim.lr=0", r"^model.optim.lr must be > 0, got 0 \(in \S*student.yaml as composed\)$"),
    ("model.optim.optimizer=sgdd", r"^model.optim.optimizer must be one of sgd, adam, adamw, got 'sgdd' "),
    ("model.optim.schedule=cosin", r"^model.optim.schedule must be one of cosine, step, constant, got 'cosin' "),
    ("model.optim.weight_decay=-0.1", r"^model.optim.weight_decay must be >= 0, got -0.1 "),
    ("distill.temperature=0", r"^distill.temperature must be > 0, got 0 "),  # was NaN losses, trained on
    ("distill.imitation=1.5", r"^distill.imitation \(lambda\) must be in \[0, 1\], got 1.5 "),
    ("trainer.max_epochs=-1", r"^trainer.max_epochs=-1 trains without end, but the learning-rate schedule spans"),
    ("trainer.max_epochs=0", r"^trainer.max_epochs=0: nothing to train \(the student config\)$"),
    ("model.label_smoothing=2", r"^model.label_smoothing must be in \[0, 1\), got 2 "),  # was a RuntimeError in training
    ("model.predict_mode=clips", r"^model.predict_mode must be one of video, frames, got 'clips' "),
    # nan and inf passed every range check (nan < 0 is false) and trained in NaN until 2026-12-08
    ("model.optim.lr=nan", r"^model.optim.lr=nan: not a number a setting can take \(in \S*student.yaml as composed\)$"),
    ("distill.temperature=inf", r"^distill.temperature=inf: not a number a setting can take "),
    ("model.optim.lr_steps=[5,.nan]", r"^model.optim.lr_steps\[1\]=nan: not a number a setting can take "),
    ("trainer.max_time=1:00", r"^trainer.max_time=60: a duration is a string DD:HH:MM:SS \(quoted in YAML, which reads "
                              r"an unquoted 1:00 as the number 60\)"),  # Lightning's AttributeError until 2026-12-08
    ("model.compile=inductr", r"^model.compile must name a torch.compile backend or be null, got 'inductr'; did you "
                              r"mean inductor\? "),  # torch's InvalidBackend traceback until 2026-12-08
    ("cache.dtype=int8", r"^cache.dtype=int8: unknown value .*; choose from float16, float32$"),  # was a traceback
    ("cache.positions=pp", r"^cache.positions=pp: unknown value .*; did you mean p\?$"),
    ("cache.chunk_videos=0", r"^cache.chunk_videos must be >= 1 \(videos per finished shard\), got 0 "),  # was 1
    # until 2026-12-08 a typo was Lightning's traceback at the first validation (epoch 10), and val/loss under
    # mode max kept the worst epoch
    ("checkpoint.monitor=val/top_1", r"^checkpoint.monitor=val/top_1: not logged; did you mean val/top1\? \(one of "),
    ("checkpoint.monitor=val/loss", r"^checkpoint.monitor=val/loss is better lower: checkpoint.mode=max would keep the "
                                    r"worst epoch as best.ckpt; set checkpoint.mode=min "),
    ("checkpoint.monitor=val/top1 checkpoint.mode=min", r"^checkpoint.monitor=val/top1 is better higher: "),
    ("checkpoint.monitor=val/top1 trainer.limit_val_batches=0",
     r"^checkpoint.monitor=val/top1 with trainer.limit_val_batches=0: no epoch is validated; monitor train/loss_epoch"),
    # W&B's traceback once the run folder was made (a pydantic ValidationError, a UsageError) until 2026-12-08
    ("logger.wandb_mode=onlin", r"^logger.wandb_mode=onlin: unknown value \(command-line override of \S+\); did you mean online\?$"),
    ("logger.wandb_project=lab/ip-tsn", r"^logger.wandb_project='lab/ip-tsn': W&B refuses the character / \(no / \\ # \? % : "),
])
def test_typos_give_one_line_and_exit_2(override, message, capsys, tmp_path):
    """Refused before anything runs: no run folder is made."""
    code = main(["fit", str(EXPERIMENTS / "student.yaml"), f"run_root={tmp_path / 'runs'}", *override.split()])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("ip-tsn fit: error: "), err
    assert re.search(message, err.removeprefix("ip-tsn fit: error: ")), err
    assert not (tmp_path / "runs").exists()


def test_wandb_mode_from_the_environment_is_checked_unless_the_config_sets_it(capsys, tmp_path, monkeypatch):
    """A ``WANDB_MODE`` W&B does not know is one line before anything runs (it was W&B's pydantic
    traceback at the start of training); its older names are taken; ``logger.wandb_mode`` comes first."""
    from ip_tsn.stages.loggers import asked_wandb_mode

    monkeypatch.setenv("WANDB_MODE", "ofline")
    code = main(["fit", str(EXPERIMENTS / "student.yaml"), f"run_root={tmp_path / 'runs'}"])
    assert code == 2 and capsys.readouterr().err.strip() == (
        "ip-tsn fit: error: WANDB_MODE=ofline (environment): not a W&B mode; choose from online, offline, disabled, "
        "or set logger.wandb_mode, which comes first")
    assert not (tmp_path / "runs").exists()
    for override in ("logger.wandb_mode=offline", "logger.wandb=false"):
        assert main(["fit", str(EXPERIMENTS / "student.yaml"), f"run_root={tmp_path / 'runs'}", override,
                     "--print-config"]) == 0
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert asked_wandb_mode(load_config(EXPERIMENTS / "student.yaml")) == "offline"


def test_a_file_that_is_no_stage_config_is_one_line(tmp_path, capsys):
    """Broken YAML (with its line and column), a binary file, an empty file and a stage file without
    base.yaml: one line naming the file, exit 2, not omegaconf's or PyYAML's traceback."""
    cases = {"broken.yaml": ("data: [\n", "not valid YAML at line 2, column 1: did not find expected node content"),
             "binary.yaml": (b"\xff\xfe\x00\x81", "not a text file (a config is UTF-8 YAML)"),
             "empty.yaml": ("", "no stage, seed, run_dir, trainer: a stage config names its stage and starts from "
                                "experiments/base.yaml"),
             "nobase.yaml": ("stage: pstream\nmodule: classifier\n", "no seed, run_dir, trainer: a stage config")}
    for name, (text, problem) in cases.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        capsys.readouterr()
        assert main(["fit", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"ip-tsn fit: error: {path}: {problem}"), err


def test_a_typo_in_a_file_names_the_file(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text(f"_base_: {EXPERIMENTS / 'pstream.yaml'}\nmodel: {{lrr: 0.1}}\n")
    with pytest.raises(ConfigError, match=r"^model.lrr: unknown key \(from \S*mine.yaml\); did you mean model.optim.lr\?$"):
        check_config(load_config(bad), bad)
    bad.write_text(f"_base_: {EXPERIMENTS / 'pstream.yaml'}\nseeds: 1\n")
    with pytest.raises(ConfigError, match=r"^seeds: unknown key \(from \S*mine.yaml\); did you mean seed\?$"):
        check_config(load_config(bad), bad)
    bad.write_text(f"_base_: {EXPERIMENTS / 'pstream.yaml'}\ndatamodule: {{crop_size: big}}\n")
    with pytest.raises(ConfigError, match=r"^datamodule.crop_size: expected an integer, got 'big' \(from \S*mine.yaml\)$"):
        check_config(load_config(bad), bad)


def test_a_typo_in_a_dataset_file_names_it_whichever_stage_runs(tmp_path):
    """A dataset file is checked whole: a typo under another stage's section, or a stage that
    does not exist, is refused too."""
    (tmp_path / "data").mkdir()
    stage = tmp_path / "istream.yaml"
    stage.write_text(f"_base_: {EXPERIMENTS / 'istream.yaml'}\ndata: mine\n")
    data = (EXPERIMENTS / "data" / "synthetic.yaml").read_text()
    for old, new, message in [
        ("stages:\n", "stages:\n  pstream:\n    model: {lrr: 0.1}\n",
         r"^stages.pstream.model.lrr: unknown key \(from \S*data/mine.yaml\); did you mean stages.pstream.model.optim.lr\?$"),
        ("stages:\n", "stages:\n  studnet:\n    model: {lr: 0.1}\n",
         r"^stages.studnet: unknown key \(from \S*mine.yaml\); did you mean stages.student\?$"),
        ("trainer: {max_epochs: 30}", "trainer: {max_epoch: 30}",
         r"^stages.teacher.trainer.max_epoch: unknown key \(from \S*mine.yaml\); did you mean stages.teacher.trainer.max_epochs\?$"),
        ("  num_workers: 2\n", "  num_workers: 2\n  rooot: x\n",
         r"^data.rooot: unknown key \(from \S*mine.yaml\); did you mean data.root\?$"),
        ("  batch_size: 16", "  batch_size: sixteen",
         r"^data.batch_size: expected an integer, got 'sixteen' \(from \S*mine.yaml\)$"),
    ]:
        assert old in data
        (tmp_path / "data" / "mine.yaml").write_text(data.replace(old, new, 1))
        with pytest.raises(ConfigError, match=message):
            load_checked(stage)
    (tmp_path / "data" / "mine.yaml").write_text(data)
    assert load_checked(stage).data.name == "mine"


def test_open_sections_stay_open_and_typed():
    """``trainer`` takes any Lightning Trainer argument; ``fuse.streams`` any name -> folder."""
    over = ["trainer.gradient_clip_algorithm=norm", "trainer.deterministic=true", "trainer.devices=[0,1]",
            "trainer.precision=16-mixed"]
    cfg = load_checked(EXPERIMENTS / "pstream.yaml", over)
    assert cfg.trainer.gradient_clip_algorithm == "norm" and list(cfg.trainer.devices) == [0, 1]
    cfg = load_checked(EXPERIMENTS / "fuse.yaml", ["fuse.streams.mine=runs/x", "fuse.fused=[I-stream,mine]"])
    assert cfg.fuse.streams.mine == "runs/x"
    with pytest.raises(ConfigError, match=r"^fuse.checks.oracel: unknown key .*; did you mean fuse.checks.oracle\?$"):
        load_checked(EXPERIMENTS / "fuse.yaml", ["fuse.checks.oracel=80"])
    with pytest.raises(ConfigError, match=r"^fuse.splits: expected a list of integers or null, got 'all' "):
        load_checked(EXPERIMENTS / "fuse.yaml", ["fuse.splits=all"])


def _params(cls: type) -> dict[str, object]:
    hints = typing.get_type_hints(cls.__init__)
    return {p: hints.get(p) for p in inspect.signature(cls).parameters
            if p not in ("self", "args", "kwargs", "classifier", "settings")}


def _fields(cls: type) -> dict[str, object]:
    return {f.name: typing.get_type_hints(cls)[f.name] for f in dataclasses.fields(cls)}


def test_the_schema_is_the_settings():
    """The config sections of the package's classes are their settings, field for field (names,
    types, defaults), and the classes take exactly those settings (``data.name`` and
    ``distill.online_teacher`` are read by the config and the runner)."""
    from ip_tsn.data.datamodule import DATA_KEYS
    from ip_tsn.data.preprocess import Preprocess
    from ip_tsn.data.settings import DataSettings
    from ip_tsn.evaluation.checks import CHECKS
    from ip_tsn.lit.classifier import StreamClassifier
    from ip_tsn.lit.distillation import DistillationModule
    from ip_tsn.lit.model_settings import ClassifierSettings, DistillSettings, NetSettings, OptimSettings
    from ip_tsn.lit.modules import MODULES
    from ip_tsn.settings import defaults

    data = _fields(schema.DataConfig)
    assert data.pop("name") == typing.Optional[str]
    assert data == {**_fields(DataSettings), **_fields(Preprocess)}
    assert set(DATA_KEYS) == set(_fields(DataSettings))
    assert defaults(schema.DataConfig) == {**defaults(DataSettings), **defaults(Preprocess), "name": None}
    for cfg_cls, cls in ((schema.NetConfig, NetSettings), (schema.OptimConfig, OptimSettings),
                         (schema.DistillConfig, DistillSettings)):
        assert _fields(cfg_cls) == _fields(cls) and defaults(cfg_cls) == defaults(cls)
    model = _fields(schema.ModelConfig)
    assert model.pop("net") is schema.NetConfig and model.pop("optim") is schema.OptimConfig
    assert model == _fields(ClassifierSettings)
    classifier = _params(StreamClassifier)
    for derived in ("num_classes", "in_channels", "num_segments", "net", "optim"):  # data; sections
        classifier.pop(derived)
    assert classifier == _fields(ClassifierSettings)
    distill = {k: v for k, v in _params(DistillationModule).items() if k not in _params(StreamClassifier)}
    assert distill == {k: v for k, v in _fields(DistillSettings).items() if k != "online_teacher"}
    assert set(_fields(schema.FuseChecks)) == set(CHECKS)
    assert set(schema.MODULES) == set(MODULES)
    assert typing.get_args(_fields(schema.StageConfig)["stage"]) == schema.STAGES


def test_fit_refuses_to_overwrite_a_finished_run(tmp_path, capsys):
    run = tmp_path / "runs" / "pstream"
    run.mkdir(parents=True)
    (run / "fit.json").write_text("{}")
    code = main(["fit", str(ROOT / "experiments/pstream.yaml"), f"run_root={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and "holds a finished run" in err and "ckpt_path=last" in err and "overwrite=true" in err
    assert (run / "fit.json").read_text() == "{}"
    # an unfinished run (killed, cut by a time limit: last.ckpt, no fit.json): until 2026-12-08 a fit without
    # ckpt_path=last started it again at epoch 0, its checkpoint replaced at the new run's first epoch
    (run / "fit.json").unlink()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"epochs of work")
    code = main(["fit", str(ROOT / "experiments/pstream.yaml"), f"run_root={tmp_path / 'runs'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"ip-tsn fit: error: {run} holds an unfinished run ({run / 'checkpoints' / 'last.ckpt'}); "
                                 "pass ckpt_path=last to resume it, overwrite=true to start it again, or another "
                                 "run_root / name")
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"epochs of work"


def test_overrides_after_options_and_positive_counts(capsys):
    """`ip-tsn test CFG --checkpoint X key=value` (the order --help shows) parses; 0 segments or
    top-k 0 are refused by argparse (exit 2) instead of silently meaning something else."""
    from ip_tsn.cli import _parse

    args = _parse(["test", "experiments/student.yaml", "--checkpoint", "x.ckpt", "name=y", "data.split=2"])
    assert args.checkpoint == "x.ckpt" and args.overrides == ["name=y", "data.split=2"]
    for bad in (["predict", "v.mp4", "--segments", "0"], ["predict", "v.mp4", "--top-k", "0"],
                ["test", "experiments/student.yaml", "--bogus"]):
        with pytest.raises(SystemExit) as err:
            _parse(bad)
        assert err.value.code == 2
    assert "positive integer" in capsys.readouterr().err
