"""Section 3: the networks, and end-to-end per-video latency of IP TSN versus the flow two-stream.

Throughput (frames per second, 224x224 inputs, 101 classes, random init: speed does not depend on
the weights): forward (eval, no grad) and forward + backward (train mode, cross-entropy) of the
I-stream (ResNet-152 and ResNet-50, 3 channels), the P-stream (ResNet-18, 5 channels, input BN) and
the flow stream (ResNet-18, 10 channels = 5 stacked flow fields), built with ``ip_tsn.models.TSN``.
On the CPU always (all cores), and on CUDA when this process sees a GPU.

Per-video latency, TSN test protocol (K segments, 1 centre crop of 224 from a 340x256 video), cold
(a video not seen before: index built, decoder opened):

- IP TSN: decode + I-frames + accumulated mv / residual (the real ``StreamDataset`` test path) +
  I-network (ResNet-152) on K I-frames + P-network (ResNet-18) on K P-inputs.
- flow two-stream: decode the RGB frames needed + TV-L1 (OpenCV, ``compute_flow``) on the K * 5
  frame pairs of K stacks of 5 flows (each distinct pair once) + flow network (ResNet-18, 10
  channels) + RGB network (ResNet-152) on K frames.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import media
from common import log, set_threads, timed
from formatting import f, table
from ip_tsn.codec import CompressedVideo, clear_index_cache
from ip_tsn.codec.flow import compute_flow, quantize_flow
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.sampling import segment_indices
from ip_tsn.data.transforms import center_crop, normalize, to_tensor
from ip_tsn.data.video_dataset import StreamDataset
from ip_tsn.models import TSN

NUM_CLASSES = 101
FLOW_LENGTH = 5
MODELS = {  # name: (arch, channels, input_bn)
    "I: ResNet-152": ("resnet152", 3, False),
    "I: ResNet-50": ("resnet50", 3, False),
    "P: ResNet-18 (mv + residual, 5 ch)": ("resnet18", 5, True),
    "flow: ResNet-18 (5 flows, 10 ch)": ("resnet18", 10, False),
}


def build(name: str) -> TSN:
    arch, channels, input_bn = MODELS[name]
    return TSN(NUM_CLASSES, channels, arch=arch, num_segments=3, pretrained=False, input_bn=input_bn)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def throughput(name: str, device: str, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build(name).to(device)
    channels = MODELS[name][1]
    x = torch.randn(batch, channels, 224, 224, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)

    def forward():
        with torch.no_grad():
            model.forward_frames(x)
        _sync(device)

    def forward_backward():
        logits, _ = model.forward_frames(x)
        torch.nn.functional.cross_entropy(logits, y).backward()
        model.zero_grad(set_to_none=True)
        _sync(device)

    model.eval()
    fwd = timed(forward, repeats=repeats)
    model.train()
    fb = timed(forward_backward, repeats=repeats)
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "device": device, "batch": batch, "params_m": params / 1e6,
            "forward_fps": batch / fwd["wall"], "forward_backward_fps": batch / fb["wall"],
            "forward_s": fwd["wall"], "forward_backward_s": fb["wall"], "repeats": repeats}


def _nets(device: str) -> dict[str, TSN]:
    torch.manual_seed(0)
    nets = {"i": build("I: ResNet-152"), "p": build("P: ResNet-18 (mv + residual, 5 ch)"),
            "flow": build("flow: ResNet-18 (5 flows, 10 ch)")}
    return {k: m.to(device).eval() for k, m in nets.items()}


def _forward(model: TSN, x: torch.Tensor, device: str) -> torch.Tensor:
    with torch.no_grad():
        logits, _ = model(x.unsqueeze(0).to(device))
    _sync(device)
    return logits


def ip_tsn_latency(path, segments: int, nets: dict, device: str) -> dict:
    """Seconds of each stage of IP TSN on one video (cold)."""
    clear_index_cache()
    rec = [VideoRecord(path=path.name, label=0, class_name="x")]
    t0 = time.perf_counter()
    x_i = StreamDataset(rec, path.parent, "iframe", num_segments=segments, train=False, crop_size=224,
                        scale_size=None)[0]["input"]
    x_p = StreamDataset(rec, path.parent, "p", num_segments=segments, train=False, crop_size=224,
                        scale_size=None)[0]["input"]
    t1 = time.perf_counter()
    _forward(nets["i"], x_i, device)
    t2 = time.perf_counter()
    _forward(nets["p"], x_p, device)
    t3 = time.perf_counter()
    return {"decode + P inputs": t1 - t0, "I network (ResNet-152)": t2 - t1, "P network (ResNet-18)": t3 - t2,
            "total": t3 - t0}


def flow_latency(path, segments: int, nets: dict, device: str) -> dict:
    """Seconds of each stage of the flow two-stream on one video (cold), TV-L1 computed on the fly."""
    clear_index_cache()
    t0 = time.perf_counter()
    v = CompressedVideo(path)
    n = v.num_frames
    rgb_pos = segment_indices(n, segments, False, None, np.ones(n, bool))
    valid = np.zeros(n - 1, bool)
    valid[: n - FLOW_LENGTH] = True
    starts = segment_indices(n - 1, segments, False, None, valid)
    need = sorted(set(rgb_pos.tolist()) | {int(s) + k for s in starts for k in range(FLOW_LENGTH + 1)})
    frames = dict(zip(need, v.load_many(need, "rgb")))
    v.close()
    t1 = time.perf_counter()
    flows = {}
    for s in starts:
        for k in range(FLOW_LENGTH):
            a = int(s) + k
            if a not in flows:
                flows[a] = quantize_flow(compute_flow(frames[a], frames[a + 1], "tvl1"))
    stacks = np.stack([np.concatenate([flows[int(s) + k] for k in range(FLOW_LENGTH)], axis=-1) for s in starts])
    x_flow = to_tensor(center_crop(normalize(stacks, "flow"), 224))
    t2 = time.perf_counter()
    x_rgb = to_tensor(center_crop(normalize(np.stack([frames[int(i)] for i in rgb_pos]), "rgb"), 224))
    t3 = time.perf_counter()
    _forward(nets["flow"], x_flow, device)
    t4 = time.perf_counter()
    _forward(nets["i"], x_rgb, device)
    t5 = time.perf_counter()
    return {"decode": (t1 - t0) + (t3 - t2), "TV-L1": t2 - t1, "flow pairs": len(flows),
            "flow network (ResNet-18)": t4 - t3, "RGB network (ResNet-152)": t5 - t4, "total": t5 - t0}


def latency(quick: bool, device: str) -> dict:
    real = media.real_340()
    path = real.get("bikes.mp4") or media.synthetic_340(1)[0]
    segments = 1 if quick else 25
    nets = _nets(device)
    ip_tsn_latency(path, 1, nets, device)  # warm-up: code paths, allocator, OpenCV estimator
    flow_latency(path, 1, nets, device) if not quick else None
    ip = [ip_tsn_latency(path, segments, nets, device) for _ in range(1 if quick else 3)]
    ip_med = {k: float(np.median([r[k] for r in ip])) for k in ip[0]}
    fl = flow_latency(path, segments, nets, device)
    v = CompressedVideo(path)
    return {"video": str(path), "frames": v.num_frames, "width": v.width, "height": v.height,
            "codec": v.codec, "segments": segments, "crop_size": 224, "device": device,
            "ip_tsn_runs": len(ip), "flow_runs": 1, "ip_tsn": ip_med, "flow_two_stream": fl,
            "speedup": fl["total"] / ip_med["total"],
            "p_vs_flow_stream": (fl["TV-L1"] + fl["flow network (ResNet-18)"])
            / (ip_med["decode + P inputs"] + ip_med["P network (ResNet-18)"])}


def run(quick: bool = False) -> dict:
    import os

    set_threads(os.cpu_count() or 1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        cpu = device == "cpu"
        batch = (1 if quick else 8) if cpu else 64
        repeats = (1 if quick else 3) if cpu else 10
        for name in MODELS:
            log(f"networks: {name} on {device}")
            rows.append(throughput(name, device, batch, repeats))
    lat = []
    for device in devices:
        log(f"networks: per-video latency on {device}")
        lat.append(latency(quick, device))
    return {"rows": rows, "latency": lat, "devices": devices,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "threads": torch.get_num_threads(), "num_classes": NUM_CLASSES, "size": 224, "flow_length": FLOW_LENGTH}


# ------------------------------------------------------------------------------------------ report
PAPER_P_VS_FLOW = 60.0  # the IP TSN paper: its P-stream runs 60x faster than the optical-flow stream


def _latency_text(lat: dict, threads: int | None) -> list[str]:
    ip, fl = lat["ip_tsn"], lat["flow_two_stream"]
    runs = lat.get("ip_tsn_runs")
    source = f"{Path(lat['video']).name} ({lat['width']}x{lat['height']}" + (f" {lat['codec']}" if lat.get("codec") else "")
    crop = f"{lat['crop_size']} " if lat.get("crop_size") else ""
    flow_runs = lat.get("flow_runs")
    timing = ([f"IP TSN {f'median of {runs} runs' if runs > 1 else 'one run'}"] if runs else []) + (
        [f"the flow two-stream {f'median of {flow_runs} runs' if flow_runs > 1 else 'one run'}"] if flow_runs else [])
    text = [f"### Per-video latency, {lat['device']}", "",
            f"{source}, {lat['frames']} frames), TSN test protocol with {lat['segments']} segments and one "
            f"{crop}centre crop, cold (index built, decoder opened)" + (f"; {', '.join(timing)}" if timing else "")
            + ". TV-L1 "
            f"(OpenCV{f', {threads} threads' if threads else ''}) runs on the {fl['flow pairs']} distinct frame pairs the "
            f"{lat['segments']} stacks of flows need.", ""]
    stages = [(pipe, stage, v) for pipe, parts in (("IP TSN", ip), ("flow two-stream", fl))
              for stage, v in parts.items() if stage not in ("total", "flow pairs")]
    body, last = [], None
    for pipe, stage, v in stages:
        if last is not None and pipe != last:
            body.append(["", "**total**", f"**{f((ip if last == 'IP TSN' else fl)['total'])}**"])
        label = {"TV-L1": f"TV-L1 ({fl['flow pairs']} pairs)", "decode": "decode (RGB)"}.get(stage, stage)
        body.append([pipe if pipe != last else "", label, f(v)])
        last = pipe
    body.append(["", "**total**", f"**{f(fl['total'])}**"])
    largest = max(((k, v) for k, v in ip.items() if k != "total"), key=lambda kv: kv[1])
    text += [table(["pipeline", "stage", "seconds"], body, left=2), "",
             f"IP TSN is **{f(lat['speedup'])}x** faster end to end; its P-stream (P inputs + P network) is "
             f"**{f(lat['p_vs_flow_stream'])}x** faster than the flow stream (TV-L1 + flow network), "
             f"{'more' if lat['p_vs_flow_stream'] >= PAPER_P_VS_FLOW else 'less'} than the paper's "
             f"{PAPER_P_VS_FLOW:.0f}x. The largest part of IP TSN's time is the {largest[0]} "
             f"({100 * largest[1] / ip['total']:.0f}%).", ""]
    return text


def report(res: dict) -> str:
    """Section 3 of RESULTS.md, from this module's results (``results/networks.json``)."""
    size = res.get("size")
    classes = res.get("num_classes")
    repeats = sorted({r["repeats"] for r in res["rows"] if r.get("repeats")})
    text = ["## 3. Networks and end-to-end latency", "",
            "`ip_tsn.models.TSN`" + (f", {classes} classes" if classes else "") + (f", {size}x{size}" if size else "")
            + ", random weights; forward = eval mode, no grad; forward + backward = train mode, cross-entropy, "
            "`backward()`. Frames per second, median of "
            + (f"{'/'.join(map(str, repeats))} repeats" if repeats else "the repeats")
            + f" after a warm-up; CPU with {res.get('threads')} torch threads.", ""]
    body = [[r["model"], r["device"], r["batch"], f(r["params_m"]), f(r["forward_fps"]), f(r["forward_backward_fps"])]
            for r in res["rows"]]
    if "cuda" not in res.get("devices", []):
        for name in dict.fromkeys(r["model"] for r in res["rows"]):
            body.append([name, "GPU", "-", "-", "not measured (no CUDA device)", "not measured"])
    text += [table(["network", "device", "batch", "params (M)", "forward frames/s", "fwd + bwd frames/s"], body, left=2),
             "", "![networks](networks.png)", ""]
    cpu = {r["model"]: r for r in res["rows"] if r["device"] == "cpu"}
    if len(cpu) > 1:
        fastest = max(cpu.values(), key=lambda r: r["forward_fps"])
        slowest = min(cpu.values(), key=lambda r: r["forward_fps"])
        text += [f"On the CPU, {fastest['model']} runs {f(fastest['forward_fps'] / slowest['forward_fps'])}x as many "
                 f"frames per second forward as {slowest['model']}.", ""]
    for lat in res.get("latency", []):
        text += _latency_text(lat, res.get("threads"))
    if "cuda" not in res.get("devices", []):
        text += ["GPU: not measured (this run saw no CUDA device). `python benchmarks/run.py --only networks` on a "
                 "CUDA machine adds the GPU rows and a GPU latency table.", ""]
    text += ["![latency](latency.png)", ""]
    return "\n".join(text)
