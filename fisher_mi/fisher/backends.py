"""How per-sample squared gradient norms are computed: the backend registry.

A backend answers one question for a batch: for every sample n and layer l, the squared norm
||grad_{theta_l} l_n||^2 of the per-sample loss gradient. The Fisher trace of a layer is the
mean of that over samples, so nothing more is ever needed (and the faster backends never
build per-sample gradients at all). Every backend is checked against ``loop``, the float64
brute-force reference shipped in the package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from fisher_mi.errors import ConfigError
from fisher_mi.models.layers import LayerInfo
from fisher_mi.registry import Registry

if TYPE_CHECKING:  # targets imports the guards, which import this module
    from fisher_mi.fisher.targets import LabelSource


@dataclass(frozen=True)
class BatchNorms:
    """Per-sample losses (batch,) and squared gradient norms per layer (batch, layers)."""

    losses: Tensor
    squared_norms: Tensor


@dataclass(frozen=True)
class BatchDiagonal:
    """Per-sample losses (batch,) and, per parameter (qualified name), sum_n g_n^2 over the
    batch, elementwise: the unscaled diagonal of the empirical Fisher."""

    losses: Tensor
    squares: dict[str, Tensor]


class FisherBackend(ABC):
    """Computes per-sample gradient quantities of the cross-entropy, layer by layer.

    ``layers`` carry the qualified names of the parameters to differentiate; the caller
    guarantees they have ``requires_grad=True`` and the model is in eval mode. ``labels`` is
    a tensor of class indices or a ``LabelSource`` (``fisher_mi.fisher.targets``), which the
    backend asks for each row's label with the detached logits of its *own* forward of that
    row: the given labels are checked against the logits' class count there, or the true
    Fisher's labels drawn from those logits. A backend therefore runs no forward beyond the
    ones its gradients need, and neither does ``profile``.
    """

    name: str

    def __init__(self, *, chunk_size: int = 32) -> None:
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
        self.chunk_size = chunk_size

    @abstractmethod
    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> BatchNorms:
        """Per-sample losses (batch,) and squared per-layer gradient norms (batch, layers):
        ||grad_{theta_l} l_n||^2 for every row n of ``x`` and layer l."""

    @abstractmethod
    def diagonal(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> BatchDiagonal:
        """Per-sample losses (batch,) and per-parameter sums of squared per-sample gradients,
        sum_n g_n * g_n elementwise over the rows of ``x``."""


BACKENDS: Registry[type[FisherBackend]] = Registry("Fisher backend")


def register_backend(name: str) -> Callable[[type[FisherBackend]], type[FisherBackend]]:
    """Class decorator registering a backend under ``name`` (also sets ``cls.name``)."""

    def decorate(cls: type[FisherBackend]) -> type[FisherBackend]:
        cls.name = name
        return BACKENDS.add(name, cls)

    return decorate


def make_backend(name: str, *, chunk_size: int = 32) -> FisherBackend:
    """Instantiate a registered backend; ``"auto"`` picks the fastest exact one available."""
    return BACKENDS.get(name)(chunk_size=chunk_size)
