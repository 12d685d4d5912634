"""The Fisher table as the planner reads it: validated once, then read one split at a time.

The planner takes the long table written by ``fisher_mi.profile`` (one row per layer per
split). Everything a rule relies on is checked here, so each rule can assume a clean table:
the columns it reads are present and numeric, every split lists the same layers with depths
``0..n-1`` (the whole model, so the cutoff depth means the same thing in the table and in the
model), and Fisher values are finite and non-negative.

A split may be profiled with two estimators (``fisher="auto"`` gives reconstructions both the
empirical and the true Fisher), so the table's unit is a *series*, a (split, estimator) pair,
told apart by the ``fisher`` column. A rule reads one series per split, chosen explicitly
(``split_values``): the estimator asked for, or the split's only one, or, where there are
two, the one ``auto`` prefers for it (empirical on the model's own classes, true elsewhere).
Values of two estimators are never averaged. A table without a ``fisher`` column (one made by
hand) is one estimator, ``unspecified``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fisher_mi.errors import ConfigError, DataError
from fisher_mi.fisher.estimators import preferred_estimator
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
UNSPECIFIED = "unspecified"  # the estimator of a table without a ``fisher`` column
SERIES = ["split", "fisher"]


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
    estimator = table["fisher"].fillna(UNSPECIFIED) if "fisher" in table.columns else UNSPECIFIED
    table = table.assign(fisher=estimator).astype(
        {"layer": str, "split": str, "kind": str, "fisher": str}
    )
    _check_one_row_per_layer_and_series(table)
    _check_same_layers(table)
    return table.sort_values([*SERIES, "depth"], kind="stable").reset_index(drop=True)


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


def _check_one_row_per_layer_and_series(table: pd.DataFrame) -> None:
    repeated = table[table.duplicated([*SERIES, "layer"])]
    if not repeated.empty:
        row = repeated.iloc[0]
        raise ConfigError(
            f"the Fisher table has several rows for layer {row['layer']!r} in split "
            f"{row['split']!r} with estimator {row['fisher']!r}; give one profile per split "
            "and estimator (e.g. one backend)"
        )


def _check_same_layers(table: pd.DataFrame) -> None:
    """Every series lists the same layers at the same depths, and the depths are 0..n-1."""
    reference: list[tuple[str, int]] | None = None
    for (split, _), rows in table.groupby(SERIES, sort=True):
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


def _first_series(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the table's first (split, estimator), in depth order."""
    first = table.iloc[0]
    chosen = (table["split"] == first["split"]) & (table["fisher"] == first["fisher"])
    return table[chosen].sort_values("depth")


def layer_names(table: pd.DataFrame) -> list[str]:
    """Layer names in depth order (of a table that passed ``check_table``)."""
    return _first_series(table)["layer"].tolist()


def layer_column(table: pd.DataFrame, column: str) -> np.ndarray:
    """A per-layer column that is the same in every split (``n_params``, ``kind``)."""
    return _first_series(table)[column].to_numpy()


def splits(table: pd.DataFrame) -> list[str]:
    """The table's split names, sorted."""
    return sorted(table["split"].unique())


def has_split(table: pd.DataFrame, split: str) -> bool:
    """Whether the table has rows of ``split``."""
    return bool((table["split"] == split).any())


def estimators_of(table: pd.DataFrame, split: str) -> list[str]:
    """The estimators the rows of ``split`` use, in table order (of a checked table)."""
    return list(dict.fromkeys(table.loc[table["split"] == split, "fisher"]))


def split_estimator(
    table: pd.DataFrame, split: str, *, rule: str, fisher: str | None = None
) -> str:
    """The estimator a rule reads ``split`` with: ``fisher`` when given (it must be there),
    else the split's only one, else the one ``auto`` prefers for the split; a missing split
    or estimator is one ``ConfigError``."""
    present = estimators_of(table, split)
    if not present:
        raise ConfigError(
            f"rule {rule!r} needs the {split!r} split but the Fisher table has only "
            f"{', '.join(splits(table))}; profile both: "
            "`fisher-mi profile MODEL --data SPEC --splits private,public`"
        )
    if fisher is None and len(present) == 1:
        return present[0]
    wanted = fisher if fisher is not None else preferred_estimator(split)
    if wanted not in present:
        raise ConfigError(
            f"rule {rule!r} reads split {split!r} with the {wanted} Fisher, but its rows use "
            f"{', '.join(present)}; pass fisher=ESTIMATOR (one of those) or profile it again"
        )
    return wanted


def split_values(
    table: pd.DataFrame, split: str, column: str, *, rule: str, fisher: str | None = None
) -> np.ndarray:
    """``column`` of ``split`` in depth order, as float64, of the one estimator
    ``split_estimator`` chooses; refuse a missing split."""
    estimator = split_estimator(table, split, rule=rule, fisher=fisher)
    rows = table[(table["split"] == split) & (table["fisher"] == estimator)]
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
