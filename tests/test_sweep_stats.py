"""The sweep's decision statistic, intervals and figure series against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fisher_mi.experiments.sweep_stats import (
    NOT_WORSE,
    UNDECIDED,
    WORSE,
    auto_verdict,
    best_point,
    bootstrap_mean_interval,
    rule_landings,
    sign_flip_p_value,
    sweep_series,
)

NA = pd.NA


def rows(values: list[tuple]) -> pd.DataFrame:
    """(cutoff or NA, seed, natural_accuracy, top1) rows of one attack."""
    table = pd.DataFrame(values, columns=["cutoff", "seed", "natural_accuracy", "top1"])
    return table.astype({"cutoff": "Int64"})


# two seeds; undefended: accuracy mean 0.91, top-1 mean 0.75
TWO_SEEDS = rows(
    [
        (NA, 0, 0.90, 0.80),
        (NA, 1, 0.92, 0.70),
        (0, 0, 0.90, 0.70),  # mean accuracy 0.90, top-1 0.65: drop 0.10
        (0, 1, 0.90, 0.60),
        (2, 0, 0.88, 0.50),  # mean accuracy 0.885 (cost 0.025, allowed), top-1 0.45: drop 0.30
        (2, 1, 0.89, 0.40),
        (4, 0, 0.80, 0.10),  # mean accuracy 0.80 (cost 0.11): largest drop, not allowed
        (4, 1, 0.80, 0.10),
    ]
)


def test_sign_flip_p_value_by_hand() -> None:
    # |d| = (0.1, 0.2, 0.05), observed sum 0.25; of the 8 signed sums (0.35, 0.25, -0.05,
    # -0.15, 0.15, 0.05, -0.25, -0.35) two reach 0.25
    assert sign_flip_p_value([0.1, 0.2, -0.05]) == pytest.approx(2 / 8)
    assert sign_flip_p_value([0.3] * 5) == pytest.approx(1 / 32)
    assert sign_flip_p_value([0.0, 0.0]) == 1.0


def test_bootstrap_interval_by_hand() -> None:
    # one group (0, 1): resampled means are 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles of 2000 resamples are 0 and 1
    assert bootstrap_mean_interval([[0.0, 1.0]]) == (0.0, 1.0)
    assert bootstrap_mean_interval([[0.4, 0.4], [0.4]]) == pytest.approx((0.4, 0.4))
    assert all(math.isnan(v) for v in bootstrap_mean_interval([[0.7]]))


def test_best_point_is_the_largest_drop_within_three_points() -> None:
    best = best_point(TWO_SEEDS)
    assert best["cutoff"] == 2
    assert best["drop"] == pytest.approx(0.30)
    assert best["undefended"] == pytest.approx({"natural_accuracy": 0.91, "top1": 0.75})


def test_no_cutoff_within_the_cost_has_no_best_point() -> None:
    assert best_point(TWO_SEEDS, max_cost=0.001)["cutoff"] is None


def test_verdict_not_worse_by_hand() -> None:
    # auto at 0 for seed 0, at 2 for seed 1: d = (0.70 - 0.50, 0.40 - 0.40) = (0.2, 0)
    verdict = auto_verdict(TWO_SEEDS, {0: 0, 1: 2})
    assert verdict["differences"] == pytest.approx([0.2, 0.0])
    assert verdict["p_value"] == pytest.approx(0.5)  # 2 of 4 sign patterns reach 0.2
    assert verdict["verdict"] == NOT_WORSE
    assert verdict["can_reject"] is False  # 2 seeds: the smallest p is 1/4


def test_verdict_worse_with_five_seeds() -> None:
    five = rows(
        [(c, s, 0.9, top1) for s in range(5) for c, top1 in ((NA, 0.8), (0, 0.7), (2, 0.4))]
    )
    verdict = auto_verdict(five, dict.fromkeys(range(5), 0))
    assert verdict["best"]["cutoff"] == 2
    assert verdict["p_value"] == pytest.approx(1 / 32)
    assert verdict["verdict"] == WORSE


def test_verdict_undecided_when_auto_was_not_swept() -> None:
    verdict = auto_verdict(TWO_SEEDS, {0: 6, 1: 6})
    assert verdict["verdict"] == UNDECIDED and "not swept" in verdict["why"]


def test_sweep_series_by_hand() -> None:
    table = TWO_SEEDS.assign(
        attack="gmi",
        trainable_fraction=[1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.2, 0.2],
        rule=["", "", "knee", "", "auto,mass", "auto,mass", "", ""],
    )
    hits = pd.DataFrame(
        [
            (c, s, "gmi", identity, 0, 1.0)
            for c, s in zip(table["cutoff"], table["seed"], strict=True)
            for identity in (0, 1)
        ],
        columns=["cutoff", "seed", "attack", "identity", "draw", "top1"],
    ).astype({"cutoff": "Int64"})
    series = sweep_series(table, hits).set_index("cutoff", drop=False)
    assert len(series) == 4  # three cutoffs and the undefended model
    assert series.loc[2, "natural_accuracy"] == pytest.approx(0.885)
    assert series.loc[2, "top1"] == pytest.approx(0.45)
    assert series.loc[2, "rules"] == "auto, mass"
    assert series.loc[0, "rules"] == "knee 1/2"
    assert (series.loc[2, "top1_low"], series.loc[2, "top1_high"]) == (1.0, 1.0)  # all hits
    assert series["cutoff"].isna().sum() == 1


def test_rule_landings_by_hand() -> None:
    table = TWO_SEEDS.assign(trainable_fraction=TWO_SEEDS["cutoff"].map({0: 1.0, 2: 0.5, 4: 0.2}))
    rules = {
        "0": {"auto": {"lands": 2}, "knee": {"lands": 0}, "rgn": {"lands": None}},
        "1": {"auto": {"lands": 4}, "knee": {"lands": 0}, "rgn": {"lands": None}},
    }
    landings = rule_landings(table, rules, best_cutoff=2).set_index("rule")
    assert list(landings.index) == ["auto", "knee"]  # rgn landed nowhere: no row
    auto = landings.loc["auto"]
    # seed 0 at cutoff 2 (0.88, 0.50), seed 1 at cutoff 4 (0.80, 0.10); best (cutoff 2) per
    # seed: top-1 0.50 and 0.40, accuracy 0.88 and 0.89
    assert auto["cutoffs"] == "2,4" and auto["n_seeds"] == 2
    assert auto["natural_accuracy"] == pytest.approx(0.84)
    assert auto["top1"] == pytest.approx(0.30)
    assert auto["top1_minus_best"] == pytest.approx(((0.50 - 0.50) + (0.10 - 0.40)) / 2)
    assert auto["accuracy_minus_best"] == pytest.approx(0.84 - 0.885)
    assert auto["trainable_fraction"] == pytest.approx(0.35)
    assert not auto["within_cost"]  # 0.84 < 0.91 - 0.03
    knee = landings.loc["knee"]
    assert knee["top1_minus_best"] == pytest.approx(((0.70 - 0.50) + (0.60 - 0.40)) / 2)
    assert knee["within_cost"]  # 0.90 >= 0.88
