"""Markdown helpers of the report writers: numbers with a few significant digits, percentages, tables."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def f(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, no scientific notation for ordinary sizes; ``-`` for
    None or a non-finite value."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if x == 0:
        return "0"
    magnitude = int(math.floor(math.log10(abs(x))))
    decimals = max(0, digits - 1 - magnitude)
    return f"{x:,.{decimals}f}"


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal (``0.123`` -> ``12.3``); ``-`` for None."""
    return "-" if x is None else f"{100 * x:.1f}"


def table(header: list[str], rows: list[list], left: int = 1) -> str:
    """A markdown table; the first ``left`` columns left-aligned, the rest right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def med(values: Iterable[float | None]) -> float:
    """Median of the finite values; NaN if there is none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(finite)) if finite else float("nan")


def listing(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


__all__ = ["f", "listing", "med", "pct", "table"]
