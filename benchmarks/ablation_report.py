"""Section 4's text: the distillation ablation's results (``ablation.run``) as RESULTS.md's section,
every version's table, its paired tests, its data checks and make demo's own run."""

from __future__ import annotations

from ablation import COMPARISONS, DISTILLED, PLAIN, VARIANTS
from formatting import pct, table

def _run_label(r: dict) -> str:
    tag = "" if r.get("version", 7) == 7 else f"v{r['version']} "
    return f"{tag}d{r.get('data_seed', 0)} s{r['seed']}"


def _pp(x: float) -> str:
    return f"{x:+.1f}"


def _p(p: float) -> str:
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def ablation_section(res: dict) -> str:
    text = ["## 4. Distillation ablation (synthetic default)", ""]
    runs = res.get("seeds") or []
    if res.get("quick"):
        text += ["**--quick run: tiny data set (2/1/1 videos per class, 64x64), 1 epoch, 5 test segments. "
                 "It checks that the chain runs; its accuracies mean nothing.** The real ablation: "
                 f"`{res['command']}` (about 25 minutes per run on 2 CPU cores).", ""]
    elif not runs:
        text += [f"**Pending**: no run has been trained yet on this machine. Run `{res['command']}` "
                 "(about 25 minutes per (data seed, seed) on 2 CPU cores; a finished `make demo` of that "
                 "draw is reused and costs only the extra students), then `python benchmarks/run.py --report`.", ""]
    trained = [v for v, (row, _, _) in VARIANTS.items() if any(row in r["top1"] for r in runs)]
    variants = trained or res.get("variants") or ["no_distill"]  # the students these runs have
    text += ["Each run is one (data seed, training seed) in `make demo DATA_SEED=<d> SEED=<s>`'s folders: the "
             "synthetic data set generated with `--seed <d>` (`data/synthetic[-d<d>]`, with its TV-L1 flow) and "
             "make demo's chain (teacher, cache, plain P = `experiments/pstream.yaml`, distilled P = "
             "`experiments/student.yaml`, I-stream, each with `seed=<s>`) in `runs/synthetic[-d<d>-s<s>]/split1`, "
             "so d0 s0 is the demo's own run; `plain P` is the demo's. Beside it: *plain P, student's sampler* "
             "(`experiments/ablations/no_distill.yaml`: the student's positions, views and schedule, labels only), "
             "the control that changes only the loss"
             + ("" if variants == ["no_distill"] else f"; also {', '.join(v for v in variants if v != 'no_distill')}")
             + "; then the late fusion of I + distilled P with weights searched on val, the same at 1:1, and "
             "I + plain P (weights searched on val). Test top-1, %, the test protocol of the synthetic data "
             "(10 segments, centre crop).", ""]
    by_version = res.get("by_version") or ({"7": {"summary": res["summary"], "paired": res.get("paired")}}
                                           if runs else {})
    if len(by_version) > 1:
        text += ablation_side_by_side(by_version, runs)
    for version, part in sorted(by_version.items(), reverse=True):
        vruns = [r for r in runs if str(r.get("version", 7)) == version]
        text += [f"### Version {version}" + (" (make demo's benchmark)" if version == "7" else
                                              " (the negative control: the student reads a noisy copy of the "
                                              "teacher's variable)"), ""]
        text += ablation_table(part["summary"], vruns) + [""]
        text += ablation_added(vruns)
        text += ablation_paired(part.get("paired") or {}, vruns)
        text += ablation_checks(vruns)
    more = res.get("more_data")
    if more:
        text += [f"### Plain P with {more['multiple']}x the training videos (information, not a gate)", "",
                 f"Version 7, draw 0, with {more['multiple']}x the training videos per class (the same videos plus "
                 "more, from the same generator; the same val and test videos), plain P trained with the seeds of "
                 "the runs above (`runs/synthetic-3x-s<s>`). Test top-1 (%) and 95% CI; paired differences pooled over "
                 f"the seeds ({more['videos']} test videos):", "",
                 table(["seed", f"plain P, {more['multiple']}x videos", "plain P", "distilled P"],
                       [[r["seed"], f"{r['top1'][0]:.1f} [{r['top1'][1]:.1f}, {r['top1'][2]:.1f}]", f"{r['plain']:.1f}",
                         f"{r['distilled']:.1f}"] for r in more["seeds"]]), "",
                 f"{more['multiple']}x plain P minus plain P: {_pp(more['minus'][PLAIN]['mean'])} "
                 f"[{_pp(more['minus'][PLAIN]['low'])}, {_pp(more['minus'][PLAIN]['high'])}]; minus distilled P: "
                 f"{_pp(more['minus'][DISTILLED]['mean'])} [{_pp(more['minus'][DISTILLED]['low'])}, "
                 f"{_pp(more['minus'][DISTILLED]['high'])}].", ""]
    if runs:
        text += ["![ablation](ablation.png)", ""]
    text += ablation_demo(res.get("demo"), runs)
    return "\n".join(text)


