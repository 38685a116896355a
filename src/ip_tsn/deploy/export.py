"""``ip-tsn export``: the fused model's stream networks as TorchScript and ONNX, and ``fusion.json``.

Each network maps ``input`` (B, N, C, H, W) float32 (N = segments x crops; B and N are free) to
``logits`` (B, num_classes). ``fusion.json`` (schema: ``ip_tsn.deploy.fused_model``) gives per stream
the files, the fusion weight and the preprocessing (``ip_tsn.data.preprocess.Preprocess.to_dict``:
modality, crop_size, scale_size, test_segments, test_crops, ..., in_channels; normalisation:
``ip_tsn.data.transforms.normalize``), and
the class names. Fused scores: ``sum_s w_s softmax(logits_s) / sum_s w_s``. ``ip-tsn predict
--model OUT`` runs the TorchScript files. Every export is checked against the checkpoint's own
network on a random input (``max_abs_diff`` in the returned dict; above ``atol`` it raises).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ip_tsn.atomic import atomic_path, check_output_dir
from ip_tsn.deploy.fused_model import StreamEntry, write_fused_model
from ip_tsn.deploy.predict import FusedPredictor, Stream

OPSET = 17


def slug(name: str) -> str:
    """A file name for a stream name: ``"P-stream distilled"`` -> ``"p-stream-distilled"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "stream"


def example_input(stream: Stream, batch: int = 1, segments: int = 3, seed: int = 0) -> torch.Tensor:
    """(batch, segments, C, crop, crop) float32 random input of ``stream``'s network."""
    p = stream.preprocess
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, segments, p.in_channels, p.crop_size, p.crop_size, generator=g)


def _export_onnx(network: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        with atomic_path(path) as tmp:  # an export cut short leaves no half file under the name
            torch.onnx.export(network, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch", 1: "segments"}, "logits": {0: "batch"}})


def _onnx_run(path: Path, x: torch.Tensor) -> torch.Tensor | None:
    """Logits from onnxruntime, or None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"input": x.numpy()})[0])


def export_stream(stream: Stream, out_dir: Path, onnx: bool = True, atol: float = 1e-4) -> dict[str, Any]:
    """Write ``<slug>.pt`` (TorchScript, traced) and ``<slug>.onnx``; compare both with the
    network on a (2, 5, C, crop, crop) input (another shape than the traced one)."""
    network = stream.network.cpu().eval()
    example, check = example_input(stream), example_input(stream, batch=2, segments=5, seed=1)
    files: dict[str, Any] = {"torchscript": out_dir / f"{slug(stream.name)}.pt", "onnx": None}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        with atomic_path(files["torchscript"]) as tmp:
            torch.jit.trace(network, example, check_trace=False).save(str(tmp))
        reference = network(check)
        outputs = {"torchscript": torch.jit.load(str(files["torchscript"]))(check)}
    errors: dict[str, str] = {}
    if onnx:
        try:
            files["onnx"] = out_dir / f"{slug(stream.name)}.onnx"
            _export_onnx(network, example, files["onnx"])
            ran = _onnx_run(files["onnx"], check)
            if ran is not None:
                outputs["onnx"] = ran
        except Exception as e:  # noqa: BLE001 - TorchScript stays usable; the report says why
            files["onnx"], errors["onnx"] = None, f"{type(e).__name__}: {e} (ONNX needs the `export` " \
                "extra: pip install -e '.[export]')"
    diffs = {k: float((v - reference).abs().max()) for k, v in outputs.items()}
    bad = {k: d for k, d in diffs.items() if d > atol}
    if bad:
        raise RuntimeError(f"stream {stream.name!r}: exported network differs from the checkpoint by {bad}")
    return {**files, "max_abs_diff": diffs, "errors": errors}


def export_model(predictor: FusedPredictor, out_dir: str | os.PathLike, onnx: bool = True,
                 atol: float = 1e-4, overwrite: bool = False) -> dict[str, Any]:
    """Export every stream of ``predictor`` (loaded from checkpoints, any device) to ``out_dir``
    and write ``fusion.json``, last; an export already there (its ``fusion.json``) is replaced only
    with ``overwrite``, which removes that ``fusion.json`` first: an export cut short or refused
    by its check leaves no ``fusion.json`` naming files it rewrote. Returns ``{"fusion": path,
    "streams": {name: export_stream(...)}}``."""
    out = check_output_dir(out_dir, "--out")
    if (out / "fusion.json").is_file() and not overwrite:
        raise ValueError(f"{out} holds an export ({out / 'fusion.json'}); pass --overwrite to replace it, or "
                         "another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "fusion.json").unlink(missing_ok=True)
    reports, entries = {}, []
    for stream in predictor.streams:
        if stream.checkpoint is None:
            raise ValueError(f"stream {stream.name!r} has no checkpoint: export reads checkpoints")
        reports[stream.name] = rep = export_stream(stream, out, onnx, atol)
        entries.append(StreamEntry(stream.name, stream.weight, torchscript=str(rep["torchscript"]),
                                   onnx=str(rep["onnx"]) if rep["onnx"] else None,
                                   preprocess=stream.preprocess.to_dict()))
    path = write_fused_model(out / "fusion.json", entries, predictor.class_names)
    return {"fusion": str(path), "streams": reports}
