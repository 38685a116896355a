"""The package's rooms and their import rules (docs/DESIGN.md, "Rooms")."""

from __future__ import annotations

import os
import subprocess
import sys

import ip_tsn


def test_evaluation_loads_neither_lightning_nor_torch():
    code = ("import sys, ip_tsn.evaluation, ip_tsn.evaluation.report, ip_tsn.evaluation.splits, "
            "ip_tsn.evaluation.stats; "
            "print(' '.join(m for m in ('pytorch_lightning', 'lightning', 'torch', 'ip_tsn.lit', "
            "'ip_tsn.models') if m in sys.modules))")
    src = os.path.dirname(os.path.dirname(ip_tsn.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == []
