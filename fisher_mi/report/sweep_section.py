"""The report's section on a cutoff sweep, from its saved ``sweep.csv``, ``hits.csv`` and
``sweep.json``: the protocol, one row per attack and cutoff (means over seeds with 95%
bootstrap intervals, KNN distance beside top-1 since the evaluator's verdict can saturate),
where each planner rule lands and how far from the best point, and the verdict on ``auto``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fisher_mi.experiments.sweep_stats import best_point, rule_landings, sweep_series
from fisher_mi.report.markdown import lengths, number, pipe_table, seeds, with_interval
from fisher_mi.report.runs import SweepRun

UNDEFENDED = "undefended"


def _cutoff(value: Any) -> int | None:
    """A cutoff as a key: None for the undefended model's gap."""
    return None if pd.isna(value) else int(value)


def _protocol(sweep: SweepRun) -> str:
    protocol = sweep.summary["protocol"]
    settings = protocol["settings"]
    return (
        f"Data `{settings['data']}`; target `{protocol['arch']}`, evaluator "
        f"`{protocol['evaluator_arch']}`; seeds {', '.join(map(str, protocol['seeds']))}; "
        f"cutoffs {', '.join(map(str, protocol['cutoffs']))} (block starts "
        f"{', '.join(map(str, protocol['block_starts']))}); {lengths(settings)}."
    )


def _points(sweep: SweepRun) -> str:
    series = sweep_series(sweep.table, sweep.hits)
    grouped = sweep.table.groupby(["attack", "cutoff"], dropna=False)["knn_sq"].mean()
    knn = {(attack, _cutoff(c)): value for (attack, c), value in grouped.items()}
    rows = []
    for _, point in series.iterrows():
        cutoff = point["cutoff"]
        key = (point["attack"], _cutoff(cutoff))
        rows.append(
            [
                point["attack"],
                UNDEFENDED if pd.isna(cutoff) else int(cutoff),
                number(point["trainable_fraction"]),
                int(point["n_seeds"]),
                with_interval(point, "natural_accuracy"),
                with_interval(point, "top1"),
                number(float(knn.get(key, float("nan")))),
                point["rules"] or "-",
            ]
        )
    header = ["attack", "cutoff", "trainable fraction", "seeds", "natural acc. [95%]",
              "top-1 [95%]", "KNN dist²", "rules landing here"]  # fmt: skip
    return pipe_table(header, rows)


def _landings(sweep: SweepRun, attack: str) -> tuple[dict[str, Any], str]:
    rows = sweep.table[sweep.table["attack"] == attack]
    best = best_point(rows)
    if best["cutoff"] is None:
        return best, "No cutoff is within the accuracy cost of the undefended model."
    landings = rule_landings(rows, sweep.summary["rules"], best["cutoff"])
    body = [
        [
            landing.rule,
            landing.cutoffs,
            landing.n_seeds,
            number(landing.trainable_fraction),
            number(landing.natural_accuracy),
            number(landing.top1),
            f"{landing.top1_minus_best:+.6f}",
            f"{landing.accuracy_minus_best:+.6f}",
            "yes" if landing.within_cost else "no",
        ]
        for landing in landings.itertuples()
    ]
    header = ["rule", "lands at", "seeds", "trainable fraction", "natural acc.", "top-1",
              "top-1 - best", "natural acc. - best", "within cost"]  # fmt: skip
    return best, pipe_table(header, body)


def _verdict(verdict: dict[str, Any]) -> str:
    if "p_value" not in verdict:
        return f"**{verdict['verdict']}**: {verdict.get('why', '')}"
    reach = (
        "this many seeds can reject at that level"
        if verdict["can_reject"]
        else f"with {seeds(verdict['n_seeds'])} the smallest attainable p is "
        f"{verdict['smallest_p_value']:.4g}, so this verdict carries no weight"
    )
    return (
        f"**{verdict['verdict']}** (paired over {seeds(verdict['n_seeds'])}: mean top-1 "
        f"difference auto - best {verdict['mean_difference']:+.6f}, one-sided sign-flip p = "
        f"{verdict['p_value']:.4g} at alpha {verdict['alpha']}; {reach})."
    )


def sweep_markdown(sweep: SweepRun) -> list[str]:
    """The lines of one sweep's section (module docstring)."""
    title = f"## Cutoff sweep `{sweep.name}`" if sweep.name else "## Cutoff sweep"
    parts = [title, "", _protocol(sweep), "", _points(sweep), ""]
    for attack, verdict in sweep.summary["verdicts"].items():
        best, landings = _landings(sweep, attack)
        parts += [f"### {attack}: where each rule lands", ""]
        if best["cutoff"] is not None:
            parts += [
                f"Best point: cutoff {best['cutoff']} (top-1 {number(best['top1'])} against "
                f"{number(best['undefended']['top1'])} undefended, natural accuracy "
                f"{number(best['natural_accuracy'])} against "
                f"{number(best['undefended']['natural_accuracy'])}; at most "
                f"{best['max_accuracy_cost']:.0%} below it allowed).",
                "",
            ]
        parts += [landings, "", f"Verdict on `auto`: {_verdict(verdict)}", ""]
    return parts
