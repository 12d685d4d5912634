"""``fisher-mi sweep`` at tiny settings on a small folder dataset: the CSV schema, resuming an
interrupted sweep (only the missing rows are computed), the rank split, the paper's cutoff."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import fisher_mi.experiments.sweep as sweep_module
from fisher_mi import distributed
from fisher_mi.cli import main
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.sweep import (
    COLUMNS,
    HIT_COLUMNS,
    PAPER_TRAINABLE_FRACTION,
    Sweep,
    SweepConfig,
    Unit,
    _append,
    paper_cutoff,
    rank_share,
    run_sweep,
    sweep,
)
from fisher_mi.models import build_model

pytestmark = pytest.mark.filterwarnings(
    "ignore::fisher_mi.evaluate.metrics.FewSamplesWarning", "ignore::UserWarning"
)
CLASSES = 5
# every stage as short as it goes: one optimiser step per training, one GAN step, one
# attack iteration, one draw per identity
TINY = {
    "cutoffs": (0, 4),
    "seeds": (0,),
    "arch": "mcnn",
    "evaluator_arch": "scnn",
    "epochs": 1,
    "pretrain_epochs": 1,
    "head_epochs": 1,
    "batch_size": 8,
    "max_steps": 1,
    "gan_steps": 1,
    "iterations": 1,
    "per_identity": 1,
    "profile_samples": 8,
}


def _faces(root: Path) -> str:
    """A folder dataset: 5 identities of 32 px grey images (one grey level each, plus noise)."""
    rng = np.random.default_rng(0)
    for split, count in (("private", 8), ("private-test", 2), ("public", 8)):
        for identity in range(CLASSES):
            folder = root / split / str(identity)
            folder.mkdir(parents=True)
            for k in range(count):
                level = 40 * identity + rng.integers(0, 30, size=(32, 32))
                Image.fromarray(level.astype(np.uint8)).save(folder / f"{k}.png")
    return f"folder:{root}"


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A sweep killed after its first row, then run again through the CLI."""
    root = tmp_path_factory.mktemp("sweep")
    data, out = _faces(root / "faces"), root / "sweep"
    visited: list[Unit] = []
    original = Sweep.unit_steps

    def interrupted(self: Sweep, unit: Unit) -> list:
        visited.append(unit)
        if len(visited) == 2:  # the first unit's row is written; stop before the second
            raise KeyboardInterrupt
        return original(self, unit)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sweep, "unit_steps", interrupted)
        with pytest.raises(KeyboardInterrupt):
            sweep(data, out=out, **TINY)
    first = (out / "sweep.csv").read_text()
    rerun: list[Unit] = []

    def counted(self: Sweep, unit: Unit) -> list:
        rerun.append(unit)
        return original(self, unit)

    argv = ["sweep", "--data", data, "--cutoffs", "0,4", "--arch", "mcnn"]
    argv += ["--evaluator-arch", "scnn", "--epochs", "1", "--pretrain-epochs", "1"]
    argv += ["--head-epochs", "1"]
    argv += ["--batch-size", "8", "--max-steps", "1", "--steps", "1", "--iters", "1"]
    argv += ["--per-id", "1", "--profile-samples", "8", "--out", str(out)]
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sweep, "unit_steps", counted)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            code = main(argv)
    assert code == 0, stderr.getvalue()
    return {"out": out, "first": first, "rerun": rerun, "data": data}


def test_interrupted_sweep_keeps_its_first_row(resumed: dict) -> None:
    header, *rows = resumed["first"].splitlines()
    assert header == ",".join(COLUMNS)
    assert len(rows) == 1 and rows[0].startswith(",,1.0,0,")  # the undefended model, seed 0


def test_rerun_computes_only_the_missing_rows(resumed: dict) -> None:
    assert resumed["rerun"] == [Unit(0, 0), Unit(4, 0)]
    lines = (resumed["out"] / "sweep.csv").read_text().splitlines()
    assert lines[:2] == resumed["first"].splitlines()  # the first row was not recomputed
    assert len(lines) == 4


def test_sweep_csv_schema(resumed: dict) -> None:
    table = pd.read_csv(resumed["out"] / "sweep.csv")
    assert tuple(table.columns) == COLUMNS
    assert table["cutoff"].tolist()[1:] == [0, 4] and table["block"].tolist()[1:] == [0, 2]
    assert table["trainable_fraction"].iloc[0] == 1.0
    assert table["trainable_fraction"].iloc[2] == pytest.approx(
        1 - (3200 + 128 + 204928 + 256) / 1029765  # mcnn's first two blocks frozen
    )
    assert table["attack"].eq("gmi").all() and table["seed"].eq(0).all()
    assert table[["natural_accuracy", "top1"]].apply(lambda c: c.between(0, 1)).all().all()


