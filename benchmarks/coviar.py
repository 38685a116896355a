"""Section 5: IP TSN versus CoViAR end to end (and a DMC-Net estimate), per video, in one run.

The IP TSN paper claims a 20% faster total inference than other compressed-domain methods: two
networks (I-stream + P-stream on motion vectors and residuals together) against CoViAR's three
(I-frame ResNet-152, motion-vector ResNet-18, residual ResNet-18). Both run here on the same videos
with the same protocol, one video at a time:

- inputs: the package's reader, the test path of ``StreamDataset`` (``iframe`` and ``p`` = accumulated
  motion vectors + residual, K segment centres, one centre crop), cold (index cache cleared). CoViAR
  reads the same I-frames, motion vectors and residuals: its MV and residual networks take channels
  0-1 and 2-4 of the same ``p`` tensor, so the inputs are read once per run and counted in every total.
- IP TSN: ``ip_tsn.models.TSN`` I-stream (ResNet-152, the same I network as CoViAR's) and P-stream
  (ResNet-18, 5 channels, input BN), each on the K segments of the video as one batch.
- CoViAR: torchvision ResNets as in its code: ResNet-152 (3 channels), ResNet-18 with a 2-channel
  conv1 and an input ``BatchNorm2d(2)`` (MV), ResNet-18 with an input ``BatchNorm2d(3)`` (residual).
- DMC-Net (an estimate): our re-implementation of the generator layout published with its code
  (seven 3x3 convolutions, dilated, BN + LeakyReLU, at the crop's resolution) and a ResNet-18 on its
  2-channel output, beside CoViAR's I and residual networks.

Random weights (speed does not depend on them), eval mode, no grad; each network timed on its own
(wall clock, CUDA synchronised), the median over the runs of each video after one warm-up pass.

    python benchmarks/run.py --quick --only coviar    # 2 videos, 3 segments, 112 px (seconds)
    python benchmarks/run.py --only coviar            # the re-encoded samples, 25 segments, 224 px
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torchvision import models as tvm

import media
from common import log, set_threads, shared
from formatting import f, listing, med, pct, table
from ip_tsn.codec import CompressedVideo, clear_index_cache
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.video_dataset import StreamDataset
from ip_tsn.models import TSN

SIZES = {"quick": {"videos": 2, "segments": 3, "crop_size": 112, "repeats": 1},
         "full": {"videos": 4, "segments": 25, "crop_size": 224, "repeats": 3}}
NUM_CLASSES = 101
I_ARCH = "resnet152"  # IP TSN's I-stream here: CoViAR's I network (the paper builds on CoViAR)
PAPER_SPEEDUP = 1.2  # the IP TSN paper: +20% total inference speed over other compressed-domain methods
GENERATOR_WIDTHS = (5, 32, 128, 128, 96, 64, 32, 2)  # DMC-Net's published generator: channels per layer
GENERATOR_DILATIONS = (1, 2, 4, 8, 16, 1, 1)

# network key: (label, input it reads, its channels, architecture)
NETWORKS: dict[str, tuple[str, str, tuple[int, int], str]] = {
    "ip_i": ("IP TSN I-stream", "iframe", (0, 3), I_ARCH),
    "ip_p": ("IP TSN P-stream (mv + residual)", "p", (0, 5), "resnet18"),
    "cv_i": ("CoViAR I-frame", "iframe", (0, 3), "resnet152"),
    "cv_mv": ("CoViAR motion vectors", "p", (0, 2), "resnet18"),
    "cv_res": ("CoViAR residual", "p", (2, 5), "resnet18"),
    "dmc_gen": ("DMC-Net generator (estimate)", "p", (0, 5), "generator"),
    "dmc_cls": ("DMC-Net classifier", "dmc", (0, 2), "resnet18"),
}
PIPELINES = {"IP TSN": ("ip_i", "ip_p"), "CoViAR": ("cv_i", "cv_mv", "cv_res"),
             "DMC-Net (estimate)": ("cv_i", "cv_res", "dmc_gen", "dmc_cls")}
ORDERS = (tuple(NETWORKS), ("cv_i", "cv_mv", "cv_res", "dmc_gen", "dmc_cls", "ip_i", "ip_p"))  # alternated per run


class SegmentConsensus(nn.Module):
    """A per-frame classifier averaged over the K segments: ``(K, C, H, W) -> (num_classes,)``;
    ``input_bn``: a ``BatchNorm2d(C)`` on the raw input first (CoViAR's MV and residual models)."""

    def __init__(self, net: nn.Module, in_channels: int, input_bn: bool) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(in_channels) if input_bn else nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_bn(x)).mean(dim=0)


