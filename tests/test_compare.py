"""``fisher-mi compare``: the grid of (defense, strength, seed) units, the one-line error for an
unknown defense, the table's columns, resuming (only the missing units run; a complete folder
trains nothing), the series and the figure, and one end-to-end ``--quick`` run on ``digits``."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest

import fisher_mi.experiments.sweep as sweep_module
from fisher_mi.cli import main
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.compare import (
    COLUMNS,
    COMPARE,
    Compare,
    base_attack,
    compare,
    compare_series,
)
from fisher_mi.experiments.compare_config import (
    CompareConfig,
    DefenseUnit,
    known_defenses,
    parse_defenses,
    parse_grid,
)
from fisher_mi.experiments.stages import SAMPLE_HEAD, has_option, with_option
from fisher_mi.experiments.sweep import run_units
from fisher_mi.experiments.sweep_config import SweepConfig
from fisher_mi.io import load_checkpoint
from fisher_mi.report.compare import REFERENCE_LABEL, compare_figure

pytestmark = pytest.mark.filterwarnings(
    "ignore::fisher_mi.evaluate.metrics.FewSamplesWarning", "ignore::UserWarning"
)
DEFENSES = "none,mid,tl+bido"
# --quick with every size at its smallest: a few optimiser steps, one GAN step, one attack
# iteration, one draw per identity (the numbers mean nothing; the pipeline runs)
TINY = ["--epochs", "1", "--pretrain-epochs", "1", "--head-epochs", "1", "--batch-size", "8"]
TINY += ["--max-steps", "2", "--steps", "1", "--iters", "1", "--per-id", "1"]
TINY += ["--profile-samples", "8"]
GRID = ["--defense-param", "beta=0.01", "--defense-param", "a1=0.05"]


def _config(defenses: str, pairs: list[str]) -> CompareConfig:
    return CompareConfig(SweepConfig(data="digits"), parse_defenses(defenses), parse_grid(pairs))


def _units(defenses: str, pairs: list[str]) -> list[tuple[str, tuple]]:
    return [(u.defense, u.params) for u in _config(defenses, pairs).units()]


def test_a_grid_of_three_values_gives_three_units() -> None:
    assert parse_grid(["beta=0.003,0.01,0.02"]) == {"beta": ("0.003", "0.01", "0.02")}
    assert _units("mid", ["beta=0.003,0.01,0.02"]) == [
        ("mid", (("beta", 0.003),)),
        ("mid", (("beta", 0.01),)),
        ("mid", (("beta", 0.02),)),
    ]


def test_only_mid_adds_the_sampled_head_attack_and_its_rows_compare_with_the_plain_one() -> None:
    names = known_defenses()
    variants = {n: DefenseUnit(cutoff=None, seed=0, defense=n).attack_variants for n in names}
    assert variants == {name: (SAMPLE_HEAD,) if name.endswith("mid") else () for name in names}
    assert with_option("gmi", SAMPLE_HEAD) == "gmi+sample"
    assert [has_option(a, SAMPLE_HEAD) for a in ("gmi", "gmi+sample", "gmi+lomma")] == [
        False,
        True,
        False,
    ]
    assert base_attack("gmi+lomma+sample") == "gmi+lomma"
    assert base_attack("gmi+lomma") == "gmi+lomma"


def test_a_grid_sets_every_defense_with_the_parameter_and_spares_the_others() -> None:
    assert _units("none,bido,tl+bido,nls", ["a1=0.1,0.2", "a2=1"]) == [
        ("none", ()),
        ("bido", (("a1", 0.1), ("a2", 1.0))),
        ("bido", (("a1", 0.2), ("a2", 1.0))),
        ("tl+bido", (("a1", 0.1), ("a2", 1.0))),
        ("tl+bido", (("a1", 0.2), ("a2", 1.0))),
        ("nls", (("alpha", -0.025),)),  # nls keeps its default grid
        ("nls", (("alpha", -0.05),)),
        ("nls", (("alpha", -0.1),)),
    ]


def test_the_default_grid_has_three_strengths_per_defense_and_seeds_multiply() -> None:
    config = CompareConfig(SweepConfig(data="digits", seeds=(0, 1)))
    counts = pd.Series([u.defense for u in config.units()]).value_counts().to_dict()
    assert counts == {"none": 2, "mid": 6, "bido": 6, "nls": 6, "tl": 2, "tl+bido": 6}
    names = [u.name for u in config.units()[:3]]
    assert names == ["seed-0/none", "seed-0/mid-beta=0.003", "seed-0/mid-beta=0.01"]


@pytest.mark.parametrize(
    ("defenses", "pairs", "says"),
    [
        ("none,foo", [], "unknown defense 'foo'; known: none, tl, bido, mid, nls, tl+bido"),
        ("mid,mid", [], "names a defense twice"),
        (",", [], "names no defense"),
        ("mid,nls", ["a1=0.1"], "none of the defenses has it; their parameters: mid: beta"),
        ("mid", ["beta=0.01,"], "empty value"),
        ("mid", ["beta=strong"], "must be a float"),
    ],
)
def test_bad_defenses_and_grids_are_refused(defenses: str, pairs: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("+", r"\+")):
        _config(defenses, pairs).units()


def test_cli_unknown_defense_is_one_line_listing_the_known(tmp_path: Path) -> None:
    stderr = io.StringIO()
    argv = ["compare", "--data", "digits", "--defenses", "none,tl+foo", "--out", str(tmp_path)]
    with contextlib.redirect_stderr(stderr):
        assert main(argv) == 2
    lines = stderr.getvalue().strip().splitlines()
    assert lines == [
        "fisher-mi: error: --defenses: unknown defense 'tl+foo'; known: none, tl, bido, mid, "
        "nls, tl+bido, tl+mid, tl+nls"
    ]


def test_the_table_has_design_columns() -> None:
    assert COLUMNS == (
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


def test_pretraining_is_shared_only_when_a_tl_defense_is_compared(tmp_path: Path) -> None:
    plain = Compare(_config("none,mid", []), tmp_path)
    assert [[s.name for s in job] for job in plain.shared_steps()] == [["evaluator"], ["gan/gmi"]]
    tl = Compare(_config("none,tl", []), tmp_path)
    assert [s.name for s in tl.shared_steps()[2]] == [
        "seed-0/pretrain",
        "seed-0/head",
        "seed-0/rules",
    ]


class _Visits:
    """A stand-in plan: no shared stage, three units, each visit recorded (no training)."""

    def __init__(self) -> None:
        self.visited: list[str] = []

    def shared_steps(self) -> list:
        return []

    def units(self) -> list[DefenseUnit]:
        return _config("none,mid", ["beta=0.01,0.02"]).units()

    def unit_steps(self, unit: DefenseUnit) -> list:
        self.visited.append(unit.name)
        return []


def test_under_torchrun_each_rank_trains_its_share_of_the_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 of 2 (as torchrun would run it) visits the second unit of each round of two,
    and (not being rank 0) appends no rows."""
    monkeypatch.setattr(sweep_module, "rank", lambda: 1)
    monkeypatch.setattr(sweep_module, "world_size", lambda: 2)
    monkeypatch.setattr(sweep_module, "is_main_process", lambda: False)
    plan = _Visits()
    table, _ = run_units(plan, tmp_path, ("gmi",), COMPARE)
    assert plan.visited == ["seed-0/mid-beta=0.01"]  # of none, mid 0.01 | mid 0.02
    assert table.empty and not (tmp_path / "compare.csv").exists()


