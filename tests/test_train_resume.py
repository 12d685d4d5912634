"""Tests for ``--resume`` (``fisher_mi.training.resume``): a resumed run must be the run that
was started (same data, architecture, class count, plan), and a damaged or hand-edited
``checkpoint.pt`` is refused in one line naming what is wrong, never with a traceback.

Each run is one or two optimiser steps of ``mcnn`` on a slice of the bundled data.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from fisher_mi.data import load_dataset
from fisher_mi.errors import CheckpointError, ConfigError, FisherMIError
from fisher_mi.models import build_model
from fisher_mi.plan import prefix_plan
from fisher_mi.training import Provenance, TrainConfig, train
from tests.error_cases import one_line

TINY = TrainConfig(epochs=2, batch_size=16, max_steps=1)


def digits(split: str = "private", spec: str = "digits") -> Dataset:
    """40 images of ``spec``'s split, 8 per class."""
    data = load_dataset(spec, split)
    per_class = [torch.nonzero(data.labels == label).flatten()[:8] for label in range(5)]
    return Subset(data, torch.cat(per_class).sort().values.tolist())


def mcnn(num_classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return build_model("mcnn", num_classes=num_classes)


def first_run(out: Path, **options: Any) -> None:
    train(mcnn(), digits(), config=TINY, out=out, **options)


# ---------------------------------------------------------------------------- same run


@dataclass(frozen=True)
class Change:
    id: str
    first: dict[str, Any]  # train() options of the first run
    then: Callable[[], dict[str, Any]]  # train() arguments of the resume (model, data, ...)
    message: list[str]  # fragments of the refusal


def resumed_with(**changes: Any) -> Callable[[], dict[str, Any]]:
    return lambda: {"model": mcnn(), "data": digits(), **changes}


CHANGES = [
    Change(
        "data-spec",
        {"provenance": Provenance(data="digits")},
        resumed_with(data=digits(spec="mnist"), provenance=Provenance(data="mnist")),
        ["data: then 'digits', now 'mnist'"],
    ),
    Change(
        "public-spec",
        {"provenance": Provenance(data="digits", public="digits")},
        resumed_with(provenance=Provenance(data="digits", public="mnist")),
        ["public: then 'digits', now 'mnist'"],
    ),
    Change(
        "class-names",
        {},
        resumed_with(provenance=Provenance(class_names=("a", "b", "c", "d", "e"))),
        ["class_names: then ('0', '1', '2', '3', '4'), now ('a', 'b', 'c', 'd', 'e')"],
    ),
    Change(  # what the command line could not tell apart: no spec recorded, same class names
        "other-data-same-names",
        {},
        resumed_with(data=Subset(load_dataset("mnist", "private"), range(60))),
        ["train_samples: then 35, now 54"],
    ),
    Change(
        "class-count",
        {},
        lambda: {
            "model": mcnn(10),
            "data": TensorDataset(torch.rand(100, 1, 32, 32), torch.arange(100) % 10),
        },
        ["architecture", "num_classes=5", "num_classes=10"],
    ),
    Change(
        "architecture",
        {},
        lambda: {"model": build_model("vgg_small", num_classes=5), "data": digits()},
        ["architecture: then mcnn(", "now vgg_small("],
    ),
    Change(
        "plan-bn-stats",
        {"plan": prefix_plan(mcnn(), 2)},
        resumed_with(plan=prefix_plan(mcnn(), 2, bn_stats="update")),
        ["freeze plan", "bn_stats: then 'frozen', now 'update'"],
    ),
]


@pytest.mark.parametrize("case", CHANGES, ids=lambda case: case.id)
def test_resume_refuses_another_run_naming_what_changed(tmp_path: Path, case: Change) -> None:
    first_run(tmp_path, **case.first)
    now = case.then()
    model, data = now.pop("model"), now.pop("data")
    with pytest.raises(ConfigError) as caught:
        train(model, data, config=TINY, out=tmp_path, resume=True, **now)
    message = one_line(caught)
    assert all(fragment in message for fragment in case.message), message


def test_the_command_refuses_to_resume_on_other_data(tmp_path: Path) -> None:
    from fisher_mi.cli import main

    common = ["train", "--arch", "mcnn", "--epochs", "2", "--max-steps", "1", "--out", tmp_path]
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        assert main([str(arg) for arg in [*common, "--data", "digits"]]) == 0
        code = main([str(arg) for arg in [*common, "--data", "mnist", "--resume"]])
    refusal = stderr.getvalue().strip().splitlines()[-1]
    assert code == 2
    assert refusal.startswith("fisher-mi: error:") and "then" in refusal and "now" in refusal


def test_a_resume_with_the_same_provenance_is_accepted(tmp_path: Path) -> None:
    given = Provenance(data="digits", public="digits")
    first_run(tmp_path, provenance=given)  # finished: max_steps reached in epoch 1
    result = train(mcnn(), digits(), config=TINY, out=tmp_path, resume=True, provenance=given)
    assert (len(result.history), result.steps) == (1, 1)


# ---------------------------------------------------------------------------- damaged files


def _drop(key: str) -> Callable[[dict], None]:
    return lambda payload: payload["training"].pop(key)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda payload: payload["training"].__setitem__(key, value)


def _wider_head(payload: dict) -> None:
    payload["state_dict"]["fc_layer.weight"] = torch.zeros(10, 256)


def _fewer_best_tensors(payload: dict) -> None:
    payload["training"]["best_state"].pop("fc_layer.bias")


def _no_param_groups(payload: dict) -> None:
    payload["training"]["optimizer"]["param_groups"] = []


DAMAGES: list[tuple[str, Callable[[dict], None], type[FisherMIError], str]] = [
    (
        "no-training-entry",
        lambda p: p.pop("training"),
        CheckpointError,
        "not a fisher_mi training checkpoint",
    ),
    ("old-version", _set("version", 1), CheckpointError, "version 1"),
    ("no-optimizer", _drop("optimizer"), CheckpointError, "lacks optimizer"),
    ("step-not-a-number", _set("step", "1"), CheckpointError, "step is str, not int"),
    ("epoch-beyond-history", _set("epoch", 3), CheckpointError, "epoch 3 but 1 history row"),
    ("best-epoch-outside", _set("best_epoch", 5), CheckpointError, "best_epoch 5 is not one of"),
    ("best-state-incomplete", _fewer_best_tensors, CheckpointError, "best_state"),
    ("weights-of-another-shape", _wider_head, CheckpointError, "fc_layer.weight (10, 256) then"),
    ("optimizer-of-another-run", _no_param_groups, CheckpointError, "optimizer state"),
]


@pytest.mark.parametrize(
    ("damage", "error", "message"), [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES]
)
def test_a_damaged_checkpoint_is_refused_in_one_line(
    tmp_path: Path, damage: Callable[[dict], None], error: type[FisherMIError], message: str
) -> None:
    train(mcnn(), digits(), config=TrainConfig(epochs=2, batch_size=16, max_steps=1), out=tmp_path)
    path = tmp_path / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    damage(payload)
    torch.save(payload, path)
    with pytest.raises(error) as caught:
        train(mcnn(), digits(), config=TINY, out=tmp_path, resume=True)
    assert message in one_line(caught)