def ablation_added(runs: list[dict]) -> list[str]:
    """Rows trained later beside stored runs whose folders were gone (``ablation.py --add``): when,
    and how closely the retrained teacher (the variant's online teacher) matches the stored one."""
    rows = sorted({row for r in runs for row in r.get("added", {})})
    out = []
    for row in rows:
        have = [r for r in runs if row in r.get("added", {})]
        same = ", ".join(f"{_run_label(r)} {r['added'][row]['teacher_same_videos']}/{r['added'][row]['videos']}"
                         for r in have)
        dates = sorted({r["added"][row]["date"] for r in have})
        out += [f"*{row}* was trained on {', '.join(dates)} beside the stored runs (`python benchmarks/ablation.py "
                f"--add`): their run folders were gone, so each run's data set was generated again from its seed and "
                f"its teacher trained again with its seed (the variant's online teacher); the rest of the run was not "
                f"retrained, and the row pairs with the stored plain P on the same test videos (checked by id). Test "
                f"videos the retrained teacher classifies as the stored teacher did: {same}.", ""]
    return out


def ablation_side_by_side(by_version: dict, runs: list[dict]) -> list[str]:
    """The pooled paired comparisons of every version in one table (issue 19's predictions)."""
    names = [n for n in COMPARISONS if any(n in (p.get("paired") or {}) for p in by_version.values())]
    versions = sorted(by_version, reverse=True)
    body = []
    for n in names:
        cells = []
        for v in versions:
            d = (by_version[v].get("paired") or {}).get(n)
            cells.append("-" if d is None else f"{_pp(d['mean'])} [{_pp(d['low'])}, {_pp(d['high'])}]")
        body.append([n] + cells)
    counts = {v: sum(str(r.get("version", 7)) == v for r in runs) for v in versions}
    return ["Versions side by side: pooled paired difference, points of test top-1, 95% CI over videos "
            "(runs per version: " + ", ".join(f"v{v} {counts[v]}" for v in versions) + "):", "",
            table(["A - B"] + [f"version {v}" for v in versions], body), ""]


def ablation_table(summary: dict, runs: list[dict]) -> list[str]:
    """Per row: mean +- std (ddof 1) of test top-1 over the runs, then each run."""
    header = ["stream", "mean", "std", "runs"] + [_run_label(r) for r in runs]
    body = [[row, pct(v["mean"]), pct(v["std"]), len(v["values"])] + [pct(r["top1"].get(row)) for r in runs]
            for row, v in summary.items() if v["values"]]
    data_seeds = sorted({r.get("data_seed", 0) for r in runs})
    return [f"Test top-1 (%) over {len(runs)} runs ({len(data_seeds)} data set(s): "
            f"{', '.join(f'd{d}' for d in data_seeds)}; `d<data seed> s<training seed>`):", "",
            table(header, body)]


