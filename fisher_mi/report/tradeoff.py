"""What the sweep and comparison figures share: natural accuracy (y) against attack top-1 (x),
one panel per attack, interval error bars, the undefended model as a black star, and the PNG
written atomically. Each figure supplies only how it draws one attack's points."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fisher_mi.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 120


def error_bars(points: pd.DataFrame, value: str) -> list[list[float]] | None:
    """Asymmetric error bars from the interval columns (None where there is no interval)."""
    low, high = points[f"{value}_low"], points[f"{value}_high"]
    if low.isna().all():
        return None
    return [(points[value] - low).fillna(0).tolist(), (high - points[value]).fillna(0).tolist()]


def points_with_bars(ax: Axes, points: pd.DataFrame, **style: object) -> None:
    """``points`` at (top-1, natural accuracy), with their intervals as error bars."""
    ax.errorbar(
        points["top1"],
        points["natural_accuracy"],
        xerr=error_bars(points, "top1"),
        yerr=error_bars(points, "natural_accuracy"),
        **style,
    )


def reference_star(ax: Axes, reference: pd.DataFrame, label: str) -> None:
    """The undefended model's point (its first row) as a black star."""
    points_with_bars(ax, reference.iloc[:1], fmt="*", markersize=14, color="black", label=label)


def finish_panel(ax: Axes, points: pd.DataFrame, attack: str, labels: str) -> None:
    """Title (the attack, the number of seeds, what the point labels say), axes, legend."""
    seeds = int(points["n_seeds"].max())
    ax.set_title(f"{attack} ({seeds} seed{'s' if seeds > 1 else ''}; labels: {labels})")
    ax.set_xlabel("attack top-1 (evaluator)")
    ax.set_ylabel("natural accuracy (private-test)")
    ax.grid(True, alpha=0.3)
    # below the axes, never over a point (the undefended star often sits in a corner)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)


def panels_figure(
    series: pd.DataFrame,
    panel: Callable[[Axes, pd.DataFrame, str], None],
    *,
    width: float,
    height: float,
) -> Figure:
    """One panel per attack of ``series`` (in order of appearance), drawn by ``panel``."""
    from matplotlib.figure import Figure

    attacks = list(dict.fromkeys(series["attack"]))
    fig = Figure(figsize=(width * len(attacks), height), layout="constrained")
    axes = fig.subplots(1, len(attacks), squeeze=False)[0]
    for ax, attack in zip(axes, attacks, strict=True):
        panel(ax, series[series["attack"] == attack], attack)
    return fig


def save_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as PNG at ``path``, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)
