"""The sweep figure: natural accuracy against attack top-1, one point per cutoff, the
undefended model as the reference point, and where each planner rule lands.

Drawn from ``experiments.sweep_stats.sweep_series`` (the points and their 95% bootstrap
intervals), so the figure and its test read the same series. matplotlib is imported when the
figure is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fisher_mi.experiments.sweep_stats import MAX_ACCURACY_COST
from fisher_mi.report.tradeoff import (
    error_bars,
    finish_panel,
    panels_figure,
    points_with_bars,
    reference_star,
    save_png,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REFERENCE_LABEL = "undefended (from scratch)"


def _panel(ax: Axes, points: pd.DataFrame, attack: str) -> None:
    """One attack: the TL points by cutoff, the reference star, the rules' labels."""
    tl = points[points["cutoff"].notna()].sort_values("cutoff")
    reference = points[points["cutoff"].isna()]
    points_with_bars(ax, tl, fmt="o-", capsize=3, label="TL-DMI at a cutoff")
    for _, point in tl.iterrows():
        text = f"{point['cutoff']} ({point['trainable_fraction']:.1%})"
        if point["rules"]:
            text += f"\n{point['rules']}"
        ax.annotate(
            text,
            (point["top1"], point["natural_accuracy"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    if not reference.empty:
        reference_star(ax, reference, REFERENCE_LABEL)
        ax.axhline(
            reference["natural_accuracy"].iloc[0] - MAX_ACCURACY_COST,
            color="0.5",
            linestyle=":",
            label=f"{MAX_ACCURACY_COST:.0%} below the undefended accuracy",
        )
    finish_panel(ax, points, attack, "cutoff (trained)")


def sweep_figure(series: pd.DataFrame) -> Figure:
    """The figure of ``sweep_series``: one panel per attack (module docstring)."""
    return panels_figure(series, _panel, width=6.0, height=4.8)


def plot_sweep(series: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Save ``sweep_figure(series)`` as PNG, atomically."""
    return save_png(sweep_figure(series), path)


BEST_LABEL = "best point"


def landings_figure(series: pd.DataFrame, landings: pd.DataFrame, best_cutoff: int) -> Figure:
    """Where the rules land on one attack's sweep: attack top-1 (top) and natural accuracy
    (bottom) against the cutoff, 95% intervals, the undefended model as a dashed line, the
    best point starred and one dotted vertical line per rule at its (first) cutoff, labelled
    ``rule: cutoffs`` and shifted right by 0.06 per rule so that rules landing on one cutoff
    stay visible. ``series``: one attack's ``sweep_series`` points; ``landings``:
    ``experiments.sweep_stats.rule_landings``."""
    from matplotlib.figure import Figure

    tl = series[series["cutoff"].notna()].sort_values("cutoff")
    reference = series[series["cutoff"].isna()]
    best = tl[tl["cutoff"] == best_cutoff]
    fig = Figure(figsize=(9.0, 6.0))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for ax, value, label in (
        (top, "top1", "attack top-1 (evaluator)"),
        (bottom, "natural_accuracy", "natural accuracy (private-test)"),
    ):
        ax.errorbar(
            tl["cutoff"],
            tl[value],
            yerr=error_bars(tl, value),
            fmt="o-",
            capsize=3,
            label="TL-DMI at a cutoff",
        )
        if not reference.empty:
            ax.axhline(
                reference[value].iloc[0],
                color="black",
                linestyle="--",
                linewidth=0.9,
                label=REFERENCE_LABEL,
            )
        ax.plot(
            best["cutoff"],
            best[value],
            "*",
            markersize=15,
            color="gold",
            markeredgecolor="black",
            label=BEST_LABEL,
        )
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    if not reference.empty:
        bottom.axhline(
            reference["natural_accuracy"].iloc[0] - MAX_ACCURACY_COST,
            color="0.5",
            linestyle=":",
            label=f"{MAX_ACCURACY_COST:.0%} below the undefended",
        )
    for index, landing in enumerate(landings.itertuples()):
        first = int(landing.cutoffs.split(",")[0])
        for ax in (top, bottom):
            ax.axvline(
                first + 0.06 * index,
                color=f"C{index + 1}",
                linestyle=":",
                label=f"{landing.rule}: {landing.cutoffs}",
            )
    top.set_title("where each rule lands (label: rule: cutoffs over seeds)", fontsize=9)
    bottom.set_xlabel("cutoff (layers frozen)")
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
