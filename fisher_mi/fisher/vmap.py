"""Batched per-sample gradients with ``torch.func``: ``vmap(grad(loss))`` over samples.

Exact for any model ``torch.func`` can trace, but it materialises one gradient per sample, so
the batch is processed in chunks of ``chunk_size`` samples and only their squared norms are
kept: memory holds at most ``chunk_size`` per-sample gradients at a time. Each sample's label
is picked inside the vmapped function from the detached logits of its own forward (the label
source's payload is vmapped with the inputs), so no separate forward is run for labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from fisher_mi.fisher.backends import BatchDiagonal, BatchNorms, FisherBackend, register_backend
from fisher_mi.fisher.targets import LabelSource, as_label_source, per_sample_loss
from fisher_mi.models.layers import LayerInfo
from fisher_mi.models.outputs import logits_of


def _slots(model: nn.Module, kind: str) -> list[tuple[str, Tensor]]:
    """Every (module, attribute) slot holding a parameter or buffer, each module once."""
    return [
        (f"{prefix}.{local}" if prefix else local, tensor)
        for prefix, module in model.named_modules()
        for local, tensor in getattr(module, kind).items()
        if tensor is not None
    ]


@register_backend("vmap")
class VmapBackend(FisherBackend):
    """``torch.func.vmap`` over ``grad`` of the single-sample loss, chunked."""

    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> BatchNorms:
        """||g_n||^2 per layer from each chunk's per-sample gradients, flattened per sample."""
        losses, norms = [], []
        for loss, grads in self._chunks(model, layers, x, labels):
            norms.append(
                torch.stack(
                    [
                        sum(
                            grads[n].reshape(len(loss), -1).pow(2).sum(1) for n in layer.param_names
                        )
                        for layer in layers
                    ],
                    dim=1,
                )
            )
            losses.append(loss)
        return BatchNorms(torch.cat(losses), torch.cat(norms))

    def diagonal(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> BatchDiagonal:
        """sum_n g_n * g_n per parameter, each chunk's per-sample gradients squared and summed."""
        losses, squares = [], {}
        for loss, grads in self._chunks(model, layers, x, labels):
            for name, grad in grads.items():
                squares[name] = squares.get(name, 0) + grad.pow(2).sum(0)
            losses.append(loss)
        return BatchDiagonal(torch.cat(losses), squares)

    def _chunks(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """Per-sample losses and gradients (chunk, *shape) of the profiled parameters, chunk
        by chunk, so at most ``chunk_size`` per-sample gradients exist at a time.

        A parameter held by several modules (tied weights) is passed once per holding module
        (with ``tie_weights=False``) and its gradients summed: ``functional_call``'s own weight
        tying, or naming one module twice, leaves modules holding plain tensors afterwards.
        """
        source = as_label_source(labels)
        wanted = {name for layer in layers for name in layer.param_names}
        canonical = {id(param): name for name, param in model.named_parameters()}
        owner, profiled, fixed = {}, {}, dict(_slots(model, "_buffers"))
        for name, param in _slots(model, "_parameters"):
            owner[name] = canonical[id(param)]
            (profiled if owner[name] in wanted else fixed)[name] = param.detach()

        def sample_loss(params: dict[str, Tensor], x1: Tensor, payload1: Tensor) -> Tensor:
            output = functional_call(model, (params, fixed), (x1.unsqueeze(0),), tie_weights=False)
            logits = logits_of(output)
            label = source.pick(logits.detach(), payload1.unsqueeze(0))
            return per_sample_loss(logits, label).sum()

        batched = vmap(grad_and_value(sample_loss), in_dims=(None, 0, 0))
        for start in range(0, x.shape[0], self.chunk_size):
            stop = start + self.chunk_size
            grads, loss = batched(profiled, x[start:stop], source.payload[start:stop])
            summed: dict[str, Tensor] = {}
            for name, grad in grads.items():
                summed[owner[name]] = summed[owner[name]] + grad if owner[name] in summed else grad
            yield loss, summed
