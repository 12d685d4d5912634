"""An experiment's tables on disk and how it resumes: a results table (``sweep.csv``,
``compare.csv``) and its per-image hits (``hits.csv``) read back with their types, a unit whose
rows are there counted as done, the rows of finished units added (each table rewritten
atomically), and a folder whose rows were computed with other settings refused
(``settings.json``).

One ``Layout`` per experiment says which files and columns it keeps and which columns name a
unit (the sweep: cutoff and seed; the comparison: defense, params and seed); the functions
here are the same for all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from fisher_mi.distributed import is_main_process
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.sweep_config import Unit
from fisher_mi.io import write_json, write_table

COLUMNS = (
    "cutoff",
    "block",
    "trainable_fraction",
    "seed",
    "natural_accuracy",
    "attack",
    "top1",
    "top5",
    "knn_sq",
    "rule",
)
HIT_COLUMNS = ("cutoff", "seed", "attack", "identity", "draw", "top1")
SWEEP_CSV, HITS_CSV, SWEEP_JSON, SETTINGS_JSON = (
    "sweep.csv",
    "hits.csv",
    "sweep.json",
    "settings.json",
)
SWEEP_PNG = "sweep.png"  # drawn by fisher_mi.report.plot_sweep (report comes after experiments)
INTEGER_COLUMNS = ("cutoff", "block")  # whole numbers with gaps (the undefended model has none)


@dataclass(frozen=True)
class Layout:
    """The tables of one kind of experiment.

    Attributes:
        table: the results file (``sweep.csv``) and ``columns``, its columns in order.
        hits: the per-image file (``hits.csv``) and ``hit_columns``.
        text: columns read as text (an empty cell is an empty text, not a gap).
        key: a unit's identifying columns and values (``{"cutoff": 4, "seed": 0}``); a value
            None matches a gap.
    """

    table: str
    columns: tuple[str, ...]
    hits: str
    hit_columns: tuple[str, ...]
    text: tuple[str, ...]
    key: Callable[[Any], Mapping[str, Any]]


def _sweep_key(unit: Unit) -> dict[str, Any]:
    return {"cutoff": unit.cutoff, "seed": unit.seed}


SWEEP = Layout(SWEEP_CSV, COLUMNS, HITS_CSV, HIT_COLUMNS, ("attack", "rule"), _sweep_key)


class RowSource(Protocol):
    """What gives a finished unit's rows (``Sweep.unit_rows``, ``Compare.unit_rows``)."""

    def unit_rows(self, unit: Any) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
        """The unit's table rows and its per-image hits."""


class HasSettings(Protocol):
    """A config that says what its rows' numbers depend on."""

    def settings(self) -> dict[str, Any]:
        """The settings (plain data) rows computed under them share."""


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: its table, per-image hits, verdicts by attack, files."""

    table: pd.DataFrame
    hits: pd.DataFrame
    verdicts: dict[str, dict[str, Any]]
    files: list[Path]


def read_rows(path: Path, columns: Iterable[str], text: Sequence[str] = SWEEP.text) -> pd.DataFrame:
    """A results or hits table as written (empty with ``columns`` when absent): ``text``
    columns kept as text, an empty cell elsewhere a gap."""
    if not path.is_file():
        return pd.DataFrame(columns=list(columns))
    header = pd.read_csv(path, nrows=0).columns
    missing = {column: [""] for column in header if column not in text}
    table = pd.read_csv(
        path, keep_default_na=False, na_values=missing, dtype=dict.fromkeys(text, str)
    )
    return typed(table)


def read_tables(out: Path, layout: Layout) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The results table and the hits of the experiment in ``out``."""
    return (
        read_rows(out / layout.table, layout.columns, layout.text),
        read_rows(out / layout.hits, layout.hit_columns, layout.text),
    )


def typed(table: pd.DataFrame) -> pd.DataFrame:
    """Cutoff and block as whole numbers with gaps (the undefended model has neither)."""
    present = [c for c in INTEGER_COLUMNS if c in table.columns]
    return table.astype({c: "Int64" for c in present})


def of_key(table: pd.DataFrame, key: Mapping[str, Any]) -> pd.Series:
    """Which rows of a results or hits table have the values of ``key`` (None: a gap)."""
    chosen = pd.Series(True, index=table.index)
    for column, value in key.items():
        cells = table[column].astype("Int64") if column in INTEGER_COLUMNS else table[column]
        same = cells.isna() if value is None else cells == value
        chosen &= same.fillna(False).astype(bool)
    return chosen


def of_unit(table: pd.DataFrame, unit: Unit) -> pd.Series:
    """Which rows of a ``sweep.csv`` or ``hits.csv`` table belong to the sweep's ``unit``."""
    return of_key(table, SWEEP.key(unit))


def unit_done(
    table: pd.DataFrame, unit: Any, attacks: Sequence[str], layout: Layout = SWEEP
) -> bool:
    """The table holds a row of ``unit`` for every one of ``attacks``."""
    return set(attacks) <= set(table.loc[of_key(table, layout.key(unit)), "attack"])


def check_settings(out: Path, config: HasSettings) -> None:
    """Refuse to add rows to a folder whose rows were computed with other settings."""
    path = out / SETTINGS_JSON
    now = json.loads(json.dumps(config.settings(), default=str))
    if path.is_file():
        then = json.loads(path.read_text())
        changed = sorted(k for k in now if then.get(k) != now[k])
        if changed:
            raise ConfigError(
                f"{out} holds rows computed with other settings ({', '.join(changed)}); rerun "
                "with them or choose another --out"
            )
    elif is_main_process():
        write_json(path, now)


def append_rows(
    plan: RowSource,
    out: Path,
    table: pd.DataFrame,
    hits: pd.DataFrame,
    units: Sequence[Any],
    layout: Layout = SWEEP,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add the units' rows to the results table and the hits, each rewritten atomically; a
    unit revisited for an attack it lacked gets all its rows anew (its other attacks' steps
    were reused, so their numbers are the same)."""
    for unit in units:
        rows, unit_hits = plan.unit_rows(unit)
        new = typed(pd.DataFrame(rows, columns=list(layout.columns)))
        key = layout.key(unit)
        kept, kept_hits = table[~of_key(table, key)], hits[~of_key(hits, key)]
        table = typed(pd.concat([kept, new], ignore_index=True))
        merged = pd.concat([kept_hits, *unit_hits], ignore_index=True)
        hits = typed(merged[list(layout.hit_columns)])
    write_table(out / layout.hits, hits)
    write_table(out / layout.table, table)
    return table, hits
