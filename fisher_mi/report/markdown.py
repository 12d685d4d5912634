"""Markdown pieces of the report: numbers printed the one way (6 decimals, so a report checks
against a re-scoring to 1e-6) and pipe tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def number(value: float | None) -> str:
    """``value`` with 6 decimals; ``n/a`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.6f}"


def rate(entry: dict[str, Any] | None) -> str:
    """The ``mean`` of a ``{per_draw, mean, std}`` entry of ``metrics.json``."""
    return "n/a" if entry is None else number(entry["mean"])


def pipe_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A pipe table: the header, the separator, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
