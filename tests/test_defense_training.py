"""Training with a defense: NLS's schedule in ``history.csv``, BiDO under a freeze plan, the
``defense`` record in ``model.pt``, a defended model saved and loaded bit for bit and
profiled, resume refusing another defense, and ``fisher-mi train --defense``.

Everything runs on a class-balanced slice of the bundled ``digits`` with ``mcnn`` (a few
optimiser steps per run).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from fisher_mi.data import load_dataset
from fisher_mi.defenses import BiDO, NegativeLabelSmoothing, build_defense
from fisher_mi.errors import ConfigError
from fisher_mi.fisher import profile
from fisher_mi.io import load_checkpoint, read_table
from fisher_mi.models import build_model, load_model
from fisher_mi.plan import prefix_plan
from fisher_mi.training import COLUMNS, TrainConfig, train

SMALL = TrainConfig(epochs=1, batch_size=16, max_steps=2)


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    """A class-balanced slice of the private split (61 images) and of private-test (20)."""
    private, test = load_dataset("digits", "private"), load_dataset("digits", "private-test")
    return Subset(private, range(0, 723, 12)), Subset(test, range(0, 178, 9))


def mcnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mcnn", num_classes=10)


def assert_saved_and_profiled(model: nn.Module, folder: Path, data: Dataset) -> None:
    """``model.pt`` gives back the trained model's logits bit for bit, and profiles."""
    loaded = load_model(folder / "model.pt")
    x = torch.stack([data[i][0] for i in range(8)])
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x)[1], model(x)[1])
    table = profile(loaded, data, max_samples=8, batch_size=8)
    assert (table["fisher_trace"] > 0).any()


def test_nls_logs_alpha_per_epoch_and_records_the_defense(
    digits: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    model = mcnn()
    config = TrainConfig(epochs=4, batch_size=16)
    train(model, digits[0], config=config, objective=NegativeLabelSmoothing(), out=tmp_path)
    history = read_table(tmp_path / "history.csv")
    assert list(history.columns) == [*COLUMNS[:-2], "alpha", *COLUMNS[-2:]]
    assert history["alpha"].tolist() == pytest.approx([0.0, 0.0, -0.05, -0.05])
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert meta["defense"] == {"name": "nls", "params": {"alpha": -0.05}}
    assert meta["objective"] == meta["defense"]
    assert_saved_and_profiled(model, tmp_path, digits[1])


def test_bido_under_a_freeze_plan_trains_and_lets_go_of_its_hooks(
    digits: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    model = mcnn()
    frozen = model.feature[0].weight.detach().clone()
    bido = BiDO(measure="coco")
    train(model, digits[0], config=SMALL, plan=prefix_plan(model, 2), objective=bido, out=tmp_path)
    assert torch.equal(model.feature[0].weight, frozen)
    assert not any(module._forward_hooks for module in model.modules())
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert meta["defense"] == {
        "name": "bido",
        "params": {"a1": 0.05, "a2": 0.5, "sigma": 5.0, "measure": "coco"},
        "layers": ["feature.7", "feature.10"],  # the first block is frozen: not regularised
    }
    assert_saved_and_profiled(model, tmp_path, digits[1])


def test_bido_changes_the_training_from_plain_cross_entropy(
    digits: tuple[Dataset, Dataset],
) -> None:
    plain, defended = mcnn(), mcnn()
    train(plain, digits[0], config=SMALL)
    train(defended, digits[0], config=SMALL, objective=BiDO(a1=1.0, a2=1.0))
    assert not torch.equal(plain.feature[0].weight, defended.feature[0].weight)


def test_resume_refuses_another_defense_and_continues_the_same(
    digits: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    train(mcnn(), digits[0], config=SMALL, objective=build_defense("bido"), out=tmp_path)
    again = build_defense("bido", {"a1": "0.1"})
    with pytest.raises(ConfigError, match=r"another objective \(params differ\)"):
        train(mcnn(), digits[0], config=SMALL, objective=again, out=tmp_path, resume=True)
    same = build_defense("bido")
    train(mcnn(), digits[0], config=SMALL, objective=same, out=tmp_path, resume=True)


def test_an_undefended_run_records_no_defense(
    digits: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    train(mcnn(), digits[0], config=SMALL, out=tmp_path)
    assert load_checkpoint(tmp_path / "model.pt")["meta"]["defense"] is None
    assert list(read_table(tmp_path / "history.csv").columns) == COLUMNS


# ---------------------------------------------------------------------------- command line


def run_cli(argv: list[object]) -> tuple[int, str, str]:
    from fisher_mi.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in argv])
    return code, stdout.getvalue(), stderr.getvalue()


SMOKE = ["train", "--data", "digits", "--arch", "mcnn", "--epochs", 1, "--batch-size", 16]
SMOKE += ["--max-steps", 2]


def test_cli_train_with_a_defense_under_a_cutoff(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [*SMOKE, "--cutoff", 2, "--defense", "bido", "--defense-param", "measure=coco"]
    code, _, stderr = run_cli([*argv, "--defense-param", "a2=0.25", "--out", out])
    assert code == 0, stderr
    defense = load_checkpoint(out / "model.pt")["meta"]["defense"]
    assert (defense["name"], defense["params"]["measure"], defense["params"]["a2"]) == (
        "bido",
        "coco",
        0.25,
    )


CLI_ERRORS = [
    ("param-without-defense", ["--defense-param", "a1=1"], "pass --defense NAME"),
    ("unknown-param", ["--defense", "nls", "--defense-param", "beta=1"], "its parameters: alpha"),
    ("not-key-value", ["--defense", "nls", "--defense-param", "alpha"], "KEY=VALUE"),
    ("all-blocks-frozen", ["--defense", "bido", "--cutoff", 6], "lower the cutoff"),
    (
        "surrogate",
        ["--role", "surrogate", "--teacher", "teacher.pt", "--defense", "nls"],
        "--defense cannot be used with --role surrogate",
    ),
]


@pytest.mark.parametrize(
    ("extra", "message"), [case[1:] for case in CLI_ERRORS], ids=[case[0] for case in CLI_ERRORS]
)
def test_cli_defense_errors_are_one_line(tmp_path: Path, extra: list, message: str) -> None:
    extra = [tmp_path / arg if str(arg).endswith(".pt") else arg for arg in extra]
    code, _, stderr = run_cli([*SMOKE, *extra, "--out", tmp_path / "run"])
    assert code == 2
    assert message in stderr and stderr.count("\n") == 1
