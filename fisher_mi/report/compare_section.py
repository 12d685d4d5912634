"""The report's section on a comparison of defenses, from its saved ``compare.csv`` and
``compare.json``: the protocol, and per attack, defense and strength the means over seeds with
95% bootstrap intervals over seeds, KNN distance, and the change against the undefended model
(``none``) of the same attack (for ``NAME+sample``, MID's sampled head, none's ``NAME``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fisher_mi.experiments.compare import base_attack, compare_series
from fisher_mi.experiments.compare_config import NONE
from fisher_mi.report.markdown import lengths, number, pipe_table, with_interval
from fisher_mi.report.runs import CompareRun


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
            ]
        )
    return rows


def compare_markdown(run: CompareRun) -> list[str]:
    """The lines of one comparison's section (module docstring)."""
    title = f"## Defenses compared `{run.name}`" if run.name else "## Defenses compared"
    header = ["attack", "defense", "strength", "seeds", "trainable fraction",
              "natural acc. [95%]", "top-1 [95%]", "KNN dist²", "natural acc. - none",
              "top-1 - none"]  # fmt: skip
    return [title, "", _protocol(run), "", pipe_table(header, _rows(run)), ""]
