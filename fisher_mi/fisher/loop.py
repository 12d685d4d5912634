"""The brute-force reference: one forward and one backward per sample.

Slow on purpose and obviously right: it is the oracle every fast backend is tested against
(run it on a float64 model for a reference to ~1e-12). Gradients come from
``torch.autograd.grad``, so the parameters' ``.grad`` fields are never touched. Each
sample's label is taken from (checked against, or drawn from) the logits of that sample's
own forward, so no batch forward is ever run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from fisher_mi.fisher.backends import BatchDiagonal, BatchNorms, FisherBackend, register_backend
from fisher_mi.fisher.targets import LabelSource, as_label_source, per_sample_loss
from fisher_mi.models.layers import LayerInfo
from fisher_mi.models.outputs import logits_of


@register_backend("loop")
class LoopBackend(FisherBackend):
    """Per-sample loop; exact in the model's dtype."""

    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> BatchNorms:
        """||g_n||^2 per layer: each sample's gradients squared and summed over the layer."""
        losses, rows = [], []
        for loss, grads in self._samples(model, layers, x, labels):
            rows.append(
                torch.stack(
                    [sum(grads[n].pow(2).sum() for n in layer.param_names) for layer in layers]
                )
            )
            losses.append(loss)
        return BatchNorms(torch.stack(losses), torch.stack(rows))

    def diagonal(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> BatchDiagonal:
        """sum_n g_n * g_n per parameter: each sample's gradient squared and accumulated."""
        losses, squares = [], {}
        for loss, grads in self._samples(model, layers, x, labels):
            for name, grad in grads.items():
                squares[name] = squares.get(name, 0) + grad.pow(2)
            losses.append(loss)
        return BatchDiagonal(torch.stack(losses), squares)

    def _samples(
        self,
        model: nn.Module,
        layers: Sequence[LayerInfo],
        x: Tensor,
        labels: Tensor | LabelSource,
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """Each sample's loss and the gradients of the profiled parameters (zeros if unused)."""
        source = as_label_source(labels)
        parameters = dict(model.named_parameters())
        names = [name for layer in layers for name in layer.param_names]
        for n in range(x.shape[0]):
            logits = logits_of(model(x[n : n + 1]))
            label = source.pick(logits.detach(), source.payload[n : n + 1])
            loss = per_sample_loss(logits, label).sum()
            grads = torch.autograd.grad(loss, [parameters[k] for k in names], allow_unused=True)
            yield (
                loss.detach(),
                {
                    name: torch.zeros_like(parameters[name]) if grad is None else grad
                    for name, grad in zip(names, grads, strict=True)
                },
            )
