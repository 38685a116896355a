"""The GPU section (issue 13.5): on a CUDA machine, one short run of what matters at GPU scale.

- **training throughput**: the P network (ResNet-18, 5 channels, input BN, K = 3) forward +
  cross-entropy + backward + Adam at crop 224 on random batches, bf16 autocast and channels_last,
  clips/s and frames/s;
- **loader delivery**: ``VideoDataModule.train_dataloader()`` with 16 workers (or the machine's
  cores, if fewer) on the 340x256 MPEG-4 set, both ``reconstruct`` paths, each batch moved to the
  GPU and finished there (``on_after_batch_transfer``: the device path's rebuild), clips/s;
- **fed training**: the same training step taking its batches from that loader, clips/s and the
  share of the time spent waiting for data, both paths;
- **predict**: ``FusedPredictor`` (the code behind ``ip-tsn predict --device cuda``) with an
  I-stream (ResNet-50) and a P-stream (ResNet-18) on the sample videos, 25 segments, centre crop,
  motion and residual rebuilt on the GPU (``--reconstruct device``, what ``auto`` picks there) and
  on the CPU, ms per video;
- **IP TSN vs CoViAR**: ``coviar.run`` (it adds its CUDA rows when a GPU is visible) is the
  ``coviar`` section of the same ``make bench`` run; this section does not repeat it.

Without a CUDA device the section records that it was not measured (RESULTS.md says so) and takes
no time; ``run(quick=True, device="cpu")`` runs every part small on the CPU (the test's smoke run).

    python benchmarks/run.py --only gpu,coviar      # on the GPU machine: this section and CoViAR's
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import replace

import torch

import media
from common import WORK_DIR, log, set_threads, timed
from formatting import f, pct, table

SIZES = {"quick": {"quick": True, "batch": 4, "crop": 64, "steps": 2, "workers": 2, "batches": 3, "videos_per_class": 1,
                   "segments": 3, "video": (96, 128), "frames": 24},
         "full": {"quick": False, "batch": 32, "crop": 224, "steps": 20, "workers": 16, "batches": 40, "videos_per_class": 4, "repeat": 32,
                  "segments": 25, "video": media.SIZE_340, "frames": 36}}
NUM_CLASSES = 101


def _p_net(num_classes: int, segments: int = 3):
    from ip_tsn.models import TSN

    return TSN(num_classes, 5, arch="resnet18", num_segments=segments, pretrained=False, input_bn=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TrainStep:
    """One optimisation step of the P network on ``device``: bf16 autocast and channels_last on CUDA."""

    def __init__(self, device: torch.device, num_classes: int = NUM_CLASSES) -> None:
        torch.manual_seed(0)
        self.device, self.cuda = device, device.type == "cuda"
        self.model = _p_net(num_classes).to(device).train()
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-3)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """x (B, K, 5, crop, crop) on the device, y (B,)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            logits, _ = self.model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def train_throughput(device: torch.device, size: dict) -> dict:
    """Clips/s and frames/s of :class:`TrainStep` on random (B, 3, 5, crop, crop) batches."""
    step = TrainStep(device)
    x = torch.randn(size["batch"], 3, 5, size["crop"], size["crop"], device=device)
    y = torch.randint(0, NUM_CLASSES, (size["batch"],), device=device)

    def run() -> None:
        for _ in range(size["steps"]):
            step(x, y)
        _sync(device)

    t = timed(run, repeats=1 if size["quick"] else 3, warmup=1)
    clips = size["batch"] * size["steps"] / t["wall"]
    return {"batch": size["batch"], "crop": size["crop"], "steps": size["steps"], "clips_per_s": clips,
            "frames_per_s": 3 * clips, "amp": "bf16" if device.type == "cuda" else "off",
            "channels_last": device.type == "cuda"}


def _datamodule(root, reconstruct: str, workers: int, size: dict, pin: bool):
    from ip_tsn.data.datamodule import VideoDataModule

    dm = VideoDataModule(dataset="synthetic", root=str(root), modality="p", num_segments=3,
                         batch_size=size["batch"], num_workers=workers, pin_memory=pin,
                         crop_size=size["crop"], scale_size=256 if size["crop"] > 64 else None,
                         reconstruct=reconstruct)
    dm.setup("fit")
    # the 48-video set is 1.5 batches of 32: repeat its training list so that an epoch has enough
    # batches for every worker (issue 20: as configured, one of 16 workers ever worked)
    train = dm.datasets["train"]
    train.records = list(train.records) * size.get("repeat", 1)  # type: ignore[attr-defined]
    return dm


