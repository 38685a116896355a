"""Config errors end in one line naming the key, where it came from and the closest known key
(exit status 2 through the CLI), for every kind of typo a user makes; every file under
experiments/ composes and checks with every dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from ip_tsn.cli import main
from ip_tsn.config import ConfigError, load_config
from ip_tsn.stages.config_check import check_keys

ROOT = Path(__file__).resolve().parents[1]
STAGE_FILES = sorted((ROOT / "experiments").glob("*.yaml")) + sorted((ROOT / "experiments/ablations").glob("*.yaml"))


@pytest.mark.parametrize("dataset", ["synthetic", "ucf101", "hmdb51", "kinetics"])
def test_every_experiment_file_composes_and_checks(dataset):
    assert len(STAGE_FILES) >= 10
    for path in STAGE_FILES:
        if path.name == "base.yaml":
            continue
        cfg = load_config(path, [f"data={dataset}"])
        check_keys(cfg, str(path))
        assert cfg.data.dataset == dataset


@pytest.mark.parametrize("override,message", [
    ("model.lrr=2", "model.lrr: unknown key (from the command line); did you mean model.lr?"),
    ("ckpt_pth=last", "ckpt_pth: unknown key (from the command line); did you mean ckpt_path?"),
    ("logger.wandbb=false", "did you mean logger.wandb?"),
    ("checkpoint.monitr=val/top1", "did you mean checkpoint.monitor?"),
    ("seeds=3", "did you mean seed?"),
    ("distill.temprature=2", "did you mean distill.temperature?"),
    ("trainer.max_epoch=3", "did you mean trainer.max_epochs?"),
    ("data.crop_sise=32", "did you mean data.crop_size?"),
    ("stage=istrem", "stage=istrem: unknown value"),
])
def test_typos_give_one_line_and_exit_2(override, message, capsys):
    code = main(["fit", str(ROOT / "experiments/student.yaml"), override])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1 and err.startswith("ip-tsn fit: error:")


def test_a_typo_in_a_file_names_the_file(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text(f"_base_: {ROOT / 'experiments/pstream.yaml'}\nmodel: {{lrr: 0.1}}\n")
    with pytest.raises(ConfigError, match=r"model.lrr: unknown key \(from .*mine.yaml\); did you mean model.lr\?"):
        check_keys(load_config(bad), str(bad))


def test_fit_refuses_to_overwrite_a_finished_run(tmp_path, capsys):
    run = tmp_path / "runs" / "pstream"
    run.mkdir(parents=True)
    (run / "fit.json").write_text("{}")
    code = main(["fit", str(ROOT / "experiments/pstream.yaml"), f"run_root={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and "holds a finished run" in err and "ckpt_path=last" in err and "overwrite=true" in err
    assert (run / "fit.json").read_text() == "{}"


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
