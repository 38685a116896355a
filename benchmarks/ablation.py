"""Section 4: the distillation ablation on the synthetic default, over several training seeds.

For each seed, the whole chain runs through the ``ip-tsn`` command (``ip_tsn.cli.main``, in this
process) with ``seed=<s> run_root=runs/bench/ablation[-quick]/seed<s>``:

    ip-tsn fit   experiments/teacher.yaml                 # the flow teacher
    ip-tsn cache experiments/cache.yaml                   # its logits / features
    ip-tsn fit   experiments/ablations/no_distill.yaml    # plain P (labels only, same schedule)
    ip-tsn fit   experiments/ablations/logits_only.yaml   # + KL on the teacher's logits
    ip-tsn fit   experiments/ablations/features_only.yaml # + MSE on the teacher's features
    ip-tsn fit   experiments/ablations/both.yaml          # both (= experiments/student.yaml)
    ip-tsn fit   experiments/istream.yaml                 # the I-stream
    ip-tsn test  <each of the above>                      # 25-segment protocol, val and test
    ip-tsn fuse  <run_root>/fuse.yaml                     # I + distilled P (both), weights on val

The data set (``data/synthetic``, its TV-L1 flow as ``make demo`` extracts it) is the same for every
seed: only training randomness changes. Stages whose output exists are skipped, so an interrupted
run resumes. ``--quick`` runs the chain on the tiny preset (2/1/1 videos per class, 64x64, 24
frames, DIS flow) for 1 epoch: it checks the wiring, its accuracies mean nothing.

    python benchmarks/ablation.py --seeds 0,1,2          # ~25 min per seed on 2 CPU cores
    python benchmarks/ablation.py --seeds 0 --quick
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import REPO, WORK_DIR, loadavg, log, machine, save_section

EXPERIMENTS = REPO / "experiments"
ROWS = {  # report row: (stage config, run name)
    "plain P (no distillation)": ("ablations/no_distill.yaml", "student_no_distill"),
    "P, logits only": ("ablations/logits_only.yaml", "student_logits_only"),
    "P, features only": ("ablations/features_only.yaml", "student_features_only"),
    "P, logits + features": ("ablations/both.yaml", "student_both"),
    "teacher (TV-L1 flow)": ("teacher.yaml", "teacher"),
    "I-stream": ("istream.yaml", "istream"),
}
FUSED = "fused (I + P logits + features)"
ORDER = list(ROWS) + [FUSED]


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def ensure_data(quick: bool) -> Path:
    """The data set and its flow: data/synthetic as `make demo` builds it, or the tiny preset."""
    if quick:
        root = WORK_DIR / "data" / "tiny"
        make = ["--root", str(root), "--tiny", "--quiet"]
        flow = ["--method", "dis", "--workers", "1", "--no-progress"]
    else:
        root = REPO / "data" / "synthetic"
        make = ["--root", str(root), "--quiet"]
        flow = ["--method", "tvl1-fast", "--size", "64x64", "--workers", "2", "--no-progress"]  # = Makefile FLOW_ARGS
    if not (root / "splits" / "classInd.txt").is_file():
        log(f"ablation: generating {root}")
        subprocess.run([_python(), str(REPO / "data_prep" / "make_synthetic.py"), *make], check=True, cwd=REPO)
    if not (root / "flow" / ".complete").is_file():
        log(f"ablation: flow for {root}")
        subprocess.run([_python(), str(REPO / "data_prep" / "extract_flow.py"), str(root), *flow], check=True, cwd=REPO)
        (root / "flow" / ".complete").touch()
    return root


def _ip_tsn(*argv: str) -> None:
    from ip_tsn.cli import main

    log("ip-tsn " + " ".join(argv))
    code = main(list(argv))
    if code:
        raise RuntimeError(f"ip-tsn {' '.join(argv)} exited with {code}")


def run_seed(seed: int, quick: bool, data_root: Path) -> dict:
    run_root = WORK_DIR / ("ablation-quick" if quick else "ablation") / f"seed{seed}"
    result_file = run_root / "fusion" / "results.json"
    over = [f"seed={seed}", f"run_root={run_root}", f"data.root={data_root}", "logger.wandb=false"]
    if quick:
        over += ["trainer.max_epochs=1", "data.test_segments=5", "data.num_workers=0", "data.batch_size=8"]
    start = time.perf_counter()
    if not result_file.is_file():
        if not (run_root / "teacher" / "checkpoints" / "last.ckpt").is_file():
            _ip_tsn("fit", str(EXPERIMENTS / "teacher.yaml"), *over)
        if not (run_root / "teacher_cache" / "manifest.json").is_file():
            _ip_tsn("cache", str(EXPERIMENTS / "cache.yaml"), *over)
        for config, name in ROWS.values():
            if not (run_root / name / "checkpoints" / "last.ckpt").is_file():
                _ip_tsn("fit", str(EXPERIMENTS / config), *over)
            if not (run_root / name / "scores_test.npz").is_file():
                _ip_tsn("test", str(EXPERIMENTS / config), *over)
        fuse = run_root / "fuse.yaml"
        streams = {row: str(run_root / name) for row, (_, name) in ROWS.items()}
        fuse.write_text(json.dumps({  # JSON is YAML
            "_base_": str(EXPERIMENTS / "base.yaml"), "stage": "fuse", "name": "fusion",
            "fuse": {"streams": streams, "fused": ["I-stream", "P, logits + features"],
                     "out_dir": str(run_root / "fusion")}}, indent=1))
        _ip_tsn("fuse", str(fuse), *over)
    entry = _seed_entry(seed, run_root, minutes=(time.perf_counter() - start) / 60)
    if entry is None:
        raise RuntimeError(f"{result_file}: the fusion results lack some of {list(ROWS)}")
    return entry


def _seed_entry(seed: int, run_root: Path, minutes: float | None) -> dict | None:
    """One seed's test top-1 per row from its ``fusion/results.json``; None if a row is missing."""
    data = json.loads((run_root / "fusion" / "results.json").read_text())
    if not all(r in data["results"] for r in ROWS):
        return None
    top1 = {row: data["results"][row]["top1"] for row in ROWS}
    top1[FUSED] = data["results"]["fusion"]["top1"]
    return {"seed": seed, "run_root": str(run_root), "top1": top1, "minutes": minutes, "weights": data.get("weights")}


