"""The comparison figure: natural accuracy against attack top-1, one curve per defense across its
strengths (weakest to strongest as ``compare_series`` orders them), the undefended model as
the reference point, 95% bootstrap intervals over seeds where there are two or more.

Drawn from ``experiments.compare.compare_series``, so the figure and its test read the same
points. matplotlib is imported when the figure is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fisher_mi.experiments.compare_config import NONE
from fisher_mi.io import atomic_path
from fisher_mi.report.sweep import error_bars

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REFERENCE_LABEL = "none (undefended, from scratch)"


def _curve(ax: Axes, points: pd.DataFrame, defense: str, colour: str) -> None:
    """One defense: its strengths joined in order, each labelled with its parameters."""
    ax.errorbar(
        points["top1"],
        points["natural_accuracy"],
        xerr=error_bars(points, "top1"),
        yerr=error_bars(points, "natural_accuracy"),
        fmt="o-",
        capsize=3,
        color=colour,
        label=defense,
    )
    for _, point in points.iterrows():
        if point["params"]:
            ax.annotate(
                point["params"],
                (point["top1"], point["natural_accuracy"]),
                fontsize=6,
                color=colour,
                xytext=(4, 4),
                textcoords="offset points",
            )


def _panel(ax: Axes, points: pd.DataFrame, attack: str) -> None:
    """One attack: a curve per defense, the undefended star."""
    defenses = [d for d in dict.fromkeys(points["defense"]) if d != NONE]
    for index, defense in enumerate(defenses):
        _curve(ax, points[points["defense"] == defense], defense, f"C{index}")
    reference = points[points["defense"] == NONE]
    if not reference.empty:
        ax.errorbar(
            reference["top1"],
            reference["natural_accuracy"],
            xerr=error_bars(reference, "top1"),
            yerr=error_bars(reference, "natural_accuracy"),
            fmt="*",
            markersize=14,
            color="black",
            label=REFERENCE_LABEL,
        )
    seeds = int(points["n_seeds"].max())
    ax.set_title(f"{attack} ({seeds} seed{'s' if seeds > 1 else ''}; labels: strength)")
    ax.set_xlabel("attack top-1 (evaluator)")
    ax.set_ylabel("natural accuracy (private-test)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def compare_figure(series: pd.DataFrame) -> Figure:
    """The figure of ``compare_series``: one panel per attack (module docstring)."""
    from matplotlib.figure import Figure

    attacks = list(dict.fromkeys(series["attack"]))
    fig = Figure(figsize=(6.5 * len(attacks), 5.0))
    axes = fig.subplots(1, len(attacks), squeeze=False)[0]
    for ax, attack in zip(axes, attacks, strict=True):
        _panel(ax, series[series["attack"] == attack], attack)
    fig.tight_layout()
    return fig


def plot_compare(series: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Save ``compare_figure(series)`` as PNG, atomically."""
    fig = compare_figure(series)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(path)
