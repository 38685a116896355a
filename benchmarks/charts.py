"""PNG charts of the benchmark results (matplotlib, Agg), written next to RESULTS.md in benchmarks/."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common import output_dir  # noqa: E402
from ip_tsn.atomic import atomic_path  # noqa: E402

COLOURS = {"P inputs": "#1f77b4", "mv only": "#aec7e8", "DIS": "#ff7f0e", "TV-L1": "#d62728",
           "ours": "#1f77b4", "motion-vector-extractor": "#7f7f7f"}


def _save(fig, name: str) -> str:
    path = output_dir() / name
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")  # the temp name has no .png suffix
    plt.close(fig)
    return path.name


def _label_bars(ax, bars, values, fmt: str = "{:.3g}") -> None:
    """Write each finite value just above its bar (works on linear and log axes)."""
    for b, v in zip(bars, values):
        if np.isfinite(v):
            text = f"{v:,.0f}" if abs(v) >= 1000 else fmt.format(v)
            ax.annotate(text, (b.get_x() + b.get_width() / 2, v), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7)


def preprocess(res: dict) -> list[str]:
    rows = res["rows"]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    series = {"P inputs": lambda r: r["per_frame"]["p_inputs"]["cpu_ms"],
              "mv only": lambda r: r["per_frame"]["mv_acc"]["cpu_ms"],
              "DIS": lambda r: r["per_frame"]["decode_rgb"]["cpu_ms"] + r["flow"]["dis"]["cpu_ms"]
              if r["flow"].get("dis") else np.nan,
              "TV-L1": lambda r: r["per_frame"]["decode_rgb"]["cpu_ms"] + r["flow"]["tvl1"]["cpu_ms"]
              if r["flow"].get("tvl1") else np.nan}
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(series)
    for k, (label, fn) in enumerate(series.items()):
        vals = [np.nanmedian([fn(r) for r in rows if r["group"] == g] or [np.nan]) for g in groups]
        bars = ax.bar(np.arange(len(groups)) + (k - 1.5) * width, vals, width, label=label, color=COLOURS[label])
        _label_bars(ax, bars, vals)
    ax.set_yscale("log")
    ax.set_ylabel("ms per frame (CPU time, 1 thread)")
    ax.set_xticks(np.arange(len(groups)), [g.replace(" (", "\n(") for g in groups], fontsize=8)
    ax.set_title("Preprocessing per frame: P-stream inputs vs optical flow (decode included)")
    ax.legend(fontsize=8)
    names = [_save(fig, "preprocess.png")]
    mv_rows = [r for r in rows if "mvx" in r["per_frame"]]
    if mv_rows:
        fig, ax = plt.subplots(figsize=(9, 4.2))
        x = np.arange(len(mv_rows))
        ours = [r["per_frame"]["raw_mv"]["cpu_ms"] for r in mv_rows]
        theirs = [r["per_frame"]["mvx"]["cpu_ms"] for r in mv_rows]
        ax.bar(x - 0.2, ours, 0.4, label="ours (CompressedVideo decoder)", color=COLOURS["ours"])
        ax.bar(x + 0.2, theirs, 0.4, label="motion-vector-extractor", color=COLOURS["motion-vector-extractor"])
        for i, r in enumerate(mv_rows):
            ax.text(i, max(ours[i], theirs[i]) * 1.15, f"{r['mvx_ratio_cpu']:.2f}x", ha="center", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylim(top=max(max(ours), max(theirs)) * 2.5)
        ax.set_ylabel("ms per frame (CPU time)")
        ax.set_xticks(x, [f"{r['name']}\n{r['width']}x{r['height']} {r['codec']}" for r in mv_rows],
                      rotation=60, ha="right", fontsize=6)
        ax.set_title("Raw motion-vector extraction (label: ours / theirs)")
        ax.legend(fontsize=8)
        names.append(_save(fig, "mv_extractor.png"))
    return names


def loader(res: dict) -> list[str]:
    names = []
    datasets = res.get("datasets", {})
    if datasets:
        fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
        for ax, (name, d) in zip(axes[0], datasets.items()):
            kinds = list(dict.fromkeys(r["kind"] for r in d["rows"]))
            workers = sorted({r["workers"] for r in d["rows"]})
            width = 0.8 / len(workers)
            for k, w in enumerate(workers):
                vals = [next((r["clips_per_s"] for r in d["rows"] if r["kind"] == kind and r["workers"] == w), np.nan)
                        for kind in kinds]
                ax.bar(np.arange(len(kinds)) + (k - (len(workers) - 1) / 2) * width, vals, width,
                       label=f"{w} workers")
            step = d["train_step"]["clips_per_s"]
            ax.axhline(step, color="k", linestyle="--", linewidth=1, label=f"P train step (CPU): {step:.2g} clips/s")
            ax.set_xticks(np.arange(len(kinds)), kinds)
            ax.set_yscale("log")
            ax.set_ylabel("clips / s (K = 3 segments)")
            ax.set_title(name, fontsize=10)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
        fig.suptitle("Training loaders, steady state")
        names.append(_save(fig, "loader.png"))
    length = (res.get("length") or {}).get("rows")
    if length:
        fig, ax = plt.subplots(figsize=(6, 4))
        for modality in dict.fromkeys(r["modality"] for r in length):
            rs = [r for r in length if r["modality"] == modality]
            for key, style in (("cold_cpu_ms", "-o"), ("warm_cpu_ms", "--s")):
                ax.plot([r["frames"] for r in rs], [r[key] for r in rs], style,
                        label=f"{modality}, {key.split('_')[0]} index")
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        first = [r for r in length if r["modality"] == length[0]["modality"]]
        ax.set_xticks([r["frames"] for r in first], [f"{r['frames']}\n({r['multiple']}x)" for r in first])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("video length (frames, 340x256)")
        ax.set_ylabel("ms per sample (CPU time, K = 3)")
        ax.set_title("Cost of one sample versus video length")
        ax.legend(fontsize=8)
        names.append(_save(fig, "length.png"))
    return names


def networks(res: dict) -> list[str]:
    names = []
    rows = [r for r in res["rows"] if r["device"] == "cpu"]
    if rows:
        fig, ax = plt.subplots(figsize=(8, 4))
        x = np.arange(len(rows))
        for dx, key, label in ((-0.2, "forward_fps", "forward"), (0.2, "forward_backward_fps", "forward + backward")):
            vals = [r[key] for r in rows]
            _label_bars(ax, ax.bar(x + dx, vals, 0.4, label=label), vals, "{:.2g}")
        ax.set_xticks(x, [r["model"].replace(" (", "\n(") for r in rows], fontsize=8)
        ax.set_ylabel("frames / s (224x224)")
        ax.set_title(f"Network throughput on the CPU ({res.get('threads')} threads)")
        ax.legend(fontsize=8)
        names.append(_save(fig, "networks.png"))
    for lat in res.get("latency", [])[:1]:
        fig, ax = plt.subplots(figsize=(8, 3))
        pipelines = {"IP TSN": lat["ip_tsn"], "flow two-stream": lat["flow_two_stream"]}
        for y, (label, parts) in enumerate(pipelines.items()):
            left = 0.0
            for part, seconds in parts.items():
                if part in ("total", "flow pairs"):
                    continue
                ax.barh(y, seconds, left=left, label=part)
                if seconds > 0.04 * max(p["total"] for p in pipelines.values()):
                    ax.text(left + seconds / 2, y, f"{part}: {seconds:.3g} s", ha="center", va="center",
                            fontsize=7, color="white")
                left += seconds
            ax.text(left, y, f"  {left:.3g} s", va="center", fontsize=8)
        ax.set_yticks([0, 1], list(pipelines))
        ax.set_xlabel(f"seconds per video ({lat['segments']} segments, {lat['width']}x{lat['height']}, {lat['device']})")
        ax.set_title(f"End-to-end latency: IP TSN is {lat['speedup']:.1f}x faster")
        ax.legend(fontsize=7, ncol=3, loc="lower right")
        ax.set_xlim(0, max(p["total"] for p in pipelines.values()) * 1.25)
        names.append(_save(fig, "latency.png"))
    return names


def ablation(res: dict) -> list[str]:
    summary = res.get("summary") or {}
    rows = [(k, v) for k, v in summary.items() if v.get("mean") is not None]
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(8, 4))
    y = np.arange(len(rows))
    ax.barh(y, [100 * v["mean"] for _, v in rows], xerr=[100 * (v["std"] or 0) for _, v in rows], color="#1f77b4")
    for i, (_, v) in enumerate(rows):
        ax.text(100 * (v["mean"] + (v["std"] or 0)) + 1, i, f"{100 * v['mean']:.1f}", va="center", fontsize=8)
    ax.set_yticks(y, [k for k, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel(f"test top-1 (%), mean +- std over {len(res['seeds'])} seed(s)")
    ax.set_title("Distillation ablation" + (" (--quick: tiny data, 1 epoch)" if res.get("quick") else ""))
    return [_save(fig, "ablation.png")]


CHARTS = ("preprocess.png", "mv_extractor.png", "loader.png", "length.png", "networks.png", "latency.png",
          "ablation.png")


def write_all(results: dict) -> list[str]:
    """Every chart the results allow; charts of ours that these results no longer back are removed."""
    out = []
    for name, fn in (("preprocess", preprocess), ("loader", loader), ("networks", networks), ("ablation", ablation)):
        if results.get(name):
            out += fn(results[name])
    for stale in set(CHARTS) - set(out):
        (output_dir() / stale).unlink(missing_ok=True)
    return out