class TSNVideo(nn.Module):
    """``ip_tsn.models.TSN`` on the K segments of one video: ``(K, C, H, W) -> (num_classes,)``."""

    def __init__(self, tsn: TSN) -> None:
        super().__init__()
        self.tsn = tsn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tsn(x.unsqueeze(0))[0][0]


def coviar_resnet(arch: str, in_channels: int, input_bn: bool) -> SegmentConsensus:
    """CoViAR's model: a torchvision ResNet, conv1 taking ``in_channels`` (MV: 2), ``input_bn`` (MV, residual)."""
    net = getattr(tvm, arch)(weights=None, num_classes=NUM_CLASSES)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return SegmentConsensus(net, in_channels, input_bn)


def dmc_generator() -> nn.Sequential:
    """DMC-Net's generator as published (layer widths and dilations above): ``(K, 5, H, W) -> (K, 2, H, W)``."""
    layers: list[nn.Module] = []
    for cin, cout, d in zip(GENERATOR_WIDTHS[:-1], GENERATOR_WIDTHS[1:], GENERATOR_DILATIONS):
        layers += [nn.Conv2d(cin, cout, 3, padding=d, dilation=d, bias=False), nn.BatchNorm2d(cout),
                   nn.LeakyReLU(0.1, inplace=True)]
    return nn.Sequential(*layers)


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "ip_i": lambda: TSNVideo(TSN(NUM_CLASSES, 3, arch=I_ARCH, pretrained=False)),
    "ip_p": lambda: TSNVideo(TSN(NUM_CLASSES, 5, arch="resnet18", pretrained=False, input_bn=True)),
    "cv_i": lambda: coviar_resnet("resnet152", 3, input_bn=False),
    "cv_mv": lambda: coviar_resnet("resnet18", 2, input_bn=True),
    "cv_res": lambda: coviar_resnet("resnet18", 3, input_bn=True),
    "dmc_gen": dmc_generator,
    "dmc_cls": lambda: coviar_resnet("resnet18", 2, input_bn=False),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def read_inputs(path: Path, segments: int, crop_size: int) -> tuple[dict[str, torch.Tensor], float, float]:
    """The I-frames and P inputs of one video through the package's test path, cold:
    ``({"iframe": (K, 3, S, S), "p": (K, 5, S, S)}, wall s, CPU s)``."""
    clear_index_cache()
    rec = [VideoRecord(path=path.name, label=0, class_name="x")]
    c0, t0 = time.process_time(), time.perf_counter()
    feeds = {m: StreamDataset(rec, path.parent, m, num_segments=segments, train=False, crop_size=crop_size,
                              scale_size=None)[0]["input"] for m in ("iframe", "p")}
    return feeds, time.perf_counter() - t0, time.process_time() - c0


def run_networks(nets: dict[str, nn.Module], feeds: dict[str, torch.Tensor], order: tuple[str, ...],
                 device: str) -> dict[str, float]:
    """Seconds of each network on its input (moved to ``device`` inside the timing); the generator's
    output feeds the DMC classifier."""
    seconds = {}
    feeds = dict(feeds)
    with torch.no_grad():
        for key in order:
            _, source, (lo, hi), _ = NETWORKS[key]
            t0 = time.perf_counter()
            out = nets[key](feeds[source][:, lo:hi].to(device))
            _sync(device)
            seconds[key] = time.perf_counter() - t0
            if key == "dmc_gen":
                feeds["dmc"] = out
    return seconds


