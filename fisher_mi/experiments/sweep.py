"""``sweep``: TL-DMI at every cutoff, each model attacked the same way, against the undefended
model; and where each planner rule lands.

Per seed: one public pre-training (every layer, the public head), then a TL model at each
cutoff (the pre-trained weights with a new head for the private classes, seeded by the seed
and fitted alone on the private training part as ``train --public`` does, so every cutoff of a
seed starts from the same model; the first ``cutoff`` layers frozen, the rest fine-tuned on
the private data) and the undefended model (the same architecture trained
from scratch on the private data). One evaluator (another architecture, seed 0) and one
``gmi`` prior (trained on the public data, seed 0) serve the whole sweep; a ``kedmi`` prior,
when asked, is trained per model with the same settings and seed. Every model is attacked with
the same protocol (all identities, the same draws and seeds) and scored by ``score_run``.

Each of these stages is a ``steps.Step``: reused when its folder holds the outputs of the same
settings and inputs, resumed from its own checkpoint when interrupted. ``sweep.csv`` gets the
rows of a (cutoff, seed) unit as soon as the unit is done (rewritten atomically), and a unit
whose rows are there is not visited again, so an interrupted sweep resumes where it stopped.

Where the rules land: per seed, the pre-trained model (with the seed's fitted head) is profiled
on the private training data with the empirical Fisher (rules ``mass``/``auto``, ``knee``,
``rgn``), and on the private and the public data with the true Fisher for ``ratio``, which
divides one split by the other and so needs one estimator for both (labels drawn from the
model are defined on any data; the empirical Fisher of public images labelled with classes
the model does not predict is not). ``fixed`` is TL-DMI's hand-set cutoff carried over by its
share of trained parameters: the block boundary whose trainable fraction is nearest to
``PAPER_TRAINABLE_FRACTION``. A rule's cutoff inside a block lands at the block's start
(``plan.snap_to_block``).

The modules: ``sweep_config`` (the settings, the units, the paper's cutoff), ``sweep_stages``
(the stages as steps), ``sweep_table`` (the tables and resuming them), this one (the order of
it all, across ranks).

Under ``torchrun`` the runs are split across ranks (``rank_share``): first the shared stages
(evaluator, prior, each seed's pre-training and rules), then the (cutoff, seed) units in
rounds of one unit per rank; each run is computed by one process alone (``solo``), and rank 0
appends the round's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd
import torch

from fisher_mi.distributed import is_distributed, is_main_process, rank, solo, world_size
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.steps import Step, run_steps
from fisher_mi.experiments.sweep_config import (
    PAPER_TRAINABLE_FRACTION,
    QUICK,
    SweepConfig,
    Unit,
    paper_cutoff,
    quick_config,
)
from fisher_mi.experiments.sweep_stages import Sweep
from fisher_mi.experiments.sweep_stats import auto_verdict
from fisher_mi.experiments.sweep_table import (
    COLUMNS,
    HIT_COLUMNS,
    HITS_CSV,
    SETTINGS_JSON,
    SWEEP,
    SWEEP_CSV,
    SWEEP_JSON,
    SWEEP_PNG,
    Layout,
    RowSource,
    SweepResult,
    check_settings,
    read_tables,
    unit_done,
)
from fisher_mi.experiments.sweep_table import append_rows as _append
from fisher_mi.io import write_json

__all__ = [
    "COLUMNS",
    "HIT_COLUMNS",
    "PAPER_TRAINABLE_FRACTION",
    "QUICK",
    "SWEEP_PNG",
    "Sweep",
    "SweepConfig",
    "SweepResult",
    "Unit",
    "paper_cutoff",
    "quick_config",
    "rank_share",
    "run_sweep",
    "sweep",
]
T = TypeVar("T")


def rank_share(items: Sequence[T], rank: int, world: int) -> list[T]:
    """Rank ``rank``'s share of ``items`` among ``world`` ranks: items rank, rank + W, ...

    Round-robin, so consecutive (similar) runs go to different ranks and every item is done
    by exactly one rank.
    """
    if not 0 <= rank < world:
        raise ConfigError(f"rank {rank} is not in a group of {world} processes")
    return list(items[rank::world])


def _barrier() -> None:
    if is_distributed():
        torch.distributed.barrier()


def sweep(data: str, *, out: str | Path, quick: bool = False, **options: Any) -> SweepResult:
    """Run (or resume) a cutoff sweep of ``data`` into ``out`` (module docstring).

    ``options`` are ``SweepConfig`` fields (``cutoffs``, ``attacks``, ``seeds``, ...);
    ``quick`` fills the ones not given from ``QUICK``. See ``run_sweep``.
    """
    return run_sweep(quick_config(data, quick=quick, **options), out)


def run_sweep(config: SweepConfig, out: str | Path) -> SweepResult:
    """Run (or resume) the sweep ``config`` describes into ``out``; returns its tables.

    Writes ``sweep.csv`` (``COLUMNS``; the undefended model's rows have an empty cutoff and
    block), ``hits.csv`` (per reconstruction: ``HIT_COLUMNS``), ``settings.json``, and
    ``sweep.json`` (the verdict per attack, where the rules land per seed, the protocol).
    The figure is ``fisher_mi.report.plot_sweep``.
    """
    out = Path(out)
    plan = Sweep(config, out)
    check_settings(out, config)
    table, hits = run_units(plan, out, config.attacks, SWEEP)
    verdicts = {m: verdict_of(plan, table[table["attack"] == m]) for m in config.attacks}
    files = [out / SWEEP_CSV, out / HITS_CSV, out / SETTINGS_JSON]
    if is_main_process():
        files.append(write_json(out / SWEEP_JSON, _summary(plan, verdicts)))
    return SweepResult(table, hits, verdicts, files)


class Plan(RowSource, Protocol):
    """An experiment as steps: the shared stages in jobs, its units, each unit's steps and
    rows (``Sweep``, ``Compare``)."""

    def shared_steps(self) -> list[list[Step]]:
        """The stages every unit reads, in jobs (one rank each)."""

    def units(self) -> Sequence[Any]:
        """Every unit, in order (read after the shared stages are done)."""

    def unit_steps(self, unit: Any) -> list[Step]:
        """Everything one unit needs, in order."""


def run_units(
    plan: Plan, out: Path, attacks: Sequence[str], layout: Layout
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or resume) ``plan`` into ``out``; returns its results table and hits.

    First the shared stages, split by job across ranks, then the units whose rows are not all
    in the table, in rounds of one unit per rank; each run computed by one process alone
    (``solo``), rank 0 appending each round's rows (``layout``'s tables).
    """
    me, width = rank(), world_size()  # read outside solo(), inside which every rank is 0 of 1
    mine = rank_share(plan.shared_steps(), me, width)
    with solo():
        run_steps([step for job in mine for step in job])
    _barrier()
    table, hits = read_tables(out, layout)
    todo = [u for u in plan.units() if not unit_done(table, u, attacks, layout)]
    for start in range(0, len(todo), width):
        round_units = todo[start : start + width]
        mine = rank_share(round_units, me, width)
        with solo():
            for unit in mine:
                run_steps(plan.unit_steps(unit))
        _barrier()
        if is_main_process():
            table, hits = _append(plan, out, table, hits, round_units, layout)
    return read_tables(out, layout)


def auto_cutoffs(plan: Sweep) -> dict[int, int]:
    """Seed -> the block boundary where ``auto`` lands (seeds where it could run)."""
    landed = {s: plan.rules_of(s)["auto"].get("lands") for s in plan.config.seeds}
    return {seed: cutoff for seed, cutoff in landed.items() if cutoff is not None}


def verdict_of(plan: Sweep, rows: pd.DataFrame) -> dict[str, Any]:
    """``auto_verdict`` of one attack's rows."""
    return auto_verdict(rows, auto_cutoffs(plan))


def _summary(plan: Sweep, verdicts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    config = plan.config
    return {
        "verdicts": verdicts,
        "rules": {str(s): plan.rules_of(s) for s in config.seeds},
        "protocol": {
            "arch": plan.arch,
            "evaluator_arch": plan.evaluator_arch,
            "cutoffs": plan.cutoffs,
            "block_starts": plan.starts,
            "paper_trainable_fraction": PAPER_TRAINABLE_FRACTION,
            "settings": config.settings(),
            "seeds": list(config.seeds),
            "attacks": list(config.attacks),
        },
    }
