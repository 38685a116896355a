"""Section 4: the distillation ablation on the synthetic default, over data seeds and training seeds.

Each run is one (data seed ``d``, training seed ``s``) and lives where ``make demo DATA_SEED=<d>
SEED=<s>`` puts it: the data in ``data/synthetic[-d<d>]`` (with the Makefile's TV-L1 flow), the
runs in ``runs/synthetic/split1`` for d = s = 0, else ``runs/synthetic-d<d>-s<s>/split1``. The
driver runs make demo's chain there (stages already finished are kept, an interrupted training
resumes from its last.ckpt), adds the ablation's students beside it and fuses them, every step
through the ``ip-tsn`` command in a subprocess with ``seed=<s> data.root=<data> run_root=<runs>``:

    ip-tsn fit   experiments/teacher.yaml                 # the flow teacher        (make demo)
    ip-tsn cache experiments/cache.yaml                   # its logits / features   (make demo)
    ip-tsn fit   experiments/pstream.yaml                 # make demo's plain P     (make demo)
    ip-tsn fit   experiments/student.yaml                 # logits + features       (make demo)
    ip-tsn fit   experiments/istream.yaml                 # the I-stream            (make demo)
    ip-tsn fit   experiments/ablations/no_distill.yaml    # plain P with the student's sampler, views, schedule
    ip-tsn fit   experiments/ablations/logits_only.yaml   # --variants all: + KL on the teacher's logits only
    ip-tsn fit   experiments/ablations/features_only.yaml # --variants all: + MSE on its features only
    ip-tsn fit   experiments/ablations/spatial_only.yaml  # --variants all: + MSE on its layer4 maps only (online)
    ip-tsn test  <each of the above>                      # the test protocol, val and test
    ip-tsn fuse  experiments/fuse.yaml                    # make demo's table (<runs>/fusion)
    ip-tsn fuse  <runs>/fuse_ablation.yaml                # I + P (both), I + plain P, checks (<runs>/fusion_ablation)

So a finished ``make demo`` is the first part of its ablation run, and the ablation's d0 s0 is the
demo's own run. Each run's ``fusion_ablation/results.json`` gives its test top-1 per stream and
per-video correctness; the summary is the mean +- std of each row over all runs and, for each
comparison (distilled minus plain P, fused minus the best single stream, ...), a paired test over
videos: the per-video difference of correctness averaged over the training seeds of its data set,
bootstrapped over the videos of every data set (``scipy.stats.bootstrap``), plus McNemar's test
of each run. ``--quick`` runs the chain on the tiny preset (2/1/1 videos per class, 64x64, 24
frames, DIS flow) for 1 epoch under runs/bench/ablation-quick/: it checks the wiring, its
accuracies mean nothing.

    python benchmarks/ablation.py --seeds 0,1,2 --data-seeds 0,1   # ~25 min per run on 2 CPU cores
    python benchmarks/ablation.py --seeds 0 --data-seeds 0 --quick
    python benchmarks/ablation.py --collect                         # report the runs already finished
    python benchmarks/ablation.py --add spatial_only --versions 6   # a variant beside the stored runs
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import REPO, WORK_DIR, load_section, loadavg, log, machine, save_section

from ip_tsn.evaluation.fusion import correct_of  # common put src/ on sys.path
from ip_tsn.evaluation.scores import load_aligned
from ip_tsn.evaluation.stats import accuracy_ci, mean_ci, paired_difference
from ip_tsn.atomic import write_text_atomic

EXPERIMENTS = REPO / "experiments"
RUNS_DIR = REPO / "runs"  # make demo's run folders
PLAIN, DISTILLED, TEACHER, APPEARANCE = ("plain P", "P, logits + features", "teacher (TV-L1 flow)", "I-stream")
NO_DISTILL = "plain P, student's sampler"
CHAIN = {  # make demo's chain, report row: (stage config, run name)
    TEACHER: ("teacher.yaml", "teacher"),
    PLAIN: ("pstream.yaml", "pstream"),
    DISTILLED: ("student.yaml", "student"),  # = ablations/both.yaml
    APPEARANCE: ("istream.yaml", "istream"),
}
VARIANTS = {  # --variants name: (report row, stage config, run name); the student's sampler, views, schedule
    "no_distill": (NO_DISTILL, "ablations/no_distill.yaml", "student_no_distill"),
    "logits_only": ("P, logits only", "ablations/logits_only.yaml", "student_logits_only"),
    "features_only": ("P, features only", "ablations/features_only.yaml", "student_features_only"),
    "consensus": ("P, consensus level", "ablations/consensus.yaml", "student_consensus"),
    "spatial_only": ("P, spatial maps only", "ablations/spatial_only.yaml", "student_spatial_only"),
}
VERSIONS = (7, 6)  # the synthetic benchmark's versions (issue 19): 7, make demo's; 6, the negative control
DEFAULT_VARIANTS = ("no_distill",)
ROWS = {**CHAIN, **{row: (config, name) for row, config, name in VARIANTS.values()}}
REQUIRED = list(CHAIN)  # rows every run has (make demo's)
FUSED = "fused (I + P logits + features)"
FUSION_ROWS = {FUSED: "fusion", "fused, equal weights": "fusion (equal weights)",
               "I + plain P": "I + plain P"}  # report row: row of the fusion report
ORDER = [PLAIN, NO_DISTILL, "P, logits only", "P, features only", "P, spatial maps only", "P, consensus level",
         DISTILLED, TEACHER, APPEARANCE,
         *FUSION_ROWS]
BEST = "best single stream"  # per run: the better, by test top-1, of the fused streams
COMPARISONS = {  # name: (A, B), both report rows (or BEST); A minus B
    "P, logits + features - plain P": (DISTILLED, PLAIN),
    "P, logits + features - plain P, student's sampler": (DISTILLED, NO_DISTILL),
    # the term ablations against plain P: since issue 19 the student's sampler is plain P's, and the
    # control (no_distill) trains plain P's network bit for bit (the control row below shows it)
    "P, logits only - plain P": ("P, logits only", PLAIN),
    "P, features only - plain P": ("P, features only", PLAIN),
    "P, spatial maps only - plain P": ("P, spatial maps only", PLAIN),
    "P, consensus level - plain P": ("P, consensus level", PLAIN),
    "plain P, student's sampler - plain P": (NO_DISTILL, PLAIN),
    "fused - best single stream": (FUSED, BEST),
    "fused - I + plain P": (FUSED, "I + plain P"),
}
COMMAND = "make bench-ablation  (python benchmarks/ablation.py --seeds 0,1,2 --data-seeds 0,1)"


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def data_root(data_seed: int, quick: bool, version: int = 7) -> Path:
    """Where ``make demo DATA_SEED=<d> [SYNTH_VERSION=6]`` keeps the data set (``data/synthetic[-d<d>]``,
    ``data/synthetic-v6-d<d>``), or the tiny preset's folder under runs/bench/data."""
    if version != 7:
        name = f"tiny-v{version}-d{data_seed}" if quick else f"synthetic-v{version}-d{data_seed}"
        return (WORK_DIR / "data" if quick else REPO / "data") / name
    suffix = "" if data_seed == 0 else f"-d{data_seed}"
    return WORK_DIR / "data" / f"tiny{suffix}" if quick else REPO / "data" / f"synthetic{suffix}"


