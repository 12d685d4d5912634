"""The numbers a cutoff sweep is judged by: bootstrap intervals, the best point, and the verdict
on the automatic cutoff. Pure functions of tables; nothing is trained or read here.

The decision rule was fixed before any sweep was run (issue 11):

- **best point**: among the swept cutoffs whose mean natural accuracy over seeds is at most
  ``MAX_ACCURACY_COST`` (3 points) below the undefended model's, the one with the largest drop
  in mean attack top-1 relative to the undefended model (ties: the higher natural accuracy,
  then the smaller cutoff);
- **verdict**: "auto is not significantly worse than the best point, paired over seeds". Per
  seed s, d_s = top1(auto's cutoff for s, s) - top1(best, s) (positive: auto leaks more). The
  test is the exact one-sided sign-flip (paired permutation) test of H0 "d is symmetric about
  0" against H1 "E d > 0": p = #{signs e in {-1, 1}^n : sum e_s |d_s| >= sum d_s} / 2^n, at
  ``ALPHA`` = 0.05. It needs no normality (5 seeds are too few to check one); its smallest
  p-value is 2^-n, so it can reject at 0.05 from n = 5 seeds on, and with fewer seeds the
  verdict "not significantly worse" carries no weight (``sweep.json`` says so).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

ALPHA = 0.05
MAX_ACCURACY_COST = 0.03  # natural accuracy is a fraction: 3 points
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
TIE = 1e-12  # sums of the same numbers in another order
TEST = (
    "exact one-sided sign-flip (paired permutation) test over seeds of d_s = top1(auto) - "
    "top1(best), H1: E d > 0 (auto leaks more)"
)
NOT_WORSE = "auto is not significantly worse than the best point"
WORSE = "auto is significantly worse than the best point"
UNDECIDED = "undecided"


def sign_flip_p_value(differences: Sequence[float]) -> float:
    """Exact one-sided p-value of ``mean(d) > 0`` under random signs (module docstring)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        raise ValueError("the sign-flip test needs at least one paired difference")
    observed = d.sum()
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    return float(np.mean(signs @ np.abs(d) >= observed - TIE))