def test_outputs_of_the_sweep(resumed: dict) -> None:
    out = resumed["out"]
    for name in ("sweep.png", "sweep.json", "hits.csv", "manifest.json"):
        assert (out / name).is_file(), name
    hits = pd.read_csv(out / "hits.csv")
    assert len(hits) == 3 * CLASSES  # three models, one draw per identity


def test_other_settings_into_the_same_folder_are_refused(resumed: dict) -> None:
    with pytest.raises(ConfigError, match="other settings"):
        sweep(resumed["data"], out=resumed["out"], **{**TINY, "epochs": 2})


def test_rank_share_splits_every_run_once() -> None:
    runs = list(range(7))
    shares = [rank_share(runs, r, 3) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(x for share in shares for x in share) == runs
    with pytest.raises(ConfigError):
        rank_share(runs, 3, 3)


def test_paper_cutoff_is_nearest_to_the_paper_fraction() -> None:
    model = build_model("vgg_small", num_classes=5)
    # trainable fractions of cutoffs 0, 2, 4, 6, 9: 1, 0.9977, 0.9532, 0.7759, 0.0490; the
    # nearest to 0.285 is 0.0490 (0.236 away; 0.7759 is 0.491 away)
    assert PAPER_TRAINABLE_FRACTION == 0.285
    assert paper_cutoff(model, [0, 2, 4, 6, 9]) == 9
    assert paper_cutoff(model, [0, 2, 4, 6]) == 6


class _Rows:
    """A stand-in for ``Sweep`` whose units give fixed rows (no training)."""

    def unit_rows(self, unit: Unit) -> tuple[list[dict], list[pd.DataFrame]]:
        rows = [
            dict.fromkeys(COLUMNS, 0) | {"cutoff": unit.cutoff, "seed": unit.seed, "attack": a}
            for a in ("gmi", "kedmi")
        ]
        hits = pd.DataFrame({"identity": [0], "draw": [0], "top1": [1.0]})
        return rows, [hits.assign(cutoff=unit.cutoff, seed=unit.seed, attack="gmi")]


def test_a_revisited_unit_replaces_its_rows(tmp_path: Path) -> None:
    old = pd.DataFrame([dict.fromkeys(COLUMNS, 0) | {"cutoff": 2, "attack": "gmi"}])
    old_hits = pd.DataFrame([dict.fromkeys(HIT_COLUMNS, 0) | {"cutoff": 2, "attack": "gmi"}])
    table, hits = _append(_Rows(), tmp_path, old, old_hits, [Unit(2, 0), Unit(None, 0)])
    assert table["attack"].tolist() == ["gmi", "kedmi", "gmi", "kedmi"]  # no duplicate gmi row
    assert table["cutoff"].isna().tolist() == [False, False, True, True]
    assert len(hits) == 2
    assert pd.read_csv(tmp_path / "sweep.csv").shape == (4, len(COLUMNS))


class _Stop(Exception):
    pass


def test_shared_stages_are_split_by_the_rank_outside_solo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 of 2 (as torchrun would run it) computes its share of the shared stages only:
    the share is taken from the real rank, not from inside ``solo()`` where every rank is 0."""
    seen: list[str] = []

    def record(steps: list) -> None:
        seen.extend(step.name for step in steps)
        raise _Stop

    monkeypatch.setattr(sweep_module, "rank", lambda: 0 if distributed._SOLO else 1)
    monkeypatch.setattr(sweep_module, "world_size", lambda: 1 if distributed._SOLO else 2)
    monkeypatch.setattr(sweep_module, "run_steps", record)
    config = SweepConfig(data="digits", cutoffs=(0,), seeds=(0, 1))
    with pytest.raises(_Stop):
        run_sweep(config, tmp_path / "sweep")
    # jobs: [evaluator], [gan/gmi], [seed-0 pretrain, head, rules], [seed-1 ...]
    assert seen == ["gan/gmi", "seed-1/pretrain", "seed-1/head", "seed-1/rules"]


def test_a_sweep_attacks_with_plgmi_through_a_prior_per_model(tmp_path: Path) -> None:
    """plgmi (a conditional prior trained against each model) runs in a sweep like kedmi."""
    with contextlib.redirect_stdout(io.StringIO()):
        result = sweep(
            "digits", out=tmp_path / "run", **{**TINY, "cutoffs": (0,), "attacks": ("plgmi",)}
        )
    assert result.table["attack"].tolist() == ["plgmi", "plgmi"]  # the TL model, undefended
    assert result.table["top1"].between(0, 1).all()
    assert (tmp_path / "run" / "gan" / "plgmi-seed-0-cutoff-0" / "generator.pt").is_file()
