"""Markdown pieces of the report: numbers printed the one way (6 decimals, so a report checks
against a re-scoring to 1e-6) and pipe tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

# the run lengths a sweep's or comparison's settings hold, in the order a protocol line says them
LENGTHS = ("pretrain_epochs", "head_epochs", "epochs", "max_steps", "gan_steps", "iterations",
           "per_identity", "profile_samples")  # fmt: skip


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


def with_interval(point: pd.Series, value: str) -> str:
    """``mean [low, high]`` from a series point's ``value``, ``value_low`` and ``value_high``
    (``mean`` alone where one seed gives no interval)."""
    low, high = point[f"{value}_low"], point[f"{value}_high"]
    mean = number(float(point[value]))
    return mean if pd.isna(low) else f"{mean} [{number(float(low))}, {number(float(high))}]"


def seeds(n: int) -> str:
    """``1 seed``, ``5 seeds``."""
    return f"{n} seed{'s' if n != 1 else ''}"


def lengths(settings: Mapping[str, Any]) -> str:
    """The run lengths of an experiment's settings (``LENGTHS``), those given, and what the
    attack iterations are when none is given."""
    given = [key for key in LENGTHS if settings.get(key) is not None]
    text = ", ".join(f"{key.replace('_', ' ')} {settings[key]}" for key in given)
    default = " (attack iterations: each method's default)"
    return text + ("" if settings.get("iterations") else default)