def run_root(data_seed: int, seed: int, quick: bool, version: int = 7) -> Path:
    """make demo's run folder of (data seed, seed): runs/synthetic/split1 for 0, 0, else
    runs/synthetic-d<d>-s<s>/split1 (version 6: runs/synthetic-v6-d<d>-s<s>/split1); --quick:
    runs/bench/ablation-quick[-v6]/d<d>/seed<s>."""
    tag = "" if version == 7 else f"-v{version}"
    if quick:
        return WORK_DIR / f"ablation-quick{tag}" / f"d{data_seed}" / f"seed{seed}"
    if version != 7:
        return RUNS_DIR / f"synthetic{tag}-d{data_seed}-s{seed}" / "split1"
    name = "synthetic" if (data_seed, seed) == (0, 0) else f"synthetic-d{data_seed}-s{seed}"
    return RUNS_DIR / name / "split1"


def ensure_data(data_seed: int, quick: bool, version: int = 7) -> Path:
    """The data set of ``data_seed`` and its flow, as `make demo DATA_SEED=<d>` builds them."""
    root = data_root(data_seed, quick, version)
    make = ["--root", str(root), "--seed", str(data_seed), "--version", str(version), "--quiet"] + \
        (["--tiny"] if quick else [])
    flow = (["--method", "dis", "--workers", "1", "--videos", "source", "--no-progress"] if quick else
            ["--method", "tvl1-tiny", "--workers", "2", "--videos", "source", "--no-progress"])  # = FLOW_ARGS
    if not (root / "splits" / "classInd.txt").is_file():
        log(f"ablation: generating {root}")
        subprocess.run([_python(), str(REPO / "data_prep" / "make_synthetic.py"), *make], check=True, cwd=REPO)
    if not (root / "flow" / ".complete").is_file():
        log(f"ablation: flow for {root}")
        subprocess.run([_python(), str(REPO / "data_prep" / "extract_flow.py"), str(root), *flow], check=True, cwd=REPO)
        (root / "flow" / ".complete").touch()
    return root


