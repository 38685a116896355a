"""Section 2: the data loaders.

- Clips per second of ``VideoDataModule.train_dataloader()`` for the I-stream (``iframe``), the
  P-stream (``p``), the flow teacher (``flow``) and the distilled P-stream (``p`` + teacher cache),
  with 0, 1 and 2 workers, on two datasets: the synthetic default (96x96, crops of 64, as
  ``make demo`` trains) and CoViAR's format (340x256, crops of 224). Batches of the first epoch
  (worker start-up, index demux) are timed apart from the steady state ("warm").
- The P network's CPU training step (ResNet-18, 5 channels, Adam) on the same batch shape, alone and
  fed by the 2-worker loader (same 2 cores): clips per second and the fraction of time spent waiting
  for data. The target is that the loader outpaces the step.
- Scaling with the worker count (issue 20): the P loader on the 340x256 set with 1, 2, 4, ... workers
  up to the machine's cores, on the CPU path, on the device path as delivered (packed batches only)
  and on the device path with its rebuild run in this process (``on_after_batch_transfer`` on the
  CPU: where a GPU would run it), so a regression of either path shows on any machine.
- The cost of one sample as videos get longer (1x, 4x, 16x frames, 340x256): with one GOP decoded per
  segment it must stay flat. "cold": the index cache cleared before every sample (a first epoch:
  the demux pass that builds the index is linear in the length); "warm": index cached.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

import media
from common import WORK_DIR, log, median, set_threads
from formatting import f, listing, pct, table
from ip_tsn.codec import clear_index_cache
from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.video_dataset import StreamDataset

KINDS = ("iframe", "p", "flow", "distill")
LENGTH_SEGMENTS, LENGTH_CROP = 3, 224  # the sample of the length scaling


def _datasets(quick: bool) -> dict[str, dict]:
    syn = media.make_dataset(WORK_DIR / "data" / "syn96", (96, 96), 36, 2 if quick else 4, flow_size=(64, 64))
    out = {"synthetic 96x96, crop 64": {"root": syn, "crop_size": 64, "batch_size": 8, "classes": len(media.CLASSES)}}
    cov = media.make_dataset(WORK_DIR / "data" / "coviar340", media.SIZE_340, 36, 1 if quick else 2)
    out["340x256, crop 224"] = {"root": cov, "crop_size": 224, "batch_size": 4, "classes": len(media.CLASSES)}
    for spec in out.values():
        spec["cache"] = media.fake_teacher_cache(spec["root"] / "teacher_cache", spec["root"], spec["classes"])
    return out


def datamodule(spec: dict, kind: str, workers: int, reconstruct: str = "cpu") -> VideoDataModule:
    modality = "p" if kind == "distill" else kind
    dm = VideoDataModule(dataset="synthetic", root=str(spec["root"]), modality=modality, num_segments=3,
                         reconstruct=reconstruct,
                         batch_size=spec["batch_size"], num_workers=workers, pin_memory=False,
                         crop_size=spec["crop_size"], scale_size=None, flow_length=5,
                         train_views=5 if kind == "distill" else None,  # the cache's views, as the real configs
                         teacher_cache=str(spec["cache"]) if kind == "distill" else None)
    dm.setup("fit")
    return dm


def loader_throughput(spec: dict, kind: str, workers: int, warm_batches: int) -> dict:
    clear_index_cache()
    dm = datamodule(spec, kind, workers)
    loader = dm.train_dataloader()
    t0 = time.perf_counter()
    first_clips = 0
    for batch in loader:  # the first epoch: worker start-up, index builds
        first_clips += len(batch["label"])
    first = time.perf_counter() - t0
    clips, seen = 0, 0
    it = iter(loader)  # persistent workers: the same processes as in the first epoch
    pids = [w.pid for w in getattr(it, "_workers", [])]
    cpu0, t0 = _cpu_seconds(pids), time.perf_counter()
    while seen < warm_batches:
        for batch in it:
            clips += len(batch["label"])
            seen += 1
            if seen >= warm_batches:
                break
        if seen < warm_batches:
            it = iter(loader)
    warm = time.perf_counter() - t0
    cpu = _cpu_seconds(pids) - cpu0
    del it, loader
    return {"kind": kind, "workers": workers, "first_epoch_s": first, "first_epoch_clips": first_clips,
            "first_epoch_clips_per_s": first_clips / first, "warm_clips": clips, "warm_s": warm,
            "clips_per_s": clips / warm, "cpu_ms_per_clip": 1e3 * cpu / clips, "cores_used": cpu / warm,
            "batch_size": spec["batch_size"]}


SCALING_PATHS = {"cpu": ("cpu", False), "device, packed only": ("device", False), "device + rebuild here": ("device", True)}


def worker_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores`` (and ``cores`` itself)."""
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == cores else counts + [cores]


