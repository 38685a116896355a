#!/usr/bin/env python
"""ip-tsn benchmarks: preprocessing, loaders, worker cost, networks, IP TSN versus CoViAR, GPU, ablation.

    python benchmarks/run.py                      # full: preprocess, loader, worker, networks, coviar, gpu
                                                  #   (~25 min, 2 cores; gpu only where CUDA is visible);
                                                  #   the ablation section reports the seeds already trained
    python benchmarks/run.py --quick              # every section small (~5 min); ablation on tiny data;
                                                  #   written to runs/bench/quick/ (not over RESULTS.md)
    python benchmarks/run.py --only preprocess,loader
    python benchmarks/run.py --only ablation --train-ablation   # train 3 seeds x 2 data seeds (~25 min each)
    python benchmarks/run.py --quick --only coviar  # IP TSN versus CoViAR end to end, small (seconds)
    python benchmarks/run.py --only gpu,coviar     # on a GPU machine: the GPU section and CoViAR's CUDA rows
    python benchmarks/run.py --only flow           # the torch TV-L1 against OpenCV's (agreement, CPU speed; GPU rows
                                                  #   from results/tvl1_gpu.json, made by benchmarks/tvl1_gpu.py)
    python benchmarks/run.py --only huge           # an 8K clip's stream inputs, full size against decode_downscale
    python benchmarks/run.py --only packed         # a device-path batch: tensors and bytes per clip (seconds)
    python benchmarks/run.py --report             # rewrite RESULTS.md and the charts from results/*.json
    python benchmarks/run.py --report --output-dir /tmp/r --results-dir benchmarks/results   # elsewhere

Each section writes ``benchmarks/results/<section>.json``; RESULTS.md and the PNG charts in
``benchmarks/`` are then regenerated from every section's latest results, each section by its own
module (``report(result)``), assembled by ``report.py``. Generated videos, data
sets and training runs go to ``runs/bench/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import load_section, log, machine, save_section  # noqa: E402

SECTIONS = ("preprocess", "loader", "worker", "packed", "networks", "coviar", "gpu", "flow", "huge", "ablation")
MODULES = {"worker": "worker_cost", "packed": "packed_batch"}  # a section's module, where it is not named like the section


def _seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _variants(text: str, known: dict, parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """The --variants names (comma-separated, all of ``known`` or none); an unknown one is a usage error."""
    if text.strip() == "none":
        return ()
    names = list(known) if text.strip() == "all" else [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in known]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(known)}, 'all' or 'none'")
    return tuple(names)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and repeats: < 5 minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--train-ablation", action="store_true",
                        help="full mode: train the ablation seeds (else only collect finished ones)")
    parser.add_argument("--seeds", default="0,1,2", type=_seed_list,
                        help="ablation seeds, comma-separated (full mode; --quick uses 0)")
    parser.add_argument("--data-seeds", default="0,1", type=_seed_list,
                        help="ablation data seeds, comma-separated (full mode; --quick uses 0)")
    parser.add_argument("--variants", default="no_distill",
                        help="ablation students beside make demo's chain: no_distill, logits_only, "
                             "features_only (comma-separated) or all")
    parser.add_argument("--versions", default=None, type=_seed_list,
                        help="ablation: synthetic benchmark versions (default 7,6; --quick: 7)")
    parser.add_argument("--report", action="store_true", help="only regenerate RESULTS.md and the charts")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="write results/, RESULTS.md and the charts there (default: benchmarks/; "
                             "with --quick: runs/bench/quick/)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="with --report: read the section results there (default: <output dir>/results), "
                             "e.g. --report --output-dir /tmp/r --results-dir benchmarks/results")
    args = parser.parse_args(argv)
    if args.output_dir is None and args.quick:  # a check: never overwrite the committed full results
        args.output_dir = common.WORK_DIR / "quick"
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        common.OUTPUT["dir"] = args.output_dir.resolve()
    if args.results_dir is not None:
        if not args.report:
            parser.error("--results-dir is for --report only (measured results go to <output dir>/results)")
        common.OUTPUT["results"] = args.results_dir.resolve()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("WANDB_MODE", "disabled")

    if not args.report:
        sections = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = sorted(set(sections) - set(SECTIONS))
        if unknown:
            parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
        for name in SECTIONS:
            if name not in sections:
                continue
            log(f"== {name} ({'quick' if args.quick else 'full'})")
            start, counters = time.perf_counter(), common.cpu_counters()
            info = machine()
            module = __import__(MODULES.get(name, name))
            if name == "ablation":
                seeds = [0] if args.quick else args.seeds
                result = module.run(args.quick, seeds, train=args.quick or args.train_ablation,
                                    data_seeds=[0] if args.quick else args.data_seeds,
                                    variants=_variants(args.variants, module.VARIANTS, parser),
                                    versions=tuple(args.versions or ((7,) if args.quick else module.VERSIONS)))
                saved = load_section(name)
                if not (args.quick or args.train_ablation) and saved and saved.get("seeds") and \
                        [s_["top1"] for s_ in result["seeds"]] in ([], [s_["top1"] for s_ in saved["seeds"]]):
                    # collecting found nothing new: keep the saved run, with its timing and machine
                    log(f"== ablation: nothing new under make demo's run folders; keeping the saved results "
                        f"({len(saved['seeds'])} seeds, run at {saved['machine'].get('date')})")
                    continue
            else:
                result = module.run(args.quick)
            info["loadavg_end"] = common.loadavg()
            info["others_cpu_share"] = common.others_share(counters, common.cpu_counters(),
                                                           time.perf_counter() - start)
            result.update({"section": name, "mode": "quick" if args.quick else "full", "machine": info,
                           "seconds": time.perf_counter() - start})
            save_section(name, result)
            log(f"== {name} done in {result['seconds']:.0f} s")

    import charts
    import report

    results = {name: load_section(name) for name in SECTIONS}
    pngs = charts.write_all(results)
    path = report.write(results, pngs)
    log(f"wrote {path} and {len(pngs)} charts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
