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


class SequenceModel(nn.Module):
    """Embedding -> Linear on 3-D input -> LayerNorm -> Conv1d -> GroupNorm -> PReLU -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6, padding_idx=0)
        self.mix = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.conv = nn.Conv1d(8, 6, 3, padding="same", padding_mode="reflect")
        self.group = nn.GroupNorm(3, 6)
        self.act = nn.PReLU(6)
        self.head = nn.Linear(6 * 5, 4)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.norm(self.mix(self.embed(tokens)))  # (batch, 5, 8)
        h = self.act(self.group(self.conv(h.transpose(1, 2))))
        return self.head(h.flatten(1))


class Unsupported(nn.Module):
    """A custom layer no sampler knows (a learned per-feature scale and power)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, features))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + 0.1 * (x * self.scale).pow(2)


def _custom_and_reused() -> nn.Module:
    shared = nn.Linear(6, 6)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 6), Unsupported(6), shared, nn.Tanh(), shared, nn.Linear(6, 3)
    )


def _norms_and_activations() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"),
        nn.InstanceNorm2d(4, affine=True),
        nn.PReLU(),
        nn.Conv2d(4, 4, 2, stride=2),
        nn.GroupNorm(2, 4),
        nn.PReLU(4),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 8),
        nn.BatchNorm1d(8),
        nn.Linear(8, 3),
    )


def _long_sequence_linear() -> nn.Module:
    """Linear on 3-D input where the direct form is cheaper (long sequence, narrow layers)."""
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 40, 2))


@dataclass(frozen=True)
class Case:
    """A model factory with the input shape and class count it expects."""

    id: str
    make: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    n_samples: int = 7
    vocabulary: int = 0  # > 0: inputs are token indices below this, not Gaussian noise

    def model(self, dtype: torch.dtype = torch.float64) -> nn.Module:
        torch.manual_seed(0)
        model = self.make().eval()
        with torch.no_grad():
            zeros = torch.zeros(1, *self.input_shape, dtype=torch.long if self.vocabulary else None)
            model(zeros)  # materialise lazy layers
        return model.to(dtype)

    def data(self, dtype: torch.dtype = torch.float64, seed: int = 1) -> TensorDataset:
        generator = torch.Generator().manual_seed(seed)
        if self.vocabulary:
            x = torch.randint(
                0, self.vocabulary, (self.n_samples, *self.input_shape), generator=generator
            )
        else:
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
    Case(
        "embedding-linear3d-layernorm-conv1d-groupnorm-prelu", SequenceModel, (5,), 4, vocabulary=11
    ),
    Case("instancenorm-circular-padding-prelu-batchnorm1d", _norms_and_activations, (3, 6, 6), 3),
    Case("custom-layer-and-reused-module-fall-back", _custom_and_reused, (3, 2, 2), 3),
    Case("linear-on-long-sequences", _long_sequence_linear, (40, 4), 2),
]
