"""The planner on tables with several estimators (``fisher="auto"``): one series per split read
explicitly, ``ratio`` refusing a mix, the figure drawing each series; and ``fisher-mi plan``'s
warnings (a table of a model not pre-trained on public data, a plan that freezes nothing)."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from fisher_mi.cli import main
from fisher_mi.errors import ConfigError
from fisher_mi.io import write_table
from fisher_mi.plan import PlanWarning, plan_freeze, warn_if_not_pretrained
from fisher_mi.plan.table import check_table, split_values
from fisher_mi.report.figures import _series_lines
from tests.error_cases import one_line

N_PARAMS = [10, 10, 10, 10]
# series -> per-layer fisher_trace; each estimator of a split has its own shape
SERIES = {
    ("private", "empirical"): [1.0, 1.0, 1.0, 7.0],  # mass p=0.9: the last 3 hold 0.9
    ("private", "true"): [7.0, 1.0, 1.0, 1.0],
    ("public", "true"): [1.0, 1.0, 1.0, 1.0],
    ("public", "empirical"): [2.0, 2.0, 2.0, 2.0],
}


def table(series: dict[tuple[str, str], list[float]] = SERIES) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "layer": f"l{depth}",
                "depth": depth,
                "kind": "Linear",
                "n_params": N_PARAMS[depth],
                "split": split,
                "n_samples": 8,
                "fisher_trace": trace,
                "fisher_per_param": trace / N_PARAMS[depth],
                "fisher": fisher,
                "backend": "hooks",
            }
            for (split, fisher), traces in series.items()
            for depth, trace in enumerate(traces)
        ]
    )


def only(*names: tuple[str, str]) -> dict[tuple[str, str], list[float]]:
    return {name: SERIES[name] for name in names}


@pytest.mark.parametrize(
    ("split", "fisher", "expected"),
    [
        ("private", None, SERIES["private", "empirical"]),  # auto's choice for private
        ("public", None, SERIES["public", "true"]),  # and for public identities
        ("private", "true", SERIES["private", "true"]),  # asked for explicitly
    ],
)
def test_a_split_is_read_with_one_estimator(
    split: str, fisher: str | None, expected: list[float]
) -> None:
    values = split_values(check_table(table()), split, "fisher_trace", rule="r", fisher=fisher)
    assert values.tolist() == expected


def test_a_missing_estimator_is_one_line() -> None:
    checked = check_table(table(only(("private", "empirical"), ("public", "true"))))
    with pytest.raises(ConfigError) as caught:
        split_values(checked, "public", "fisher_trace", rule="ratio", fisher="empirical")
    one_line(caught, "with the empirical Fisher, but its rows use true")


def test_two_estimators_per_split_are_not_duplicates_but_a_repeat_is() -> None:
    check_table(table())
    repeated = pd.concat([table(), table().iloc[:1]], ignore_index=True)
    with pytest.raises(ConfigError, match="split 'private' with estimator 'empirical'"):
        check_table(repeated)


def test_a_table_without_a_fisher_column_is_one_estimator() -> None:
    plain = table(only(("private", "empirical"), ("public", "true"))).drop(columns="fisher")
    assert plan_freeze(plain, rule="ratio").rule == "ratio"


def test_mass_plans_on_the_private_empirical_series() -> None:
    assert plan_freeze(table(), rule="mass").cutoff == 1  # not 0, as private true would give


def test_ratio_refuses_a_table_that_mixes_estimators() -> None:
    mixed = table(only(("private", "empirical"), ("public", "true")))  # what auto profiles
    with pytest.raises(ConfigError) as caught:
        plan_freeze(mixed, rule="ratio")
    one_line(caught, "(private empirical, public true)", "--fisher true")


@pytest.mark.filterwarnings("ignore:rule ratio")  # it freezes nothing, as the scores show
@pytest.mark.parametrize("fisher", ["true", True])  # --param fisher=true arrives as a bool
def test_ratio_reads_both_splits_with_the_estimator_asked_for(fisher: object) -> None:
    plan = plan_freeze(table(), rule="ratio", fisher=fisher)
    # private true / public true = 7, 1, 1, 1: only the first layer stands out
    assert plan.scores == pytest.approx({"l0": 1.0, "l1": 1 / 7, "l2": 1 / 7, "l3": 1 / 7})


def test_ratio_refuses_an_unknown_estimator() -> None:
    with pytest.raises(ConfigError, match="fisher must be one of empirical, true"):
        plan_freeze(table(), rule="ratio", fisher="exact")


def test_the_figure_draws_each_series_never_an_average() -> None:
    from matplotlib.figure import Figure

    rows = table()
    ax = Figure().subplots()
    _series_lines(ax, rows, ["l0", "l1", "l2", "l3"], rows["fisher_trace"])
    drawn = {line.get_label(): line.get_ydata().tolist() for line in ax.get_lines()}
    assert drawn == {f"{split} ({fisher})": traces for (split, fisher), traces in SERIES.items()}


# ---------------------------------------------------------------------------- warnings


@pytest.mark.parametrize(
    ("provenance", "warns"),
    [
        ({"pretrained_on": None, "role": "target", "init": None}, True),  # from scratch
        ({"pretrained_on": "mnist", "role": "target", "init": None}, False),
        ({"pretrained_on": None, "role": "target", "init": "vgg16.pt"}, False),
        (None, False),  # a foreign checkpoint: unknown, not warned about
    ],
)
def test_a_table_of_a_model_not_pretrained_warns(provenance: dict | None, warns: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_if_not_pretrained(provenance, table="t.csv") is warns
    assert [w.category for w in caught] == ([PlanWarning] if warns else [])


def plan_cli(folder: Path, provenance: dict | None, *extra: str) -> tuple[int, str]:
    """``fisher-mi plan`` of ``table()`` written with a fisher.json recording ``provenance``."""
    folder.mkdir()
    write_table(folder / "fisher.csv", table(only(("private", "empirical"), ("public", "true"))))
    (folder / "fisher.json").write_text(json.dumps({"model_provenance": provenance}))
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = main(["plan", str(folder / "fisher.csv"), *extra])
    return code, stderr.getvalue()


SCRATCH = {"pretrained_on": None, "role": "target", "init": None}
PRETRAINED = {"pretrained_on": "mnist", "role": "target", "init": None}


def test_plan_warns_in_one_line_about_a_table_from_scratch(tmp_path: Path) -> None:
    code, stderr = plan_cli(tmp_path / "scratch", SCRATCH)
    assert code == 0
    assert stderr.count("\n") == 1 and stderr.startswith("fisher-mi: warning: ")
    assert "not pre-trained on public data" in stderr


def test_plan_warns_in_one_line_when_it_freezes_nothing(tmp_path: Path) -> None:
    code, stderr = plan_cli(tmp_path / "all", PRETRAINED, "--param", "p=1.0")
    assert code == 0
    assert stderr.count("\n") == 1 and "freezes none of the 4 layers" in stderr


def test_plan_of_a_pretrained_model_that_freezes_layers_is_silent(tmp_path: Path) -> None:
    code, stderr = plan_cli(tmp_path / "ok", PRETRAINED)
    assert (code, stderr) == (0, "")
    assert json.loads((tmp_path / "ok" / "plan.json").read_text())["cutoff"] == 1
