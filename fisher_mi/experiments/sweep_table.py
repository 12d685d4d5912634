"""A sweep's tables on disk and how it resumes: ``sweep.csv`` and ``hits.csv`` read back with
their types, a (cutoff, seed) unit whose rows are there counted as done, the rows of finished
units added (each table rewritten atomically), and a folder whose rows were computed with other
settings refused (``settings.json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from fisher_mi.distributed import is_main_process
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.sweep_config import SweepConfig, Unit
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


class RowSource(Protocol):
    """What gives a finished unit's rows (``Sweep.unit_rows``)."""

    def unit_rows(self, unit: Unit) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
        """The unit's ``sweep.csv`` rows and its per-image hits."""


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: its table, per-image hits, verdicts by attack, files."""

    table: pd.DataFrame
    hits: pd.DataFrame
    verdicts: dict[str, dict[str, Any]]
    files: list[Path]


def read_rows(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """A ``sweep.csv`` or ``hits.csv`` as written (empty with ``columns`` when absent): text
    columns kept as text, an empty cell a gap."""
    if not path.is_file():
        return pd.DataFrame(columns=list(columns))
    text = ("attack", "rule")  # a rule column of "" is no rule, not a missing value
    header = pd.read_csv(path, nrows=0).columns
    missing = {column: [""] for column in header if column not in text}
    table = pd.read_csv(
        path, keep_default_na=False, na_values=missing, dtype=dict.fromkeys(text, str)
    )
    return typed(table)


def typed(table: pd.DataFrame) -> pd.DataFrame:
    """Cutoff and block as whole numbers with gaps (the undefended model has neither)."""
    present = [c for c in ("cutoff", "block") if c in table.columns]
    return table.astype({c: "Int64" for c in present})


def of_unit(table: pd.DataFrame, unit: Unit) -> pd.Series:
    """Which rows of a ``sweep.csv`` or ``hits.csv`` table belong to ``unit``."""
    cutoff = table["cutoff"].astype("Int64")
    same = (cutoff.isna() if unit.cutoff is None else cutoff == unit.cutoff).fillna(False)
    return same & (table["seed"] == unit.seed)


def unit_done(table: pd.DataFrame, unit: Unit, attacks: Sequence[str]) -> bool:
    """The table holds a row of ``unit`` for every one of ``attacks``."""
    return set(attacks) <= set(table.loc[of_unit(table, unit), "attack"])


def check_settings(out: Path, config: SweepConfig) -> None:
    """Refuse to add rows to a sweep whose rows were computed with other settings."""
    path = out / SETTINGS_JSON
    now = json.loads(json.dumps(config.settings(), default=str))
    if path.is_file():
        then = json.loads(path.read_text())
        changed = sorted(k for k in now if then.get(k) != now[k])
        if changed:
            raise ConfigError(
                f"{out} holds a sweep with other settings ({', '.join(changed)}); rerun with "
                "them or choose another --out"
            )
    elif is_main_process():
        write_json(path, now)


def append_rows(
    plan: RowSource, out: Path, table: pd.DataFrame, hits: pd.DataFrame, units: Sequence[Unit]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add the units' rows to ``sweep.csv`` and ``hits.csv``, each rewritten atomically; a
    unit revisited for an attack it lacked gets all its rows anew (its other attacks' steps
    were reused, so their numbers are the same)."""
    for unit in units:
        rows, unit_hits = plan.unit_rows(unit)
        new = typed(pd.DataFrame(rows, columns=list(COLUMNS)))
        kept, kept_hits = table[~of_unit(table, unit)], hits[~of_unit(hits, unit)]
        table = typed(pd.concat([kept, new], ignore_index=True))
        hits = typed(pd.concat([kept_hits, *unit_hits], ignore_index=True)[list(HIT_COLUMNS)])
    write_table(out / HITS_CSV, hits)
    write_table(out / SWEEP_CSV, table)
    return table, hits
