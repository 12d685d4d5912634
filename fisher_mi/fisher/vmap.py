"""Batched per-sample gradients with ``torch.func``: ``vmap(grad(loss))`` over samples.

Exact for any model ``torch.func`` can trace, but it materialises one gradient per sample, so
the batch is processed in chunks of ``chunk_size`` samples and only their squared norms are
kept: memory holds at most ``chunk_size`` per-sample gradients at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from fisher_mi.fisher.backends import BatchNorms, FisherBackend, register_backend
from fisher_mi.fisher.targets import logits_of, per_sample_loss
from fisher_mi.models.layers import LayerInfo


@register_backend("vmap")
class VmapBackend(FisherBackend):
    """``torch.func.vmap`` over ``grad`` of the single-sample loss, chunked."""

    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchNorms:
        wanted = {name for layer in layers for name in layer.param_names}
        profiled, fixed = {}, dict(model.named_buffers())
        for name, param in model.named_parameters():
            (profiled if name in wanted else fixed)[name] = param.detach()

        def sample_loss(params: dict[str, Tensor], x1: Tensor, y1: Tensor) -> Tensor:
            output = functional_call(model, (params, fixed), (x1.unsqueeze(0),))
            return per_sample_loss(logits_of(output), y1.unsqueeze(0)).sum()

        def sample_norms(params: dict[str, Tensor], x1: Tensor, y1: Tensor):
            grads, loss = grad_and_value(sample_loss)(params, x1, y1)
            norms = [
                sum(grads[name].pow(2).sum() for name in layer.param_names) for layer in layers
            ]
            return loss, torch.stack(norms)

        batched = vmap(sample_norms, in_dims=(None, 0, 0))
        losses, norms = [], []
        for start in range(0, x.shape[0], self.chunk_size):
            stop = start + self.chunk_size
            loss, norm = batched(profiled, x[start:stop], y[start:stop])
            losses.append(loss)
            norms.append(norm)
        return BatchNorms(torch.cat(losses), torch.cat(norms))
