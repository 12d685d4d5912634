"""Profile several labelled datasets in one go: one Fisher table over all splits.

This is the computation behind ``fisher-mi profile`` and ``fisher-mi demo`` (private, public,
and extras such as an attack's reconstructions); ``fisher_mi.report.write_profile`` saves it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from torch import nn
from torch.utils.data import Dataset

from fisher_mi.fisher.backends import BACKENDS
from fisher_mi.fisher.profile import COLUMNS, profile


@dataclass
class ProfileRun:
    """The table of a multi-split profile and the facts needed to reproduce it."""

    table: pd.DataFrame
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def profile_splits(
    model: nn.Module,
    datasets: Mapping[str, Dataset],
    **options: Any,
) -> ProfileRun:
    """``profile`` each named dataset (name -> split label) and stack the tables.

    ``ProfileRun.splits`` records, per split, its sample count, seconds and the estimators
    its rows use (``fisher``: a list, two for reconstructions under ``fisher="auto"``, the
    default); ``options`` keeps the requested ``fisher`` (e.g. ``auto``).
    """
    if options.get("device") is None:  # record where it ran, not "None"
        options["device"] = next(model.parameters()).device
    options["backend"] = BACKENDS.resolve(options.get("backend", "auto"))  # what ran, not "auto"
    options.setdefault("fisher", inspect.signature(profile).parameters["fisher"].default)
    tables, splits = [], {}
    start = time.perf_counter()
    for split, dataset in datasets.items():
        split_start = time.perf_counter()
        table = profile(model, dataset, split=split, **options)
        tables.append(table)
        splits[split] = {
            "n_samples": int(table["n_samples"].iloc[0]),
            "seconds": round(time.perf_counter() - split_start, 3),
            "fisher": list(dict.fromkeys(table["fisher"])),
        }
    table = pd.concat(tables, ignore_index=True)[COLUMNS]
    return ProfileRun(table, splits, dict(options), time.perf_counter() - start)


def series_labels(table: pd.DataFrame) -> pd.Series:
    """Each row's series: ``split (estimator)``, e.g. ``public (true)``; the split alone for a
    table without a ``fisher`` column. A split profiled with two estimators is two series,
    never one average of both."""
    if "fisher" not in table.columns:
        return table["split"].astype(str)
    return table["split"].astype(str) + " (" + table["fisher"].astype(str) + ")"


def shares(table: pd.DataFrame, value: str = "fisher_trace") -> pd.Series:
    """``value`` divided by its series' total Fisher, sum_l fisher_trace_l (NaN where that is 0).

    For ``fisher_trace`` this is the share of the series' Fisher mass in each layer (it sums
    to 1); for ``fisher_per_param`` the share per parameter. Dividing each split by its own
    total removes the splits' overall scale (public data under the true Fisher, say, sit far
    above the private data everywhere), so the *shapes* of the profiles compare: where, not how
    much. Derived where shown, never a column of the table (``COLUMNS``).
    """
    totals = table.groupby(series_labels(table), sort=False)["fisher_trace"].transform("sum")
    return table[value] / totals.where(totals > 0)


def summary(table: pd.DataFrame) -> str:
    """A compact text table: one row per layer, one column per series (``series_labels``):
    Fisher per parameter, then each layer's share of its series' Fisher mass (``shares``)."""
    labelled = table.assign(series=series_labels(table), share=shares(table))
    blocks = [
        ("Fisher per parameter", "fisher_per_param"),
        ("share of each series' Fisher mass, fisher_trace / sum (shapes compare)", "share"),
    ]
    return "\n\n".join(f"{title}\n{_wide(labelled, column)}" for title, column in blocks)


def _wide(labelled: pd.DataFrame, value: str) -> str:
    """One row per layer in depth order, one column per series in the table's order; a
    repeated (layer, series) is refused by ``pivot``, never averaged."""
    wide = labelled.pivot(
        index=["depth", "layer", "kind", "n_params"], columns="series", values=value
    )
    wide = wide.sort_index(level="depth")[list(dict.fromkeys(labelled["series"]))]
    wide.columns.name = None
    return wide.reset_index(level="depth", drop=True).to_string(float_format=lambda v: f"{v:.3g}")