def measure_video(path: Path, nets: dict[str, nn.Module], size: dict, device: str, offset: int) -> dict:
    """Median ms of the inputs and of each network over ``size["repeats"]`` cold runs of one video."""
    inputs, inputs_cpu, runs = [], [], {k: [] for k in NETWORKS}
    for r in range(size["repeats"]):
        feeds, wall, cpu = read_inputs(path, size["segments"], size["crop_size"])
        inputs.append(1e3 * wall)
        inputs_cpu.append(1e3 * cpu)
        for key, s in run_networks(nets, feeds, ORDERS[(r + offset) % 2], device).items():
            runs[key].append(1e3 * s)
    v = CompressedVideo(path)
    row = {"device": device, "name": path.name, "path": str(path), "frames": v.num_frames, "width": v.width,
           "height": v.height, "codec": v.codec, "inputs_ms": float(np.median(inputs)),
           "inputs_cpu_ms": float(np.median(inputs_cpu)), "inputs_runs_ms": inputs,
           "networks_ms": {k: float(np.median(ms)) for k, ms in runs.items()}, "networks_runs_ms": runs}
    v.close()
    row["totals_ms"] = totals(row)
    return row


def totals(row: dict) -> dict[str, float]:
    """ms per video of each pipeline: the inputs plus its networks."""
    return {name: row["inputs_ms"] + sum(row["networks_ms"][k] for k in keys) for name, keys in PIPELINES.items()}


def videos(quick: bool, count: int) -> list[Path]:
    """--quick: synthetic 340x256 videos; full: the re-encoded 340x256 samples, topped up with synthetic ones."""
    found = [] if quick else list(media.real_340().values())[:count]
    return found + (media.synthetic_340(count - len(found)) if len(found) < count else [])


def run(quick: bool = False) -> dict:
    set_threads(os.cpu_count() or 1)
    size = SIZES["quick" if quick else "full"]
    paths = videos(quick, size["videos"])
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    torch.manual_seed(0)
    nets = {k: build().eval() for k, build in BUILDERS.items()}
    info = {k: {"label": label, "input": source, "channels": hi - lo, "arch": arch,
                "params_m": sum(p.numel() for p in nets[k].parameters()) / 1e6}
            for k, (label, source, (lo, hi), arch) in NETWORKS.items()}
    rows = []
    for device in devices:
        nets = {k: m.to(device) for k, m in nets.items()}
        feeds, _, _ = read_inputs(paths[0], size["segments"], size["crop_size"])
        run_networks(nets, feeds, ORDERS[0], device)  # warm-up: allocator, kernels, decoder paths
        for i, path in enumerate(paths):
            log(f"coviar: {path.name} on {device}")
            rows.append(measure_video(path, nets, size, device, i))
    return {"settings": {**size, "num_classes": NUM_CLASSES, "i_arch": I_ARCH, "threads": torch.get_num_threads(),
                         "generator": {"widths": list(GENERATOR_WIDTHS), "dilations": list(GENERATOR_DILATIONS)}},
            "networks": info, "pipelines": {k: list(v) for k, v in PIPELINES.items()}, "devices": devices,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "videos": rows}


