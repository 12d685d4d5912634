"""Every guard of ``profile`` fires, with a one-line message naming the problem."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from fisher_mi.errors import ConfigError, DataError, FisherMIError, NonFiniteError, RegistryError
from fisher_mi.fisher import profile
from tests.cases import CASES

MLP = CASES[0]


class RandomlyAugmented(Dataset):
    """Adds fresh noise on every read, like a loader with random augmentation."""

    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[index]
        return x + torch.randn_like(x), y


class SqrtScale(nn.Module):
    """y = sqrt(w) * x: finite output at w = 0 but an infinite gradient there."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.w) * x


def _nan_weights() -> tuple[nn.Module, Dataset]:
    model, data = MLP.model(), MLP.data()
    with torch.no_grad():
        model[3].weight[0, 0] = float("nan")
    return model, data


def _infinite_gradient() -> tuple[nn.Module, Dataset]:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), SqrtScale()).double()
    return model, MLP.data()


def _labels(values: list) -> tuple[nn.Module, Dataset]:
    x = torch.randn(len(values), 3, 2, 2, dtype=torch.float64)
    return MLP.model(), TensorDataset(x, torch.tensor(values))


GUARDS: list[tuple[str, Callable[[], tuple[nn.Module, object]], dict, type, str]] = [
    (
        "empty-dataset",
        lambda: (
            MLP.model(),
            TensorDataset(torch.zeros(0, 3, 2, 2), torch.zeros(0, dtype=torch.long)),
        ),
        {},
        DataError,
        "empty",
    ),
    ("empty-iterable", lambda: (MLP.model(), []), {}, DataError, "no samples"),
    ("label-too-large", lambda: _labels([0, 1, 4]), {}, DataError, "4 classes"),
    ("label-negative", lambda: _labels([0, -1, 2]), {}, DataError, "-1..2"),
    ("float-labels", lambda: _labels([0.0, 1.0]), {}, DataError, "integer class indices"),
    ("nan-loss", _nan_weights, {}, NonFiniteError, "module '3'"),
    (
        "infinite-gradient",
        _infinite_gradient,
        {},
        NonFiniteError,
        "layer '2' (SqrtScale) is infinite",
    ),
    ("no-parameters", lambda: (nn.Flatten(), MLP.data()), {}, ConfigError, "no parameters"),
    (
        "all-frozen-trainable-only",
        lambda: (MLP.model().requires_grad_(False), MLP.data()),
        {"trainable_only": True},
        ConfigError,
        "no trainable parameters",
    ),
    (
        "max-samples-zero",
        lambda: (MLP.model(), MLP.data()),
        {"max_samples": 0},
        ConfigError,
        "max_samples",
    ),
    (
        "batch-size-zero",
        lambda: (MLP.model(), MLP.data()),
        {"batch_size": 0},
        ConfigError,
        "batch_size",
    ),
    (
        "mc-samples-zero",
        lambda: (MLP.model(), MLP.data()),
        {"mc_samples": 0},
        ConfigError,
        "mc_samples",
    ),
    (
        "mc-samples-above-maximum",
        lambda: (MLP.model(), MLP.data()),
        {"fisher": "true", "mc_samples": 100_000},
        ConfigError,
        "at most 1000",
    ),
    ("nan-loss-true-fisher", _nan_weights, {"fisher": "true"}, NonFiniteError, "module '3'"),
    (
        "chunk-size-zero",
        lambda: (MLP.model(), MLP.data()),
        {"chunk_size": 0},
        ConfigError,
        "chunk_size",
    ),
    (
        "unknown-backend",
        lambda: (MLP.model(), MLP.data()),
        {"backend": "magic"},
        RegistryError,
        "known: auto,",
    ),
    (
        "unknown-fisher",
        lambda: (MLP.model(), MLP.data()),
        {"fisher": "exact"},
        ConfigError,
        "empirical, true",
    ),
    (
        "random-augmentation",
        lambda: (MLP.model(), RandomlyAugmented(MLP.data())),
        {},
        DataError,
        "augmentation",
    ),
    ("not-a-pair", lambda: (MLP.model(), [torch.zeros(2, 3, 2, 2)]), {}, DataError, "pair"),
    (
        "output-not-logits",
        lambda: (nn.Conv2d(3, 4, 1), MLP.data()),
        {},
        ConfigError,
        "(batch, classes)",
    ),
]


@pytest.mark.parametrize(
    ("make", "options", "error", "fragment"),
    [case[1:] for case in GUARDS],
    ids=[case[0] for case in GUARDS],
)
def test_guard_fires_with_one_line_message(make, options: dict, error: type, fragment: str) -> None:
    model, data = make()
    with pytest.raises(error) as caught:
        profile(model, data, **options)
    message = str(caught.value)
    assert isinstance(caught.value, FisherMIError)
    assert "\n" not in message
    assert fragment in message, message


def test_nan_loss_message_names_the_sample() -> None:
    model, data = _nan_weights()
    with pytest.raises(NonFiniteError, match="sample 0 of split 'private'"):
        profile(model, data)


def test_guards_leave_the_model_as_it_was() -> None:
    model, data = _nan_weights()
    model.train()
    with pytest.raises(NonFiniteError):
        profile(model, data)
    assert model.training and all(module.training for module in model.modules())
