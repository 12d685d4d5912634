"""The report's section on a comparison of defenses, from its saved ``compare.csv`` and
``compare.json``: the protocol, and per attack, defense and strength the means over seeds with
95% bootstrap intervals over seeds, KNN distance, and the change against the undefended model
(``none``) of the same attack (for ``NAME+sample``, MID's sampled head, none's ``NAME``), with
the p-value of "the defense lowers top-1": the exact one-sided sign-flip test over the seeds
both ran of d_s = top1(none, s) - top1(defense, s) (``sign_flip_p_value``). Its smallest value
is 2^-n, so fewer than 5 seeds cannot reach 0.05: a mean drop is then not yet shown to be one.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fisher_mi.experiments.compare import base_attack, compare_series
from fisher_mi.experiments.compare_config import NONE
from fisher_mi.experiments.sweep_stats import sign_flip_p_value
from fisher_mi.report.markdown import lengths, number, pipe_table, with_interval
from fisher_mi.report.runs import CompareRun

TEST_NOTE = (
    "p: the exact one-sided sign-flip test over the seeds a defense and `none` both ran, of "
    "d_s = top1(none) - top1(defense) (H1: the defense lowers top-1); its smallest value is "
    "2^-n, so below 5 seeds it cannot reach 0.05; `-` below 2 seeds."
)


def _protocol(run: CompareRun) -> str:
    protocol = run.summary["protocol"]
    settings = protocol["settings"]
    cutoffs = protocol.get("tl_auto_cutoffs") or {}
    tl = (
        "; `tl` froze up to cutoff "
        + ", ".join(f"{cutoff} (seed {seed})" for seed, cutoff in cutoffs.items())
        if cutoffs
        else ""
    )
    return (
        f"Data `{settings['data']}`; target `{protocol['arch']}`, evaluator "
        f"`{protocol['evaluator_arch']}`; seeds {', '.join(map(str, protocol['seeds']))}; "
        f"{lengths(settings)}{tl}; MID attacked through "
        f"{protocol.get('mid_attacked_through', 'n/a')}."
    )


def _change(point: pd.Series, reference: pd.Series | None, value: str) -> str:
    if reference is None or point["defense"] == NONE:
        return "-"
    return f"{point[value] - reference[value]:+.6f}"


def _lowers_p(table: pd.DataFrame, point: pd.Series) -> str:
    """The sign-flip p of "``point``'s defense lowers top-1" (module docstring), paired by
    seed with ``none`` under the same attack; ``-`` for none and below 2 paired seeds."""
    if point["defense"] == NONE:
        return "-"

    def per_seed(attack: str, defense: str, params: str) -> pd.Series:
        same = (table["attack"] == attack) & (table["defense"] == defense)
        return table[same & (table["params"] == params)].set_index("seed")["top1"]

    mine = per_seed(point["attack"], point["defense"], point["params"])
    none = per_seed(base_attack(point["attack"]), NONE, "")
    seeds = mine.index.intersection(none.index)
    if len(seeds) < 2:
        return "-"
    return f"{sign_flip_p_value((none[seeds] - mine[seeds]).tolist()):.4f}"


def _rows(run: CompareRun) -> list[list[Any]]:
    series = compare_series(run.table)
    knn = run.table.groupby(["attack", "defense", "params"])["knn_sq"].mean()
    rows = []
    for _, point in series.iterrows():
        same = series["attack"] == base_attack(point["attack"])
        undefended = series[same & (series["defense"] == NONE)]
        reference = None if undefended.empty else undefended.iloc[0]
        rows.append(
            [
                point["attack"],
                point["defense"],
                point["params"] or "-",
                int(point["n_seeds"]),
                number(point["trainable_fraction"]),
                with_interval(point, "natural_accuracy"),
                with_interval(point, "top1"),
                number(float(knn[(point["attack"], point["defense"], point["params"])])),
                _change(point, reference, "natural_accuracy"),
                _change(point, reference, "top1"),
                _lowers_p(run.table, point),
            ]
        )
    return rows


def compare_markdown(run: CompareRun) -> list[str]:
    """The lines of one comparison's section (module docstring)."""
    title = f"## Defenses compared `{run.name}`" if run.name else "## Defenses compared"
    header = ["attack", "defense", "strength", "seeds", "trainable fraction",
              "natural acc. [95%]", "top-1 [95%]", "KNN dist²", "natural acc. - none",
              "top-1 - none", "p: lowers top-1"]  # fmt: skip
    return [title, "", _protocol(run), "", pipe_table(header, _rows(run)), "", TEST_NOTE, ""]