def _row(defense: str, params: str, seed: int, accuracy: float, top1: float) -> dict:
    return dict.fromkeys(COLUMNS, 0.0) | {
        "defense": defense,
        "params": params,
        "seed": seed,
        "attack": "gmi",
        "natural_accuracy": accuracy,
        "top1": top1,
        "trainable_fraction": 1.0,
    }


TABLE = pd.DataFrame(
    [
        _row("none", "", 0, 0.9, 0.8),
        _row("mid", "beta=0.02", 0, 0.7, 0.3),  # written out of order (a resumed run)
        _row("mid", "beta=0.003", 0, 0.88, 0.7),
        _row("mid", "beta=0.01", 0, 0.8, 0.5),
        _row("nls", "alpha=-0.1", 0, 0.85, 0.6),
        _row("nls", "alpha=-0.05", 0, 0.87, 0.65),
        _row("tl", "", 0, 0.86, 0.4),
        _row("tl", "", 1, 0.84, 0.2),
    ]
)


def test_series_orders_strengths_and_bootstraps_over_seeds_only_from_two() -> None:
    series = compare_series(TABLE)
    mid = series[series["defense"] == "mid"]
    assert mid["params"].tolist() == ["beta=0.003", "beta=0.01", "beta=0.02"]
    assert series["defense"].drop_duplicates().tolist() == ["none", "mid", "nls", "tl"]
    assert series[series["defense"] == "nls"]["params"].tolist() == ["alpha=-0.1", "alpha=-0.05"]
    assert math.isnan(mid["top1_low"].iloc[0])  # one seed: no interval
    tl = series[series["defense"] == "tl"].iloc[0]
    # two seeds of top-1 0.4 and 0.2: resamples are (0.4, 0.4), mixed, (0.2, 0.2) with
    # probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% quantiles are 0.2 and 0.4
    assert (tl["n_seeds"], tl["top1"]) == (2, pytest.approx(0.3))
    assert (tl["top1_low"], tl["top1_high"]) == (pytest.approx(0.2), pytest.approx(0.4))