def bootstrap_mean_interval(
    groups: Sequence[Sequence[float]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile interval of a mean over two levels: groups (seeds), then values (identities).

    Each resample draws len(groups) groups with replacement and, inside each drawn group, its
    values with replacement, and takes the mean of all values drawn; so the interval counts the
    spread between training seeds and between identities. One group: identities only. Returns
    (nan, nan) when there is nothing to resample (one group of one value).
    """
    arrays = [np.asarray(group, dtype=np.float64) for group in groups]
    if not arrays or (len(arrays) == 1 and arrays[0].size <= 1):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for b in range(resamples):
        chosen = rng.integers(len(arrays), size=len(arrays))
        drawn = [arrays[g][rng.integers(arrays[g].size, size=arrays[g].size)] for g in chosen]
        means[b] = np.concatenate(drawn).mean()
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def complete_seeds(rows: pd.DataFrame, cutoffs: Sequence[int]) -> list[int]:
    """Seeds with a row for the undefended model (cutoff NaN) and for every cutoff: the pairs."""
    needed = {*cutoffs, None}
    found: dict[int, set] = {}
    for cutoff, seed in zip(rows["cutoff"], rows["seed"], strict=True):
        found.setdefault(int(seed), set()).add(None if pd.isna(cutoff) else int(cutoff))
    return sorted(seed for seed, have in found.items() if needed <= have)


def means_by_cutoff(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean natural accuracy and top-1 over seeds per cutoff (the undefended model: NaN)."""
    keyed = rows.assign(cutoff=rows["cutoff"].astype("Float64"))
    grouped = keyed.groupby("cutoff", dropna=False)[["natural_accuracy", "top1"]].mean()
    return grouped.reset_index()


def best_point(rows: pd.DataFrame, *, max_cost: float = MAX_ACCURACY_COST) -> dict[str, Any]:
    """The best point of one attack's rows (module docstring); ``cutoff`` None when no cutoff
    is within ``max_cost`` of the undefended natural accuracy."""
    means = means_by_cutoff(rows)
    reference = means[means["cutoff"].isna()].iloc[0]
    points = means[means["cutoff"].notna()].copy()
    points["drop"] = reference["top1"] - points["top1"]
    eligible = points[points["natural_accuracy"] >= reference["natural_accuracy"] - max_cost - TIE]
    record = {
        "undefended": {
            "natural_accuracy": float(reference["natural_accuracy"]),
            "top1": float(reference["top1"]),
        },
        "max_accuracy_cost": max_cost,
        "cutoff": None,
    }
    if eligible.empty:
        return record
    best = eligible.sort_values(
        ["drop", "natural_accuracy", "cutoff"], ascending=[False, False, True]
    ).iloc[0]
    return {
        **record,
        "cutoff": int(best["cutoff"]),
        "drop": float(best["drop"]),
        "natural_accuracy": float(best["natural_accuracy"]),
        "top1": float(best["top1"]),
    }


def auto_verdict(
    rows: pd.DataFrame,
    auto_cutoffs: Mapping[int, int],
    *,
    alpha: float = ALPHA,
    max_cost: float = MAX_ACCURACY_COST,
) -> dict[str, Any]:
    """The verdict on ``auto`` for one attack's rows (module docstring).

    Args:
        rows: ``sweep.csv`` rows of one attack: ``cutoff`` (NaN for the undefended model),
            ``seed``, ``natural_accuracy``, ``top1``.
        auto_cutoffs: seed -> the block boundary where ``auto`` lands for that seed.
        alpha: the test's level.
        max_cost: the natural-accuracy cost the best point may have.
    """
    swept = sorted({int(c) for c in rows["cutoff"].dropna()})
    seeds = [s for s in complete_seeds(rows, swept) if s in auto_cutoffs]
    paired = rows[rows["seed"].isin(seeds)]
    record: dict[str, Any] = {"test": TEST, "alpha": alpha, "n_seeds": len(seeds)}
    if not seeds:
        return {**record, "verdict": UNDECIDED, "why": "no seed has every cutoff and auto's"}
    best = best_point(paired, max_cost=max_cost)
    record["best"] = best
    missing = sorted({auto_cutoffs[s] for s in seeds} - set(swept))
    if best["cutoff"] is None or missing:
        why = (
            f"auto lands at cutoffs {missing}, which were not swept; sweep them"
            if missing
            else f"no cutoff is within {max_cost:.0%} of the undefended natural accuracy"
        )
        return {**record, "verdict": UNDECIDED, "why": why}
    top1 = paired.set_index(["seed", paired["cutoff"].astype("Float64")])["top1"]
    d = [float(top1[(s, auto_cutoffs[s])] - top1[(s, best["cutoff"])]) for s in seeds]
    p_value = sign_flip_p_value(d)
    return {
        **record,
        "auto_cutoffs": {str(s): auto_cutoffs[s] for s in seeds},
        "differences": d,
        "mean_difference": float(np.mean(d)),
        "p_value": p_value,
        "smallest_p_value": 2.0 ** -len(seeds),
        "can_reject": 2.0 ** -len(seeds) < alpha,
        "verdict": WORSE if p_value < alpha else NOT_WORSE,
    }


SERIES_COLUMNS = (
    "attack",
    "cutoff",
    "trainable_fraction",
    "n_seeds",
    "natural_accuracy",
    "natural_accuracy_low",
    "natural_accuracy_high",
    "top1",
    "top1_low",
    "top1_high",
    "rules",
)


def _rules_label(rules: pd.Series, n_seeds: int) -> str:
    """The rules landing at a point: ``auto, mass`` (every seed) or ``knee 2/3``."""
    counts: dict[str, int] = {}
    for text in rules.fillna(""):
        for name in filter(None, str(text).split(",")):
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(
        name if count == n_seeds else f"{name} {count}/{n_seeds}" for name, count in counts.items()
    )


def _point(rows: pd.DataFrame, hits: pd.DataFrame) -> dict[str, Any]:
    """One point of the figure: means over seeds, 95% bootstrap intervals (top-1 over seeds
    and identities, natural accuracy over seeds)."""
    seeds = sorted(rows["seed"].unique())
    per_identity = [
        hits[hits["seed"] == s].groupby("identity")["top1"].mean().to_numpy() for s in seeds
    ]
    accuracy = [[value] for value in rows["natural_accuracy"]]
    accuracy_low, accuracy_high = bootstrap_mean_interval(accuracy)
    top1_low, top1_high = bootstrap_mean_interval(per_identity)
    return {
        "trainable_fraction": float(rows["trainable_fraction"].mean()),
        "n_seeds": len(seeds),
        "natural_accuracy": float(rows["natural_accuracy"].mean()),
        "natural_accuracy_low": accuracy_low,
        "natural_accuracy_high": accuracy_high,
        "top1": float(rows["top1"].mean()),
        "top1_low": top1_low,
        "top1_high": top1_high,
        "rules": _rules_label(rows["rule"], len(seeds)),
    }


def sweep_series(table: pd.DataFrame, hits: pd.DataFrame) -> pd.DataFrame:
    """The figure's points: one per attack and cutoff, and the undefended model (cutoff NA),
    from ``sweep.csv`` and ``hits.csv`` rows (``SERIES_COLUMNS``)."""
    points = []
    for (attack, cutoff), rows in table.groupby(["attack", "cutoff"], dropna=False, sort=True):
        same = hits["cutoff"].isna() if pd.isna(cutoff) else hits["cutoff"] == cutoff
        chosen = hits[same.fillna(False) & (hits["attack"] == attack)]
        points.append({"attack": attack, "cutoff": cutoff, **_point(rows, chosen)})
    return pd.DataFrame(points, columns=list(SERIES_COLUMNS)).astype({"cutoff": "Int64"})


LANDING_COLUMNS = (
    "rule",
    "n_seeds",
    "cutoffs",
    "trainable_fraction",
    "natural_accuracy",
    "top1",
    "top1_minus_best",
    "accuracy_minus_best",
    "within_cost",
)


def _landed(
    rules: Mapping[str, Mapping[str, Mapping[str, Any]]],
    name: str,
    swept: pd.Index,
    best_cutoff: int,
) -> dict[int, int]:
    """Seed -> where rule ``name`` lands, for the seeds whose landing and best point were swept."""
    landed = {int(seed): by_rule.get(name, {}).get("lands") for seed, by_rule in rules.items()}
    return {
        seed: cutoff
        for seed, cutoff in landed.items()
        if cutoff is not None and {(seed, cutoff), (seed, best_cutoff)} <= set(swept)
    }


def rule_landings(
    rows: pd.DataFrame,
    rules: Mapping[str, Mapping[str, Mapping[str, Any]]],
    best_cutoff: int,
    *,
    max_cost: float = MAX_ACCURACY_COST,
) -> pd.DataFrame:
    """Where each planner rule lands and how far that is from the best point, for one attack.

    Per rule and seed s the rule lands at cutoff c_s (``sweep.json``'s ``rules[s][rule]
    ["lands"]``); the row holds means over the seeds where it landed on a swept cutoff:
    natural accuracy and top-1 at (c_s, s), and the paired gaps top1(c_s, s) - top1(best, s)
    (positive: the rule leaks more than the best point) and the same for natural accuracy.
    ``within_cost``: the mean natural accuracy is at most ``max_cost`` below the undefended
    model's (the best point's condition). Columns ``LANDING_COLUMNS``.

    Args:
        rows: ``sweep.csv`` rows of one attack (the undefended model: cutoff NaN).
        rules: ``sweep.json``'s ``rules``: seed (as text) -> rule -> its record.
        best_cutoff: the best point's cutoff (``best_point``).
        max_cost: the natural-accuracy cost the best point may have.
    """
    keyed = rows.set_index(["seed", rows["cutoff"].astype("Float64")])
    undefended = rows[rows["cutoff"].isna()]["natural_accuracy"].mean()
    names = list(dict.fromkeys(name for by_rule in rules.values() for name in by_rule))
    landings = []
    for name in names:
        landed = _landed(rules, name, keyed.index, best_cutoff)
        if not landed:
            continue
        at = keyed.loc[[(s, float(c)) for s, c in landed.items()]]
        best = keyed.loc[[(s, float(best_cutoff)) for s in landed]]
        accuracy = float(at["natural_accuracy"].mean())
        landings.append(
            {
                "rule": name,
                "n_seeds": len(landed),
                "cutoffs": ",".join(str(c) for c in sorted(set(landed.values()))),
                "trainable_fraction": float(at["trainable_fraction"].mean()),
                "natural_accuracy": accuracy,
                "top1": float(at["top1"].mean()),
                "top1_minus_best": float((at["top1"].to_numpy() - best["top1"].to_numpy()).mean()),
                "accuracy_minus_best": accuracy - float(best["natural_accuracy"].mean()),
                "within_cost": bool(accuracy >= undefended - max_cost - TIE),
            }
        )
    return pd.DataFrame(landings, columns=list(LANDING_COLUMNS))
