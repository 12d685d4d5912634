"""The brute-force reference: one forward and one backward per sample.

Slow on purpose and obviously right: it is the oracle every fast backend is tested against
(run it on a float64 model for a reference to ~1e-12). Gradients come from
``torch.autograd.grad``, so the parameters' ``.grad`` fields are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from fisher_mi.fisher.backends import BatchDiagonal, BatchNorms, FisherBackend, register_backend
from fisher_mi.fisher.targets import per_sample_loss
from fisher_mi.models.layers import LayerInfo
from fisher_mi.models.outputs import logits_of


@register_backend("loop")
class LoopBackend(FisherBackend):
    """Per-sample loop; exact in the model's dtype."""

    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchNorms:
        losses, rows = [], []
        for loss, grads in self._samples(model, layers, x, y):
            rows.append(
                torch.stack(
                    [sum(grads[n].pow(2).sum() for n in layer.param_names) for layer in layers]
                )
            )
            losses.append(loss)
        return BatchNorms(torch.stack(losses), torch.stack(rows))

    def diagonal(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchDiagonal:
        losses, squares = [], {}
        for loss, grads in self._samples(model, layers, x, y):
            for name, grad in grads.items():
                squares[name] = squares.get(name, 0) + grad.pow(2)
            losses.append(loss)
        return BatchDiagonal(torch.stack(losses), squares)

    def _samples(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """Each sample's loss and the gradients of the profiled parameters (zeros if unused)."""
        parameters = dict(model.named_parameters())
        names = [name for layer in layers for name in layer.param_names]
        for n in range(x.shape[0]):
            loss = per_sample_loss(logits_of(model(x[n : n + 1])), y[n : n + 1]).sum()
            grads = torch.autograd.grad(loss, [parameters[k] for k in names], allow_unused=True)
            yield (
                loss.detach(),
                {
                    name: torch.zeros_like(parameters[name]) if grad is None else grad
                    for name, grad in zip(names, grads, strict=True)
                },
            )