# ------------------------------------------------------------------------------------------ report
def _intro(res: dict) -> list[str]:
    s, nets = res["settings"], res["networks"]
    names = listing(sorted({f"{r['name']} ({r['width']}x{r['height']} {r['codec']}, {r['frames']} frames)"
                            for r in res["videos"]}))
    i_arch = nets["ip_i"]["arch"]
    text = [f"{len({r['path'] for r in res['videos']})} videos ({names}); TSN test protocol: {s['segments']} segment "
            f"centres, one {s['crop_size']}x{s['crop_size']} centre crop, a batch = the {s['segments']} segments of one "
            f"video; median of {s['repeats']} cold run{'s' if s['repeats'] > 1 else ''} per video (index cache cleared) "
            f"after one warm-up pass; {s['threads']} torch threads. Inputs: the package's reader (`StreamDataset`, test "
            "path: `iframe` and `p` = accumulated motion vectors + residual); CoViAR reads the same I-frames, motion "
            "vectors and residuals (its MV and residual networks take channels 0-1 and 2-4 of the `p` tensor), so the "
            "inputs are read once per run and counted in every total. Networks: random weights, eval mode, no grad, "
            f"{s['num_classes']} classes, each timed on its own (its input's transfer to the device included).", "",
            f"**IP TSN's I-stream is {i_arch}** here, the same network as CoViAR's I-frame model "
            f"({nets['cv_i']['arch']}): IP TSN builds on CoViAR (its loader and I-frame network), and the paper's "
            "speed claim is about the design (two networks, I + P on motion vectors and residuals together, against "
            "CoViAR's I + MV + residual). With the same I network the ratio measures exactly that difference; a "
            "lighter I backbone in IP TSN alone would raise the ratio but would no longer compare like with like.", ""]
    machine = res.get("machine") or {}
    load, others = (machine.get("loadavg_start") or [None])[0], machine.get("others_cpu_share")
    if res.get("mode") == "quick":
        count = len({r["path"] for r in res["videos"]})
        text += [f"**--quick run ({count} video{'s' if count > 1 else ''}, {s['segments']} segments, "
                 f"{s['crop_size']} px): it checks the wiring; the ratios at this size are not the paper's protocol.**", ""]
    if shared(machine) and others is not None:
        text += [f"**Other processes used {100 * others:.0f}% of the machine's CPU during this run: these timings are "
                 "a wiring check, not a measurement.**", ""]
    elif shared(machine):
        text += [f"**This run started with a 1-minute load average of {load} on {machine['cores']} cores: other jobs "
                 "shared the CPU, so these timings are a wiring check, not a measurement.**", ""]
    return text


