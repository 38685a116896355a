"""The pre-registered data checks of a design draw, from single streams only (issue 19).

A benchmark version is fixed by properties of single streams on the validation split, before any
distilled or fused number exists: this reads the teacher's, plain P's and the I-stream's validation
scores and the teacher cache's ``targets.json`` of one run folder and prints the checks table
(``ip_tsn.evaluation.checks.data_checks``), plus the teacher's targets on train and val rows. It
never opens a student's or a fusion's file.

    python benchmarks/design_checks.py runs/synthetic-d7-s0/split1 --data data/synthetic-d7 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ip_tsn.data.datasets import load_classes
from ip_tsn.evaluation.checks import Roles, data_checks, load_groups
from ip_tsn.evaluation.report import checks_markdown
from ip_tsn.evaluation.scores import load_aligned

STREAMS = {"teacher": "teacher", "plain": "pstream", "appearance": "istream"}


def design_checks(run_root: str | Path, data_root: str | Path) -> dict:
    """``{"checks": ..., "targets": ..., "val_top1": {stream: %}}`` of one design run."""
    run_root, data_root = Path(run_root), Path(data_root)
    paths = {name: run_root / folder / "scores_val.npz" for name, folder in STREAMS.items()}
    _, scores, labels = load_aligned(paths)
    classes = load_classes("synthetic", str(data_root), 1)
    groups, note = load_groups(data_root / "synthetic.json")
    targets_file = run_root / "teacher_cache" / "targets.json"
    targets = json.loads(targets_file.read_text()) if targets_file.is_file() else None
    roles = Roles(plain="plain", teacher="teacher", appearance="appearance")
    checks = data_checks(scores, labels, classes, roles, groups, note, None, targets)
    top1 = {s: 100.0 * float((v.argmax(1) == labels).mean()) for s, v in scores.items()}
    return {"checks": checks, "targets": targets, "val_top1": top1}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_root")
    p.add_argument("--data", required=True, help="the draw's data root (synthetic.json, splits)")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()
    res = design_checks(args.run_root, args.data)
    print("\n".join(checks_markdown(res["checks"])))
    print("\nval top-1 (%): " + ", ".join(f"{k} {v:.1f}" for k, v in res["val_top1"].items()))
    for subset, st in (res["targets"] or {}).items():
        print(f"teacher targets, {subset} rows: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                                             for k, v in st.items()))
    if args.json:
        from ip_tsn.atomic import write_json_atomic

        write_json_atomic(args.json, res)


if __name__ == "__main__":
    main()
