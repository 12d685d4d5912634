"""The Fisher table as the planner reads it: validated once, then read one split at a time.

The planner takes the long table written by ``fisher_mi.profile`` (one row per layer per
split). Everything a rule relies on is checked here, so each rule can assume a clean table:
the columns it reads are present and numeric, every split lists the same layers with depths
``0..n-1`` (the whole model, so the cutoff depth means the same thing in the table and in the
model), and Fisher values are finite and non-negative.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fisher_mi.errors import ConfigError, DataError
from fisher_mi.io import read_table

PRIVATE = "private"
PUBLIC = "public"
REQUIRED_COLUMNS = (
    "layer",
    "depth",
    "kind",
    "n_params",
    "split",
    "fisher_trace",
    "fisher_per_param",
)
NUMERIC_COLUMNS = ("depth", "n_params", "fisher_trace", "fisher_per_param")
FISHER_COLUMNS = ("fisher_trace", "fisher_per_param")
REMAKE = "write the table with `fisher-mi profile` (or fisher_mi.profile)"


def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """Refuse a table the rules cannot read; return its rows sorted by split, then depth."""
    if not isinstance(table, pd.DataFrame):
        raise ConfigError(
            f"the Fisher table must be a pandas DataFrame, got {type(table).__name__}"
        )
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ConfigError(f"the Fisher table lacks the columns {', '.join(missing)}; {REMAKE}")
    if table.empty:
        raise ConfigError(f"the Fisher table has no rows; {REMAKE}")
    for column in NUMERIC_COLUMNS:
        _check_numeric(table, column)
    for column in FISHER_COLUMNS:
        _check_non_negative(table, column)
    small = table[table["n_params"] < 1]
    if not small.empty:
        raise ConfigError(
            f"layer {small['layer'].iloc[0]!r} has n_params {small['n_params'].iloc[0]}; "
            f"every layer owns at least one parameter: {REMAKE}"
        )
    table = table.astype({"layer": str, "split": str, "kind": str})
    _check_one_row_per_layer_and_split(table)
    _check_same_layers(table)
    return table.sort_values(["split", "depth"], kind="stable").reset_index(drop=True)


def _check_numeric(table: pd.DataFrame, column: str) -> None:
    """Refuse a column with a cell that is not a number, naming the first such row."""
    if pd.api.types.is_numeric_dtype(table[column]):
        return
    parsed = pd.to_numeric(table[column], errors="coerce")
    position = int(np.flatnonzero(parsed.isna().to_numpy())[0]) if parsed.isna().any() else 0
    row = table.iloc[position]
    raise ConfigError(
        f"the Fisher table's {column!r} is {row[column]!r}, not a number, in row {position + 1} "
        f"(layer {row.get('layer')!r}, split {row.get('split')!r}); {REMAKE}"
    )


def _check_non_negative(table: pd.DataFrame, column: str) -> None:
    values = table[column].to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row = table[bad].iloc[0]
        raise ConfigError(
            f"the Fisher table has {column} = {row[column]} for layer {row['layer']!r} in split "
            f"{row['split']!r}; Fisher values are finite and non-negative: {REMAKE}"
        )


def _check_one_row_per_layer_and_split(table: pd.DataFrame) -> None:
    repeated = table[table.duplicated(["split", "layer"])]
    if not repeated.empty:
        row = repeated.iloc[0]
        raise ConfigError(
            f"the Fisher table has several rows for layer {row['layer']!r} in split "
            f"{row['split']!r}; give one profile per split (e.g. one estimator, one backend)"
        )


def _check_same_layers(table: pd.DataFrame) -> None:
    """Every split lists the same layers at the same depths, and the depths are 0..n-1."""
    reference: list[tuple[str, int]] | None = None
    for split, rows in table.groupby("split", sort=True):
        layers = sorted(zip(rows["depth"].astype(int), rows["layer"], strict=True))
        current = [(name, depth) for depth, name in layers]
        if reference is None:
            reference, first = current, split
            continue
        if current != reference:
            raise ConfigError(
                f"splits {first!r} and {split!r} of the Fisher table list different layers; "
                "profile every split with the same model"
            )
    assert reference is not None
    depths = [depth for _, depth in reference]
    if depths != list(range(len(depths))):
        raise ConfigError(
            f"the Fisher table's depths are {few(depths)}, not 0..{len(depths) - 1}; a plan "
            "covers every layer: profile the whole model (without --trainable-only)"
        )


def read_fisher_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Fisher table from CSV; a missing path, a folder or an unreadable file is one
    ``DataError`` naming it (the rules check the table's contents: ``check_table``)."""
    source = Path(path)
    if source.is_dir():
        raise DataError(
            f"Fisher table {source} is a folder; give the table itself, e.g. "
            f"{source / 'fisher.csv'}"
        )
    if not source.is_file():
        raise DataError(f"Fisher table {source} does not exist; {REMAKE}")
    try:
        return read_table(source)
    except (ValueError, UnicodeDecodeError) as err:  # pandas parser errors are ValueErrors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"Fisher table {source} is not a readable CSV ({reason}); {REMAKE}"
        ) from None


def layer_names(table: pd.DataFrame) -> list[str]:
    """Layer names in depth order (of a table that passed ``check_table``)."""
    first = table[table["split"] == table["split"].iloc[0]]
    return first.sort_values("depth")["layer"].tolist()


def layer_column(table: pd.DataFrame, column: str) -> np.ndarray:
    """A per-layer column that is the same in every split (``n_params``, ``kind``)."""
    first = table[table["split"] == table["split"].iloc[0]]
    return first.sort_values("depth")[column].to_numpy()


def splits(table: pd.DataFrame) -> list[str]:
    """The table's split names, sorted."""
    return sorted(table["split"].unique())


def has_split(table: pd.DataFrame, split: str) -> bool:
    """Whether the table has rows of ``split``."""
    return bool((table["split"] == split).any())


def split_values(table: pd.DataFrame, split: str, column: str, *, rule: str) -> np.ndarray:
    """``column`` of ``split`` in depth order, as float64; refuse a missing split."""
    rows = table[table["split"] == split]
    if rows.empty:
        raise ConfigError(
            f"rule {rule!r} needs the {split!r} split but the Fisher table has only "
            f"{', '.join(splits(table))}; profile both: "
            "`fisher-mi profile MODEL --data SPEC --splits private,public`"
        )
    return rows.sort_values("depth")[column].to_numpy(dtype=np.float64)


def require_mass(values: np.ndarray, *, split: str, rule: str) -> float:
    """The total of ``values``; refuse zero everywhere (no layer can be told from another)."""
    total = float(values.sum())
    if total <= 0.0:
        raise ConfigError(
            f"the {split} Fisher information is zero in every layer, so rule {rule!r} has "
            "nothing to rank; check the model and data (a model with zero loss gradient) or "
            "choose the layers by hand with rule 'fixed'"
        )
    return total


def few(items: Sequence[object], limit: int = 4) -> str:
    """``a, b, c, d (and 3 more)``: enough to recognise a list in a one-line message."""
    shown = ", ".join(str(item) for item in items[:limit])
    return shown if len(items) <= limit else f"{shown} (and {len(items) - limit} more)"