def scaling(spec: dict, warm_batches: int, cores: int) -> list[dict]:
    """Clips per second of the P loader against the worker count on each of :data:`SCALING_PATHS`
    (steady state, after one epoch)."""
    rows = []
    for label, (reconstruct, rebuild) in SCALING_PATHS.items():
        for workers in worker_counts(cores):
            log(f"loader scaling: {label}, {workers} workers")
            dm = datamodule(spec, "p", workers, reconstruct)
            loader = dm.train_dataloader()
            for _ in loader:  # the first epoch: worker start-up, index builds
                pass
            clips, seen, t0 = 0, 0, time.perf_counter()
            while seen < warm_batches:
                for batch in loader:
                    if rebuild:
                        batch = dm.on_after_batch_transfer(batch, 0)
                    clips += len(batch["label"])
                    seen += 1
                    if seen >= warm_batches:
                        break
            rows.append({"path": label, "workers": workers, "clips_per_s": clips / (time.perf_counter() - t0)})
            del loader, dm
    return rows


def _cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of this process plus the given (worker) processes, from /proc."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def _p_model(num_classes: int):
    from ip_tsn.models import TSN

    return TSN(num_classes, 5, arch="resnet18", num_segments=3, pretrained=False, input_bn=True)


def _cycle(loader):
    while True:
        yield from loader


