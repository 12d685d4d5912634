"""``compare``: the defenses on one protocol, each model attacked the same way, against the
undefended model; the paper's comparison (TL-DMI against MID, BiDO and negative label
smoothing, and TL-DMI combined with BiDO) in this run's numbers.

Per seed, one model per (defense, strength) (``compare_config``: the names, the default
strengths and why): ``none`` trained from scratch, each regularisation defense trained from
scratch under its loss, ``tl`` fine-tuned from the seed's public pre-training with a fitted
head and the prefix up to where ``auto`` lands frozen (the sweep's TL models), ``tl+NAME``
that with the defense's loss while fine-tuning. The stages are the sweep's (``Sweep``): one
evaluator and one ``gmi`` prior for all (seed 0), a ``kedmi`` prior per model with the same
settings and seed, every model attacked with the same protocol and scored by ``score_run``.
MID's models are attacked both ways, labelled: through their deterministic head (mu, the
adaptive attacker; attack ``gmi``) and through their sampling head (``gmi+sample``, as the
literature attacks MID); natural accuracy is that of mu in both rows.

Each stage is a ``steps.Step``; ``compare.csv`` (``COLUMNS``) and ``hits.csv`` (per
reconstruction) get a (defense, strength, seed) unit's rows as soon as it is done (rewritten
atomically), and a unit whose rows are there is not visited again, so an interrupted
comparison resumes where it stopped; ``settings.json`` refuses rows computed otherwise. Under
``torchrun`` the shared stages and then the units are split across ranks, as in the sweep
(``sweep.run_units``). The figure is ``fisher_mi.report.plot_compare`` of ``compare_series``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fisher_mi.distributed import is_main_process
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.compare_config import (
    DEFAULT_DEFENSES,
    DEFAULT_GRIDS,
    CompareConfig,
    DefenseUnit,
    parse_defenses,
    strengths,
)
from fisher_mi.experiments.stages import SAMPLE_HEAD, with_option, without_option
from fisher_mi.experiments.steps import Step
from fisher_mi.experiments.sweep import run_units
from fisher_mi.experiments.sweep_config import quick_config
from fisher_mi.experiments.sweep_stages import Sweep, attack_scores
from fisher_mi.experiments.sweep_stats import bootstrap_mean_interval
from fisher_mi.experiments.sweep_table import HITS_CSV, SETTINGS_JSON, Layout, check_settings
from fisher_mi.io import write_json
from fisher_mi.plan import FreezePlan
from fisher_mi.training import PLAN

COLUMNS = (
    "defense",
    "params",
    "seed",
    "natural_accuracy",
    "attack",
    "top1",
    "top5",
    "knn_sq",
    "trainable_fraction",
)
HIT_COLUMNS = ("defense", "params", "seed", "attack", "identity", "draw", "top1")
COMPARE_CSV, COMPARE_JSON = "compare.csv", "compare.json"
COMPARE_PNG = "compare.png"  # drawn by fisher_mi.report.plot_compare (report comes later)
COMPARE = Layout(
    COMPARE_CSV,
    COLUMNS,
    HITS_CSV,
    HIT_COLUMNS,
    ("defense", "params", "attack"),
    DefenseUnit.key,
)


@dataclass(frozen=True)
class CompareResult:
    """What a comparison produced: its table, per-image hits, files."""

    table: pd.DataFrame
    hits: pd.DataFrame
    files: list[Path]


class Compare:
    """The stages of one comparison as steps (the sweep's, ``Sweep``), and its rows."""

    def __init__(self, config: CompareConfig, out: Path) -> None:
        self.config, self.out = config, Path(out)
        self.stages = Sweep(config.run, self.out)

    def transfers(self) -> bool:
        """Whether a TL defense is compared (it needs the seeds' pre-training and rules)."""
        return any(unit.transfer for unit in self.config.units())

    def shared_steps(self) -> list[list[Step]]:
        """In jobs (one rank each): the evaluator, the gmi prior, and, when a TL defense is
        compared, per seed its pre-training, fitted head and rules (where ``auto`` lands)."""
        stages = self.stages
        jobs = [[stages.evaluator_step()], [stages.gan_step("gmi")]]
        if self.transfers():
            seeds = self.config.run.seeds
            jobs += [
                [stages.pretrain_step(s), stages.head_step(s), stages.rules_step(s)] for s in seeds
            ]
        return jobs

    def auto_cutoff(self, seed: int) -> int:
        """The block boundary where ``auto`` lands on the seed's pre-trained model."""
        landed = self.stages.rules_of(seed)["auto"]
        if "lands" not in landed:
            raise ConfigError(
                f"the auto rule found no cutoff for seed {seed} ({landed.get('error')}); "
                "drop tl from --defenses"
            )
        return int(landed["lands"])

    def units(self) -> list[DefenseUnit]:
        """Every unit, TL ones with their seed's ``auto`` cutoff (read after the rules)."""
        return [
            dataclasses.replace(unit, cutoff=self.auto_cutoff(unit.seed)) if unit.transfer else unit
            for unit in self.config.units()
        ]

    def methods(self, unit: DefenseUnit) -> list[str]:
        """The unit's attacks: the config's, each also with its defense's ``attack_variants``
        (MID: ``+sample``)."""
        attacks = list(self.config.run.attacks)
        variants = unit.attack_variants
        return attacks + [with_option(a, variant) for variant in variants for a in attacks]

    def unit_steps(self, unit: DefenseUnit) -> list[Step]:
        """The sweep's steps of a unit (``Sweep.unit_steps``) with the unit's defense."""
        return self.stages.unit_steps(unit, unit.build(), self.methods(unit))

    def unit_rows(self, unit: DefenseUnit) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
        """The unit's ``compare.csv`` rows (one per attack) and its per-image hits; the
        trainable fraction is that of the plan it was trained under (MID: its head too)."""
        plan = FreezePlan.load(self.out / unit.name / PLAN)
        rows, hits = [], []
        for method in self.methods(unit):
            step = self.stages.attack_step(unit, method)
            scores, table = attack_scores(self.out / step.name)
            rows.append(
                {
                    **unit.key(),
                    "attack": method,
                    "trainable_fraction": plan.trainable_param_fraction,
                    **scores,
                }
            )
            hits.append(table.assign(**unit.key(), attack=method))
        return rows, hits


def compare(
    data: str,
    *,
    out: str | Path,
    defenses: str | Sequence[str] = DEFAULT_DEFENSES,
    grid: Mapping[str, Sequence[Any]] | None = None,
    quick: bool = False,
    **options: Any,
) -> CompareResult:
    """Run (or resume) a comparison of ``defenses`` on ``data`` into ``out`` (module
    docstring).

    Args:
        data: the private data spec (``mnist``, ``att:ROOT``).
        out: the folder.
        defenses: names (``compare_config.parse_defenses``), as text or a sequence.
        grid: defense parameter -> values (``beta=(0.003, 0.01)``); None: the default grids.
        quick: fill the options not given from the sweep's ``QUICK``.
        options: ``SweepConfig`` fields shared with the sweep (``attacks``, ``seeds``,
            ``epochs``, ...), but not ``cutoffs`` (``tl``'s is ``auto``'s).
    """
    if "cutoffs" in options:
        raise ConfigError("compare has no option 'cutoffs': tl freezes where auto lands")
    run = quick_config(data, quick=quick, **options)
    given = {key: tuple(values) for key, values in (grid or {}).items()}
    return run_compare(CompareConfig(run, parse_defenses(defenses), given), out)


def run_compare(config: CompareConfig, out: str | Path) -> CompareResult:
    """Run (or resume) the comparison ``config`` describes into ``out``; returns its tables.

    Writes ``compare.csv`` (``COLUMNS``), ``hits.csv`` (``HIT_COLUMNS``), ``settings.json``
    and ``compare.json`` (the protocol: architectures, settings, seeds, attacks, each
    defense's strengths and the reason for its default grid, tl's cutoff per seed).
    """
    out = Path(out)
    plan = Compare(config, out)
    check_settings(out, config)
    table, hits = run_units(plan, out, config.run.attacks, COMPARE)
    files = [out / COMPARE_CSV, out / HITS_CSV, out / SETTINGS_JSON]
    if is_main_process():
        files.append(write_json(out / COMPARE_JSON, _summary(plan)))
    return CompareResult(table, hits, files)


def _summary(plan: Compare) -> dict[str, Any]:
    config = plan.config
    grids = {
        name: {
            "strengths": strengths(name, config.grid),
            "default_reason": DEFAULT_GRIDS[name.removeprefix("tl+")].why,
        }
        for name in config.defenses
    }
    cutoffs = {str(s): plan.auto_cutoff(s) for s in config.run.seeds} if plan.transfers() else {}
    return {
        "protocol": {
            "arch": plan.stages.arch,
            "evaluator_arch": plan.stages.evaluator_arch,
            "settings": config.settings(),
            "seeds": list(config.run.seeds),
            "attacks": list(config.run.attacks),
            "defenses": grids,
            "grid_given": {k: list(v) for k, v in config.grid.items()},
            "tl_auto_cutoffs": cutoffs,
            "mid_attacked_through": "both: mu (the deterministic head; attack NAME) and the "
            "sampling head (attack NAME+sample); natural accuracy is mu's",
        }
    }


SERIES_COLUMNS = (
    "attack",
    "defense",
    "params",
    "n_seeds",
    "trainable_fraction",
    "natural_accuracy",
    "natural_accuracy_low",
    "natural_accuracy_high",
    "top1",
    "top1_low",
    "top1_high",
)


def strength_order(params: str) -> tuple[tuple[int, float | str], ...]:
    """Sort key of a ``params`` text: its values in order, numbers by value."""
    key: list[tuple[int, float | str]] = []
    for pair in filter(None, params.split(",")):
        value = pair.partition("=")[2]
        try:
            key.append((0, float(value)))
        except ValueError:
            key.append((1, value))
    return tuple(key)


def _interval(values: pd.Series, name: str) -> dict[str, float]:
    """``{name_low, name_high}``: the 95% bootstrap interval of the mean over seeds (one value
    each); NaN under 2 seeds."""
    low, high = (
        bootstrap_mean_interval([[value] for value in values])
        if len(values) >= 2
        else (math.nan, math.nan)
    )
    return {f"{name}_low": low, f"{name}_high": high}


def base_attack(attack: str) -> str:
    """The attack a row is compared with the undefended model under: ``gmi`` for
    ``gmi+sample`` (a model without a VIB head answers both the same)."""
    return without_option(attack, SAMPLE_HEAD)


def compare_series(table: pd.DataFrame) -> pd.DataFrame:
    """The figure's points from ``compare.csv`` rows: one per (attack, defense, strength),
    means over seeds with 95% bootstrap intervals over seeds (``SERIES_COLUMNS``); attacks and
    defenses in the order they first appear, each defense's strengths in ``strength_order``."""
    points = []
    for attack in dict.fromkeys(table["attack"]):
        rows = table[table["attack"] == attack]
        for defense in dict.fromkeys(rows["defense"]):
            mine = rows[rows["defense"] == defense]
            for params in sorted(dict.fromkeys(mine["params"]), key=strength_order):
                chosen = mine[mine["params"] == params]
                accuracy, top1 = chosen["natural_accuracy"], chosen["top1"]
                points.append(
                    {
                        "attack": attack,
                        "defense": defense,
                        "params": params,
                        "n_seeds": chosen["seed"].nunique(),
                        "trainable_fraction": float(chosen["trainable_fraction"].mean()),
                        "natural_accuracy": float(accuracy.mean()),
                        **_interval(accuracy, "natural_accuracy"),
                        "top1": float(top1.mean()),
                        **_interval(top1, "top1"),
                    }
                )
    return pd.DataFrame(points, columns=list(SERIES_COLUMNS))
