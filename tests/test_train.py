"""Tests for ``fisher_mi.training``: frozen layers stay bit-identical, resume equals an
uninterrupted run, the validation hold-out, ``load_init``, the head swap, the guards, the
``train`` command, and two gloo processes.

Everything runs on small subsets of the bundled ``digits`` with ``mcnn`` (a few optimiser
steps each), so the whole file takes well under a minute on two CPU cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from fisher_mi.data import load_dataset
from fisher_mi.errors import ArchitectureMismatchError, ConfigError, NonFiniteError
from fisher_mi.io import load_checkpoint, read_table
from fisher_mi.models import build_model, load_model
from fisher_mi.plan import FreezePlan, prefix_plan
from fisher_mi.training import (
    COLUMNS,
    HEAD_EPOCHS,
    TrainConfig,
    load_init,
    split_validation,
    train,
    with_new_head,
)
from fisher_mi.training import epoch as epoch_module

CUTOFF = 4  # mcnn: feature.0 (conv), feature.1 (BN), feature.4 (conv), feature.5 (BN) frozen
FROZEN_MODULES = ("feature.0.", "feature.1.", "feature.4.", "feature.5.")
SMALL = TrainConfig(epochs=1, batch_size=16, max_steps=3, weight_decay=1e-3)


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    """A class-balanced slice of the private split (61 images) and of private-test (20)."""
    private, test = load_dataset("digits", "private"), load_dataset("digits", "private-test")
    return Subset(private, range(0, 723, 12)), Subset(test, range(0, 178, 9))


def mcnn(seed: int = 0, num_classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mcnn", num_classes=num_classes)


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


# ---------------------------------------------------------------------------- frozen layers


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_frozen_layers_are_bit_identical_and_trained_ones_move(
    digits: tuple[Dataset, Dataset], optimizer: str
) -> None:
    model = mcnn()
    before = clone_state(model)
    config = TrainConfig(
        epochs=1, batch_size=16, max_steps=3, optimizer=optimizer, weight_decay=0.1, lr=0.05
    )
    train(model, digits[0], config=config, plan=prefix_plan(model, CUTOFF))
    after = model.state_dict()
    frozen = [key for key in before if key.startswith(FROZEN_MODULES)]
    assert {key.rsplit(".", 1)[1] for key in frozen} >= {
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    }
    changed_frozen = [key for key in frozen if not torch.equal(before[key], after[key])]
    assert changed_frozen == []
    trained = [key for key in before if key not in frozen and "num_batches" not in key]
    unchanged_trained = [key for key in trained if torch.equal(before[key], after[key])]
    assert unchanged_trained == []  # includes feature.9's running statistics


def test_a_plan_overrides_requires_grad_set_by_hand(digits: tuple[Dataset, Dataset]) -> None:
    model = mcnn()
    model.fc_layer.weight.requires_grad_(False)  # a stray flag, like a misspelt attribute
    before = model.fc_layer.weight.detach().clone()
    train(model, digits[0], config=SMALL)  # no plan: every layer trains
    assert not torch.equal(before, model.fc_layer.weight)


# ---------------------------------------------------------------------------- resume


class Interrupted(Exception):
    pass


def test_resume_reaches_the_uninterrupted_result_bit_for_bit(
    digits: tuple[Dataset, Dataset], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = TrainConfig(epochs=2, batch_size=16, schedule="cosine", lr=0.05, weight_decay=1e-3)
    whole = mcnn()
    plan = prefix_plan(whole, 2)
    expected = train(whole, digits[0], config=config, test=digits[1], plan=plan, out=tmp_path / "a")

    original = epoch_module.EpochRunner.train_epoch

    def stop_in_epoch_two(self: Any, data: Dataset, epoch: int, step: int) -> Any:
        if epoch == 2:
            raise Interrupted
        return original(self, data, epoch, step)

    monkeypatch.setattr(epoch_module.EpochRunner, "train_epoch", stop_in_epoch_two)
    with pytest.raises(Interrupted):
        train(mcnn(), digits[0], config=config, test=digits[1], plan=plan, out=tmp_path / "b")
    monkeypatch.setattr(epoch_module.EpochRunner, "train_epoch", original)
    torch.manual_seed(123)  # the caller's random state must not matter
    resumed_model = mcnn(seed=7)  # nor the fresh weights: they come from the checkpoint
    resumed = train(
        resumed_model,
        digits[0],
        config=config,
        test=digits[1],
        plan=plan,
        out=tmp_path / "b",
        resume=True,
    )
    for name, state in [
        ("in memory", resumed_model.state_dict()),
        ("model.pt", load_model(tmp_path / "b" / "model.pt").state_dict()),
        ("checkpoint.pt", load_checkpoint(tmp_path / "b" / "checkpoint.pt")["state_dict"]),
    ]:
        reference = (
            whole.state_dict()
            if name == "in memory"
            else load_checkpoint(tmp_path / "a" / name)["state_dict"]
        )
        different = [key for key in reference if not torch.equal(reference[key], state[key])]
        assert different == [], name
    columns = [c for c in COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(expected.history[columns], resumed.history[columns])
    assert (resumed.best_epoch, resumed.test_accuracy) == (
        expected.best_epoch,
        expected.test_accuracy,
    )


def test_outputs_are_written_and_model_pt_describes_the_best_epoch(
    digits: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05)
    model = mcnn()
    result = train(model, digits[0], config=config, test=digits[1], out=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "model.pt",
        "checkpoint.pt",
        "history.csv",
        "plan.json",
    }
    history = read_table(tmp_path / "history.csv")
    assert list(history.columns) == COLUMNS
    assert history["epoch"].tolist() == [1, 2]
    ranked = history.sort_values(
        ["validation_accuracy", "validation_loss", "epoch"], ascending=[False, True, False]
    )
    best = int(ranked["epoch"].iloc[0])  # highest accuracy, then lowest loss, then latest
    assert result.best_epoch == best
    assert history["kept"].tolist() == [epoch == best for epoch in history["epoch"]]
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert meta["best_epoch"] == best
    assert meta["private_test_accuracy"] == pytest.approx(result.test_accuracy)
    assert meta["plan"]["cutoff"] == 0
    assert FreezePlan.load(tmp_path / "plan.json") == result.plan
    saved = load_model(tmp_path / "model.pt").state_dict()
    assert all(torch.equal(saved[key], value) for key, value in model.state_dict().items())


@dataclass(frozen=True)
class ResumeCase:
    id: str
    first: bool  # run once before
    resume: bool
    config: TrainConfig
    message: str


RESUME_GUARDS = [
    ResumeCase("existing-checkpoint", True, False, SMALL, "already holds"),
    ResumeCase("nothing-to-resume", False, True, SMALL, "nothing to resume"),
    ResumeCase("other-options", True, True, TrainConfig(**{**SMALL.to_dict(), "lr": 0.5}), "lr"),
]


@pytest.mark.parametrize("case", RESUME_GUARDS, ids=lambda case: case.id)
def test_resume_guards(digits: tuple[Dataset, Dataset], tmp_path: Path, case: ResumeCase) -> None:
    if case.first:
        train(mcnn(), digits[0], config=SMALL, out=tmp_path)
    with pytest.raises(ConfigError, match=case.message):
        train(mcnn(), digits[0], config=case.config, out=tmp_path, resume=case.resume)


def test_resume_refuses_another_plan(digits: tuple[Dataset, Dataset], tmp_path: Path) -> None:
    train(mcnn(), digits[0], config=SMALL, out=tmp_path)
    model = mcnn()
    with pytest.raises(ConfigError, match="freeze plan"):
        train(model, digits[0], config=SMALL, plan=prefix_plan(model, 3), out=tmp_path, resume=True)


# ---------------------------------------------------------------------------- validation


def test_validation_is_a_disjoint_stratified_part_of_training(
    digits: tuple[Dataset, Dataset],
) -> None:
    private = load_dataset("digits", "private")
    fit, validation = split_validation(private, 0.1, seed=3)
    assert validation is not None
    assert set(fit.indices).isdisjoint(validation.indices)
    assert sorted([*fit.indices, *validation.indices]) == list(range(len(private)))
    counts = torch.bincount(private.labels[validation.indices], minlength=5)
    assert counts.tolist() == [round(0.1 * int(n)) for n in torch.bincount(private.labels)]
    again = split_validation(private, 0.1, seed=3)[1]
    assert again is not None and again.indices == validation.indices


def test_validation_images_are_not_private_test_images() -> None:
    private, test = load_dataset("digits", "private"), load_dataset("digits", "private-test")
    validation = split_validation(private, 0.1, seed=0)[1]
    assert validation is not None
    held = private.images[validation.indices].flatten(1)
    distances = torch.cdist(held, test.images.flatten(1))
    assert distances.min() > 0  # not one validation image is a test image


def test_the_test_split_cannot_be_the_training_data(digits: tuple[Dataset, Dataset]) -> None:
    with pytest.raises(ConfigError, match="test data are the training data"):
        train(mcnn(), digits[0], config=SMALL, test=digits[0])


# ---------------------------------------------------------------------------- init, head


def _save_state(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save(state, path)
    return path


INIT_FILES: list[tuple[str, Callable[[nn.Module], dict[str, torch.Tensor]], bool, int]] = [
    # id, file contents from a 10-class mcnn, loads without partial, tensors loaded
    ("same-shapes", lambda m: with_new_head(m, 5).state_dict(), True, 23),
    ("module-prefix", lambda m: {f"module.{k}": v for k, v in m.state_dict().items()}, False, 21),
    ("backbone-only", lambda m: m.feature.state_dict(), False, 21),
]


@pytest.mark.parametrize(
    ("make", "complete", "count"),
    [case[1:] for case in INIT_FILES],
    ids=[case[0] for case in INIT_FILES],
)
def test_load_init_counts_and_refuses_a_partial_match(
    tmp_path: Path,
    make: Callable[[nn.Module], dict[str, torch.Tensor]],
    complete: bool,
    count: int,
) -> None:
    source = mcnn(seed=1, num_classes=10)
    path = _save_state(tmp_path / "init.pt", make(source))
    if not complete:
        with pytest.raises(ArchitectureMismatchError, match="init-partial"):
            load_init(mcnn(), path)
    model = mcnn()
    assert load_init(model, path, partial=not complete) == count
    backbone = source.feature.state_dict()
    assert all(torch.equal(model.feature.state_dict()[k], v) for k, v in backbone.items())


def test_load_init_refuses_a_file_matching_nothing(tmp_path: Path) -> None:
    path = _save_state(tmp_path / "other.pt", {"encoder.weight": torch.zeros(3, 3)})
    with pytest.raises(ArchitectureMismatchError, match="matched none"):
        load_init(mcnn(), path, partial=True)


def test_new_head_keeps_the_backbone() -> None:
    model = mcnn(num_classes=10)
    swapped = with_new_head(model, 5)
    assert swapped.fc_layer.out_features == 5
    old = model.state_dict()
    kept = {k: v for k, v in swapped.state_dict().items() if not k.startswith("fc_layer.")}
    assert len(kept) == len(old) - 2
    assert all(torch.equal(old[k], v) for k, v in kept.items())


# ---------------------------------------------------------------------------- guards


def test_nan_loss_is_refused_with_a_fix() -> None:
    images = torch.full((8, 1, 32, 32), float("nan"))
    data = TensorDataset(images, torch.arange(8) % 5)
    config = TrainConfig(epochs=1, batch_size=4, validation_fraction=0)
    with pytest.raises(NonFiniteError, match="lower the learning rate"):
        train(mcnn(), data, config=config)


def test_a_trailing_single_sample_batch_is_skipped() -> None:
    data = TensorDataset(torch.rand(17, 1, 32, 32), torch.arange(17) % 5)
    result = train(mcnn(), data, config=TrainConfig(epochs=1, batch_size=8, validation_fraction=0))
    assert result.steps == 2


CONFIG_GUARDS = [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, adam"),
    ({"schedule": "linear"}, "schedule must be one of none, cosine, step"),
    ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"momentum": 1.0}, "momentum"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"max_steps": 0}, "max_steps"),
    ({"amp": True}, "CUDA only"),
    ({"device": "gpu"}, "device"),
    ({"seed": 2**63}, r"seed must be a whole number in \[0, 2\*\*63\)"),
]


@pytest.mark.parametrize(
    ("options", "message"), CONFIG_GUARDS, ids=[next(iter(o)) for o, _ in CONFIG_GUARDS]
)
def test_config_guards(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        TrainConfig(**options)
    assert "\n" not in str(caught.value)


def test_the_largest_seed_trains(digits: tuple[Dataset, Dataset]) -> None:
    config = TrainConfig(epochs=1, batch_size=16, max_steps=1, seed=2**63 - 1)
    assert train(mcnn(), digits[0], config=config).steps == 1  # every generator accepts it


# ---------------------------------------------------------------------------- torchrun


def _worker(rank: int, init_file: str, out: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        generator = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.rand(40, 1, 32, 32, generator=generator), torch.arange(40) % 5)
        model = mcnn()
        config = TrainConfig(epochs=1, batch_size=8, max_steps=2)
        result = train(model, data, config=config, out=out)
        torch.save(
            {"state": model.state_dict(), "steps": result.steps},
            Path(out).parent / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_train_one_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert first["steps"] == second["steps"] == 2
    assert all(torch.equal(first["state"][k], second["state"][k]) for k in first["state"])
    saved = load_model(out / "model.pt").state_dict()
    assert all(torch.equal(saved[k], v) for k, v in first["state"].items())


def test_a_model_not_built_by_fisher_mi_trains_without_out(
    digits: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 5))
    train(model, digits[0], config=SMALL)
    with pytest.raises(ConfigError, match="not built by fisher_mi, so its checkpoints"):
        train(model, digits[0], config=SMALL, out=tmp_path)
    with pytest.raises(ConfigError, match="not built by fisher_mi, so it cannot be rebuilt"):
        with_new_head(model, 3)


# ---------------------------------------------------------------------------- command line


def run_cli(argv: list[object]) -> tuple[int, str, str]:
    from fisher_mi.cli import main  # here, so that the gloo workers need not import matplotlib

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in argv])
    return code, stdout.getvalue(), stderr.getvalue()


SMOKE = [
    "train",
    "--data",
    "digits",
    "--arch",
    "mcnn",
    "--epochs",
    1,
    "--batch-size",
    16,
    "--max-steps",
    2,
]


def test_cli_train_pretrains_plans_by_rule_and_writes_its_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [*SMOKE, "--public", "digits", "--rule", "auto", "--profile-samples", 16, "--out", out]
    code, stdout, stderr = run_cli(argv)
    assert code == 0, stderr
    assert {"model.pt", "history.csv", "plan.json", "checkpoint.pt", "fisher.csv"} <= {
        p.name for p in out.iterdir()
    }
    assert (out / "pretrain" / "model.pt").is_file()
    assert "private-test accuracy" in stdout
    plan = FreezePlan.load(out / "plan.json")
    assert plan.rule == "mass"
    meta = load_checkpoint(out / "model.pt")["meta"]
    assert meta["plan"]["cutoff"] == plan.cutoff
    record = json.loads((out / "fisher.json").read_text())
    made = {"pretrained_on": "digits", "role": "target", "init": None}
    assert record["model_provenance"] == made
    head = record["head_fit"]  # the default head fit, cut short by --max-steps 2
    assert (head["epochs"], head["lr"]) == (HEAD_EPOCHS, 0.01)
    assert head["train_samples"] + head["holdout_samples"] == 723
    assert 0 <= head["holdout_accuracy"] <= 1
    code, stdout, stderr = run_cli([*argv, "--resume"])  # a finished run resumes to itself
    assert code == 0, stderr


CLI_ERRORS = [
    ("plan-and-cutoff", ["--plan", "plan.json", "--cutoff", 2], "give it alone"),
    ("cutoff-too-deep", ["--cutoff", 7], "cutoff must be"),
    ("nothing-to-resume", ["--resume"], "nothing to resume"),
    ("init-partial-match", ["--init", "init.pt"], "--init-partial"),
    ("head-epochs-without-public", ["--head-epochs", 2], "--head-epochs trains the fresh head"),
    ("head-lr-without-public", ["--head-lr", 0.1], "--head-lr trains the fresh head"),
]


@pytest.mark.parametrize(
    ("extra", "message"), [c[1:] for c in CLI_ERRORS], ids=[c[0] for c in CLI_ERRORS]
)
def test_cli_train_errors_are_one_line(tmp_path: Path, extra: list, message: str) -> None:
    torch.save(mcnn(num_classes=10).state_dict(), tmp_path / "init.pt")
    extra = [tmp_path / arg if str(arg).endswith(".pt") else arg for arg in extra]
    code, _, stderr = run_cli([*SMOKE, *extra, "--out", tmp_path / "run"])
    assert code == 2
    assert message in stderr and stderr.count("\n") == 1