def _ip_tsn(*argv: str) -> None:
    """One ``ip-tsn`` command in its own process, as a user types it."""
    log("ip-tsn " + " ".join(argv))
    code = subprocess.run([_python(), "-m", "ip_tsn.cli", *argv], cwd=REPO).returncode
    if code:
        raise RuntimeError(f"ip-tsn {' '.join(argv)} exited with {code}")


def fuse_config(root: Path, data: Path, rows: list[str]) -> dict[str, Any]:
    """The ablation's fusion of one run, as make demo's: I + distilled P and I + plain P (weights
    searched on val), the checks; every stream of ``rows`` reported beside them."""
    return {"_base_": str(EXPERIMENTS / "base.yaml"), "stage": "fuse", "name": "fusion_ablation",
            "fuse": {"streams": {row: str(root / ROWS[row][1]) for row in rows},
                     "fused": [APPEARANCE, DISTILLED], "baseline_fused": [APPEARANCE, PLAIN],
                     "distilled": DISTILLED, "plain": PLAIN, "teacher": TEACHER,
                     "appearance": APPEARANCE, "groups": str(data / "synthetic.json"),
                     "targets": str(root / "teacher_cache" / "targets.json"),
                     "out_dir": str(root / "fusion_ablation")}}


def _fit_and_test(config: str, name: str, root: Path, over: list[str]) -> None:
    """Fit (resuming from last.ckpt after an interruption) unless finished, then test unless tested."""
    run_dir = root / name
    if not (run_dir / "fit.json").is_file():
        resume = ["ckpt_path=last"] if (run_dir / "checkpoints" / "last.ckpt").is_file() else []
        _ip_tsn("fit", str(EXPERIMENTS / config), *over, *resume)
    if not (run_dir / "scores_test.npz").is_file():
        _ip_tsn("test", str(EXPERIMENTS / config), *over)