def train_step_rate(spec: dict, steps: int, loader=None) -> dict:
    """Clips/s of the P network's training step (forward, CE, backward, Adam step) on random batches,
    or on batches from ``loader`` (then also the share of time spent waiting for data)."""
    torch.manual_seed(0)
    model = _p_model(spec["classes"]).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-3)
    b, c = spec["batch_size"], spec["crop_size"]
    fake = {"input": torch.randn(b, 3, 5, c, c), "label": torch.randint(0, spec["classes"], (b,))}

    def step(batch):
        logits, _ = model(batch["input"])
        loss = torch.nn.functional.cross_entropy(logits, batch["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    batches = _cycle(loader) if loader is not None else None
    step(next(batches) if batches is not None else fake)  # warm-up (allocations; workers started)
    wait = compute = 0.0
    clips = 0
    t_start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(batches) if batches is not None else fake
        t1 = time.perf_counter()
        step(batch)
        t2 = time.perf_counter()
        wait, compute = wait + t1 - t0, compute + t2 - t1
        clips += len(batch["label"])
    total = time.perf_counter() - t_start
    return {"steps": steps, "clips_per_s": clips / total, "wait_share": wait / total, "step_s": compute / steps}


def length_scaling(quick: bool) -> dict:
    """ms per sample (p and iframe, train sampling, K = 3, crop 224) for videos 1x, 4x, 16x as long."""
    base = 36
    samples = 6 if quick else 20
    per_length = 1 if quick else 2
    rows = []
    for mult in (1, 4, 16):
        n = base * mult
        paths = media.synthetic_340(per_length, n)
        root = paths[0].parent
        records = [VideoRecord(path=p.name, label=0, class_name="x") for p in paths]
        for modality in ("p", "iframe"):
            ds = StreamDataset(records, root, modality, num_segments=LENGTH_SEGMENTS, train=True,
                               crop_size=LENGTH_CROP, scale_size=None)
            ds[0]
            cold, warm, cold_cpu, warm_cpu = [], [], [], []
            for k in range(samples):
                clear_index_cache()
                c0, t0 = time.process_time(), time.perf_counter()
                ds[k % len(ds)]
                cold.append(time.perf_counter() - t0)
                cold_cpu.append(time.process_time() - c0)
                c0, t0 = time.process_time(), time.perf_counter()
                ds[k % len(ds)]
                warm.append(time.perf_counter() - t0)
                warm_cpu.append(time.process_time() - c0)
            rows.append({"multiple": mult, "frames": n, "modality": modality, "cold_ms": 1e3 * median(cold),
                         "warm_ms": 1e3 * median(warm), "cold_cpu_ms": 1e3 * median(cold_cpu),
                         "warm_cpu_ms": 1e3 * median(warm_cpu), "samples": samples,
                         "file_kib": float(np.mean([p.stat().st_size for p in paths]) / 1024)})
    return {"rows": rows, "segments": LENGTH_SEGMENTS, "crop_size": LENGTH_CROP, "size": list(media.SIZE_340)}


def run(quick: bool = False) -> dict:
    set_threads(2)
    specs = _datasets(quick)
    warm_batches = 4 if quick else 12
    results = {"datasets": {}, "length": None}
    for name, spec in specs.items():
        rows = []
        kinds = KINDS if not quick or name.startswith("synthetic") else ("p",)
        for kind in kinds:
            for workers in (0, 1, 2):
                if quick and not name.startswith("synthetic") and workers == 1:
                    continue
                log(f"loader: {name}: {kind}, {workers} workers")
                rows.append(loader_throughput(spec, kind, workers, warm_batches))
        small = name.startswith("synthetic")
        steps = (3 if small else 1) if quick else (8 if small else 3)
        log(f"loader: {name}: P training step")
        alone = train_step_rate(spec, steps)
        fed = {}
        for kind in ("p", "distill") if not quick else (("p",) if small else ()):
            dm = datamodule(spec, kind, 2)
            fed[kind] = train_step_rate(spec, steps, dm.train_dataloader())
        results["datasets"][name] = {"root": str(spec["root"]), "crop_size": spec["crop_size"],
                                     "batch_size": spec["batch_size"], "segments": 3,
                                     "videos": len(datamodule(spec, "iframe", 0).datasets["train"]),
                                     "rows": rows, "train_step": alone, "train_fed": fed}
    cov = next(spec for name, spec in specs.items() if not name.startswith("synthetic"))
    results["scaling"] = {"dataset": "340x256, crop 224", "batch_size": cov["batch_size"], "cores": os.cpu_count(),
                          "rows": scaling(cov, 4 if quick else 12, 2 if quick else os.cpu_count() or 1)}
    log("loader: sample cost versus video length")
    set_threads(1)
    results["length"] = length_scaling(quick)
    return results


# ------------------------------------------------------------------------------------------ report
FLAT_LIMIT = 1.25  # "flat": a sample of a 16x longer video costs at most 25% more


def _length_ratios(length: list[dict]) -> dict[tuple[str, str], float]:
    """(modality, "warm" | "cold") -> CPU cost of the longest videos / the shortest."""
    out = {}
    for modality in dict.fromkeys(r["modality"] for r in length):
        rs = {r["multiple"]: r for r in length if r["modality"] == modality}
        lo, hi = rs[min(rs)], rs[max(rs)]
        for key in ("warm", "cold"):
            out[(modality, key)] = hi[f"{key}_cpu_ms"] / lo[f"{key}_cpu_ms"]
    return out


def targets(res: dict) -> list[list[str]]:
    """Rows (target, measured, verdict) of the targets table."""
    out = []
    length = (res.get("length") or {}).get("rows") or []
    if length:
        ratios = _length_ratios(length)
        top = max(r["multiple"] for r in length)
        warm = max(v for (_, k), v in ratios.items() if k == "warm")
        cold = max(v for (_, k), v in ratios.items() if k == "cold")
        verdict = "**met**" if warm <= FLAT_LIMIT else "**missed**"
        if warm <= FLAT_LIMIT < cold:
            longest = [r for r in length if r["multiple"] == top]
            extra = max(r["cold_cpu_ms"] - r["warm_cpu_ms"] for r in longest)
            verdict += (f" (every epoch after the first); the first touch of a video also pays the index demux: "
                        f"+{f(extra)} ms at {longest[0]['frames']} frames, once per video and worker")
        out.append([f"sample cost flat in video length ({top}x / 1x <= {FLAT_LIMIT})",
                    f"{top}x / 1x, CPU time: " + ", ".join(f"{m} {k} {f(v)}" for (m, k), v in ratios.items()), verdict])
    for name, d in res.get("datasets", {}).items():
        step = d["train_step"]["clips_per_s"]
        for kind in ("p", "distill"):
            two = next((r for r in d["rows"] if r["kind"] == kind and r["workers"] == 2), None)
            if two is None:
                continue
            fed = d.get("train_fed", {}).get(kind)
            fed_text = (f"; training fed by it: {f(fed['clips_per_s'])} clips/s, {pct(fed['wait_share'])}% of the "
                        "time waiting for data") if fed else ""
            out.append([f"{kind} loader, 2 workers, faster than the P network's CPU training step ({name})",
                        f"{f(two['clips_per_s'])} vs {f(step)} clips/s ({f(two['clips_per_s'] / step)}x){fed_text}",
                        "**met**" if two["clips_per_s"] > step else "**missed**"])
    return out


def _workers_note(res: dict) -> str:
    """How the loaders' clips/s changed with the number of workers, from the rows."""
    loaders, slower = 0, {}
    for name, d in res.get("datasets", {}).items():
        for kind in dict.fromkeys(r["kind"] for r in d["rows"]):
            rate = {r["workers"]: r["clips_per_s"] for r in d["rows"] if r["kind"] == kind}
            if 0 not in rate or len(rate) < 2:
                continue
            loaders += 1
            for w, v in rate.items():
                if w > 0 and v <= rate[0]:
                    slower.setdefault(w, []).append(f"{kind} ({name})")
    if not loaders:
        return ""
    if not slower:
        return f"Every loader ({loaders}) measured faster with each number of workers than with none."
    return ("Measured no faster than with 0 workers: " + "; ".join(
        f"{w} worker{'s' if w > 1 else ''} on {len(names)} of {loaders} loaders" + (f" ({listing(names)})" if w > 1 else "")
        for w, names in sorted(slower.items())) + ". Workers only add throughput where a core is free; **cores used** "
        "below the number of processes shows them waiting for one.")


def report(res: dict) -> str:
    """Section 2 of RESULTS.md, from this module's results (``results/loader.json``)."""
    segments = sorted({d.get("segments") for d in res.get("datasets", {}).values() if d.get("segments")})
    text = ["## 2. Loaders", "",
            "`VideoDataModule.train_dataloader()` (TSN training sampling"
            + (f", K = {listing([str(k) for k in segments])} segments" if segments else "")
            + ", multi-scale crop + flip, `pin_memory=False`), clips per second in the steady state (after the "
            "first epoch, which is timed apart: worker start-up and the index demux of every video). `distill` is "
            "the P loader with a teacher cache attached (random logits / features in the real cache format, read "
            "memory-mapped at the sampled frames). Flow files are DIS flow in the real `.npy` format (reading them "
            "costs the same whatever the flow). The **P train step** is ResNet-18 (5 channels, input BN) forward + "
            "cross-entropy + backward + Adam on random batches of the same shape; **fed** is the same step taking its "
            "batches from the 2-worker loader, sharing the same cores. **CPU ms per clip** counts the main process and "
            "its workers (`/proc/<pid>/stat`); **cores used** = CPU time / wall time.", "", _workers_note(res), ""]
    for name, d in res.get("datasets", {}).items():
        text += [f"### {name}: {d['videos']} training videos, batch {d['batch_size']}", ""]
        body = [[r["kind"], r["workers"], f(r["clips_per_s"]), f(1e3 / r["clips_per_s"]), f(r.get("cpu_ms_per_clip")),
                 f(r.get("cores_used")), f(r["first_epoch_clips_per_s"])] for r in d["rows"]]
        text += [table(["loader", "workers", "clips/s", "ms per clip", "CPU ms per clip", "cores used",
                        "first epoch clips/s"], body), ""]
        step = d["train_step"]
        line = (f"P network training step alone: {f(step['clips_per_s'])} clips/s ({f(step['step_s'])} s per batch "
                f"of {d['batch_size']}, {step['steps']} steps).")
        for kind, fed in d.get("train_fed", {}).items():
            line += (f" Fed by the 2-worker `{kind}` loader: {f(fed['clips_per_s'])} clips/s, "
                     f"{pct(fed['wait_share'])}% of the time waiting for a batch.")
        text += [line, ""]
    text += ["![loaders](loader.png)", ""]
    sc = res.get("scaling")
    if sc:
        counts = sorted({r["workers"] for r in sc["rows"]})
        rate = {(r["path"], r["workers"]): r["clips_per_s"] for r in sc["rows"]}
        body = [[path, *[f(rate.get((path, w))) for w in counts]] for path in dict.fromkeys(r["path"] for r in sc["rows"])]
        text += [f"### P loader scaling with the worker count ({sc['dataset']}, batch {sc['batch_size']}, "
                 f"{sc['cores']} cores)", "",
                 "Clips per second in the steady state. **device, packed only**: the batches as the main process "
                 "receives them (decoded pictures and cell vectors in one buffer per dtype); **device + rebuild "
                 "here**: plus `on_after_batch_transfer` in the main process on this CPU (on a GPU it runs there, "
                 "much faster; this row shows the CPU cost of the rebuild, not a GPU's).", "",
                 table(["path", *[f"{w} worker{'s' if w > 1 else ''}" for w in counts]], body), ""]
        top, cpu, packed = counts[-1], rate.get(("cpu", counts[-1])), rate.get(("device, packed only", counts[-1]))
        if cpu and packed:
            text += [f"At {top} workers the packed batches come {packed / cpu:.2f}x as fast as the CPU path's "
                     f"({f(packed / top)} against {f(cpu / top)} clips/s per worker). Only where every worker "
                     f"has its own core and nothing else is shared would 16 workers give 16 times that "
                     f"({f(16 * packed / top)} and {f(16 * cpu / top)} clips/s): an upper bound, not a "
                     "measurement; the H200 node's 16 workers gave 171 on the CPU path.", ""]
    spec = res.get("length") or {}
    length = spec.get("rows")
    if length:
        frames = sorted({r["frames"] for r in length})
        samples = sorted({r["samples"] for r in length if r.get("samples")})
        warm = [v for (_, k), v in _length_ratios(length).items() if k == "warm"]
        sample = ", ".join(([f"K = {spec['segments']}"] if spec.get("segments") else [])
                           + ([f"crop {spec['crop_size']}"] if spec.get("crop_size") else []))
        size = f"{spec['size'][1]}x{spec['size'][0]} " if spec.get("size") else ""
        text += ["### Sample cost versus video length", "",
                 f"One training sample{' (' + sample + ')' if sample else ''} of {size}synthetic videos "
                 f"{listing([str(n) for n in frames])} frames long, median over "
                 + (f"{listing([str(s) for s in samples])} samples" if samples else "the samples")
                 + ". **cold**: the index cache cleared before each sample, as in a first epoch (the demux pass that "
                 "builds the index reads every packet); **warm**: index cached, as in every later epoch. Warm, the "
                 f"longest videos cost {f(min(warm))}x to {f(max(warm))}x the shortest.", ""]
        body = [[r["modality"], f"{r['multiple']}x", r["frames"], f(r["file_kib"]), f(r["cold_cpu_ms"]), f(r["warm_cpu_ms"]),
                 f(r["cold_ms"]), f(r["warm_ms"])] for r in length]
        text += [table(["modality", "length", "frames", "file KiB", "cold ms (CPU)", "warm ms (CPU)", "cold ms (wall)",
                        "warm ms (wall)"], body), "", "![length](length.png)", ""]
    return "\n".join(text)
