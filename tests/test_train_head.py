"""``fit_head``: the fresh head of a pre-trained model trained alone before it is profiled.

The point of fitting it: without, the Fisher profile (and the cutoff) of the pre-trained model
depends on the head's random seed. One small pre-training on the bundled digits (a few
seconds) is shared by the module.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from fisher_mi.data import load_dataset
from fisher_mi.errors import ConfigError
from fisher_mi.fisher import profile, shares
from fisher_mi.models import build_model
from fisher_mi.plan import frozen_norm_modules, plan_freeze
from fisher_mi.training import (
    TrainConfig,
    fit_head,
    head_plan,
    pretrain_public,
    split_validation,
    with_new_head,
)

CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05)
HEAD_SEEDS = (0, 1)


@pytest.fixture(scope="module")
def private() -> Dataset:
    return Subset(load_dataset("digits", "private"), range(0, 723, 3))


@pytest.fixture(scope="module")
def pretrained() -> nn.Module:
    """mcnn pre-trained two epochs on half of the public digits (its own head)."""
    torch.manual_seed(0)
    model = build_model("mcnn", num_classes=5)
    public = Subset(load_dataset("digits", "public"), range(0, 896, 2))
    model, _ = pretrain_public(model, public, num_classes=5, config=CONFIG)
    return model


def fresh_head(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return with_new_head(model, 5)


def private_profile(model: nn.Module, data: Dataset) -> tuple[np.ndarray, int]:
    """Each layer's share of the private Fisher mass, and the default rule's cutoff."""
    table = profile(model, data, split="private", max_samples=64)
    with warnings.catch_warnings():  # a plan freezing nothing warns; the cutoff is compared
        warnings.simplefilter("ignore")
        return shares(table).to_numpy(), plan_freeze(table).cutoff


def test_two_head_seeds_profile_alike_once_the_head_is_fitted(
    pretrained: nn.Module, private: Dataset
) -> None:
    before = [private_profile(fresh_head(pretrained, seed), private) for seed in HEAD_SEEDS]
    after = []
    for seed in HEAD_SEEDS:
        model = fresh_head(pretrained, seed)
        fit_head(model, private, config=CONFIG, epochs=3)
        after.append(private_profile(model, private))
    # L1 distance between the seeds' shares of Fisher mass (each sums to 1, so at most 2);
    # measured: 0.84 before the fit, 0.08 after
    distance_before = np.abs(before[0][0] - before[1][0]).sum()
    distance_after = np.abs(after[0][0] - after[1][0]).sum()
    assert distance_before > 0.4
    assert distance_after < 0.25 * distance_before
    assert after[0][1] == after[1][1]  # the same cutoff


def test_only_the_head_moves_and_the_model_is_left_trainable(
    pretrained: nn.Module, private: Dataset
) -> None:
    model = fresh_head(pretrained, 0).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    fitted = fit_head(model, private, config=CONFIG, epochs=1)
    after = model.state_dict()
    moved = {key for key in before if not torch.equal(before[key], after[key])}
    assert moved == {"fc_layer.weight", "fc_layer.bias"}  # BatchNorm statistics included
    assert model.training and frozen_norm_modules(model) == []
    assert all(parameter.requires_grad for parameter in model.parameters())
    assert fitted.epochs == 1 and fitted.lr == CONFIG.lr


def test_the_runs_hold_out_is_left_out_and_measured(
    pretrained: nn.Module, private: Dataset
) -> None:
    fit_part, holdout = split_validation(private, CONFIG.validation_fraction, seed=CONFIG.seed)
    assert holdout is not None
    poisoned = PoisonedHoldout(private, set(holdout.indices))
    fitted = fit_head(fresh_head(pretrained, 0), poisoned, config=CONFIG, epochs=1, lr=0.1)
    # a NaN image in a training batch would stop the loop (non-finite loss): none was seen
    assert (fitted.train_samples, fitted.holdout_samples) == (len(fit_part), len(holdout))
    assert fitted.lr == 0.1
    assert fitted.holdout_accuracy is not None and 0.0 <= fitted.holdout_accuracy <= 1.0


class PoisonedHoldout(Dataset):
    """``data`` with NaN images at the hold-out's indices, except when measured (eval)."""

    def __init__(self, data: Dataset, holdout: set[int]) -> None:
        self.data, self.holdout = data, holdout
        self.labels = torch.tensor([int(data[i][1]) for i in range(len(data))])  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.data[index]
        if index in self.holdout and torch.is_grad_enabled():
            image = torch.full_like(image, float("nan"))
        return image, label


def test_head_plan_trains_the_head_alone(pretrained: nn.Module) -> None:
    plan = head_plan(pretrained)
    assert plan.trained == ("fc_layer",) and len(plan.frozen) == len(plan.layers) - 1


def test_a_vib_head_is_fitted_whole(pretrained: nn.Module, private: Dataset) -> None:
    """MID's head fit trains st_layer and fc_layer (the code's statistics are not left at
    their random start) and nothing else."""
    from fisher_mi.defenses.mid import with_vib_head

    model = with_vib_head(fresh_head(pretrained, 0)).train()
    assert head_plan(model).trained == ("st_layer", "fc_layer")
    before = {key: value.clone() for key, value in model.state_dict().items()}
    fit_head(model, private, config=CONFIG, epochs=1)
    after = model.state_dict()
    moved = {key for key in before if not torch.equal(before[key], after[key])}
    assert moved == {f"{m}.{p}" for m in ("st_layer", "fc_layer") for p in ("weight", "bias")}


def test_a_model_without_its_head_last_is_refused() -> None:
    model = build_model("mcnn", num_classes=5)
    model.extra = nn.Linear(5, 5)  # a layer after the head: the head is not a suffix
    with pytest.raises(ConfigError, match="not the last layers"):
        head_plan(model)
