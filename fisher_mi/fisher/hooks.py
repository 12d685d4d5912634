"""The fast exact backend: one forward, one backward to the layer outputs, closed forms.

Forward hooks keep each layer's input a and the autograd edge of its output. One backward of
the summed per-sample loss then reaches every layer's output gradient b (in eval mode sample
n's part depends on sample n alone), and a sampler per module type
(``fisher_mi.fisher.samplers``) turns (a, b) into per-sample squared norms or the diagonal.
The parameters' batch gradients are never formed: that step is *replaced*, not added to,
which is why this costs about one ordinary backward pass.

Memory stays at that of an ordinary backward too: each b is consumed by a pre-hook on its
layer's autograd node the moment it exists, and the layer's input is dropped with it, so no
more than one layer's b is alive at a time. Only the gradients at the "source" layers (those
with no other profiled layer below them in the graph, usually just the first) are requested
from ``torch.autograd.grad``; every other profiled node lies on the way to one and so runs.
Output edges are taken when the output is produced, so a later in-place op
(``ReLU(inplace=True)``) cannot change what they mean.

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
from fisher_mi.fisher.targets import per_sample_loss
from fisher_mi.fisher.vmap import VmapBackend
from fisher_mi.models.layers import LayerInfo
from fisher_mi.models.outputs import logits_of


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

Consume = Callable[[LayerInfo, ParameterSampler, Tensor, Tensor], None]
"""Called during the backward once per covered layer that the loss reaches, with the layer's
input a and output gradient b."""


def _source_edges(edges: Sequence[GradientEdge]) -> list[bool]:
    """For each edge, whether no other edge's node lies below its node in the autograd graph
    (one memoised, iterative walk: deep graphs like IR-152's exceed Python's recursion)."""
    targets = {edge.node for edge in edges}
    below: dict[object, bool] = {}  # node -> some target node is strictly below it
    for edge in edges:
        stack = [(edge.node, False)]
        while stack:
            node, expanded = stack.pop()
            if node in below:
                continue
            children = [child for child, _ in node.next_functions if child is not None]
            if expanded:
                below[node] = any(child in targets or below[child] for child in children)
            else:
                stack.append((node, True))
                stack.extend((child, False) for child in children if child not in below)
    return [not below[edge.node] for edge in edges]


@register_backend("hooks")
class HooksBackend(FisherBackend):
    """Per-sample quantities from layer inputs and output gradients (module docstring)."""

    def __init__(self, *, chunk_size: int = 32) -> None:
        super().__init__(chunk_size=chunk_size)
        self._sample_major: dict[str, bool] = {}  # layer name -> input has samples on dim 0

    def squared_norms(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchNorms:
        columns: dict[str, Tensor] = {}

        def consume(layer: LayerInfo, sampler: ParameterSampler, a: Tensor, b: Tensor) -> None:
            wanted = _local_names(layer)
            chunks = self._chunked(sampler.squared_norms, layer.module, a, b)
            columns[layer.name] = torch.cat([sum(c[k] for k in wanted) for c in chunks])

        losses, rest = self._pass(model, layers, x, y, consume)
        if rest:
            fallback = self._fallback().squared_norms(model, rest, x, y)
            names = [layer.name for layer in rest]
            columns.update(zip(names, fallback.squared_norms.T, strict=True))
        zeros = losses.new_zeros(losses.shape)  # covered, but no gradient reaches the layer
        norms = torch.stack([columns.get(layer.name, zeros) for layer in layers], dim=1)
        return BatchNorms(losses, norms)

    def diagonal(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, y: Tensor
    ) -> BatchDiagonal:
        parameters = dict(model.named_parameters())
        squares: dict[str, Tensor] = {}

        def consume(layer: LayerInfo, sampler: ParameterSampler, a: Tensor, b: Tensor) -> None:
            chunks = self._chunked(sampler.diagonal, layer.module, a, b)
            for local, name in zip(_local_names(layer), layer.param_names, strict=True):
                squares[name] = sum((c[local] for c in chunks), torch.zeros_like(parameters[name]))

        losses, rest = self._pass(model, layers, x, y, consume)
        if rest:
            squares.update(self._fallback().diagonal(model, rest, x, y).squares)
        for layer in layers:  # covered, but no gradient reaches the layer
            for name in layer.param_names:
                squares.setdefault(name, torch.zeros_like(parameters[name]))
        return BatchDiagonal(losses, squares)

    def _fallback(self) -> VmapBackend:
        return VmapBackend(chunk_size=self.chunk_size)

    def _chunked(
        self, quantity: Quantity, module: nn.Module, a: Tensor, b: Tensor
    ) -> list[dict[str, Tensor]]:
        """``quantity(module, a, b)`` over chunks of ``chunk_size`` samples, which bounds the
        transient memory of the closed forms (patches, Gram matrices)."""
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
        self,
        model: nn.Module,
        layers: Sequence[LayerInfo],
        x: Tensor,
        y: Tensor,
        consume: Consume,
    ) -> tuple[Tensor, list[LayerInfo]]:
        """One forward and one backward, ``consume`` called for each covered layer as its
        output gradient appears; returns the per-sample losses and the layers left to the
        fallback."""
        samplers = {layer.name: sampler_for(layer.module) for layer in layers}
        hooked = [layer for layer in layers if samplers[layer.name] is not None]
        self._probe_sample_major(model, hooked, x)
        with record_calls([layer.module for layer in hooked]) as calls:
            losses = per_sample_loss(logits_of(model(x)), y)
        batch = x.shape[0]
        once = [
            layer
            for layer in hooked
            if self._sample_major[layer.name]
            and len(calls[layer.module]) == 1
            and calls[layer.module][0] is not None
            and calls[layer.module][0].a.shape[0] == batch
        ]
        covered = {layer.name for layer in once} | {  # never called: no gradient at all
            layer.name
            for layer in hooked
            if not calls[layer.module] and self._sample_major[layer.name]
        }

        def receive(layer: LayerInfo, b: Tensor | None) -> None:
            call = calls[layer.module].pop()  # the input is dropped with it
            if b is not None and b.shape[0] != batch:  # not sample-major after all
                covered.discard(layer.name)
            elif b is not None:
                consume(layer, samplers[layer.name], call.a, b)

        edges = [calls[layer.module][0].edge for layer in once]
        is_source = _source_edges(edges)
        by_node: dict[object, list[tuple[int, LayerInfo]]] = {}
        for layer, edge, source in zip(once, edges, is_source, strict=True):
            if not source:
                by_node.setdefault(edge.node, []).append((edge.output_nr, layer))

        def pre_hook(entries: list[tuple[int, LayerInfo]]) -> Callable:
            def hook(grad_outputs: tuple[Tensor | None, ...]) -> None:
                for output_nr, layer in entries:
                    receive(layer, grad_outputs[output_nr])

            return hook

        sources = [layer for layer, source in zip(once, is_source, strict=True) if source]
        source_edges = [edge for edge, source in zip(edges, is_source, strict=True) if source]
        handles = [node.register_prehook(pre_hook(entries)) for node, entries in by_node.items()]
        try:
            grads = (
                torch.autograd.grad(losses.sum(), source_edges, allow_unused=True)
                if source_edges
                else ()
            )
        finally:
            for handle in handles:
                handle.remove()
        for layer, b in zip(sources, grads, strict=True):
            receive(layer, b)
        return losses.detach(), [layer for layer in layers if layer.name not in covered]