def _device_text(res: dict, device: str) -> list[str]:
    rows = [r for r in res["videos"] if r["device"] == device]
    nets, s = res["networks"], res["settings"]
    tot = [totals(r) for r in rows]
    ratio = [t["CoViAR"] / t["IP TSN"] for t in tot]
    dmc = [t["DMC-Net (estimate)"] / t["IP TSN"] for t in tot]
    body = [[r["name"], f(r["inputs_ms"])] + [f(r["networks_ms"][k]) for k in PIPELINES["IP TSN"]] + [f(t["IP TSN"])]
            + [f(r["networks_ms"][k]) for k in PIPELINES["CoViAR"]] + [f(t["CoViAR"]), f(q)]
            for r, t, q in zip(rows, tot, ratio)]
    header = (["video", "inputs ms"] + [nets[k]["label"] for k in PIPELINES["IP TSN"]]
              + ["**IP TSN total**"] + [nets[k]["label"] for k in PIPELINES["CoViAR"]] + ["**CoViAR total**",
                                                                                           "CoViAR / IP TSN"])
    text = [f"### {device}" + (f" ({res['gpu']})" if device == "cuda" and res.get("gpu") else ""), "",
            "ms per video:", "", table(header, body), ""]
    r_med = med(ratio)
    ip_tot, cv_tot = med(t["IP TSN"] for t in tot), med(t["CoViAR"] for t in tot)
    n = {k: med(r["networks_ms"][k] for r in rows) for k in NETWORKS}
    inputs = med(r["inputs_ms"] for r in rows)
    motion_cv = n["cv_mv"] + n["cv_res"]
    gap = n["cv_i"] - n["ip_i"]
    text += [f"Median over the videos: IP TSN {f(ip_tot)} ms, CoViAR {f(cv_tot)} ms per video; **CoViAR / IP TSN = "
             f"{f(r_med)}** (per video {f(min(ratio))} to {f(max(ratio))}): IP TSN's total inference speed is "
             f"{100 * (r_med - 1):+.0f}% over CoViAR's, {'at or above' if r_med >= PAPER_SPEEDUP else 'below'} the paper's "
             f"+{100 * (PAPER_SPEEDUP - 1):.0f}%. By network (medians): IP TSN's P network takes {f(n['ip_p'])} ms "
             f"against {f(motion_cv)} ms for CoViAR's MV and residual networks together ({f(motion_cv / n['ip_p'])}x), "
             f"{f(abs(motion_cv - n['ip_p']))} ms {'less' if motion_cv > n['ip_p'] else 'more'} for IP TSN on the "
             f"motion side; the two I networks ({nets['ip_i']['arch']} both, "
             f"IP TSN's with TSN's dropout + fc head) take {f(n['ip_i'])} and {f(n['cv_i'])} ms, a gap of {gap:+.1f} ms "
             f"({100 * abs(gap) / min(n['ip_i'], n['cv_i']):.1f}%) between two instances of the same architecture, and "
             f"{pct(n['ip_i'] / ip_tot)}% of IP TSN's total. Reading the inputs takes {f(inputs)} ms "
             f"({pct(inputs / ip_tot)}% of IP TSN's total).", ""]
    body = []
    for k, info in nets.items():
        shares = [f"{pct(n[k] / med(t[p] for t in tot))}% of {p}" for p, keys in PIPELINES.items() if k in keys]
        body.append([info["label"], info["arch"], f"{info['input']} ({info['channels']} ch)", f(info["params_m"]),
                     f(n[k]), f(n[k] / s["segments"]), "; ".join(shares)])
    text += ["Per-stream network cost (median over the videos):", "",
             table(["network", "architecture", "input", "params (M)", "ms per video", "ms per frame", "share of"],
                   body, left=3), ""]
    g = s.get("generator") or {}
    text += [f"DMC-Net, **an estimate**: its generator is our re-implementation of the layout published with the "
             f"paper's code ({len(g.get('dilations', []))} 3x3 convolutions, "
             f"{' -> '.join(map(str, g.get('widths', [])))} channels, dilations "
             f"{', '.join(map(str, g.get('dilations', [])))}, BN + LeakyReLU, at the crop's resolution; random weights), "
             "and the pipeline counted is CoViAR's I and residual networks + the generator + a ResNet-18 on its "
             "2-channel output (our reading of the paper: the generated motion cue replaces CoViAR's MV stream). "
             f"Generator {f(n['dmc_gen'])} ms, its classifier {f(n['dmc_cls'])} ms per video; DMC-Net / IP TSN = "
             f"{f(med(dmc))} (per video {f(min(dmc))} to {f(max(dmc))}).", ""]
    return text


def report(res: dict) -> str:
    """Section 5 of RESULTS.md, from this module's results (``results/coviar.json``)."""
    text = ["## 5. IP TSN versus CoViAR and DMC-Net, end to end", ""] + _intro(res)
    for device in res["devices"]:
        text += _device_text(res, device)
    if "cuda" not in res["devices"]:
        text += ["GPU: not measured (this run saw no CUDA device); the same command on a CUDA machine adds a GPU "
                 "table.", ""]
    return "\n".join(text)


def targets(res: dict) -> list[list[str]]:
    """Rows (target, measured, verdict) of the targets table: the paper's +20% over CoViAR, per device."""
    out = []
    for device in res["devices"]:
        tot = [totals(r) for r in res["videos"] if r["device"] == device]
        if not tot:
            continue
        ratio = [t["CoViAR"] / t["IP TSN"] for t in tot]
        wiring = res.get("mode") == "quick"
        out.append([f"IP TSN end to end >= {PAPER_SPEEDUP:.1f}x as fast as CoViAR (the paper's +20%; {device}, same "
                    "I network)", f"CoViAR / IP TSN median {f(med(ratio))} (per video {f(min(ratio))} to "
                    f"{f(max(ratio))}) over {len(tot)} videos, {res['settings']['segments']} segments",
                    "**wiring check (--quick)**" if wiring else
                    ("**met**" if med(ratio) >= PAPER_SPEEDUP else "**missed**")])
    return out
