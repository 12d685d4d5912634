"""``fisher="auto"``: which estimator each split gets, the warning for the empirical Fisher on
labels that are not the model's classes, and the per-series views (``series_labels``,
``shares``, ``summary``) of a table holding two estimators for one split."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from fisher_mi.errors import ConfigError
from fisher_mi.fisher import (
    FisherWarning,
    estimators_for,
    fisher_diagonal,
    profile,
    profile_splits,
    series_labels,
    shares,
    summary,
)
from tests.cases import CASES


@pytest.mark.parametrize(
    ("split", "fisher", "expected"),
    [
        ("private", "auto", ("empirical",)),
        ("private-test", "auto", ("empirical",)),
        ("inverted", "auto", ("empirical", "true")),
        ("inverted-gmi", "auto", ("empirical", "true")),  # one attack's reconstructions
        ("public", "auto", ("true",)),
        ("celeba", "auto", ("true",)),  # another dataset
        ("invertedness", "auto", ("true",)),  # not inverted-<name>
        ("public", "true", ("true",)),
        ("private", "true", ("true",)),
        ("inverted", "empirical", ("empirical",)),
    ],
)
def test_estimators_per_split(split: str, fisher: str, expected: tuple[str, ...]) -> None:
    assert estimators_for(split, fisher) == expected


@pytest.mark.parametrize(
    ("split", "warns"),
    [("public", True), ("celeba", True), ("private", False), ("inverted", False)],
)
def test_the_empirical_fisher_warns_only_off_the_models_classes(split: str, warns: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimators_for(split, "empirical")
    assert [w.category for w in caught] == ([FisherWarning] if warns else [])


def test_an_unknown_estimator_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown fisher 'exact'; known: auto, empirical, true"):
        estimators_for("private", "exact")


def model_and_data() -> tuple[torch.nn.Module, TensorDataset]:
    case = CASES[0]
    torch.manual_seed(0)
    return case.model(), case.data()


def test_auto_is_the_default_and_reads_the_split_name() -> None:
    model, data = model_and_data()
    for split, estimator in (("private", "empirical"), ("public", "true")):
        by_default = profile(model, data, split=split, batch_size=4)
        explicit = profile(model, data, split=split, fisher=estimator, batch_size=4)
        pd.testing.assert_frame_equal(by_default, explicit)  # same seed, same labels drawn


def test_auto_on_reconstructions_gives_both_estimators_as_rows() -> None:
    model, data = model_and_data()
    both = profile(model, data, split="inverted", batch_size=4)
    parts = [
        profile(model, data, split="inverted", fisher=e, batch_size=4)
        for e in ("empirical", "true")
    ]
    pd.testing.assert_frame_equal(both, pd.concat(parts, ignore_index=True))
    assert not np.allclose(parts[0]["fisher_trace"], parts[1]["fisher_trace"])


def test_the_diagonal_takes_the_first_auto_estimator() -> None:
    model, data = model_and_data()
    auto = fisher_diagonal(model, data, split="inverted", batch_size=4)
    empirical = fisher_diagonal(model, data, split="inverted", fisher="empirical", batch_size=4)
    assert auto.keys() == empirical.keys()
    assert all(torch.equal(auto[name], empirical[name]) for name in auto)


def test_profile_splits_records_each_splits_estimators() -> None:
    model, data = model_and_data()
    run = profile_splits(model, {"private": data, "public": data, "inverted": data}, batch_size=4)
    assert {split: record["fisher"] for split, record in run.splits.items()} == {
        "private": ["empirical"],
        "public": ["true"],
        "inverted": ["empirical", "true"],
    }
    assert run.options["fisher"] == "auto"


def long_table() -> pd.DataFrame:
    """Two layers; split b profiled with two estimators; hand-chosen traces."""
    rows = [
        ("a", "empirical", 1.0, 3.0),
        ("b", "empirical", 2.0, 2.0),
        ("b", "true", 0.0, 0.0),
    ]
    return pd.DataFrame(
        [
            {
                "layer": layer,
                "depth": depth,
                "kind": "Linear",
                "n_params": n_params,
                "split": split,
                "fisher": fisher,
                "fisher_trace": trace,
                "fisher_per_param": trace / n_params,
            }
            for split, fisher, *traces in rows
            for depth, (layer, n_params, trace) in enumerate(
                zip(("l0", "l1"), (2, 4), traces, strict=True)
            )
        ]
    )


def test_series_are_split_and_estimator() -> None:
    labels = series_labels(long_table())
    assert list(dict.fromkeys(labels)) == ["a (empirical)", "b (empirical)", "b (true)"]
    assert list(series_labels(long_table().drop(columns="fisher")).unique()) == ["a", "b"]


def test_shares_divide_by_each_series_total_fisher() -> None:
    table = long_table()
    # a: traces 1, 3 -> 1/4, 3/4; b empirical: 2, 2 -> 1/2, 1/2; b true: total 0 -> NaN
    assert np.allclose(shares(table).to_numpy()[:4], [0.25, 0.75, 0.5, 0.5])
    assert shares(table).iloc[4:].isna().all()
    # per parameter: 1/2 / 4 and 3/4 / 4 for a's layers of 2 and 4 parameters
    assert np.allclose(shares(table, "fisher_per_param").to_numpy()[:2], [0.125, 0.1875])


def test_summary_shows_each_series_absolute_and_normalised() -> None:
    text = summary(long_table())
    absolute, normalised = text.split("\n\n")
    for block in (absolute, normalised):
        assert "a (empirical)" in block and "b (empirical)" in block and "b (true)" in block
    # a's l0: 1/2 per parameter, a 1/4 share; no absolute value is 0.25
    assert "0.25" in normalised and "0.25" not in absolute and "0.5" in absolute


def test_summary_refuses_a_repeated_series_instead_of_averaging() -> None:
    table = long_table()
    with pytest.raises(ValueError, match="duplicate"):
        summary(pd.concat([table, table.iloc[:1]], ignore_index=True))
