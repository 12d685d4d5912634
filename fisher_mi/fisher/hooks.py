"""The fast exact backend: one forward, one backward to the layer outputs, closed forms.

Forward hooks keep each layer's input a and the autograd edge of its output; one
``torch.autograd.grad`` of the summed per-sample loss to those edges gives every layer's
output gradient b (in eval mode sample n's part depends on sample n alone), and a sampler per
module type (``fisher_mi.fisher.samplers``) turns (a, b) into per-sample squared norms. The
parameters' batch gradients are never formed: that step is *replaced*, not added to, which is
why this costs about one ordinary backward pass. Output edges are taken when the output is
produced, so a later in-place op (``ReLU(inplace=True)``) cannot change what they mean.

Layers without a sampler (custom modules), or called more than once per forward, fall back
to the ``vmap`` backend for just those layers, so every model works.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from fisher_mi.fisher.backends import BatchNorms, FisherBackend, register_backend
from fisher_mi.fisher.samplers import ParameterSampler, sampler_for
from fisher_mi.fisher.targets import logits_of, per_sample_loss
from fisher_mi.fisher.vmap import VmapBackend
from fisher_mi.models.layers import LayerInfo


@dataclass
class Call:
    """One forward call of a hooked module: its input and the edge of its output."""

    a: Tensor
    edge: GradientEdge


@contextlib.contextmanager
def record_calls(modules: Sequence[nn.Module]) -> Iterator[dict[nn.Module, list[Call | None]]]:
    """Forward hooks recording every call of ``modules`` (None: no differentiable tensor
    output, which the closed forms do not cover); removed on exit."""
    calls: dict[nn.Module, list[Call | None]] = {module: [] for module in modules}

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        usable = inputs and isinstance(output, Tensor) and output.grad_fn is not None
        calls[module].append(
            Call(inputs[0].detach(), get_gradient_edge(output)) if usable else None
        )

    handles = [module.register_forward_hook(hook) for module in modules]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _local_names(layer: LayerInfo) -> list[str]:
    return [name.rsplit(".", 1)[-1] for name in layer.param_names]


@register_backend("hooks")
class HooksBackend(FisherBackend):
    """Per-sample squared norms from layer inputs and output gradients (module docstring)."""

    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchNorms:
        samplers = {layer.name: sampler_for(layer.module) for layer in layers}
        hooked = [layer for layer in layers if samplers[layer.name] is not None]
        with record_calls([layer.module for layer in hooked]) as calls:
            losses = per_sample_loss(logits_of(model(x)), y)
        single = [
            layer for layer in hooked if len(calls[layer.module]) == 1 and calls[layer.module][0]
        ]
        edges = [calls[layer.module][0].edge for layer in single]
        grads = torch.autograd.grad(losses.sum(), edges, allow_unused=True) if edges else ()
        columns: dict[str, Tensor] = {}
        for layer, b in zip(single, grads, strict=True):
            a = calls[layer.module][0].a
            columns[layer.name] = self._layer_norms(samplers[layer.name], layer, a, b, losses)
        unused = [layer for layer in hooked if not calls[layer.module]]
        for layer in unused:
            columns[layer.name] = losses.new_zeros(losses.shape).detach()
        rest = [layer for layer in layers if layer.name not in columns]
        if rest:
            fallback = VmapBackend(chunk_size=self.chunk_size).squared_norms(model, rest, x, y)
            columns.update(
                zip([layer.name for layer in rest], fallback.squared_norms.T, strict=True)
            )
        norms = torch.stack([columns[layer.name] for layer in layers], dim=1)
        return BatchNorms(losses.detach(), norms)

    def _layer_norms(
        self,
        sampler: ParameterSampler,
        layer: LayerInfo,
        a: Tensor,
        b: Tensor | None,
        losses: Tensor,
    ) -> Tensor:
        """Per-sample squared norm of the layer's profiled parameters, in sample chunks."""
        if b is None:  # the output does not reach the loss
            return losses.new_zeros(losses.shape).detach()
        wanted = _local_names(layer)
        parts = []
        for start in range(0, a.shape[0], self.chunk_size):
            stop = start + self.chunk_size
            norms = sampler.squared_norms(layer.module, a[start:stop], b[start:stop])
            parts.append(sum(norms[name] for name in wanted))
        return torch.cat(parts)
