"""The `ip-tsn` command: one entry point for every stage.

    ip-tsn fit   experiments/teacher.yaml [key=value ...]   # train a stream (teacher, istream, pstream, student)
    ip-tsn cache experiments/cache.yaml   [key=value ...]   # teacher logits/features for the student
    ip-tsn test  experiments/student.yaml [--checkpoint CKPT] [key=value ...]  # TSN test protocol, scores
    ip-tsn fuse  experiments/fuse.yaml    [key=value ...]   # late fusion, results table + confusion PNG

Overrides are OmegaConf dot-lists (``data=ucf101 trainer.devices=2 model.lr=0.01``), exactly what
a W&B sweep's ``${args_no_hyphens}`` passes, and what every DDP rank parses again.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from .config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ip-tsn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [("fit", "train one stream"), ("cache", "write the teacher cache"),
                       ("test", "evaluate a checkpoint with the test protocol"), ("fuse", "late fusion of streams")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("config", help="experiments/<stage>.yaml")
        p.add_argument("overrides", nargs="*", help="key=value (OmegaConf dot-list)")
        if name == "test":
            p.add_argument("--checkpoint", help="default: <run_dir>/checkpoints/best.ckpt")
            p.add_argument("--subsets", default="val,test", help="comma-separated (default val,test)")
    return parser


def _quiet() -> None:
    """Hide the warnings that only restate our choices (small CPU runs, few workers)."""
    for pattern in (".*does not have many workers.*", ".*GPU available but not used.*",
                    ".*number of training batches.*", ".*is an invalid version and will not be supported.*"):
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet()
    from . import experiment  # heavy imports after argument parsing: `ip-tsn -h` stays fast
    from .codec.errors import VideoError
    from .data.teacher_cache import StaleCacheError

    try:
        cfg = load_config(args.config, args.overrides)
        if args.command == "fit":
            print(f"best checkpoint: {experiment.fit(cfg)}")
        elif args.command == "cache":
            print(f"teacher cache: {experiment.cache(cfg)}")
        elif args.command == "test":
            metrics = experiment.test(cfg, args.checkpoint, tuple(args.subsets.split(",")))
            for subset, values in metrics.items():
                print(subset + ": " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(values.items())))
        elif args.command == "fuse":
            result = experiment.fuse(cfg)
            print(open(result["markdown"]).read() if "markdown" in result else result)
    except (ConfigError, VideoError, StaleCacheError, FileNotFoundError) as e:
        print(f"ip-tsn {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