def collect(quick: bool) -> list[dict]:
    """Seeds already finished under runs/bench/ablation*/ (nothing is trained)."""
    base = WORK_DIR / ("ablation-quick" if quick else "ablation")
    entries = (_seed_entry(int(f.parent.parent.name[4:]), f.parent.parent, minutes=None)
               for f in sorted(base.glob("seed*/fusion/results.json")))
    return [e for e in entries if e is not None]


def demo_results() -> dict | None:
    """`make demo`'s own table (seed 0; its P baseline is experiments/pstream.yaml), if it exists."""
    path = REPO / "runs" / "synthetic" / "split1" / "fusion" / "results.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {"path": str(path.relative_to(REPO)), "top1": {k: v["top1"] for k, v in data["results"].items()},
            "weights": data.get("weights"), "num_videos": data.get("num_videos")}


def summarize(seeds: list[dict]) -> dict:
    table = {}
    for row in ORDER:
        values = [s["top1"][row] for s in seeds if row in s["top1"]]
        table[row] = {"mean": float(np.mean(values)) if values else None,
                      "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                      "values": values}
    return table


def run(quick: bool = False, seeds: list[int] | None = None, train: bool = True) -> dict:
    """Train (``train``) the given seeds, or only collect finished ones; summarise mean / std."""
    seeds = [0] if seeds is None and quick else ([0, 1, 2] if seeds is None else seeds)
    done = []
    if train:
        data_root = ensure_data(quick)
        for seed in seeds:
            done.append(run_seed(seed, quick, data_root))
    else:
        done = [s for s in collect(quick) if s["seed"] in seeds]
    return {"quick": quick, "seeds_requested": seeds, "seeds": done, "summary": summarize(done),
            "demo": demo_results(), "command": "python benchmarks/ablation.py --seeds 0,1,2"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 epoch: checks the wiring only")
    parser.add_argument("--collect", action="store_true", help="train nothing: report the seeds already finished")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    start, info = time.perf_counter(), machine()
    result = run(args.quick, seeds, train=not args.collect)
    info["loadavg_end"] = loadavg()
    result.update({"section": "ablation", "mode": "quick" if args.quick else "full", "machine": info,
                   "seconds": time.perf_counter() - start})
    save_section("ablation", result)
    for row, stats in result["summary"].items():
        print(f"{row:34s} {stats['values']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
