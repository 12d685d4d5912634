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
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from fisher_mi.fisher.backends import BatchDiagonal, BatchNorms, FisherBackend, register_backend
from fisher_mi.fisher.samplers import ParameterSampler, sampler_for
from fisher_mi.fisher.targets import LabelSource, as_label_source, per_sample_loss
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


@dataclass
class Coverage:
    """The bookkeeping of one pass: which layers it covers, whose output gradient it awaits.

    A layer is covered when, in the forward, it ran exactly once on input carrying the batch
    on dim 0 (its output gradient b then arrives during the backward and is handed to
    ``consume``), or never ran (no gradient reaches it: its quantities are zeros). An awaited
    layer's recorded call (its input a) is held here only and dropped when its b arrives, so
    no more than one layer's a and b need be alive at a time. A layer whose b turns out not
    to be sample-major is uncovered then; uncovered layers go to the fallback.

    Attributes:
        batch: rows of the pass.
        consume: what to do with each (layer, sampler, a, b).
        awaited: layer name -> (layer, its sampler, its one recorded call).
        covered: names of the covered layers.
    """

    batch: int
    consume: Consume
    awaited: dict[str, tuple[LayerInfo, ParameterSampler, Call]] = field(default_factory=dict)
    covered: set[str] = field(default_factory=set)

    def receive(self, name: str, b: Tensor | None) -> None:
        """Layer ``name``'s output gradient b (None: the loss does not reach the layer)."""
        layer, sampler, call = self.awaited.pop(name)
        if b is not None and b.shape[0] != self.batch:
            self.covered.discard(name)
        elif b is not None:
            self.consume(layer, sampler, call.a, b)

    def receive_outputs(
        self, entries: Sequence[tuple[int, str]], grad_outputs: tuple[Tensor | None, ...]
    ) -> None:
        """An autograd node's pre-hook, bound to its ``entries`` (output_nr, layer name):
        each awaited layer gets the gradient of its output among the node's ``grad_outputs``."""
        for output_nr, name in entries:
            self.receive(name, grad_outputs[output_nr])

    def edges(self) -> dict[str, GradientEdge]:
        """The autograd edge of each awaited layer's output."""
        return {name: call.edge for name, (_, _, call) in self.awaited.items()}

    def rest(self, layers: Sequence[LayerInfo]) -> list[LayerInfo]:
        """The layers this pass does not cover: the fallback's."""
        return [layer for layer in layers if layer.name not in self.covered]


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
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> BatchNorms:
        """||g_n||^2 per layer from each covered layer's (a, b) by its sampler's closed form,
        the other layers' from the ``vmap`` fallback with the same labels."""
        columns: dict[str, Tensor] = {}

        def consume(layer: LayerInfo, sampler: ParameterSampler, a: Tensor, b: Tensor) -> None:
            wanted = _local_names(layer)
            chunks = self._chunked(sampler.squared_norms, layer.module, a, b)
            columns[layer.name] = torch.cat([sum(c[k] for k in wanted) for c in chunks])

        losses, y, rest = self._pass(model, layers, x, as_label_source(labels), consume)
        if rest:
            fallback = self._fallback().squared_norms(model, rest, x, y)
            names = [layer.name for layer in rest]
            columns.update(zip(names, fallback.squared_norms.T, strict=True))
        zeros = losses.new_zeros(losses.shape)  # covered, but no gradient reaches the layer
        norms = torch.stack([columns.get(layer.name, zeros) for layer in layers], dim=1)
        return BatchNorms(losses, norms)

    def diagonal(
        self, model: nn.Module, layers: Sequence[LayerInfo], x: Tensor, labels: Tensor | LabelSource
    ) -> BatchDiagonal:
        """sum_n g_n * g_n per parameter from each covered layer's (a, b) by its sampler,
        the other layers' from the ``vmap`` fallback with the same labels."""
        parameters = dict(model.named_parameters())
        squares: dict[str, Tensor] = {}

        def consume(layer: LayerInfo, sampler: ParameterSampler, a: Tensor, b: Tensor) -> None:
            chunks = self._chunked(sampler.diagonal, layer.module, a, b)
            for local, name in zip(_local_names(layer), layer.param_names, strict=True):
                squares[name] = sum((c[local] for c in chunks), torch.zeros_like(parameters[name]))

        losses, y, rest = self._pass(model, layers, x, as_label_source(labels), consume)
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

    def _coverage(
        self,
        hooked: Sequence[LayerInfo],
        calls: dict[nn.Module, list[Call | None]],
        batch: int,
        consume: Consume,
    ) -> Coverage:
        """Which hooked layers the closed forms cover, from the calls the forward recorded
        (each awaited layer's call moves from ``calls`` into the record)."""
        coverage = Coverage(batch, consume)
        for layer in hooked:
            recorded = calls[layer.module]
            if not self._sample_major[layer.name]:
                continue
            if not recorded:  # never called: no gradient at all
                coverage.covered.add(layer.name)
            elif len(recorded) == 1 and recorded[0] is not None and recorded[0].a.shape[0] == batch:
                coverage.covered.add(layer.name)
                coverage.awaited[layer.name] = (layer, sampler_for(layer.module), recorded.pop())
        return coverage

    def _pass(
        self,
        model: nn.Module,
        layers: Sequence[LayerInfo],
        x: Tensor,
        labels: LabelSource,
        consume: Consume,
    ) -> tuple[Tensor, Tensor, list[LayerInfo]]:
        """One forward and one backward, ``consume`` called for each covered layer as its
        output gradient appears; returns the per-sample losses, the labels (picked from the
        detached logits of this forward) and the layers left to the fallback."""
        hooked = [layer for layer in layers if sampler_for(layer.module) is not None]
        self._probe_sample_major(model, hooked, x)
        with record_calls([layer.module for layer in hooked]) as calls:
            logits = logits_of(model(x))
        y = labels.pick(logits.detach(), labels.payload)
        losses = per_sample_loss(logits, y)
        coverage = self._coverage(hooked, calls, x.shape[0], consume)
        _backward(losses.sum(), coverage)
        return losses.detach(), y, coverage.rest(layers)


def _backward(loss: Tensor, coverage: Coverage) -> None:
    """Backpropagate ``loss`` to the awaited layers' outputs, handing each output gradient to
    ``coverage`` as it appears: only the source layers' gradients are requested, every other
    awaited node gets a pre-hook (it lies on the way to a source, so it runs)."""
    edges = coverage.edges()
    is_source = dict(zip(edges, _source_edges(list(edges.values())), strict=True))
    by_node: dict[object, list[tuple[int, str]]] = {}
    for name, edge in edges.items():
        if not is_source[name]:
            by_node.setdefault(edge.node, []).append((edge.output_nr, name))
    sources = [name for name in edges if is_source[name]]
    handles = [
        node.register_prehook(partial(coverage.receive_outputs, entries))
        for node, entries in by_node.items()
    ]
    try:
        grads = (
            torch.autograd.grad(loss, [edges[n] for n in sources], allow_unused=True)
            if sources
            else ()
        )
    finally:
        for handle in handles:
            handle.remove()
    for name, b in zip(sources, grads, strict=True):
        coverage.receive(name, b)
