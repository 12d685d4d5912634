"""Small random models and inputs as data: the cases every Fisher test runs over.

Each case is a factory, so every test gets a fresh model; ids read well in pytest output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from fisher_mi.models import build_model


class FeaturesAndLogits(nn.Module):
    """Returns ``(features, logits)`` like the model-inversion literature's targets."""

    def __init__(self) -> None:
        super().__init__()
        self.feature = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU())
        self.fc_layer = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.feature(x)
        return features, self.fc_layer(features)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 4))


def _cnn_batchnorm() -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )
    for module in model.modules():  # non-trivial running statistics and affine parameters
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.5, 0.5)
    return model


def _conv_geometry() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2),
        nn.ReLU(),
        nn.Conv2d(6, 6, (3, 2), stride=(1, 2), padding=(2, 0), groups=3, bias=False),
        nn.Flatten(),
        nn.LazyLinear(3),
    )


def _frozen() -> nn.Module:
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)
    )
    model[1].requires_grad_(False)
    model[3].bias.requires_grad_(False)
    return model


@dataclass(frozen=True)
class Case:
    """A model factory with the input shape and class count it expects."""

    id: str
    make: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    n_samples: int = 7

    def model(self, dtype: torch.dtype = torch.float64) -> nn.Module:
        torch.manual_seed(0)
        model = self.make().eval()
        with torch.no_grad():
            model(torch.zeros(1, *self.input_shape))  # materialise lazy layers
        return model.to(dtype)

    def data(self, dtype: torch.dtype = torch.float64, seed: int = 1) -> TensorDataset:
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(self.n_samples, *self.input_shape, generator=generator, dtype=dtype)
        y = torch.randint(0, self.num_classes, (self.n_samples,), generator=generator)
        return TensorDataset(x, y)


CASES = [
    Case("mlp", _mlp, (3, 2, 2), 4),
    Case("cnn-batchnorm-eval", _cnn_batchnorm, (2, 6, 6), 5),
    Case("features-logits-tuple", FeaturesAndLogits, (1, 4, 4), 3),
    Case("conv-stride-padding-dilation-groups", _conv_geometry, (4, 9, 10), 3),
    Case("frozen-parameters", _frozen, (3, 2, 2), 3),
    Case("batch-of-one", _mlp, (3, 2, 2), 4, n_samples=1),
    Case("mcnn", lambda: build_model("mcnn", num_classes=5), (1, 32, 32), 5, n_samples=3),
    Case("vgg_small", lambda: build_model("vgg_small", num_classes=4), (3, 64, 64), 4, n_samples=2),
]
