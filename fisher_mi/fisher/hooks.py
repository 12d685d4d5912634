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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from fisher_mi.fisher.backends import BatchDiagonal, BatchNorms, FisherBackend, register_backend
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


Quantity = Callable[[nn.Module, Tensor, Tensor], dict[str, Tensor]]


@dataclass
class HookedPass:
    """One forward and one backward: for each layer a sampler covers, its sampler, input a and
    output gradient b (b None when the layer's output does not reach the loss); the layers
    left to the fallback."""

    losses: Tensor
    covered: dict[str, tuple[ParameterSampler, Tensor | None, Tensor | None]]
    rest: list[LayerInfo]


@register_backend("hooks")
class HooksBackend(FisherBackend):
    """Per-sample quantities from layer inputs and output gradients (module docstring)."""

    def __init__(self, *, chunk_size: int = 32) -> None:
        super().__init__(chunk_size=chunk_size)
        self._sample_major: dict[str, bool] = {}  # layer name -> input has samples on dim 0

    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchNorms:
        hooked = self._pass(model, layers, x, y)
        zeros = hooked.losses.new_zeros(hooked.losses.shape)
        columns: dict[str, Tensor] = {}
        for layer in layers:
            if layer.name in hooked.covered:
                sampler, a, b = hooked.covered[layer.name]
                wanted = _local_names(layer)
                chunks = self._chunked(sampler.squared_norms, layer.module, a, b)
                columns[layer.name] = (
                    torch.cat([sum(c[k] for k in wanted) for c in chunks]) if chunks else zeros
                )
        if hooked.rest:
            fallback = self._fallback().squared_norms(model, hooked.rest, x, y)
            names = [layer.name for layer in hooked.rest]
            columns.update(zip(names, fallback.squared_norms.T, strict=True))
        norms = torch.stack([columns[layer.name] for layer in layers], dim=1)
        return BatchNorms(hooked.losses, norms)

    def diagonal(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchDiagonal:
        hooked = self._pass(model, layers, x, y)
        parameters = dict(model.named_parameters())
        squares: dict[str, Tensor] = {}
        for layer in layers:
            if layer.name in hooked.covered:
                sampler, a, b = hooked.covered[layer.name]
                chunks = self._chunked(sampler.diagonal, layer.module, a, b)
                for local, name in zip(_local_names(layer), layer.param_names, strict=True):
                    squares[name] = sum(
                        (c[local] for c in chunks), torch.zeros_like(parameters[name])
                    )
        if hooked.rest:
            squares.update(self._fallback().diagonal(model, hooked.rest, x, y).squares)
        return BatchDiagonal(hooked.losses, squares)

    def _fallback(self) -> VmapBackend:
        return VmapBackend(chunk_size=self.chunk_size)

    def _chunked(
        self, quantity: Quantity, module: nn.Module, a: Tensor | None, b: Tensor | None
    ) -> list[dict[str, Tensor]]:
        """``quantity(module, a, b)`` over chunks of ``chunk_size`` samples, which bounds the
        transient memory of the closed forms (patches, Gram matrices); none when the layer's
        output does not reach the loss (``b`` is None)."""
        if a is None or b is None:
            return []
        size = self.chunk_size
        return [
            quantity(module, a[start : start + size], b[start : start + size])
            for start in range(0, a.shape[0], size)
        ]

    def _probe_sample_major(self, model: nn.Module, hooked: Sequence[LayerInfo], x: Tensor) -> None:
        """Find, once per layer, whether its input carries the sample on dim 0.

        The closed forms assume it; a layer fed e.g. ``x.transpose(0, 1)`` (sequence-first)
        would give wrong numbers exactly when the sequence is as long as the batch, so one
        single-sample forward decides: a sample-major layer then sees a leading size of 1.
        """
        unknown = [layer for layer in hooked if layer.name not in self._sample_major]
        if not unknown:
            return
        sizes: dict[nn.Module, list[int]] = {layer.module: [] for layer in unknown}
        handles = [
            layer.module.register_forward_hook(
                lambda module, inputs, _output: sizes[module].append(
                    inputs[0].shape[0] if inputs and inputs[0].dim() else -1
                )
            )
            for layer in unknown
        ]
        try:
            with torch.no_grad():
                model(x[:1])
        finally:
            for handle in handles:
                handle.remove()
        for layer in unknown:
            self._sample_major[layer.name] = all(size == 1 for size in sizes[layer.module])

    def _pass(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> HookedPass:
        samplers = {layer.name: sampler_for(layer.module) for layer in layers}
        hooked = [layer for layer in layers if samplers[layer.name] is not None]
        self._probe_sample_major(model, hooked, x)
        with record_calls([layer.module for layer in hooked]) as calls:
            losses = per_sample_loss(logits_of(model(x)), y)
        once = [
            layer
            for layer in hooked
            if self._sample_major[layer.name]
            and len(calls[layer.module]) == 1
            and calls[layer.module][0] is not None
            and calls[layer.module][0].a.shape[0] == x.shape[0]
        ]
        edges = [calls[layer.module][0].edge for layer in once]
        grads = torch.autograd.grad(losses.sum(), edges, allow_unused=True) if edges else ()
        covered = {
            layer.name: (samplers[layer.name], calls[layer.module][0].a, b)
            for layer, b in zip(once, grads, strict=True)
            if b is None or b.shape[0] == x.shape[0]
        }
        covered.update(  # never called: no gradient at all
            {
                layer.name: (samplers[layer.name], None, None)
                for layer in hooked
                if not calls[layer.module] and self._sample_major[layer.name]
            }
        )
        rest = [layer for layer in layers if layer.name not in covered]
        return HookedPass(losses.detach(), covered, rest)
