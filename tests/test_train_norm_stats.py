"""Tests for the BatchNorm statistics a trained model is evaluated and saved with
(``fisher_mi.training.norm_stats``, called by ``train`` after every epoch).

With few optimiser steps the running averages still hold part of their initial values
(mean 0, variance 1: after s steps at momentum 0.1 a share 0.9**s) and lag the weights, so a
model evaluated with them is not the model that was trained. ``train`` recomputes them over
the training part with the final weights; these tests check the recomputed values against a
brute-force mean and variance of the layer inputs (bundled ``digits``, float64), and the
accuracy of a from-scratch model on the AT&T faces (skipped when ../shared is absent).
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from fisher_mi.data import find_shared_data, load_dataset, shared_data_skip_reason
from fisher_mi.models import build_model, load_model
from fisher_mi.models.outputs import logits_of
from fisher_mi.plan import prefix_plan
from fisher_mi.training import TrainConfig, split_validation, train

# 40 digits, 8 per class: 5 held out for validation, 35 trained on in batches of 16, 16, 3
CONFIG = TrainConfig(epochs=2, batch_size=16, lr=0.05)
TOLERANCE = {"rtol": 1e-10, "atol": 1e-12}  # float64 sums of ~3e4 values each: error ~1e-13


@pytest.fixture(scope="module")
def digits64() -> Dataset:
    """40 private digits as float64 images (so the statistics are compared in float64)."""
    private = load_dataset("digits", "private")
    chosen = torch.arange(0, 720, 18)
    return TensorDataset(private.images[chosen].double(), private.labels[chosen])


def batch_norms(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


@torch.no_grad()
def brute_force_statistics(
    model: nn.Module, data: Dataset, names: list[str], batch_size: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per layer in ``names``: the mean and unbiased variance per channel of every input it
    gets when ``data`` passes in order, in batches of ``batch_size``, with those layers in
    train mode (normalising with batch statistics, as in training) and the rest in eval mode;
    all inputs are kept and reduced at once by ``torch.mean``/``torch.var``."""
    probe = copy.deepcopy(model).eval()
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    modules = dict(probe.named_modules())
    handles = []
    for name in names:
        modules[name].train()
        hook = lambda module, args, name=name: seen[name].append(args[0])  # noqa: E731
        handles.append(modules[name].register_forward_pre_hook(hook))
    for x, _ in DataLoader(data, batch_size=batch_size):
        probe(x)
    for handle in handles:
        handle.remove()
    result = {}
    for name, inputs in seen.items():
        flat = torch.cat(inputs).transpose(0, 1).flatten(1)  # channels x (samples * positions)
        result[name] = (flat.mean(dim=1), flat.var(dim=1, unbiased=True))
    return result


@dataclass(frozen=True)
class PlanCase:
    id: str
    cutoff: int
    bn_stats: str
    kept: tuple[str, ...]  # BatchNorm layers whose statistics must stay as they were


PLAN_CASES = [
    PlanCase("all-trained", 0, "frozen", ()),
    PlanCase("frozen-prefix", 4, "frozen", ("feature.1", "feature.5")),
    PlanCase("frozen-prefix-update", 4, "update", ()),
]


@pytest.mark.parametrize("case", PLAN_CASES, ids=lambda case: case.id)
def test_statistics_are_the_mean_and_variance_of_the_layer_inputs_over_the_training_part(
    digits64: Dataset, case: PlanCase
) -> None:
    torch.manual_seed(0)
    model = build_model("mcnn", num_classes=5).double()
    layers = batch_norms(model)
    before = {n: (m.running_mean.clone(), m.running_var.clone()) for n, m in layers.items()}
    plan = prefix_plan(model, case.cutoff, bn_stats=case.bn_stats)
    train(model, digits64, config=CONFIG, plan=plan)
    fit_part = split_validation(digits64, CONFIG.validation_fraction, seed=CONFIG.seed)[0]
    recomputed = [name for name in batch_norms(model) if name not in case.kept]
    expected = brute_force_statistics(model, fit_part, recomputed, CONFIG.batch_size)
    for name, layer in batch_norms(model).items():
        mean, var = expected.get(name, before[name])
        found = torch.stack([layer.running_mean, layer.running_var])
        label = f"{name} (row 0 mean, row 1 variance)"
        torch.testing.assert_close(
            found,
            torch.stack([mean, var]),
            **TOLERANCE,
            msg=lambda text, label=label: f"{label}: {text}",
        )


# ---------------------------------------------------------------------------- AT&T faces


def accuracy(model: nn.Module, data: Dataset) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(
            int((logits_of(model(x)).argmax(dim=1) == y).sum())
            for x, y in DataLoader(data, batch_size=64)
        )
    return hits / len(data)


def test_a_from_scratch_model_on_att_faces_is_right_in_eval_mode(tmp_path: Path) -> None:
    """The issue's command: 15 epochs of ``vgg_small`` at the defaults (3 steps an epoch)."""
    from fisher_mi.cli import main

    root = find_shared_data("att_faces")
    if root is None:
        pytest.skip(shared_data_skip_reason("att_faces"))
    spec = f"att:{root}"
    argv = ["train", "--data", spec, "--arch", "vgg_small", "--epochs", "15", "--out", tmp_path]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([str(arg) for arg in argv]) == 0
    model = load_model(tmp_path / "model.pt")
    channels, size, _ = model.input_shape
    private, test = (
        load_dataset(spec, split, image_size=size, channels=channels)
        for split in ("private", "private-test")
    )
    saved = accuracy(model, test)
    assert saved >= 0.85
    fit_part = split_validation(private, TrainConfig().validation_fraction, seed=0)[0]
    update_bn(DataLoader(fit_part, batch_size=64), model)  # torch's own recomputation
    assert abs(accuracy(model, test) - saved) <= 1 / len(test) + 1e-12  # one test image