def run_one(data_seed: int, seed: int, quick: bool, data: Path,
            variants: tuple[str, ...] = DEFAULT_VARIANTS, version: int = 7) -> dict:
    """make demo's chain and the ``variants`` of one (data seed, seed), then both fusions; return
    its :func:`run_entry`."""
    root = run_root(data_seed, seed, quick, version)
    over = [f"seed={seed}", f"run_root={root}", f"data.root={data}", "logger.wandb=false"]
    if quick:
        over += ["trainer.max_epochs=1", "data.test_segments=5", "data.num_workers=0", "data.batch_size=8"]
    start = time.perf_counter()
    if not (root / "teacher" / "fit.json").is_file():
        _fit_and_test(*CHAIN[TEACHER], root, over)
    if not (root / "teacher_cache" / "manifest.json").is_file():
        _ip_tsn("cache", str(EXPERIMENTS / "cache.yaml"), *over)
    for config, name in [*CHAIN.values(), *(VARIANTS[v][1:] for v in variants)]:
        _fit_and_test(config, name, root, over)
    if not (root / "fusion" / "results.json").is_file():
        _ip_tsn("fuse", str(EXPERIMENTS / "fuse.yaml"), *over)  # make demo's table
    rows = [*CHAIN, *(VARIANTS[v][0] for v in variants)]
    rows += [r for r, _, n in VARIANTS.values() if r not in rows and (root / n / "scores_test.npz").is_file()]
    fuse = root / "fuse_ablation.yaml"
    write_text_atomic(fuse, json.dumps(fuse_config(root, data, rows), indent=1))  # JSON is YAML
    _ip_tsn("fuse", str(fuse), *over)
    entry = run_entry(data_seed, seed, root, minutes=(time.perf_counter() - start) / 60, version=version)
    if entry is None:
        raise RuntimeError(f"{root}/fusion_ablation/results.json lacks some of {REQUIRED} or per-video results")
    return entry


# ---------------------------------------------------------------------------------- collecting
def run_entry(data_seed: int, seed: int, root: Path, minutes: float | None, version: int = 7) -> dict | None:
    """One run from its ``fusion_ablation/results.json``: test top-1 per report row (fractions),
    weights, the val data checks and per-video correctness ``{row: [0/1] (N,)}`` (plus ``BEST``)
    of every row it has; None if a row of :data:`REQUIRED`, a fusion row or the per-video results
    are missing."""
    data = json.loads((root / "fusion_ablation" / "results.json").read_text())
    streams, per_video = data.get("streams", {}), data.get("per_video")
    names = {**{r: r for r in ROWS if r in streams}, **FUSION_ROWS}
    if per_video is None or not all(r in names for r in REQUIRED) or \
            not all(n in streams and n in per_video["correct"] for n in names.values()):
        return None
    correct = {row: per_video["correct"][n] for row, n in names.items()}
    best = data["paired"]["fused_minus_best"]["b"]
    correct[BEST] = per_video["correct"][best]
    return {"version": version, "data_seed": data_seed, "seed": seed, "run_root": str(root), "minutes": minutes,
            "top1": {row: streams[n]["top1"] / 100.0 for row, n in names.items()},
            "best_single": best, "weights": data.get("weights"),
            "baseline_weights": data.get("baseline_weights"), "checks": data.get("checks"),
            "video_ids": per_video["video_ids"], "correct": correct}


_RUN = re.compile(r"(?:^|/)(?:d(\d+)/seed(\d+)|synthetic(?:-v(\d+))?(?:-d(\d+)-s(\d+))?/split1)$")


def collect(quick: bool) -> list[dict]:
    """Runs already fused (``fusion_ablation/results.json``) under make demo's run folders, or
    runs/bench/ablation-quick/d*/seed*/ with ``quick`` (nothing is trained)."""
    entries = []
    for version in VERSIONS:
        tag = "" if version == 7 else f"-v{version}"
        base = WORK_DIR / f"ablation-quick{tag}" if quick else RUNS_DIR
        found = base.glob("d*/seed*/fusion_ablation/results.json") if quick else \
            base.glob(f"synthetic{tag}*/split1/fusion_ablation/results.json")
        for f in sorted(found):
            match = _RUN.search(f.parent.parent.relative_to(base).as_posix())
            if match and (quick or int(match[3] or 7) == version):
                d, s = (match[1], match[2]) if quick else (match[4] or 0, match[5] or 0)
                entries.append(run_entry(int(d), int(s), f.parent.parent, minutes=None, version=version))
    return sorted((e for e in entries if e is not None), key=lambda e: (-e["version"], e["data_seed"], e["seed"]))