def test_mids_sampled_head_rows_are_a_curve_of_their_own_in_the_attacks_panel() -> None:
    sampled = pd.DataFrame(
        [_row("mid", "beta=0.003", 0, 0.88, 0.75), _row("mid", "beta=0.01", 0, 0.8, 0.6)]
    ).assign(attack="gmi+sample")
    fig = compare_figure(compare_series(pd.concat([TABLE, sampled], ignore_index=True)))
    assert len(fig.axes) == 1  # no panel of its own: gmi's, beside the same reference
    curves = {c.get_label(): c.lines[0] for c in fig.axes[0].containers}
    assert list(curves) == ["mid", "nls", "tl", "mid (sampled head)", REFERENCE_LABEL]
    assert curves["mid (sampled head)"].get_xdata().tolist() == [0.75, 0.6]


def test_the_figure_has_one_curve_per_defense_with_its_strengths_in_order() -> None:
    ax = compare_figure(compare_series(TABLE)).axes[0]
    curves = {c.get_label(): c.lines[0] for c in ax.containers}
    assert list(curves) == ["mid", "nls", "tl", REFERENCE_LABEL]
    assert curves["mid"].get_xdata().tolist() == [0.7, 0.5, 0.3]  # beta 0.003, 0.01, 0.02
    assert curves["mid"].get_ydata().tolist() == [0.88, 0.8, 0.7]
    assert curves[REFERENCE_LABEL].get_xdata().tolist() == [0.8]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A comparison killed after its first unit, run again through the CLI, then once more."""
    out = tmp_path_factory.mktemp("compare") / "run"
    original = Compare.unit_steps
    visited: list[DefenseUnit] = []

    def interrupted(self: Compare, unit: DefenseUnit) -> list:
        visited.append(unit)
        if len(visited) == 2:  # the first unit's rows are written; stop before the second
            raise KeyboardInterrupt
        return original(self, unit)

    options = {"epochs": 1, "pretrain_epochs": 1, "head_epochs": 1, "batch_size": 8}
    options |= {"max_steps": 2, "gan_steps": 1, "iterations": 1, "per_identity": 1}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Compare, "unit_steps", interrupted)
        with pytest.raises(KeyboardInterrupt), contextlib.redirect_stdout(io.StringIO()):
            compare(
                "digits",
                out=out,
                defenses=DEFENSES,
                grid={"beta": [0.01], "a1": [0.05]},
                profile_samples=8,
                quick=True,
                **options,
            )
    first = (out / "compare.csv").read_text()
    argv = ["compare", "--data", "digits", "--defenses", DEFENSES, *GRID, "--quick", *TINY]
    argv += ["--out", str(out)]
    runs = []
    for _ in range(2):
        rerun: list[DefenseUnit] = []

        def counted(self: Compare, unit: DefenseUnit, seen: list = rerun) -> list:
            seen.append(unit)
            return original(self, unit)

        stdout, stderr = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Compare, "unit_steps", counted)
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main(argv)
        assert code == 0, stderr.getvalue()
        runs.append({"units": [u.name for u in rerun], "log": stdout.getvalue()})
    return {"out": out, "first": first, "runs": runs}


def test_an_interrupted_comparison_keeps_its_first_unit(resumed: dict) -> None:
    header, *rows = resumed["first"].splitlines()
    assert header == ",".join(COLUMNS)
    assert len(rows) == 1 and rows[0].startswith("none,,0,")


def test_a_rerun_trains_only_the_missing_units(resumed: dict) -> None:
    assert resumed["runs"][0]["units"] == ["seed-0/mid-beta=0.01", "seed-0/tl+bido-a1=0.05"]
    lines = (resumed["out"] / "compare.csv").read_text().splitlines()
    assert lines[:2] == resumed["first"].splitlines()  # the first row was not recomputed
    assert "[    ran] seed-0/none" not in resumed["runs"][0]["log"]


def test_a_complete_comparison_runs_no_step(resumed: dict) -> None:
    again = resumed["runs"][1]
    assert again["units"] == []
    states = [line.split("]")[0].strip("[ ") for line in again["log"].splitlines() if "] " in line]
    assert states and set(states) == {"reused"}


def test_the_rows_of_the_run(resumed: dict) -> None:
    out = resumed["out"]
    table = pd.read_csv(out / "compare.csv", keep_default_na=False)
    assert tuple(table.columns) == COLUMNS
    # MID is attacked through mu (gmi) and through its sampling head (gmi+sample)
    assert table["defense"].tolist() == ["none", "mid", "mid", "tl+bido"]
    assert table["attack"].tolist() == ["gmi", "gmi", "gmi+sample", "gmi"]
    assert table["params"].tolist() == ["", "beta=0.01", "beta=0.01", "a1=0.05"]
    mid = table[table["defense"] == "mid"]
    assert mid["natural_accuracy"].nunique() == 1  # both rows report mu's accuracy
    fractions = table["trainable_fraction"].tolist()
    assert fractions[:3] == [1.0] * 3 and 0 < fractions[3] < 1  # tl freezes where auto lands
    assert table[["natural_accuracy", "top1"]].apply(lambda c: c.between(0, 1)).all().all()
    for name in ("compare.png", "compare.json", "hits.csv", "settings.json", "manifest.json"):
        assert (out / name).is_file(), name
    assert len(pd.read_csv(out / "hits.csv")) == 4 * 5  # four attacks, one draw per identity
    for method, sampled in (("gmi", False), ("gmi+sample", True)):
        folder = out / "attacks" / f"seed-0-mid-beta=0.01-{method}"
        protocol = json.loads((folder / "metrics.json").read_text())["protocol"]
        assert protocol["sample_head"] is sampled


def test_the_defended_models_record_their_defense(resumed: dict) -> None:
    meta = load_checkpoint(resumed["out"] / "seed-0" / "mid-beta=0.01" / "model.pt")["meta"]
    assert (meta["defense"]["name"], meta["defense"]["params"]) == ("mid", {"beta": 0.01})
    meta = load_checkpoint(resumed["out"] / "seed-0" / "tl+bido-a1=0.05" / "model.pt")["meta"]
    assert meta["defense"]["name"] == "bido" and meta["defense"]["params"]["a1"] == 0.05
    assert meta["pretrained_on"] == "digits"


def test_other_settings_into_the_same_folder_are_refused(resumed: dict) -> None:
    with pytest.raises(ConfigError, match="other settings"):
        compare("digits", out=resumed["out"], defenses="none", epochs=2)