def _batches(dm, device: torch.device):
    """Endless batches of ``dm``'s training loader, on ``device`` and finished there."""
    from pytorch_lightning.utilities import move_data_to_device

    loader = dm.train_dataloader()
    while True:
        for batch in loader:
            yield dm.on_after_batch_transfer(move_data_to_device(batch, device), 0)


def loader_and_fed(root, device: torch.device, reconstruct: str, size: dict) -> dict:
    """Delivery (clips/s of finished batches on the device) and fed training (clips/s, wait share)
    of the ``reconstruct`` path, after a warm-up epoch."""
    workers = min(size["workers"], os.cpu_count() or 1)
    dm = _datamodule(root, reconstruct, workers, size, pin=device.type == "cuda")
    batches = _batches(dm, device)
    for _ in range(max(1, len(dm.datasets["train"]) // size["batch"])):  # warm-up: workers start, indexes
        next(batches)
    t0, clips = time.perf_counter(), 0
    for _ in range(size["batches"]):
        batch = next(batches)
        clips += len(batch["label"])
    _sync(device)
    delivery = clips / (time.perf_counter() - t0)
    step, wait, clips = TrainStep(device, NUM_CLASSES), 0.0, 0
    step(batch["input"], batch["label"])
    t_start = time.perf_counter()
    for _ in range(size["batches"]):
        t0 = time.perf_counter()
        batch = next(batches)
        _sync(device)
        wait += time.perf_counter() - t0
        step(batch["input"], batch["label"])
        clips += len(batch["label"])
    _sync(device)
    total = time.perf_counter() - t_start
    del batches
    return {"reconstruct": reconstruct, "workers": workers, "delivery_clips_per_s": delivery,
            "fed_clips_per_s": clips / total, "wait_share": wait / total}


def rebuild_times(root, device: torch.device, size: dict, batch_sizes: tuple[int, ...] = (8, 32, 128)) -> list[dict]:
    """Milliseconds of the device path's rebuild (``on_after_batch_transfer``) of one collated batch
    already on ``device``, median of 5 after a warm-up (issue 20's target: <= 5 ms for 32 clips)."""
    from pytorch_lightning.utilities import move_data_to_device

    from ip_tsn.data.datamodule import collate_packed

    dm = _datamodule(root, "device", 0, size, pin=False)
    ds = dm.datasets["train"]
    out = []
    for n in batch_sizes if not size["quick"] else (2, 4):
        samples = []
        for c in range(n):
            torch.manual_seed(c)
            samples.append(ds[c % len(ds)])
        moved = move_data_to_device(collate_packed(samples), device)
        times = []
        for rep in range(6):
            batch = {k: v for k, v in moved.items()}  # on_after_batch_transfer pops the packed key
            batch["input"] = list(moved["input"])
            _sync(device)
            t0 = time.perf_counter()
            done = dm.on_after_batch_transfer(batch, 0)
            _sync(device)
            if rep:
                times.append(1e3 * (time.perf_counter() - t0))
        out.append({"batch": n, "ms": statistics.median(times), "shape": list(done["input"].shape)})
        log(f"gpu: rebuild of a batch of {n}: {out[-1]['ms']:.1f} ms")
    return out


def predict_videos(device: torch.device, size: dict) -> list[dict]:
    """ms per sample video of ``FusedPredictor`` (random-init I ResNet-50 and P ResNet-18), the
    P-stream rebuilt on ``device`` and on the CPU: median of 3 after one warm-up (quick: carphone, 1)."""
    from ip_tsn.data.preprocess import Preprocess
    from ip_tsn.deploy.predict import FusedPredictor, LogitsOnly, Stream, choose_reconstruct
    from ip_tsn.models import TSN

    crop, seg = size["crop"], size["segments"]
    i_net = LogitsOnly(TSN(NUM_CLASSES, 3, arch="resnet50", num_segments=seg, pretrained=False)).to(device).eval()
    p_net = LogitsOnly(_p_net(NUM_CLASSES, seg)).to(device).eval()
    names = [f"class{i}" for i in range(NUM_CLASSES)]
    views = dict(crop_size=crop, scale_size=256 if crop > 64 else crop, test_segments=seg, test_crops=1)
    i_pre, p_cpu = Preprocess(modality="iframe", **views), Preprocess(modality="p", **views)
    videos = {k: v for k, v in sorted(media.real_as_is().items()) if not size["quick"] or k == "carphone_pristine.mp4"}
    rows = []
    for how in ("device", "cpu"):
        p_pre = replace(p_cpu, reconstruct=choose_reconstruct(p_cpu, how, device))
        predictor = FusedPredictor([Stream("I-stream", 1.0, i_net, i_pre), Stream("P-stream", 1.0, p_net, p_pre)],
                                   names, device)
        for name, path in videos.items():
            predictor.predict(path)  # warm-up: index, kernels
            runs = [predictor.predict(path)["timing_ms"] for _ in range(1 if size["quick"] else 3)]
            rows.append({"video": name, "reconstruct": p_pre.reconstruct,
                         **{k: statistics.median(r[k] for r in runs) for k in runs[0]}})
            log(f"gpu: predict {name} ({p_pre.reconstruct}): {rows[-1]['total']:.0f} ms")
    return rows


def run(quick: bool = False, device: str | None = None) -> dict:
    """Every part on ``device`` (default: CUDA; without one, ``{"device": None}``)."""
    if device is None and not torch.cuda.is_available():
        log("gpu: no CUDA device visible: not measured")
        return {"device": None}
    dev = torch.device(device or "cuda")
    set_threads(os.cpu_count() or 1)
    size = SIZES["quick" if quick else "full"]
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    log(f"gpu: {name}: training throughput")
    out: dict = {"device": name, "size": size, "train": train_throughput(dev, size), "loaders": []}
    root = media.make_dataset(WORK_DIR / "data" / ("gpu-quick" if quick else "gpu340"), size["video"],
                              size["frames"], size["videos_per_class"], with_flow=False)
    for how in ("cpu", "device"):
        log(f"gpu: loader and fed training, reconstruct={how}")
        out["loaders"].append(loader_and_fed(root, dev, how, size))
    out["rebuild"] = rebuild_times(root, dev, size)
    out["predict"] = predict_videos(dev, size)
    return out


def report(res: dict) -> str:
    """The GPU section of RESULTS.md, from this module's results (``results/gpu.json``)."""
    text = ["## 6. On a GPU", ""]
    if not res.get("device"):
        return "\n".join(text + ["Not measured: the machine of this run had no CUDA device (no GPU was lent). "
                                 "`python benchmarks/run.py --only gpu,coviar` on one measures the P network's "
                                 "training throughput (bf16, channels_last), the loader's delivery with 16 workers "
                                 "on both reconstruction paths, the share of training steps waiting for data, "
                                 "`ip-tsn predict`'s path on the sample videos and IP TSN versus CoViAR on the GPU.",
                                 ""])
    t, s = res["train"], res["size"]
    text += [f"Device: **{res['device']}**. P network training step (ResNet-18, 5 channels, K = 3, crop {t['crop']}, "
             f"batch {t['batch']}, AMP {t['amp']}, channels_last {t['channels_last']}): **{f(t['clips_per_s'])} "
             f"clips/s** ({f(t['frames_per_s'])} frames/s) on random batches.", ""]
    body = [[r["reconstruct"], r["workers"], f(r["delivery_clips_per_s"]), f(r["fed_clips_per_s"]),
             pct(r["wait_share"])] for r in res["loaders"]]
    text += [table(["reconstruct", "workers", "loader delivers, clips/s", "training fed, clips/s",
                    "time waiting for data, %"], body), ""]
    if res.get("rebuild"):
        text += ["The device path's rebuild (`on_after_batch_transfer`: motion, residual, views, normalisation) of one "
                 "packed batch already on the GPU, ms (median of 5; target <= 5 ms for 32 clips):", "",
                 table(["clips", "ms", "ms per clip"], [[r["batch"], f(r["ms"]), f(r["ms"] / r["batch"])]
                                                         for r in res["rebuild"]]), ""]
    body = [[r["video"], r["reconstruct"], f(r["decode"]), f(r["motion_residual"]), f(r["network"]), f(r["total"])]
            for r in res["predict"]]
    text += [f"`FusedPredictor` (`ip-tsn predict --device cuda`): I ResNet-50 + P ResNet-18, {s['segments']} segments, "
             "centre crop, ms per video (median of 3):", "",
             table(["video", "P rebuilt on", "decode", "motion+residual", "network", "total"], body, left=2), ""]
    return "\n".join(text)
