"""The sweep figure holds the series it is drawn from: one TL point per cutoff in cutoff order,
the undefended reference point, and the rules' labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fisher_mi.experiments.sweep_stats import LANDING_COLUMNS, SERIES_COLUMNS
from fisher_mi.report.sweep import (
    BEST_LABEL,
    REFERENCE_LABEL,
    landings_figure,
    plot_sweep,
    sweep_figure,
)


def series() -> pd.DataFrame:
    points = [
        # attack, cutoff, fraction, seeds, acc, low, high, top1, low, high, rules
        ("gmi", 4, 0.2, 2, 0.80, 0.79, 0.81, 0.10, 0.05, 0.15, ""),
        ("gmi", 0, 1.0, 2, 0.90, 0.89, 0.91, 0.65, 0.60, 0.70, "knee 1/2"),
        ("gmi", 2, 0.5, 2, 0.885, 0.88, 0.89, 0.45, 0.40, 0.50, "auto, mass"),
        ("gmi", pd.NA, 1.0, 2, 0.91, 0.90, 0.92, 0.75, 0.70, 0.80, ""),
        ("kedmi", 0, 1.0, 2, 0.90, 0.89, 0.91, 0.50, 0.45, 0.55, ""),
        ("kedmi", pd.NA, 1.0, 2, 0.91, 0.90, 0.92, 0.60, 0.55, 0.65, ""),
    ]
    return pd.DataFrame(points, columns=list(SERIES_COLUMNS)).astype({"cutoff": "Int64"})


def test_figure_holds_the_series() -> None:
    figure = sweep_figure(series())
    gmi, kedmi = figure.axes
    line = gmi.lines[0]  # the TL points, in cutoff order
    assert list(line.get_xdata()) == pytest.approx([0.65, 0.45, 0.10])
    assert list(line.get_ydata()) == pytest.approx([0.90, 0.885, 0.80])
    labels = gmi.get_legend_handles_labels()[1]
    assert REFERENCE_LABEL in labels
    star = next(x for x in gmi.lines if x.get_marker() == "*")
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([0.75], [0.91])
    texts = [t.get_text() for t in gmi.texts]
    assert texts == ["0 (100.0%)\nknee 1/2", "2 (50.0%)\nauto, mass", "4 (20.0%)"]
    assert len(kedmi.lines[0].get_xdata()) == 1


def test_plot_sweep_writes_a_png(tmp_path: Path) -> None:
    path = plot_sweep(series(), tmp_path / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_landings_figure_holds_the_rules_and_the_best_point() -> None:
    gmi = series()[series()["attack"] == "gmi"]
    landings = pd.DataFrame(
        [("auto", 2, "2", 0.5, 0.885, 0.45, 0.0, 0.0, True),
         ("knee", 1, "0,4", 1.0, 0.85, 0.4, 0.1, -0.04, False)],
        columns=list(LANDING_COLUMNS),
    )  # fmt: skip
    top, bottom = landings_figure(gmi, landings, best_cutoff=2).axes
    tl = top.lines[0]  # the TL points, in cutoff order
    assert list(tl.get_xdata()) == [0, 2, 4]
    assert list(tl.get_ydata()) == pytest.approx([0.65, 0.45, 0.10])
    assert list(bottom.lines[0].get_ydata()) == pytest.approx([0.90, 0.885, 0.80])
    best = next(x for x in top.lines if x.get_label() == BEST_LABEL)
    assert (list(best.get_xdata()), list(best.get_ydata())) == ([2], [pytest.approx(0.45)])
    rules = {x.get_label(): x.get_xdata()[0] for x in top.lines if ":" in x.get_label()}
    assert rules == {"auto: 2": pytest.approx(2.0), "knee: 0,4": pytest.approx(0.06)}
    reference = next(x for x in top.lines if x.get_label() == REFERENCE_LABEL)
    assert list(reference.get_ydata()) == [pytest.approx(0.75)] * 2
