"""The brute-force reference: one forward and one backward per sample.

Slow on purpose and obviously right: it is the oracle every fast backend is tested against
(run it on a float64 model for a reference to ~1e-12). Gradients come from
``torch.autograd.grad``, so the parameters' ``.grad`` fields are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fisher_mi.fisher.backends import BatchNorms, FisherBackend, register_backend
from fisher_mi.fisher.targets import logits_of, per_sample_loss
from fisher_mi.models.layers import LayerInfo


@register_backend("loop")
class LoopBackend(FisherBackend):
    """Per-sample loop; exact in the model's dtype."""

    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchNorms:
        parameters = dict(model.named_parameters())
        per_layer = [[parameters[name] for name in layer.param_names] for layer in layers]
        flat = [param for group in per_layer for param in group]
        zero = x.new_zeros(())
        losses, rows = [], []
        for n in range(x.shape[0]):
            loss = per_sample_loss(logits_of(model(x[n : n + 1])), y[n : n + 1]).sum()
            grads = torch.autograd.grad(loss, flat, allow_unused=True)
            squares = {
                id(param): grad.pow(2).sum()
                for param, grad in zip(flat, grads, strict=True)
                if grad is not None
            }
            row = [sum(squares.get(id(p), zero) for p in group) for group in per_layer]
            losses.append(loss.detach())
            rows.append(torch.stack(row).detach())
        return BatchNorms(torch.stack(losses), torch.stack(rows))