def ablation_paired(paired: dict, runs: list[dict]) -> list[str]:
    """The pooled paired tests of ``ablation.paired_tests`` (percentage points) and a verdict."""
    if not paired:
        return (["Paired tests: not available: these runs were fused by an older `ip-tsn fuse`, which "
                 "recorded no per-video results; the current driver (`python benchmarks/ablation.py`) "
                 "records them.", ""] if runs else [])
    rows = []
    for name, d in paired.items():
        per_run = " ".join(f"{_pp(r['mean'])} ({_p(r['mcnemar_p'])})" for r in d["per_run"])
        rows.append([name, _pp(d["mean"]), f"[{_pp(d['low'])}, {_pp(d['high'])}]", d["videos"], d["runs"],
                     sum(r["mcnemar_p"] < 0.05 and r["mean"] > 0 for r in d["per_run"]),
                     sum(r["mcnemar_p"] < 0.05 and r["mean"] < 0 for r in d["per_run"]), per_run])
    out = ["Paired over videos (same data set, same teacher; only the compared part differs), percentage "
           "points of test top-1, A minus B. **Pooled**: per test video, A's minus B's correctness averaged "
           "over the training seeds of its data set, then the mean over the videos of every data set with a "
           "95% percentile-bootstrap interval over videos (`scipy.stats.bootstrap`, 9999 resamples): "
           "videos are the resampled unit, so the runs that share a video are not counted as independent. "
           "**Per run**: the run's difference and McNemar's p (exact below 25 discordant videos). \"best "
           "single stream\" is, in each run, the better (test top-1) of the two fused streams.", "",
           table(["A - B", "pooled mean", "95% CI", "videos", "runs", "runs A better (p<0.05)",
                  "runs B better (p<0.05)", "per run: difference (McNemar p)"], rows), ""]
    beyond = [f"{n} {_pp(d['mean'])} [{_pp(d['low'])}, {_pp(d['high'])}]" for n, d in paired.items()
              if d["low"] > 0 or d["high"] < 0]
    within = [n for n, d in paired.items() if not (d["low"] > 0 or d["high"] < 0)]
    verdict = "Verdict (pooled 95% CI excludes 0): " + (f"differs: {'; '.join(beyond)}. " if beyond else
                                                        "no comparison differs. ")
    verdict += f"Not distinguishable from 0: {', '.join(within)}." if within else ""
    return out + [verdict.strip(), ""]


def ablation_checks(runs: list[dict]) -> list[str]:
    """The pre-registered data checks of each run (validation split), value and pass / FAIL."""
    with_checks = [r for r in runs if r.get("checks")]
    if not with_checks:
        return []
    order = ("teacher_minus_plain", "appearance_alone", "plain_alone", "oracle")  # as ip-tsn fuse lists them
    names = sorted(with_checks[0]["checks"], key=lambda n: (order.index(n) if n in order else len(order), n))
    body = []
    for r in with_checks:
        cells = []
        for n in names:
            c = r["checks"].get(n) or {}
            verdict = "n/a" if c.get("pass") is None else ("pass" if c["pass"] else "FAIL")
            cells.append("n/a" if c.get("value") is None else f"{c['value']:.1f} {verdict}")
        body.append([_run_label(r)] + cells)
    first = with_checks[0]["checks"]
    header = ["run"] + [f"{n} ({first[n]['op']} {first[n]['threshold']:g})" for n in names]
    return ["Pre-registered data checks, validation split of each run (`ip-tsn fuse`):", "",
            table(header, body), ""]


def ablation_demo(demo: dict | None, runs: list[dict]) -> list[str]:
    """`make demo`'s own table (its run is the ablation's d0 s0)."""
    if not demo:
        return []
    body = [[k, pct(v)] for k, v in demo["top1"].items()]
    return [f"`make demo` (data seed 0, seed 0, `{demo['path']}`; the ablation's d0 s0 is this run):",
            "", table(["stream", "test top-1 %"], body), ""]
