"""Figures from fisher_mi's tables.

matplotlib and seaborn are imported when a figure is drawn, not when this module is: ``import
fisher_mi`` stays light and never chooses a backend (notebooks keep inline figures). Figures
are ``matplotlib.figure.Figure`` objects saved directly, so no pyplot state is touched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fisher_mi.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from fisher_mi.plan import FreezePlan

VALUE_LABELS = {
    "fisher_per_param": "Fisher information per parameter",
    "fisher_trace": "Fisher information (trace of layer block)",
}


@contextlib.contextmanager
def _layer_figure(
    rows: pd.DataFrame, order: Sequence[str], value: str, path: str | os.PathLike[str]
) -> Iterator[Axes]:
    """One line per split over the layers in ``order`` (log scale where values are positive),
    axes labelled; the caller adds to the axes, then the figure is saved atomically as PNG."""
    import seaborn as sns
    from matplotlib.figure import Figure

    width = min(max(6.0, 0.35 * len(order) + 2.0), 24.0)
    fig = Figure(figsize=(width, 4.2))
    ax = fig.subplots()
    sns.lineplot(
        data=rows,
        x=pd.Categorical(rows["layer"], categories=order, ordered=True).codes,
        y=value,
        hue="split",
        marker="o",
        ax=ax,
    )
    if (rows[value] > 0).any():
        ax.set_yscale("log", nonpositive="mask")
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order, rotation=60, ha="right", fontsize=8)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel(VALUE_LABELS.get(value, value))
    ax.grid(True, which="major", alpha=0.3)
    yield ax
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def plot_fisher_profile(
    table: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    value: str = "fisher_per_param",
    title: str | None = None,
) -> Path:
    """Per-layer Fisher information, one line per split, layers in depth order, log scale.

    This is the paper's per-layer FI figure: private data against public (and e.g. the
    reconstructions of an attack), showing in which layers the private data stand out.
    """
    order = table.sort_values("depth").drop_duplicates("layer")["layer"].tolist()
    with _layer_figure(table, order, value, path) as ax:
        if title:
            ax.set_title(title)
    return Path(path)


def plot_freeze_plan(
    table: pd.DataFrame,
    plan: FreezePlan,
    path: str | os.PathLike[str],
    *,
    value: str = "fisher_per_param",
    title: str | None = None,
) -> Path:
    """The per-layer Fisher profile (one line per split) with a freeze plan drawn on it.

    The frozen prefix (depth < cutoff) is shaded and a dashed line separates it from the
    fine-tuned layers, so the figure shows where the private data stand out against the
    public data relative to the layers the plan keeps at their public-pretrained values.
    """
    order = list(plan.layers)
    rows = table[table["layer"].isin(order)].reset_index(drop=True)
    with _layer_figure(rows, order, value, path) as ax:
        if plan.cutoff > 0:
            ax.axvspan(-0.5, plan.cutoff - 0.5, color="0.88", zorder=0, label="frozen")
        ax.axvline(plan.cutoff - 0.5, color="0.2", linestyle="--", label=f"cutoff {plan.cutoff}")
        ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_title(
            title
            or f"freeze plan: rule {plan.rule}, {len(plan.frozen)} frozen, "
            f"{len(plan.trained)} trained"
        )
        ax.legend(fontsize=8)
    return Path(path)