def demo_results() -> dict | None:
    """`make demo`'s own table (data seed 0, seed 0; its P baseline is experiments/pstream.yaml)."""
    path = RUNS_DIR / "synthetic" / "split1" / "fusion" / "results.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    top1 = ({k: v["top1"] / 100.0 for k, v in data["streams"].items()} if "streams" in data
            else {k: v["top1"] for k, v in data["results"].items()})  # an older ip-tsn fuse
    return {"path": str(path.relative_to(REPO)), "top1": top1, "weights": data.get("weights"),
            "num_videos": data.get("num_videos"), "checks": data.get("checks")}


# -------------------------------------------------------------------------------- the summary
def summarize(runs: list[dict]) -> dict:
    """Per report row: mean and std (ddof 1) of test top-1 over every run, and the values."""
    table = {}
    for row in ORDER:
        values = [r["top1"][row] for r in runs if row in r["top1"]]
        table[row] = {"mean": float(np.mean(values)) if values else None,
                      "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                      "values": values, "n": len(values)}
    return table


def per_video_differences(runs: list[dict], a: str, b: str) -> np.ndarray:
    """(V,) float: per video, ``a`` minus ``b`` correctness averaged over the runs (training
    seeds) of its data set; the videos of every data set concatenated. Raises ``ValueError``
    when runs of one data set disagree on their test videos."""
    out = []
    for d in sorted({r["data_seed"] for r in runs}):
        group = [r for r in runs if r["data_seed"] == d]
        if any(r["video_ids"] != group[0]["video_ids"] for r in group):
            raise ValueError(f"data seed {d}: runs disagree on the test videos")
        diffs = [np.asarray(r["correct"][a], float) - np.asarray(r["correct"][b], float) for r in group]
        out.append(np.mean(diffs, axis=0))
    return np.concatenate(out) if out else np.zeros(0)


def paired_tests(runs: list[dict]) -> dict[str, dict]:
    """Each of :data:`COMPARISONS`, in percentage points: ``{"mean", "low", "high"}`` (the mean
    of :func:`per_video_differences` and its bootstrap 95% CI over videos), ``"videos"``,
    ``"runs"`` and ``"per_run"`` ``[{"data_seed", "seed", "mean", "mcnemar_p", "a_only",
    "b_only", "n"}]`` (McNemar's test of each run)."""
    out = {}
    for name, (a, b) in COMPARISONS.items():
        usable = [r for r in runs if a in r["correct"] and b in r["correct"]]
        if not usable:
            continue
        diffs = per_video_differences(usable, a, b)
        mean, low, high = mean_ci(diffs)
        per_run = []
        for r in usable:
            d = paired_difference(r["correct"][a], r["correct"][b])
            per_run.append({"data_seed": r["data_seed"], "seed": r["seed"], "mean": d["mean"],
                            "mcnemar_p": d["mcnemar_p"], "a_only": d["a_only"],
                            "b_only": d["b_only"], "n": d["n"]})
        out[name] = {"a": a, "b": b, "mean": 100.0 * mean, "low": 100.0 * low, "high": 100.0 * high,
                     "videos": len(diffs), "runs": len(usable), "per_run": per_run}
    return out


MORE_DATA = 3  # plain P trained on this many times the training videos (issue 19: information, not a gate)


def more_data(runs: list[dict]) -> dict | None:
    """Plain P trained on :data:`MORE_DATA` x the training videos of version 7's draw 0
    (``data/synthetic-3x``: the same videos plus more, the same val and test videos;
    ``runs/synthetic-3x-s<s>/split1/pstream``), against plain P and distilled P of the same draw and
    seed: per seed its test top-1, pooled paired differences (per video, averaged over the seeds)."""
    rows, diffs = [], {PLAIN: [], DISTILLED: []}
    for r in runs:
        path = RUNS_DIR / f"synthetic-{MORE_DATA}x-s{r['seed']}" / "split1" / "pstream" / "scores_test.npz"
        if r.get("version", 7) != 7 or r["data_seed"] != 0 or not path.is_file():
            continue
        ids, correct = _test_correct(path)
        if ids != sorted(r["video_ids"]):
            raise ValueError(f"{path}: other test videos than {r['run_root']}")
        where = {v: i for i, v in enumerate(ids)}
        right = np.asarray(correct, float)[[where[v] for v in r["video_ids"]]]
        rows.append({"seed": r["seed"], "top1": accuracy_ci(right), "plain": 100.0 * r["top1"][PLAIN],
                     "distilled": 100.0 * r["top1"][DISTILLED]})
        for b in diffs:
            diffs[b].append(right - np.asarray(r["correct"][b], float))
    if not rows:
        return None
    paired = {}
    for b, d in diffs.items():
        mean, low, high = mean_ci(np.mean(d, axis=0))
        paired[b] = {"mean": 100.0 * mean, "low": 100.0 * low, "high": 100.0 * high}
    return {"multiple": MORE_DATA, "seeds": rows, "minus": paired, "videos": len(diffs[PLAIN][0])}


def run(quick: bool = False, seeds: list[int] | None = None, train: bool = True,
        data_seeds: list[int] | None = None, variants: tuple[str, ...] = DEFAULT_VARIANTS,
        versions: tuple[int, ...] = VERSIONS) -> dict:
    """Train (``train``) every (version, data seed, seed), or only collect finished ones; summarise
    each version (``by_version``; ``summary`` / ``paired`` are version 7's, make demo's)."""
    seeds = [0] if seeds is None and quick else ([0, 1, 2] if seeds is None else seeds)
    data_seeds = [0] if data_seeds is None and quick else ([0, 1] if data_seeds is None else data_seeds)
    if train:
        done = []
        for version in versions:
            for d in data_seeds:
                data = ensure_data(d, quick, version)
                done += [run_one(d, s, quick, data, variants, version) for s in seeds]
    else:
        done = [r for r in collect(quick) if r["seed"] in seeds and r["data_seed"] in data_seeds
                and r.get("version", 7) in versions]
    main = [r for r in done if r.get("version", 7) == 7]
    return {"quick": quick, "seeds_requested": seeds, "data_seeds_requested": data_seeds, "seeds": done,
            **summaries(done), "variants": list(variants), "demo": demo_results(), "command": COMMAND,
            "more_data": None if quick else more_data(main)}


def summaries(done: list[dict]) -> dict:
    """``by_version`` (each version's ``summary`` and ``paired``) and version 7's (make demo's)
    ``summary`` and ``paired`` of the runs ``done``."""
    by_version = {}
    for version in sorted({r.get("version", 7) for r in done}):
        runs = [r for r in done if r.get("version", 7) == version]
        by_version[str(version)] = {"summary": summarize(runs), "paired": paired_tests(runs)}
    main = [r for r in done if r.get("version", 7) == 7]
    return {"by_version": by_version, "summary": summarize(main), "paired": paired_tests(main)}


def _test_correct(scores: Path) -> tuple[list[str], list[int]]:
    """A stream's test videos (sorted) and per-video correctness, by the helpers ``ip-tsn fuse``
    uses (``load_aligned``, ``correct_of``)."""
    ids, aligned, labels = load_aligned({"stream": scores})
    return ids, [int(c) for c in correct_of(aligned["stream"], labels)]


def add_variant(variant: str, versions: tuple[int, ...], seeds: list[int] | None = None,
                data_seeds: list[int] | None = None) -> dict:
    """Train ``variant`` beside the runs stored in ``benchmarks/results/ablation.json`` whose run
    folders are gone (a new checkout): per stored run of ``versions`` that lacks the row, its data
    (regenerated from its seed), its teacher (fit and test again: the variant's online teacher) and
    the variant, then the row's per-video correctness added to the stored run and every summary
    recomputed. The rest of the run is not retrained: the variant pairs with the stored plain P on the
    same test videos (checked: the same ids, else ``RuntimeError``). Each added row is
    recorded in the run's ``added`` with the date and how many test videos the retrained teacher
    classifies as the stored one did (training is deterministic on one machine; another CPU may differ)."""
    saved = load_section("ablation")
    if not saved or not saved.get("seeds"):
        raise RuntimeError("benchmarks/results/ablation.json holds no runs to add a variant to")
    row, config, name = VARIANTS[variant]
    teacher_config, teacher_name = CHAIN[TEACHER]
    for entry in saved["seeds"]:
        version, d, s = entry.get("version", 7), entry["data_seed"], entry["seed"]
        if version not in versions or (seeds is not None and s not in seeds) or \
                (data_seeds is not None and d not in data_seeds) or row in entry["correct"]:
            continue
        start = time.perf_counter()
        data = ensure_data(d, False, version)
        root = run_root(d, s, False, version)
        over = [f"seed={s}", f"run_root={root}", f"data.root={data}", "logger.wandb=false"]
        _fit_and_test(teacher_config, teacher_name, root, over)
        ids, teacher = _test_correct(root / teacher_name / "scores_test.npz")
        if ids != entry["video_ids"]:
            raise RuntimeError(f"{data}: its test videos differ from the stored run v{version} d{d} s{s}'s")
        _fit_and_test(config, name, root, over)
        ids, correct = _test_correct(root / name / "scores_test.npz")
        entry["correct"][row], entry["top1"][row] = correct, float(np.mean(correct))
        agree = int(np.sum(np.asarray(teacher) == np.asarray(entry["correct"][TEACHER])))
        entry.setdefault("added", {})[row] = {
            "date": time.strftime("%Y-%m-%d"), "minutes": (time.perf_counter() - start) / 60,
            "teacher_top1": float(np.mean(teacher)), "teacher_same_videos": agree, "videos": len(ids)}
        log(f"ablation: v{version} d{d} s{s} {row} {100 * np.mean(correct):.1f}; retrained teacher "
            f"{100 * np.mean(teacher):.1f} (stored {100 * entry['top1'][TEACHER]:.1f}, "
            f"{agree}/{len(ids)} videos alike)")
        save_section("ablation", saved)  # after each run: an interruption keeps what is done
    saved.update(summaries(saved["seeds"]))
    return saved


def _int_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _variants(text: str) -> tuple[str, ...]:
    if text.strip() == "none":
        return ()
    names = list(VARIANTS) if text.strip() == "all" else [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; choose from {list(VARIANTS)} or 'all'")
    return tuple(names)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=_int_list, default=None,
                        help="comma-separated training seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--data-seeds", type=_int_list, default=None,
                        help="comma-separated data seeds (default 0,1; --quick: 0)")
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 epoch: checks the wiring only")
    parser.add_argument("--collect", action="store_true", help="train nothing: report the runs already finished")
    parser.add_argument("--add", choices=list(VARIANTS), default=None,
                        help="train this variant beside the runs stored in benchmarks/results/ablation.json "
                             "(their run folders gone: data and teacher are rebuilt, the rest is not retrained)")
    parser.add_argument("--versions", type=_int_list, default=list(VERSIONS),
                        help="synthetic benchmark versions, comma-separated (default 7,6: make demo's and the control)")
    parser.add_argument("--variants", type=_variants, default=DEFAULT_VARIANTS,
                        help=f"students trained beside make demo's chain, comma-separated from {list(VARIANTS)} "
                             f"'all' or 'none' (default {','.join(DEFAULT_VARIANTS)})")
    args = parser.parse_args(argv)
    start, info = time.perf_counter(), machine()
    if args.add:
        result = add_variant(args.add, tuple(args.versions), args.seeds, args.data_seeds)
        save_section("ablation", result)
        row = VARIANTS[args.add][0]
        for version, part in result["by_version"].items():
            print(f"v{version} {row}: {part['summary'][row]['values']}")
        return 0
    result = run(args.quick, args.seeds, train=not args.collect, data_seeds=args.data_seeds, variants=args.variants,
                 versions=tuple(args.versions))
    info["loadavg_end"] = loadavg()
    result.update({"section": "ablation", "mode": "quick" if args.quick else "full", "machine": info,
                   "seconds": time.perf_counter() - start})
    save_section("ablation", result)
    for row, stats in result["summary"].items():
        print(f"{row:34s} {stats['values']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
