"""Fused I+P prediction on any video, with each stream's test-protocol preprocessing; no flow.

    p = FusedPredictor.load(istream="I.ckpt", pstream="P.ckpt", weights=[2, 1])
    p = FusedPredictor.load(model="runs/ucf101/split1/fusion")  # model.json of `ip-tsn fuse`
    p = FusedPredictor.load(model="exported/")                  # fusion.json of `ip-tsn export`
    result = p.predict("video.mp4", top_k=5)  # {"top": [{"label", "class", "score"}], "timing_ms", ...}

Preprocessing is ``ip-tsn test``'s, read from each checkpoint's (or ``fusion.json``'s)
:class:`~ip_tsn.data.preprocess.Preprocess`, through the same ``StreamDataset`` (``train=False``):
``test_segments`` segment centres among the frames the modality may use, shorter side to
``scale_size``, centre crop (or 3 / 10 crops), the DataModule's normalisation. Fused scores:
``sum_s w_s softmax(logits_s) / sum_s w_s`` (a distribution; same ranking as ``ip-tsn fuse``).

Where the P-stream's input is rebuilt: ``reconstruct="auto"`` (default) rebuilds the motion and
residual on the predictor's device when that is CUDA (the CPU decodes and hands over pictures and
block vectors, ``data.packed_p``; ``data.device_reconstruct`` does the rest), on the CPU otherwise;
``"cpu"`` / ``"device"`` force one. Both give the same inputs (to 1e-4, tested); a frame the device
path cannot rebuild (``data.packed_p.plan_frame``) takes the CPU path either way. Each stream
reports its choice.

Timing per video (ms): ``decode``: the I-frame streams' input (opening and indexing the file,
decoding the I-frames, preprocessing); ``motion_residual``: the P-stream's input (decoding its GOPs,
accumulated motion vectors and residuals, preprocessing; on the device path the device's rebuild too,
synchronised); ``network``: forward passes and fusion.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ip_tsn.codec import CompressedVideo, VideoError
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.device_reconstruct import packed_inputs
from ip_tsn.data.packed_p import PACKED
from ip_tsn.data.preprocess import DEVICE_MODALITIES, Preprocess
from ip_tsn.data.split_files import read_class_file
from ip_tsn.data.transforms import CROP_FIX
from ip_tsn.data.video_dataset import StreamDataset
from ip_tsn.deploy.fused_model import StreamEntry, read_fused_model
from ip_tsn.evaluation.fusion import fuse_probabilities
from ip_tsn.lit.checkpoint_info import read_checkpoint, stream_info

TIMING_KEYS = ("decode", "motion_residual", "network", "total")
PHASE = {"rgb": "decode", "iframe": "decode", "mv": "motion_residual", "residual": "motion_residual",
         "p": "motion_residual"}
# the streams `--istream` / `--pstream` name: (entry name, the modalities a checkpoint there may read)
CLI_STREAMS = {"--istream": ("I-stream", ("iframe", "rgb")), "--pstream": ("P-stream", ("p", "mv", "residual"))}
RECONSTRUCT_CHOICES = ("auto", "cpu", "device")


class LogitsOnly(nn.Module):
    """A TSN without its features output: (B, N, C, H, W) -> logits (B, num_classes)."""

    def __init__(self, tsn: nn.Module) -> None:
        super().__init__()
        self.tsn = tsn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tsn(x)[0]


@dataclass
class Stream:
    """One stream: ``network`` (B, N, C, H, W) -> logits (B, num_classes), its fusion ``weight``,
    ``preprocess`` and, if any, ``checkpoint``."""

    name: str
    weight: float
    network: nn.Module
    preprocess: Preprocess
    checkpoint: str | None = None

    @property
    def modality(self) -> str:
        return self.preprocess.modality

    def inputs(self, path: Path, device: torch.device) -> torch.Tensor:
        """(N, C, crop, crop) float32 of ``path`` on ``device``, N = test_segments * test_crops;
        ``preprocess.reconstruct == "device"``: the motion and residual rebuilt there."""
        p = self.preprocess
        ds = StreamDataset([VideoRecord(path.name, -1, "")], path.parent, num_segments=p.test_segments,
                           train=False, test_crops=p.test_crops, flip=p.flip, reconstruct=p.reconstruct,
                           **p.reader_kwargs())
        try:
            sample = ds[0]
        except VideoError as e:
            if not e.problem.endswith(CROP_FIX):
                raise
            raise VideoError(e.path, e.problem.replace(CROP_FIX, f"pass --scale-size {p.crop_size} or more")) from None
        if PACKED in sample:
            packed = {k: v.to(device) for k, v in sample[PACKED].items()}
            return packed_inputs([packed], p)[0]
        return sample["input"].to(device)


def choose_reconstruct(pre: Preprocess, choice: str, device: torch.device) -> str:
    """Where ``pre``'s stream is rebuilt: ``cpu`` for streams with nothing to rebuild (I-frames);
    ``auto``: ``device`` on CUDA, else ``cpu``; ``cpu`` / ``device`` as given (any other value is
    refused by ``Preprocess``; :meth:`FusedPredictor.load` checks it first)."""
    if pre.modality not in DEVICE_MODALITIES:
        return "cpu"
    if choice == "auto":
        return "device" if device.type == "cuda" else "cpu"
    return choice


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when visible, else CPU), ``cpu`` or ``cuda[:i]``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ValueError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is visible (use --device cpu)")
    return torch.device(name)


def load_stream(entry: StreamEntry, device: torch.device, use: str = "",
                modality: Sequence[str] | None = None) -> tuple[Stream, list[str] | None]:
    """The network of ``entry`` (checkpoint, else TorchScript) on ``device``, and its class names;
    a checkpoint that does not read one of ``modality`` is refused, naming ``use`` (``--istream``)."""
    if entry.checkpoint:
        from ip_tsn.lit.modules import load_module  # the Lightning modules: only for checkpoints

        info = stream_info(read_checkpoint(entry.checkpoint, use, modality=modality), entry.checkpoint)
        network: nn.Module = LogitsOnly(load_module(entry.checkpoint).model)
        pre, names = info["preprocess"], info["class_names"]
    elif entry.torchscript and entry.preprocess:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            network = torch.jit.load(entry.torchscript, map_location=device)
        pre, names = Preprocess.from_dict(entry.preprocess, f"stream {entry.name!r}"), None
    else:
        raise ValueError(f"stream {entry.name!r}: needs a checkpoint, or a TorchScript file with its "
                         "preprocessing (an `ip-tsn export` folder)")
    if pre.modality not in PHASE:
        raise ValueError(f"stream {entry.name!r} reads {pre.modality!r}: prediction runs on the "
                         f"compressed streams only ({', '.join(PHASE)}), no optical flow")
    return Stream(entry.name, float(entry.weight), network.to(device).eval(), pre,
                  entry.checkpoint), names


class FusedPredictor:
    """Late fusion of stream networks on single videos (module docstring)."""

    def __init__(self, streams: Sequence[Stream], class_names: Sequence[str],
                 device: torch.device, names_from: str = "") -> None:
        """``names_from``: where ``class_names`` came from, said where they do not fit the networks."""
        if (not streams or any(not math.isfinite(s.weight) or s.weight < 0 for s in streams)
                or sum(s.weight for s in streams) <= 0):  # nan and inf gave nan scores until 2026-12-08
            raise ValueError(f"fusion weights must be finite and >= 0 with a positive sum, got "
                             f"{[s.weight for s in streams]}")
        self.streams = sorted(streams, key=lambda s: PHASE[s.modality])  # I-frames first
        self.class_names, self.device, self.names_from = list(class_names), device, names_from

    @classmethod
    def load(cls, model: str | None = None, istream: str | None = None, pstream: str | None = None,
             weights: Sequence[float] | None = None, classes: str | None = None, device: str = "auto",
             segments: int | None = None, crops: int | None = 1,
             scale_size: int | None = None, reconstruct: str = "auto") -> "FusedPredictor":
        """From a fused model file / folder (``model``) or from the I- and / or P-stream
        checkpoints; ``weights`` (one per stream, in that order) replace the file's (default 1).
        ``segments`` / ``crops`` replace each stream's ``test_segments`` / ``test_crops``
        (None: keep the checkpoint's); ``scale_size`` resizes every stream's input to that shorter
        side before cropping (for videos smaller than the crop; None: the checkpoint's).
        ``classes``: a class-name file, for checkpoints without. ``reconstruct``: where the motion
        streams' inputs are rebuilt (:func:`choose_reconstruct`; the checkpoint's choice is not kept:
        it was made for training's device)."""
        if model and (istream or pstream):
            raise ValueError("give a model file (--model) or stream checkpoints (--istream/--pstream), not both")
        if model:
            spec = read_fused_model(model)
            entries, names = spec.streams, spec.class_names
            expected: list[tuple[str, Sequence[str] | None]] = [("", None)] * len(entries)
        elif istream or pstream:
            given = [(opt, path) for opt, path in (("--istream", istream), ("--pstream", pstream)) if path]
            entries = [StreamEntry(CLI_STREAMS[opt][0], 1.0, checkpoint=path) for opt, path in given]
            expected, names = [(opt, CLI_STREAMS[opt][1]) for opt, _ in given], None
        else:
            raise ValueError("nothing to predict with: give --model, or --istream and/or --pstream")
        if weights is not None:
            if len(weights) != len(entries):
                raise ValueError(f"{len(weights)} weight(s) for {len(entries)} stream(s) "
                                 f"({', '.join(e.name for e in entries)})")
            entries = [replace(e, weight=float(w)) for e, w in zip(entries, weights)]
        if reconstruct not in RECONSTRUCT_CHOICES:
            raise ValueError(f"--reconstruct must be one of {', '.join(RECONSTRUCT_CHOICES)}, got {reconstruct!r}")
        dev = resolve_device(device)
        loaded = [load_stream(e, dev, use, modalities) for e, (use, modalities) in zip(entries, expected)]
        streams = [s for s, _ in loaded]
        for s in streams:
            s.preprocess = replace(s.preprocess, **{k: v for k, v in (("test_segments", segments),
                                                                       ("test_crops", crops),
                                                                       ("scale_size", scale_size)) if v},
                                   reconstruct=choose_reconstruct(s.preprocess, reconstruct, dev))
        names = read_class_file(classes) if classes else names or _agreed_names(loaded)
        return cls(streams, names, dev, f" (--classes {classes})" if classes else "")

    def predict(self, path: str | Path, top_k: int = 5) -> dict[str, Any]:
        """Top-``top_k`` fused classes of one video, each stream's top-1, video facts, timing (ms).
        A video cut short (``frames_listed``: what its header lists, else None) is predicted from the
        frames it holds. Raises ``VideoError`` (naming the file) when a stream's input cannot be read."""
        path, start = Path(path), time.perf_counter()
        timing = dict.fromkeys(TIMING_KEYS, 0.0)
        inputs = []
        for s in self.streams:
            t = time.perf_counter()
            inputs.append(s.inputs(path, self.device))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            timing[PHASE[s.modality]] += 1e3 * (time.perf_counter() - t)
        t = time.perf_counter()
        with torch.inference_mode():
            probs = [s.network(x[None]).float().softmax(-1)[0] for s, x in zip(self.streams, inputs)]
            probs = [p.cpu() for p in probs]
            fused = torch.from_numpy(fuse_probabilities({s.name: p for s, p in zip(self.streams, probs)},
                                                        {s.name: s.weight for s in self.streams}))
        timing["network"] = 1e3 * (time.perf_counter() - t)
        timing["total"] = 1e3 * (time.perf_counter() - start)
        if len(fused) != len(self.class_names):
            raise ValueError(f"the networks score {len(fused)} classes but {len(self.class_names)} class "
                             f"names are known{self.names_from}")
        video = CompressedVideo(path)  # the index is cached: no second demux
        missing = video.index.missing  # cut short: predicted from the frames it holds, and said
        return {"video": str(path), "codec": video.codec, "size": [video.width, video.height],
                "num_frames": video.num_frames, "frame_types": {c: video.frame_types.count(c) for c in "IPB"},
                "frames_listed": None if missing is None else missing[1],
                "device": str(self.device), "top": self._top(fused, top_k),
                "streams": {s.name: {"weight": s.weight, "inputs": list(x.shape), "reconstruct": s.preprocess.reconstruct,
                                     "top1": self._top(p, 1)[0]}
                            for s, x, p in zip(self.streams, inputs, probs)},
                "timing_ms": {k: round(v, 2) for k, v in timing.items()}}

    def _top(self, scores: torch.Tensor, k: int) -> list[dict[str, Any]]:
        values, labels = scores.topk(min(k, len(scores)))
        return [{"label": int(i), "class": self.class_names[int(i)], "score": float(v)}
                for v, i in zip(values, labels)]


def _agreed_names(loaded: Sequence[tuple[Stream, list[str] | None]]) -> list[str]:
    known = [(s, n) for s, n in loaded if n is not None]
    if not known:
        raise ValueError("the checkpoints store no class names and their dataset is not readable: "
                         "pass --classes (classInd.txt or one name per line)")
    for s, n in known[1:]:
        if n != known[0][1]:
            raise ValueError(f"streams {known[0][0].name!r} and {s.name!r} were trained on different classes")
    return known[0][1]


def format_prediction(result: dict[str, Any]) -> str:
    """Human-readable lines for one :meth:`FusedPredictor.predict` result."""
    types = ", ".join(f"{n} {c}" for c, n in result["frame_types"].items() if n)
    cut = f"; cut short: its header lists {result['frames_listed']}" if result.get("frames_listed") else ""
    lines = [f"{result['video']}: {result['codec']} {result['size'][0]}x{result['size'][1]}, "
             f"{result['num_frames']} frames ({types}{cut}), {result['device']}"]
    lines += [f"  {i}. {t['score']:.4f}  {t['class']}" for i, t in enumerate(result["top"], 1)]
    ms = result["timing_ms"]
    lines.append(f"  time: decode {ms['decode']:.1f} ms | motion+residual {ms['motion_residual']:.1f} ms | "
                 f"network {ms['network']:.1f} ms | total {ms['total']:.1f} ms")
    return "\n".join(lines)
