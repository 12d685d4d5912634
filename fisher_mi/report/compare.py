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

from fisher_mi.experiments.compare import base_attack
from fisher_mi.experiments.compare_config import NONE
from fisher_mi.experiments.stages import SAMPLE_HEAD, has_option
from fisher_mi.report.tradeoff import (
    finish_panel,
    panels_figure,
    points_with_bars,
    reference_star,
    save_png,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REFERENCE_LABEL = "none (undefended, from scratch)"


def _curve(ax: Axes, points: pd.DataFrame, defense: str, colour: str) -> None:
    """One defense: its strengths joined in order, each labelled with its parameters."""
    points_with_bars(ax, points, fmt="o-", capsize=3, color=colour, label=defense)
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
        reference_star(ax, reference, REFERENCE_LABEL)
    finish_panel(ax, points, attack, "strength")


def sampled_as_curves(series: pd.DataFrame) -> pd.DataFrame:
    """``series`` with each ``NAME+sample`` point moved into ``NAME``'s panel as a curve of
    its own, ``DEFENSE (sampled head)``, beside the same undefended reference."""
    sampled = series["attack"].map(lambda attack: has_option(attack, SAMPLE_HEAD)).astype(bool)
    moved = series.copy()
    moved.loc[sampled, "defense"] = moved.loc[sampled, "defense"] + " (sampled head)"
    moved["attack"] = moved["attack"].map(base_attack)
    return moved


def compare_figure(series: pd.DataFrame) -> Figure:
    """The figure of ``compare_series``: one panel per attack (module docstring), MID's
    sampled-head points as their own curves (``sampled_as_curves``)."""
    return panels_figure(sampled_as_curves(series), _panel, width=6.5, height=5.0)


def plot_compare(series: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Save ``compare_figure(series)`` as PNG, atomically."""
    return save_png(compare_figure(series), path)
