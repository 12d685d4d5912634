"""Figures from fisher_mi's tables.

matplotlib is imported when a figure is drawn, not when this module is: ``import
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

from fisher_mi.fisher.splits import series_labels, shares
from fisher_mi.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from fisher_mi.plan import FreezePlan

VALUE_LABELS = {
    "fisher_per_param": "Fisher information per parameter",
    "fisher_trace": "Fisher information (trace of layer block)",
}
SHARE_LABEL = "share of the series' Fisher mass (trace / total)"


@contextlib.contextmanager
def _layer_figure(
    order: Sequence[str], path: str | os.PathLike[str], *, panels: int = 1
) -> Iterator[list[Axes]]:
    """``panels`` axes stacked over the layers in ``order`` (ticks and labels set after the
    caller has drawn); the figure is then saved atomically as PNG."""
    from matplotlib.figure import Figure

    width = min(max(6.0, 0.35 * len(order) + 2.0), 24.0)
    fig = Figure(figsize=(width, 1.0 + 3.4 * panels))
    axes = list(fig.subplots(panels, 1, squeeze=False, sharex=True)[:, 0])
    yield axes
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
    axes[-1].set_xticks(range(len(order)))
    axes[-1].set_xticklabels(order, rotation=60, ha="right", fontsize=8)
    axes[-1].set_xlabel("layer (input → output)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def _series_lines(ax: Axes, rows: pd.DataFrame, order: Sequence[str], values: pd.Series) -> None:
    """One line per series (``split (estimator)``) of ``values`` over the layers in ``order``,
    log scale where values are positive. Each point is one table row: a split profiled with
    two estimators is two lines, never their average."""
    labels = series_labels(rows)
    position = pd.Categorical(rows["layer"], categories=order, ordered=True).codes
    for label in dict.fromkeys(labels):
        chosen = (labels == label).to_numpy()
        ranked = sorted(zip(position[chosen], values[chosen], strict=True))
        ax.plot(*zip(*ranked, strict=True), marker="o", label=label)
    if (values > 0).any():
        ax.set_yscale("log", nonpositive="mask")
    ax.legend(title="split (Fisher estimator)", fontsize=8, title_fontsize=8)


def plot_fisher_profile(
    table: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    value: str = "fisher_per_param",
    title: str | None = None,
) -> Path:
    """Per-layer Fisher information, one line per split and estimator, layers in depth order.

    This is the paper's per-layer FI figure: private data against public (and e.g. the
    reconstructions of an attack), showing in which layers the private data stand out. The
    top panel shows ``value`` (log scale); the bottom one each layer's share of its series'
    Fisher mass (``fisher_mi.fisher.shares``), so that the shapes of splits whose overall
    scale differs (another estimator, other data) compare. The legend names each split's
    estimator.
    """
    rows = table.reset_index(drop=True)
    order = rows.sort_values("depth").drop_duplicates("layer")["layer"].tolist()
    with _layer_figure(order, path, panels=2) as (absolute, normalised):
        _series_lines(absolute, rows, order, rows[value])
        absolute.set_ylabel(VALUE_LABELS.get(value, value))
        _series_lines(normalised, rows, order, shares(rows))
        normalised.set_ylabel(SHARE_LABEL)
        if title:
            absolute.set_title(title)
    return Path(path)


def plot_freeze_plan(
    table: pd.DataFrame,
    plan: FreezePlan,
    path: str | os.PathLike[str],
    *,
    value: str = "fisher_per_param",
    title: str | None = None,
) -> Path:
    """The per-layer Fisher profile (one line per split and estimator) with a freeze plan.

    The frozen prefix (depth < cutoff) is shaded and a dashed line separates it from the
    fine-tuned layers, so the figure shows where the private data stand out against the
    public data relative to the layers the plan keeps at their public-pretrained values.
    """
    order = list(plan.layers)
    rows = table[table["layer"].isin(order)].reset_index(drop=True)
    with _layer_figure(order, path) as (ax,):
        _series_lines(ax, rows, order, rows[value])
        ax.set_ylabel(VALUE_LABELS.get(value, value))
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
