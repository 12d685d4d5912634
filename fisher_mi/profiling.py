"""Profile several labelled datasets in one go and write the results to a folder.

This is what ``fisher-mi profile`` and ``fisher-mi demo`` do: one Fisher table over all
splits (private, public, and extras such as an attack's reconstructions), saved as
``fisher.csv`` + ``fisher.json`` (what was run) + ``fisher.png`` (the per-layer figure).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

import fisher_mi
from fisher_mi.fisher.backends import BACKENDS
from fisher_mi.fisher.profile import COLUMNS, profile
from fisher_mi.io import write_json, write_table
from fisher_mi.report import plot_fisher_profile


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


def versions() -> dict[str, str]:
    """Versions of the software that produced a result, for the run record."""
    return {
        "fisher_mi": fisher_mi.__version__,
        "torch": torch.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_profile(
    run: ProfileRun, out: str | os.PathLike[str], *, record: Mapping[str, Any]
) -> dict[str, Path]:
    """Write ``fisher.csv``, ``fisher.json`` and ``fisher.png`` into ``out`` (atomically each).

    ``record`` adds what the caller knows (model path, data specs) to the JSON.
    """
    folder = Path(out)
    info = {
        **record,
        "splits": run.splits,
        **{key: str(value) if key == "device" else value for key, value in run.options.items()},
        "seconds": round(run.seconds, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    info.pop("progress", None)
    return {
        "csv": write_table(folder / "fisher.csv", run.table),
        "json": write_json(folder / "fisher.json", info),
        "png": plot_fisher_profile(
            run.table, folder / "fisher.png", title=str(record.get("model", ""))
        ),
    }


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
