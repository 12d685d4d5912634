"""Profile several labelled datasets in one go: one Fisher table over all splits.

This is the computation behind ``fisher-mi profile`` and ``fisher-mi demo`` (private, public,
and extras such as an attack's reconstructions); ``fisher_mi.report.write_profile`` saves it.
"""

from __future__ import annotations

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
    """``profile`` each named dataset (name -> split label) and stack the tables."""
    if options.get("device") is None:  # record where it ran, not "None"
        options["device"] = next(model.parameters()).device
    options["backend"] = BACKENDS.resolve(options.get("backend", "auto"))  # what ran, not "auto"
    tables, splits = [], {}
    start = time.perf_counter()
    for split, dataset in datasets.items():
        split_start = time.perf_counter()
        table = profile(model, dataset, split=split, **options)
        tables.append(table)
        splits[split] = {
            "n_samples": int(table["n_samples"].iloc[0]),
            "seconds": round(time.perf_counter() - split_start, 3),
        }
    table = pd.concat(tables, ignore_index=True)[COLUMNS]
    return ProfileRun(table, splits, dict(options), time.perf_counter() - start)


def summary(table: pd.DataFrame) -> str:
    """A compact text table: one row per layer, Fisher per parameter for each split."""
    wide = table.pivot_table(
        index=["depth", "layer", "kind", "n_params"],
        columns="split",
        values="fisher_per_param",
        sort=False,
    )
    wide.columns.name = "Fisher per parameter"
    return wide.reset_index(level="depth", drop=True).to_string(float_format=lambda v: f"{v:.3g}")
