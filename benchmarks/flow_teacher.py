#!/usr/bin/env python
"""The flow teacher on the torch TV-L1's flow against the teacher on OpenCV's (issue 23, item 2).

Reads the test scores of teachers trained with ``experiments/teacher.yaml`` on the synthetic
default, once on OpenCV's ``tvl1-tiny`` flow (``data/synthetic``, what ``make demo`` makes) and
once on the torch TV-L1's flow of the same videos with the same parameters and seeds
(``data_prep/extract_flow.py --method tvl1-torch --params tvl1-tiny``), and writes
``benchmarks/results/flow_teacher.json``: per seed, both accuracies with their 95% intervals over
videos and the paired difference; pooled, the per-video difference averaged over seeds with its
interval. The flow section's report (``flow.py``) prints it. Target: each torch-flow teacher inside
the OpenCV teacher's interval of the same seed, and the pooled difference's interval covering 0.

    python benchmarks/flow_teacher.py \\
        --opencv runs/synthetic/split1 runs/synthetic-d0-s1/split1 runs/synthetic-d0-s2/split1 \\
        --torch runs/synthetic-torchflow-s0/split1 runs/synthetic-torchflow-s1/split1 runs/synthetic-torchflow-s2/split1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import results_dir, save_section  # noqa: E402
from ip_tsn.evaluation.scores import load_aligned  # noqa: E402
from ip_tsn.evaluation.stats import accuracy_ci, mean_ci, paired_difference  # noqa: E402


def _fail(message: str) -> None:
    """One line naming the problem, exit status 2 (nothing written)."""
    print(f"flow_teacher.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _seed(run_root: Path) -> int:
    config = run_root / "teacher" / "config.yaml"
    for line in (config.read_text().splitlines() if config.is_file() else []):
        if line.startswith("seed:"):
            return int(line.split(":", 1)[1])
    _fail(f"{config}: missing, or no top-level seed")
    return -1


def compare(opencv: list[Path], torch_runs: list[Path]) -> dict:
    """Per-seed and pooled comparison of the two teachers' test predictions (percent)."""
    rows, diffs = [], []
    for a, b in zip(opencv, torch_runs):
        seed = _seed(a)
        if _seed(b) != seed:
            _fail(f"{a} and {b}: different seeds ({seed}, {_seed(b)})")
        ids, scores, labels = load_aligned({"opencv": a / "teacher" / "scores_test.npz",
                                            "torch": b / "teacher" / "scores_test.npz"})
        right = {k: scores[k].argmax(1) == labels for k in scores}
        ocv, tch = accuracy_ci(right["opencv"]), accuracy_ci(right["torch"])
        rows.append({"seed": seed, "videos": len(ids), "opencv": list(ocv), "torch": list(tch),
                     "torch_minus_opencv": paired_difference(right["torch"], right["opencv"]),
                     "inside_opencv_ci": bool(ocv[1] <= tch[0] <= ocv[2]),
                     "opencv_run": str(a), "torch_run": str(b)})
        diffs.append(right["torch"].astype(float) - right["opencv"].astype(float))
    pooled = mean_ci(100.0 * np.mean(diffs, axis=0))
    return {"teacher": "experiments/teacher.yaml", "flow_params": "tvl1-tiny", "seeds": rows,
            "pooled_torch_minus_opencv": {"mean": pooled[0], "low": pooled[1], "high": pooled[2],
                                          "videos": len(diffs[0]), "seeds": len(rows)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opencv", nargs="+", type=Path, required=True, help="run roots, OpenCV flow")
    parser.add_argument("--torch", nargs="+", type=Path, required=True, help="run roots, torch flow, same seeds")
    args = parser.parse_args()
    if len(args.opencv) != len(args.torch):
        parser.error("--opencv and --torch need as many run roots each")
    for root in args.opencv + args.torch:
        if not (root / "teacher" / "scores_test.npz").is_file():
            parser.error(f"{root}/teacher/scores_test.npz: missing (train and test the teacher first)")
    result = compare(args.opencv, args.torch)
    save_section("flow_teacher", result)
    for row in result["seeds"]:
        print(f"seed {row['seed']}: OpenCV {row['opencv'][0]:.1f} [{row['opencv'][1]:.1f}, {row['opencv'][2]:.1f}]  "
              f"torch {row['torch'][0]:.1f} [{row['torch'][1]:.1f}, {row['torch'][2]:.1f}]  "
              f"inside: {row['inside_opencv_ci']}")
    p = result["pooled_torch_minus_opencv"]
    print(f"pooled torch - OpenCV: {p['mean']:+.1f} [{p['low']:+.1f}, {p['high']:+.1f}] ({results_dir() / 'flow_teacher.json'})")


if __name__ == "__main__":
    main()
