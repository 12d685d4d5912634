"""Benchmark: the cost of per-layer Fisher traces and diagonals, method by method, against one
backward.

For a model, a batch of B inputs and each layer l, a Fisher method computes

    S_l = sum_n ||grad_{theta_l} l_n||^2,     l_n = -log p(y_n | x_n),

the per-layer sum of per-sample squared gradient norms (the Fisher trace times B). A *trace*
method gets there through the per-sample norms ||g_n||^2 (a B x L table); a *diagonal* method
through sum_n g_n * g_n per parameter (elementwise; the trace is its per-layer sum), so both
are checked against the same reference. Every (model, batch size, method) runs in a fresh
subprocess, so its peak memory is its own; the ``floor`` method (one forward and one backward
of the mean loss) is what any method must at least pay, and every other method is shown as a
multiple of it. Each Fisher method's S is compared with the float64 ``fisher_mi`` loop on the
same model and batch.

Peers (optional ``bench`` extra, see ``README.md``): BackPACK (``BatchL2Grad``,
``SumGradSquared``, ``BatchGrad``), Opacus (``GradSampleModule`` and its ghost-norm mode) and
the plain ``torch.func`` recipe. A peer that cannot run a model is recorded as
``unsupported`` with the reason; one that would not fit in memory as ``skipped``.

Usage (from the repository root):

    python benchmarks/bench_fisher.py                      # everything, results in benchmarks/
    python benchmarks/bench_fisher.py --quick              # smoke check, results in a temp folder
    python benchmarks/bench_fisher.py --models mcnn --methods floor,fisher_mi.hooks --repeats 3

A method is one function ``(model, x, y) -> float64 tensor of S_l per layer`` (layers as
``fisher_mi.models.named_layers``) decorated with ``@register_method``; a model is one
``MODELS.add`` line.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import fisher_mi
from fisher_mi.errors import RegistryError
from fisher_mi.fisher import make_backend
from fisher_mi.io import write_json, write_text
from fisher_mi.models import build_model, named_layers
from fisher_mi.models.outputs import logits_of
from fisher_mi.registry import Registry

BENCH_DIR = Path(__file__).resolve().parent
SEED = 0
WARMUP = 1
# Per-sample gradients the vmap backend holds at once (and the samples the hooks backend's
# closed forms take at once): the package default (as in ``profile``).
VMAP_CHUNK_SIZE = 32
# The Fisher method whose float64 run is the reference for every other one.
REFERENCE_METHOD = "fisher_mi.loop"
MIB = 2**20
GIB = 2**30
# Other processes using more cores than this during a case mark its timing as contended.
OTHER_CORES_THRESHOLD = 0.25
# Defaults of the guards: a worker running longer is killed; a method materialising all
# per-sample gradients (batch x parameters) above this many GiB is not started.
CASE_TIMEOUT_S = 600.0
MAX_PER_SAMPLE_GIB = 12.0
# The worker's data-segment limit (RLIMIT_DATA) as a share of the machine's memory: an
# allocation beyond it fails inside the worker (recorded as out of memory) instead of the
# kernel's OOM killer picking a process.
MEMORY_LIMIT_SHARE = 0.85
# Acceptance targets (see README.md): hooks' trace within TRACE_TARGET x the floor in time and
# peak memory, its diagonal within DIAGONAL_TARGET x the floor in time.
TRACE_TARGET = 1.3
DIAGONAL_TARGET = 2.0
# The two tables of RESULTS.md: what a method computes on the way to S.
TABLES = {
    "trace": "Trace: per-sample squared norms per layer (B x L), summed over the batch",
    "diagonal": "Diagonal: sum_n g_n * g_n per parameter, summed over each layer",
}
# Versions recorded with every result: the peers'.
PEER_DISTRIBUTIONS = ("backpack-for-pytorch", "opacus")


@dataclass(frozen=True)
class ModelCase:
    """A model to benchmark: a zero-argument factory, its input shape, its class count and the
    timed repetitions it gets unless ``--repeats`` says otherwise."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    repeats: int = 5


def architecture(
    arch: str, input_shape: tuple[int, ...], num_classes: int, *, repeats: int = 5
) -> ModelCase:
    """A ``fisher_mi`` registered architecture with ``num_classes`` outputs."""
    build = partial(build_model, arch, num_classes=num_classes)
    return ModelCase(build, input_shape, num_classes, repeats)


MODELS: Registry[ModelCase] = Registry("benchmark model")
# (a) the GMI MNIST-style CNN, and a 1/50-size VGG-like net for quick checks.
MODELS.add("mcnn", architecture("mcnn", (1, 32, 32), 10))
MODELS.add("vgg_small", architecture("vgg_small", (3, 64, 64), 100))
# (b)-(d) the literature's CelebA targets at 1000 classes: 3 repeats keep the run ~40 min.
MODELS.add("vgg16", architecture("vgg16", (3, 64, 64), 1000, repeats=3))
MODELS.add("resnet18", architecture("resnet18", (3, 64, 64), 1000, repeats=3))
MODELS.add("ir152", architecture("ir152", (3, 64, 64), 1000, repeats=3))


class Unsupported(Exception):
    """The method cannot run this model; the message (the reason) is recorded, not raised."""


@dataclass(frozen=True)
class Method:
    """A way to compute per-layer sums S_l.

    Attributes:
        name: the ``METHODS`` key.
        run: ``run(model, x, y) -> float64 (L,)``.
        fisher: False for a cost reference (the floor: no error is computed).
        tables: the RESULTS.md tables showing it (``TABLES`` keys): methods that build
            per-sample gradients yield both quantities and appear in both.
        per_sample_gradients: materialises every per-sample gradient at once (B x P values),
            so ``--max-per-sample-gb`` guards it.
        requires: modules imported before the memory baseline (a peer's library), so that
            importing it is not counted as the method's memory; missing ones make the method
            ``unsupported``.
    """

    name: str
    run: Callable[[nn.Module, Tensor, Tensor], Tensor]
    fisher: bool
    tables: tuple[str, ...]
    per_sample_gradients: bool
    requires: tuple[str, ...]


METHODS: Registry[Method] = Registry("benchmark method")


def register_method(
    name: str,
    *,
    fisher: bool = True,
    tables: tuple[str, ...] = ("trace",),
    per_sample_gradients: bool = False,
    requires: tuple[str, ...] = (),
):
    """Decorator: register ``run(model, x, y) -> float64 per-layer sums`` under ``name``."""

    def decorate(run: Callable[[nn.Module, Tensor, Tensor], Tensor]):
        METHODS.add(name, Method(name, run, fisher, tables, per_sample_gradients, requires))
        return run

    return decorate


def layer_sums(model: nn.Module, value: Callable[[str, Tensor], Tensor | None]) -> Tensor:
    """S_l for every layer: the sum over the layer's parameters of ``value(name, param)``
    (a scalar; None where the method produced nothing, which makes it ``Unsupported``)."""
    parameters = dict(model.named_parameters())
    sums, missing = [], {}
    for layer in named_layers(model):
        total = torch.zeros((), dtype=torch.float64)
        for name in layer.param_names:
            part = value(name, parameters[name])
            if part is None:
                missing[layer.kind] = missing.get(layer.kind, 0) + 1
                break
            total = total + part.double()
        sums.append(total)
    if missing:
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(missing.items()))
        raise Unsupported(f"computes nothing for {what} layer(s)")
    return torch.stack(sums)


# Elements per float32 partial norm in ``squared_norm``: short enough to keep its rounding at
# ~1e-9 relative, long enough to run at memory speed.
NORM_BLOCK = 1024


def squared_norm(tensor: Tensor) -> Tensor:
    """||tensor||^2 in float64, without a squared (or float64) copy of a possibly huge float32
    tensor: float32 norms of blocks of ``NORM_BLOCK`` elements, squared and summed in float64.

    (One float32 ``vector_norm`` over all of a B x P per-sample gradient tensor accumulates
    sequentially and is off by up to ~10% at 3e8 elements; ``pow(2).sum()`` would allocate a
    second B x P tensor, which would be charged to the peer's peak memory.)
    """
    flat = tensor.detach().reshape(-1)
    whole = flat.numel() // NORM_BLOCK * NORM_BLOCK
    blocks = flat[:whole].view(-1, NORM_BLOCK)
    total = torch.linalg.vector_norm(blocks, dim=1).double().square().sum()
    if whole < flat.numel():
        total = total + torch.linalg.vector_norm(flat[whole:]).double().square()
    return total


# ---------------------------------------------------------------- the floor and fisher_mi


@register_method("floor", fisher=False, tables=("trace", "diagonal"))
def floor(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """One forward and ``loss.backward()`` of the mean loss: the cost any method pays.

    Returns ||grad_{theta_l} mean_n l_n||^2 per layer, which is not a Fisher trace.
    """
    model.zero_grad(set_to_none=True)
    F.cross_entropy(logits_of(model(x)), y).backward()
    return layer_sums(model, lambda _name, param: squared_norm(param.grad))


def _fisher_mi_trace(backend: str, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The backend's ``squared_norms`` called directly, as ``profile`` calls it per batch."""
    engine = make_backend(backend, chunk_size=VMAP_CHUNK_SIZE)
    norms = engine.squared_norms(model, named_layers(model), x, y).squared_norms
    return norms.to(torch.float64).sum(dim=0)


def _fisher_mi_diagonal(backend: str, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The backend's ``diagonal`` called directly, as ``fisher_diagonal`` calls it per batch."""
    engine = make_backend(backend, chunk_size=VMAP_CHUNK_SIZE)
    squares = engine.diagonal(model, named_layers(model), x, y).squares
    # torch's float32 ``sum`` is a cascade summation: ~1e-8 relative, at memory speed.
    return layer_sums(model, lambda name, _param: squares[name].sum().double())


register_method("fisher_mi.loop")(partial(_fisher_mi_trace, "loop"))
register_method("fisher_mi.vmap")(partial(_fisher_mi_trace, "vmap"))
register_method("fisher_mi.hooks")(partial(_fisher_mi_trace, "hooks"))
register_method("fisher_mi.loop.diagonal", tables=("diagonal",))(
    partial(_fisher_mi_diagonal, "loop")
)
register_method("fisher_mi.hooks.diagonal", tables=("diagonal",))(
    partial(_fisher_mi_diagonal, "hooks")
)


# ---------------------------------------------------------------- peers
#
# Each peer wraps the model once per process (BackPACK's ``extend``, Opacus' module), in the
# warm-up call: wrapping registers hooks and is not repeated per batch in real use. The wrapped
# model is the benchmark's own model, in eval mode, with one change both need (below).

_PREPARED: dict[str, Any] = {}


def no_inplace_activations(model: nn.Module) -> None:
    """Set ``inplace=False`` on every module that has it (``ReLU(inplace=True)`` in VGG16,
    ResNet-18 and ``vgg_small``).

    BackPACK and Opacus register ``register_full_backward_hook`` on modules, and autograd
    refuses an in-place op on a hooked module's output ("Output 0 of BackwardHookFunction is a
    view and is being modified inplace"). The function computed is the same; the cost is one
    activation buffer per such module that the in-place op would have reused.
    """
    for module in model.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False


class Logits(nn.Module):
    """The logits of a model returning ``(features, logits)``: what a loss module takes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return logits_of(self.model(x))


def _backpack_prepared(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``extend(model)`` and ``extend(CrossEntropyLoss(reduction="sum"))``, once per process.

    With ``reduction="sum"`` BackPACK's quantities are per sample (with "mean" they are scaled
    by 1/B and 1/B^2). The ``Logits`` wrapper is not extended: BackPACK only needs its hooks on
    the modules that own parameters and on the ones in between.
    """
    if "backpack" not in _PREPARED:
        from backpack import extend

        no_inplace_activations(model)
        extend(model)
        _PREPARED["backpack"] = (Logits(model), extend(nn.CrossEntropyLoss(reduction="sum")))
    return _PREPARED["backpack"]


def _backpack(
    extension: str, field: str, reduce: Callable[[Tensor], Tensor], model, x, y
) -> Tensor:
    """One backward of the summed loss with BackPACK ``extension``; S_l from each parameter's
    ``field`` (deleted after reading, so nothing is kept between calls)."""
    import backpack
    import backpack.extensions

    net, loss_function = _backpack_prepared(model)
    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        # "no extension for Module <...>" (parameter-free modules, the root container) and
        # "Full backward hook is firing ... no inputs require gradient" (the first layer).
        warnings.simplefilter("ignore")
        loss = loss_function(net(x), y)
        with backpack.backpack(getattr(backpack.extensions, extension)()):
            loss.backward()

    def value(_name: str, param: Tensor) -> Tensor | None:
        if not hasattr(param, field):
            return None
        quantity = getattr(param, field)
        delattr(param, field)
        return reduce(quantity)

    try:
        return layer_sums(model, value)
    except Unsupported as err:
        raise Unsupported(
            f"BackPACK {backpack_version()} has no first-order extension for some layers: it "
            f"warns and {err}"
        ) from None
    finally:
        for param in model.parameters():
            if hasattr(param, field):
                delattr(param, field)


def backpack_version() -> str:
    return _distribution_version("backpack-for-pytorch") or "?"


register_method("backpack.BatchL2Grad", requires=("backpack",))(
    partial(_backpack, "BatchL2Grad", "batch_l2", lambda q: q.sum().double())
)
register_method("backpack.SumGradSquared", tables=("diagonal",), requires=("backpack",))(
    partial(_backpack, "SumGradSquared", "sum_grad_squared", lambda q: q.sum().double())
)
register_method(
    "backpack.BatchGrad",
    tables=("trace", "diagonal"),
    per_sample_gradients=True,
    requires=("backpack",),
)(partial(_backpack, "BatchGrad", "grad_batch", squared_norm))


def _opacus_batchnorm_grad_sample(
    layer: nn.Module, activations: list[Tensor], backprops: Tensor
) -> dict[nn.Parameter, Tensor]:
    """Per-sample gradients of an **eval-mode** BatchNorm (running statistics), for Opacus.

    Opacus ships no grad sampler for BatchNorm (per-sample gradients of train-mode BatchNorm
    are not defined: the batch statistics mix samples), and its functorch fallback refuses any
    module with buffers. In eval mode BatchNorm is an affine map per channel,
    y = weight * x_hat + bias with x_hat = (x - running_mean) / sqrt(running_var + eps), so
    sample n's gradients are sum_spatial b_n * x_hat_n and sum_spatial b_n.
    """
    if layer.training or layer.running_mean is None or layer.running_var is None:
        raise Unsupported("Opacus: BatchNorm per-sample gradients need eval-mode running stats")
    a = activations[0].to(backprops.dtype)
    batch, channels = a.shape[:2]
    shape = (1, channels) + (1,) * (a.dim() - 2)
    x_hat = (a - layer.running_mean.view(shape)) * torch.rsqrt(
        layer.running_var.view(shape) + layer.eps
    )
    grads: dict[nn.Parameter, Tensor] = {}
    if layer.weight is not None and layer.weight.requires_grad:
        grads[layer.weight] = (backprops * x_hat).reshape(batch, channels, -1).sum(2)
    if layer.bias is not None and layer.bias.requires_grad:
        grads[layer.bias] = backprops.reshape(batch, channels, -1).sum(2)
    return grads


def _opacus_prepared(model: nn.Module, *, ghost: bool) -> nn.Module:
    """The Opacus module around ``model`` (eval mode kept), once per process.

    - ``loss_reduction="sum"``: per-sample quantities of the summed loss (B x the mean's).
    - ``strict=False``: Opacus' validator rejects BatchNorm (it mixes samples in train mode);
      non-strict mode logs that and goes on. BatchNorm then gets the eval-mode grad sampler
      above, registered through Opacus' public ``register_grad_sampler``. PReLU (IR-152) has
      no Opacus grad sampler; Opacus' own functorch fallback handles it.
    - Opacus' forward hook records a module's input only if ``module.training``; here it is
      called with the flag raised for the duration of the hook (the forward itself has already
      run in eval mode), so every module is hooked while the model stays in eval mode.
    - ``ReLU(inplace=True)`` becomes ``inplace=False`` (``no_inplace_activations``).
    """
    key = "opacus.ghost" if ghost else "opacus"
    if key in _PREPARED:
        return _PREPARED[key]
    from opacus.grad_sample import GradSampleModule, register_grad_sampler
    from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import (
        GradSampleModuleFastGradientClipping,
    )

    register_grad_sampler([nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d])(
        _opacus_batchnorm_grad_sample
    )
    base = GradSampleModuleFastGradientClipping if ghost else GradSampleModule

    class EvalModeHooks(base):
        def capture_activations_hook(self, module, forward_input, forward_output):
            training = module.training
            module.training = True
            try:
                super().capture_activations_hook(module, forward_input, forward_output)
            finally:
                module.training = training

    no_inplace_activations(model)
    options: dict[str, Any] = {"batch_first": True, "loss_reduction": "sum", "strict": False}
    if ghost:
        options.update(max_grad_norm=1.0, use_ghost_clipping=True)
    _PREPARED[key] = EvalModeHooks(model, **options)
    return _PREPARED[key]


def _opacus(ghost: bool, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """One forward and backward of the summed loss through the Opacus module; S_l from
    ``param.grad_sample`` (per-sample gradients) or, in ghost mode, ``param._norm_sample``
    (per-sample gradient norms, per parameter). Both are cleared after reading."""
    wrapped = _opacus_prepared(model, ghost=ghost)
    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        # "Full backward hook is firing ... no inputs require gradient" (the first layer).
        warnings.simplefilter("ignore")
        F.cross_entropy(logits_of(wrapped(x)), y, reduction="sum").backward()
    field = "_norm_sample" if ghost else "grad_sample"

    def value(_name: str, param: Tensor) -> Tensor | None:
        quantity = getattr(param, field, None)
        if quantity is None:
            return None
        setattr(param, field, None)
        return quantity.double().square().sum() if ghost else squared_norm(quantity)

    try:
        return layer_sums(model, value)
    except Unsupported as err:
        raise Unsupported(f"Opacus {_distribution_version('opacus')} {err}") from None
    finally:
        for param in model.parameters():
            if getattr(param, field, None) is not None:
                setattr(param, field, None)


register_method(
    "opacus.GradSampleModule",
    tables=("trace", "diagonal"),
    per_sample_gradients=True,
    requires=("opacus",),
)(partial(_opacus, False))
register_method("opacus.ghost", requires=("opacus",))(partial(_opacus, True))


@register_method("torch.func", tables=("trace", "diagonal"), per_sample_gradients=True)
def torch_func(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The plain ``torch.func`` recipe (PyTorch's per-sample-gradients tutorial):
    ``vmap(grad(loss))`` over the whole batch at once, no chunking, then squared and summed."""
    from torch.func import functional_call, grad, vmap

    params = {name: param.detach() for name, param in model.named_parameters()}
    buffers = {name: buffer.detach() for name, buffer in model.named_buffers()}

    def loss(params: dict[str, Tensor], x1: Tensor, y1: Tensor) -> Tensor:
        output = functional_call(model, (params, buffers), (x1.unsqueeze(0),))
        return F.cross_entropy(logits_of(output), y1.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return layer_sums(model, lambda name, _param: squared_norm(grads[name]))


# ---------------------------------------------------------------- worker (one fresh process)


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as stream:
        resident_pages = int(stream.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB here


def _busy_cpu_seconds() -> float:
    """CPU seconds all processes on this machine have been busy, from ``/proc/stat``."""
    with open("/proc/stat") as stream:
        fields = [int(v) for v in stream.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def other_cpu_cores(seconds: float) -> float:
    """Cores kept busy by other processes over the next ``seconds`` (this one idles)."""
    busy = _busy_cpu_seconds()
    time.sleep(seconds)
    return (_busy_cpu_seconds() - busy) / seconds


def wait_until_idle(limit_s: float, *, threshold: float = OTHER_CORES_THRESHOLD) -> float:
    """Wait (at most ``limit_s``) until other processes use under ``threshold`` cores."""
    deadline = time.monotonic() + limit_s
    while True:
        others = other_cpu_cores(2.0)
        if others < threshold or time.monotonic() >= deadline:
            return others


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_case(
    model_name: str, batch: int, *, seed: int, dtype: torch.dtype, device: torch.device
) -> tuple[nn.Module, Tensor, Tensor]:
    """The seeded model (eval mode, every parameter trainable, as ``profile`` profiles frozen
    ones too) and a seeded random batch: identical in every process."""
    case = MODELS.get(model_name)
    torch.manual_seed(seed)
    model = case.build().to(dtype=dtype).eval()
    for param in model.parameters():
        param.requires_grad_(True)  # VGG16's frozen ``bn.bias``
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, *case.input_shape), generator=generator)  # float32 for every dtype
    y = torch.randint(0, case.num_classes, (batch,), generator=generator)
    return model.to(device), x.to(device, dtype), y.to(device)


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_memory_gib() -> float | None:
    """Total memory of this machine (``/proc/meminfo``), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return None


def default_memory_limit_gib() -> float | None:
    total = machine_memory_gib()
    return None if total is None else round(MEMORY_LIMIT_SHARE * total, 1)


def _limit_memory(limit_gib: float | None) -> None:
    """Cap this process's data segment (heap and anonymous mappings: torch's tensors)."""
    if limit_gib and limit_gib > 0 and hasattr(resource, "RLIMIT_DATA"):
        limit = int(limit_gib * GIB)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time one method on one case; memory figures are this process's own."""
    _limit_memory(args.memory_limit_gb)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    method = METHODS.get(args.method)
    for module in method.requires:
        try:
            importlib.import_module(module)
        except ImportError as err:
            return {
                "status": "unsupported",
                "note": f"not installed ({err}); see benchmarks/README.md for the bench extra",
            }
    model, x, y = build_case(args.model, args.batch, seed=args.seed, dtype=dtype, device=device)
    layers = [layer.name for layer in named_layers(model)]
    n_params = sum(p.numel() for p in model.parameters())
    common = {"layers": layers, "n_params": n_params, "threads": torch.get_num_threads()}
    per_sample_gib = args.batch * n_params * x.element_size() / GIB
    if method.per_sample_gradients and per_sample_gib > args.max_per_sample_gb:
        return {
            **common,
            "status": "skipped",
            "note": f"skipped: would need {per_sample_gib:.1f} GiB for the per-sample "
            f"gradients alone ({args.batch} x {n_params / 1e6:.1f}M float32; limit "
            f"--max-per-sample-gb {args.max_per_sample_gb:g})",
        }
    baseline_rss = _current_rss_mib()
    baseline_device = 0.0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline_device = torch.cuda.memory_allocated(device) / MIB
    try:
        for _ in range(args.warmup):
            method.run(model, x, y)
        load_before = os.getloadavg()[0]
        busy, own, wall = _busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
        times = []
        for _ in range(args.repeats):
            _synchronize(device)
            start = time.perf_counter()
            result = method.run(model, x, y)
            _synchronize(device)
            times.append(time.perf_counter() - start)
    except Unsupported as err:
        return {**common, "status": "unsupported", "note": f"unsupported: {err}"}
    except (RuntimeError, MemoryError) as err:
        if not _out_of_memory(err):
            raise
        where = (
            f"under the worker's {args.memory_limit_gb:g} GiB cap (--memory-limit-gb)"
            if args.memory_limit_gb
            else f"on {device}"
        )
        return {
            **common,
            "status": "failed",
            "note": f"out of memory: an allocation failed {where}: {str(err)[:160]}",
        }
    busy, own = _busy_cpu_seconds() - busy, _own_cpu_seconds() - own
    others = max(busy - own, 0.0) / (time.perf_counter() - wall)
    peak_rss = _peak_rss_mib()
    record = {
        **common,
        "status": "ok",
        "note": "",
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "result": result.detach().cpu().tolist(),
        "baseline_rss_mib": baseline_rss,
        "peak_rss_mib": peak_rss,
        "rss_increase_mib": peak_rss - baseline_rss,
        "peak_device_mib": None,
        "device_increase_mib": None,
        "load_avg_1min": [load_before, os.getloadavg()[0]],
        "other_cpu_cores": others,
    }
    if device.type == "cuda":
        peak_device = torch.cuda.max_memory_allocated(device) / MIB
        record["peak_device_mib"] = peak_device
        record["device_increase_mib"] = peak_device - baseline_device
    return record


# ---------------------------------------------------------------- parent: cases, files, report


@dataclass(frozen=True)
class Guards:
    """Limits every worker runs under."""

    timeout_s: float = CASE_TIMEOUT_S
    max_per_sample_gb: float = MAX_PER_SAMPLE_GIB
    memory_limit_gb: float | None = None


def spawn_worker(
    *,
    model: str,
    batch: int,
    method: str,
    repeats: int,
    warmup: int,
    device: str,
    dtype: str,
    guards: Guards,
) -> dict[str, Any]:
    """Run one case in a fresh interpreter: its JSON line, or a ``status`` of ``timeout`` /
    ``failed`` with a ``note``."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        f"--model={model}",
        f"--batch={batch}",
        f"--method={method}",
        f"--repeats={repeats}",
        f"--warmup={warmup}",
        f"--device={device}",
        f"--dtype={dtype}",
        f"--seed={SEED}",
        f"--max-per-sample-gb={guards.max_per_sample_gb}",
    ]
    if guards.memory_limit_gb:
        command.append(f"--memory-limit-gb={guards.memory_limit_gb}")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=guards.timeout_s
        )
    except subprocess.TimeoutExpired:
        return {
            "status": "timeout",
            "note": f"timeout: killed after {guards.timeout_s:g} s "
            f"({warmup} warm-up + {repeats} timed calls)",
        }
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        if done.returncode == -signal.SIGKILL:
            tail = "killed by SIGKILL (out of memory?)"
        else:
            tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"status": "failed", "note": f"failed (exit {done.returncode}): {tail}"}
    return json.loads(lines[-1])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def relative_errors(values: Sequence[float], reference: Sequence[float]) -> list[float]:
    """|S_l - R_l| / |R_l| per layer (R_l > 0 for any layer with a gradient)."""
    if len(values) != len(reference):
        return [math.inf]
    return [
        abs(value - ref) / max(abs(ref), torch.finfo(torch.float64).tiny)
        for value, ref in zip(values, reference, strict=True)
    ]


def reference_sums(
    results: Path, *, model: str, batch: int, device: str, layers: Sequence[str], guards: Guards
) -> list[float] | None:
    """The float64 reference for (model, batch, device), from the cache or a fresh worker."""
    path = results / "reference" / f"{device}_{model}_b{batch}_seed{SEED}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached["layers"] == list(layers) and cached["torch"] == torch.__version__:
            return cached["result"]
    print(f"    reference: float64 {REFERENCE_METHOD} on {model} b={batch}", flush=True)
    record = spawn_worker(
        model=model,
        batch=batch,
        method=REFERENCE_METHOD,
        repeats=1,
        warmup=0,
        device=device,
        dtype="float64",
        guards=guards,
    )
    if record.get("status") != "ok":
        print(f"    reference {record.get('note')}", flush=True)
        return None
    cached = {"torch": torch.__version__, "layers": record["layers"], "result": record["result"]}
    write_json(path, {"model": model, "batch": batch, "seed": SEED, "device": device, **cached})
    return record["result"]


def case_path(results: Path, *, device: str, model: str, batch: int, method: str) -> Path:
    return results / f"{device}_{model}_b{batch}_{method}.json"


def floor_median(results: Path, *, device: str, model: str, batch: int) -> float | None:
    path = case_path(results, device=device, model=model, batch=batch, method="floor")
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("median_s")


def _versions() -> dict[str, str | None]:
    return {name: _distribution_version(name) for name in PEER_DISTRIBUTIONS}


def run_case(
    results: Path,
    *,
    model: str,
    batch: int,
    method: Method,
    repeats: int,
    device: str,
    guards: Guards,
) -> dict[str, Any]:
    """Measure one (model, batch, method) and check it against the reference."""
    record = spawn_worker(
        model=model,
        batch=batch,
        method=method.name,
        repeats=repeats,
        warmup=WARMUP,
        device=device,
        dtype="float32",
        guards=guards,
    )
    ok = record.get("status") == "ok"
    errors = None
    if method.fisher and ok:
        reference = reference_sums(
            results,
            model=model,
            batch=batch,
            device=device,
            layers=record["layers"],
            guards=guards,
        )
        if reference is not None:
            errors = relative_errors(record["result"], reference)
        else:
            record["note"] = "no float64 reference (its worker failed): error not checked"
    median = record.get("median_s")
    floor_s = (
        median
        if method.name == "floor"
        else floor_median(results, device=device, model=model, batch=batch)
    )
    out = {
        "model": model,
        "batch": batch,
        "method": method.name,
        "status": record.get("status", "failed"),
        "note": record.get("note", ""),
        "tables": list(method.tables),
        "median_s": median,
        "min_s": record.get("min_s"),
        "ratio_to_floor": median / floor_s if median is not None and floor_s else None,
        "peak_rss_mib": record.get("peak_rss_mib"),
        "rss_increase_mib": record.get("rss_increase_mib"),
        "peak_device_mib": record.get("peak_device_mib"),
        "device_increase_mib": record.get("device_increase_mib"),
        "max_rel_error": max(errors) if errors else None,
        "device": device,
        "dtype": "float32",
        "torch": torch.__version__,
        "fisher_mi": fisher_mi.__version__,
        "peers": _versions(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": record.get("threads"),
        "repeats": repeats,
        "warmup": WARMUP,
        "seed": SEED,
        "vmap_chunk_size": VMAP_CHUNK_SIZE,
        "case_timeout_s": guards.timeout_s,
        "max_per_sample_gb": guards.max_per_sample_gb,
        "memory_limit_gb": guards.memory_limit_gb,
        "n_params": record.get("n_params"),
        "n_layers": len(record.get("layers") or []) or None,
        "times_s": record.get("times_s"),
        "baseline_rss_mib": record.get("baseline_rss_mib"),
        "layers": record.get("layers"),
        "result": record.get("result"),
        "rel_error_per_layer": errors,
        "load_avg_1min": record.get("load_avg_1min"),
        "other_cpu_cores": record.get("other_cpu_cores"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return out


def _print_record(record: dict[str, Any], seconds: float) -> None:
    if record["status"] != "ok":
        print(f"    {record['note']} ({seconds:.0f} s)", flush=True)
        return
    print(
        f"    median {record['median_s']:.4f} s (min {record['min_s']:.4f}), "
        f"x floor {_fmt(record['ratio_to_floor'], '.2f')}, "
        f"peak RSS {record['peak_rss_mib']:.0f} MiB (+{record['rss_increase_mib']:.0f}), "
        f"max rel. error {_fmt(record['max_rel_error'], '.1e')}, "
        f"others used {record['other_cpu_cores']:.2f} cores ({seconds:.0f} s)",
        flush=True,
    )


def measure_case(
    results: Path,
    *,
    model: str,
    batch: int,
    method: Method,
    repeats: int,
    device: str,
    wait_idle: float,
    retries: int,
    guards: Guards,
) -> dict[str, Any]:
    """``run_case``, again while other processes competed (keeping the least contended), saved."""
    best: dict[str, Any] | None = None
    for attempt in range(retries + 1):
        if attempt:
            print("    other processes competed for the CPU; measuring again", flush=True)
        if wait_idle > 0:
            others = wait_until_idle(wait_idle)
            if others >= OTHER_CORES_THRESHOLD:
                print(f"    still busy after {wait_idle:.0f} s: others use {others:.2f} cores")
        start = time.perf_counter()
        record = run_case(
            results,
            model=model,
            batch=batch,
            method=method,
            repeats=repeats,
            device=device,
            guards=guards,
        )
        _print_record(record, time.perf_counter() - start)
        contention = record.get("other_cpu_cores") or 0.0
        if best is None or contention < (best.get("other_cpu_cores") or 0.0):
            best = record
        if record["status"] != "ok" or not _contended(record):
            break
    path = case_path(results, device=device, model=model, batch=batch, method=method.name)
    write_json(path, best)
    return best


# ---------------------------------------------------------------- RESULTS.md


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _distinct(records: Iterable[dict[str, Any]], key: str) -> str:
    return ", ".join(sorted({str(r.get(key)) for r in records}))


def _contended(record: dict[str, Any]) -> bool:
    return (record.get("other_cpu_cores") or 0.0) > OTHER_CORES_THRESHOLD


def _status(record: dict[str, Any]) -> str:
    """``ok``, ``skipped``, ``unsupported``, ``timeout`` or ``failed`` (older records: by
    their ``error`` field)."""
    if "status" in record:
        return record["status"]
    return "failed" if record.get("error") else "ok"


def _ok(record: dict[str, Any] | None) -> bool:
    return record is not None and _status(record) == "ok" and record.get("median_s") is not None


def _tables_of(record: dict[str, Any]) -> list[str]:
    if record.get("tables"):
        return record["tables"]
    if record["method"] in METHODS.names():
        return list(METHODS.get(record["method"]).tables)
    return ["trace"]


def _memory(record: dict[str, Any]) -> float | None:
    """The peak memory a target compares: device memory on CUDA, else the peak RSS."""
    if record.get("device", "cpu").startswith("cuda"):
        return record.get("peak_device_mib")
    return record.get("peak_rss_mib")


def _contention_line(records: list[dict[str, Any]]) -> str:
    """How busy other processes kept the machine during the timed repetitions."""
    timed = [r for r in records if _ok(r)]
    others = [r["other_cpu_cores"] for r in timed if r.get("other_cpu_cores") is not None]
    if not others:
        return "- CPU use by other processes: not recorded"
    flagged = sum(_contended(r) for r in timed)
    return (
        f"- other processes kept {min(others):.2f} to {max(others):.2f} cores busy during the "
        f"timed repetitions; a `*` after the median marks the {flagged} of {len(timed)} timed "
        f"cases where they used more than {OTHER_CORES_THRESHOLD} cores: those timings are "
        "inflated and noisy (`min_s` and `other_cpu_cores` are in the JSON files)"
    )


def _peer_versions(records: list[dict[str, Any]]) -> str:
    seen: dict[str, set[str]] = {}
    for record in records:
        for name, version in (record.get("peers") or {}).items():
            seen.setdefault(name, set()).add(str(version))
    if not seen:
        return "peers: not recorded"
    return ", ".join(f"{name} {'/'.join(sorted(v))}" for name, v in sorted(seen.items()))


def _row(record: dict[str, Any], floor: dict[str, Any] | None, on_gpu: bool) -> str:
    method = record["method"]
    if not _ok(record):
        note = record.get("note") or record.get("error") or _status(record)
        cells = " — |" * (7 if on_gpu else 6)
        return f"| {method} |{cells} {note} |"
    time_ratio = record["median_s"] / floor["median_s"] if _ok(floor) else None
    floor_memory = _memory(floor) if floor else None
    memory_ratio = _memory(record) / floor_memory if floor_memory and _memory(record) else None
    device_cell = f" {_fmt(record.get('peak_device_mib'), '.0f')} |" if on_gpu else ""
    return (
        f"| {method} | {_fmt(record['median_s'], '.4f')}{' *' if _contended(record) else ''} "
        f"| {_fmt(time_ratio, '.2f')} "
        f"| {_fmt(record['peak_rss_mib'], '.0f')} | {_fmt(record['rss_increase_mib'], '.0f')} |"
        f"{device_cell} {_fmt(memory_ratio, '.2f')} "
        f"| {_fmt(record.get('max_rel_error'), '.1e')} | {record.get('note') or ''} |"
    )


def _method_order(record: dict[str, Any]) -> tuple[int, str]:
    order = {name: i for i, name in enumerate(METHODS.names())}
    return order.get(record["method"], len(order)), record["method"]


# Measured causes of missed targets, keyed by (model or "*" for every model, batch or None for
# every batch, target); targets are "trace time", "trace memory", "trace peers", "diagonal
# time", "diagonal loop". Measured on the 2-core machine of RESULTS.md with the ``hooks``
# backend of session 2 (torch.profiler, and each layer's sampler timed alone at batch 32); a
# miss without an entry says that its cause has not been analysed.
MISS_CAUSES: dict[tuple[str, int | None, str], str] = {
    ("resnet18", None, "diagonal time"): (
        "measured cause: at 64x64 inputs ResNet-18's last two stages run on 4x4 and 2x2 maps "
        "and hold 10.5M of its 11.2M convolution weights. A diagonal needs every sample's "
        "weight gradient there (squares do not factor as norms do), and with 16 or 4 output "
        "positions a per-sample gradient is almost no arithmetic per value: forming and "
        "squaring B x P values (the blocked kernel, 256 channels on 4x4: ~19 ms per layer "
        "against 3.1 ms for the batch weight gradient) or the expanded square ((L + 1) / 2 = "
        "2.5x the weight gradient's flops, 512 channels on 2x2: ~21 ms per layer against "
        "5.5 ms) costs 4-6x what the floor spends on those layers: about 0.14 s of "
        "hooks.diagonal's 0.38 s at batch 32. The early, large-map layers cost about the "
        "floor's (grouped kernel, 1.1-1.5x)"
    ),
    ("mcnn", 128, "trace time"): (
        "measured cause: on a model this small the closed forms' own cost shows: the 64-to-128 "
        "5x5 convolution (10x10 output) takes the Gram form, whose unfold and Gram matmuls "
        "(im2col 41 ms, bmm 39 ms per call, torch.profiler) replace a weight gradient the "
        "floor computes in about half that. The margin is within the run-to-run spread: the "
        "floor's five timings here range 0.137-0.158 s, and other idle runs measured 1.09x "
        "(session 2, 1 repeat) and 1.18x (session 1)"
    ),
}


def _cause(model: str, batch: int, target: str) -> str:
    for key in ((model, batch, target), (model, None, target), ("*", None, target)):
        if key in MISS_CAUSES:
            return MISS_CAUSES[key]
    return "cause not yet analysed"


def _target_lines(model: str, batch: int, group: dict[str, dict[str, Any]]) -> list[str]:
    """One bullet per target for one (model, batch): met or missed, and by how much."""
    floor = group.get("floor")
    hooks, diagonal = group.get("fisher_mi.hooks"), group.get("fisher_mi.hooks.diagonal")
    title = f"- **{model}, batch {batch}**"
    if not _ok(floor):
        return [f"{title}: no floor measurement, targets not evaluated"]
    lines = [f"{title}:"]

    def against(value: float | None, target: float, what: str, key: str) -> None:
        if value is None:
            lines.append(f"  - {what}: not measured")
        elif value <= target:
            lines.append(f"  - {what}: {value:.2f}x the floor, within {target}x: met")
        else:
            lines.append(
                f"  - {what}: {value:.2f}x the floor, above {target}x by "
                f"{100 * (value / target - 1):.0f}%: **missed**; {_cause(model, batch, key)}"
            )

    time_ratio = hooks["median_s"] / floor["median_s"] if _ok(hooks) else None
    against(time_ratio, TRACE_TARGET, "trace time (`fisher_mi.hooks`)", "trace time")
    memory = _memory(hooks) / _memory(floor) if _ok(hooks) and _memory(floor) else None
    against(memory, TRACE_TARGET, "trace peak memory", "trace memory")
    if _ok(hooks) and _ok(floor) and hooks.get("rss_increase_mib") is not None:
        lines[-1] += (
            f" (memory above the post-setup baseline: {hooks['rss_increase_mib']:.0f} MiB "
            f"against the floor's {floor['rss_increase_mib']:.0f} MiB)"
        )
    if _ok(hooks):
        rivals = [
            r
            for name, r in group.items()
            if name not in ("floor", "fisher_mi.hooks") and "trace" in _tables_of(r)
        ]
        timed = sorted((r for r in rivals if _ok(r)), key=lambda r: r["median_s"])
        faster = [r for r in timed if r["median_s"] < hooks["median_s"]]
        absent = [f"{r['method']} ({_status(r)})" for r in rivals if not _ok(r)]
        if faster:
            names = ", ".join(
                f"{r['method']} (hooks takes {hooks['median_s'] / r['median_s']:.2f}x its time)"
                for r in faster
            )
            lines.append(
                f"  - faster than every peer and the loop: **missed**, slower than {names}; "
                f"{_cause(model, batch, 'trace peers')}"
            )
        elif timed:
            nearest = timed[0]
            lines.append(
                f"  - faster than every peer and the loop: met against {len(timed)} timed "
                f"method(s); the nearest, {nearest['method']}, takes "
                f"{nearest['median_s'] / hooks['median_s']:.2f}x hooks' time"
            )
        if absent:
            lines.append(f"  - not timed here, so not compared: {', '.join(absent)}")
    diag_ratio = diagonal["median_s"] / floor["median_s"] if _ok(diagonal) else None
    against(
        diag_ratio, DIAGONAL_TARGET, "diagonal time (`fisher_mi.hooks.diagonal`)", "diagonal time"
    )
    loop = group.get("fisher_mi.loop.diagonal")
    if _ok(diagonal) and _ok(loop):
        ratio = diagonal["median_s"] / loop["median_s"]
        if ratio <= 1:
            lines.append(
                f"  - diagonal never slower than the per-sample loop: met "
                f"({ratio:.2f}x `fisher_mi.loop.diagonal`'s time)"
            )
        else:
            lines.append(
                f"  - diagonal never slower than the per-sample loop: **missed**, "
                f"{ratio:.2f}x `fisher_mi.loop.diagonal`'s time; "
                f"{_cause(model, batch, 'diagonal loop')}"
            )
    elif _ok(diagonal) and loop is not None:
        lines.append(
            f"  - diagonal vs the per-sample loop: the loop was not timed ({_status(loop)}: "
            f"{loop.get('note')})"
        )
    return lines


def _rounding_floor(group: dict[str, dict[str, Any]]) -> str:
    """A sentence giving the float32 loop's own error: the model's float32 rounding floor."""
    loop = group.get(REFERENCE_METHOD)
    if not _ok(loop) or loop.get("max_rel_error") is None:
        return ""
    return (
        f" Float32 rounding floor: `{REFERENCE_METHOD}` itself, in float32, is off by "
        f"{loop['max_rel_error']:.1e} from its float64 run; errors of that order are the "
        "float32 forward's, not the method's (README, Reading the errors)."
    )


def render_report(records: list[dict[str, Any]], *, note: str = "") -> str:
    """RESULTS.md: the machine and versions, two tables per (device, model, batch), targets."""
    lines = [
        "# Fisher trace and diagonal benchmark",
        "",
        "Generated by `benchmarks/bench_fisher.py` from the JSON files in `results/`; "
        "see `README.md` for what each column means and how each peer was made to run.",
        "",
        f"- CPU: {_distinct(records, 'cpu')} ({_distinct(records, 'cpu_count')} logical cores); "
        f"torch threads: {_distinct(records, 'threads')}",
        f"- torch {_distinct(records, 'torch')}, fisher_mi {_distinct(records, 'fisher_mi')}, "
        f"Python {_distinct(records, 'python')}; {_peer_versions(records)}",
        f"- devices: {_distinct(records, 'device')}; dtype {_distinct(records, 'dtype')}; "
        f"timed repeats {_distinct(records, 'repeats')} (per model, below) after "
        f"{_distinct(records, 'warmup')} warm-up; vmap chunk size "
        f"{_distinct(records, 'vmap_chunk_size')}",
        f"- guards: a case is killed after {_distinct(records, 'case_timeout_s')} s; methods "
        "that hold every per-sample gradient at once are skipped above "
        f"{_distinct(records, 'max_per_sample_gb')} GiB of them; a worker's allocations are "
        f"capped at {_distinct(records, 'memory_limit_gb')} GiB",
        f"- last result: {max(r['finished'] for r in records)}",
        _contention_line(records),
        "- inputs are fixed-seed random tensors (N(0, 1) pixels, uniform labels; seed "
        f"{_distinct(records, 'seed')}) on a fixed-seed randomly initialised model in eval mode: "
        "the benchmark measures cost, and agreement is checked numerically against the float64 "
        f"`{REFERENCE_METHOD}` reference on the same model and batch.",
        "- `x floor` is the median time over the floor's; `x floor memory` the peak RSS over "
        "the floor's (peak device memory on CUDA).",
    ]
    if note:
        lines.append(f"- {note}")
    groups: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    for record in records:
        key = (record["device"], record["model"], record["batch"])
        groups.setdefault(key, {})[record["method"]] = record
    model_order = {name: i for i, name in enumerate(MODELS.names())}

    def group_key(key: tuple[str, str, int]) -> tuple:
        device, model, batch = key
        return device, model_order.get(model, len(model_order)), model, batch

    targets: list[str] = []
    for device, model, batch in sorted(groups, key=group_key):
        group = groups[device, model, batch]
        floor = group.get("floor")
        on_gpu = device.startswith("cuda")
        extra = " peak device MiB |" if on_gpu else ""
        any_record = next(iter(group.values()))
        lines += [
            "",
            f"## {model}, batch {batch} ({device})",
            "",
            f"{_fmt(any_record.get('n_params') and any_record['n_params'] / 1e6, '.2f')}M "
            f"parameters in {any_record.get('n_layers') or '—'} layers; "
            f"{_distinct(group.values(), 'repeats')} timed repeats.{_rounding_floor(group)}",
        ]
        for table, title in TABLES.items():
            rows = [r for r in group.values() if table in _tables_of(r)]
            lines += [
                "",
                f"### {title}",
                "",
                f"| method | median s | x floor | peak RSS MiB | RSS increase MiB |{extra}"
                " x floor memory | max rel. error | note |",
                "| --- | ---: | ---: | ---: | ---: |"
                + (" ---: |" if on_gpu else "")
                + " ---: | ---: | --- |",
            ]
            lines += [_row(r, floor, on_gpu) for r in sorted(rows, key=_method_order)]
        targets += _target_lines(model, batch, group)
    lines += [
        "",
        "## Targets",
        "",
        f"`fisher_mi.hooks` (trace): within {TRACE_TARGET}x the floor in time and in peak "
        "memory, and faster than every peer and than the per-sample loop; "
        f"`fisher_mi.hooks.diagonal`: within {DIAGONAL_TARGET}x the floor in time and never "
        "slower than `fisher_mi.loop.diagonal`. Computed from the tables above.",
        "",
        *targets,
    ]
    return "\n".join(lines) + "\n"


def write_report(out: Path, *, note: str = "") -> Path:
    results = out / "results"
    records = [json.loads(path.read_text()) for path in sorted(results.glob("*.json"))]
    return write_text(out / "RESULTS.md", render_report(records, note=note))


def _names(registry: Registry, text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        registry.get(name)  # an unknown name raises, listing the known ones
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS.names()))
    parser.add_argument("--methods", default=",".join(METHODS.names()))
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repetitions per case (default: the model's, 5 for mcnn and vgg_small, "
        "3 for vgg16, resnet18 and ir152)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder receiving results/*.json and RESULTS.md (default: benchmarks/; "
        "with --quick, a temporary folder)",
    )
    parser.add_argument("--quick", action="store_true", help="batch 8, 1 repeat: a smoke check")
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=CASE_TIMEOUT_S,
        metavar="SECONDS",
        help="kill a case's worker after SECONDS and record a timeout "
        f"(default {CASE_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--max-per-sample-gb",
        type=float,
        default=MAX_PER_SAMPLE_GIB,
        metavar="GIB",
        help="skip methods holding every per-sample gradient at once when batch x parameters "
        f"x 4 bytes exceeds GIB (default {MAX_PER_SAMPLE_GIB:g})",
    )
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=None,
        metavar="GIB",
        help="cap each worker's data segment (RLIMIT_DATA) at GIB, so that a case running out "
        "of memory fails on its own and is recorded (default on the CPU: "
        f"{MEMORY_LIMIT_SHARE * 100:.0f}%% of this machine's memory; on CUDA, where device memory "
        "runs out first and torch reports it, no cap; 0: no cap)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each case, wait up to SECONDS until other processes use under "
        f"{OTHER_CORES_THRESHOLD} cores (for shared machines; default: do not wait)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        help="measure a case up to this many more times while other processes used more than "
        f"{OTHER_CORES_THRESHOLD} cores, keeping the least contended measurement (default 0)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite RESULTS.md from the JSON files"
    )
    parser.add_argument("--note", default="", help="a line added to RESULTS.md's header")
    worker = parser.add_argument_group("worker (internal: one case in this process)")
    worker.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--model", help=argparse.SUPPRESS)
    worker.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    worker.add_argument("--method", help=argparse.SUPPRESS)
    worker.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    worker.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    worker.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.case_timeout <= 0:
        parser.error(f"--case-timeout must be positive, got {args.case_timeout}")
    try:
        args.models = _names(MODELS, args.models)
        args.methods = _names(METHODS, args.methods)
    except RegistryError as err:
        parser.error(str(err))
    on_cpu = torch.device(args.device).type == "cpu"
    if not on_cpu and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    if args.memory_limit_gb is None and not args.worker:
        args.memory_limit_gb = default_memory_limit_gib() if on_cpu else 0.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)), flush=True)
        return 0
    methods = [METHODS.get(name) for name in args.methods]
    methods.sort(key=lambda m: m.fisher)  # the floor first, so ratios have it
    batches = [int(b) for b in args.batch_sizes.split(",")]
    out = args.out
    if args.quick:
        batches = [8]
        out = out or Path(tempfile.gettempdir()) / "fisher_mi_bench_quick"
    out = out or BENCH_DIR
    if args.report_only:
        print(f"wrote {write_report(out, note=args.note)}")
        return 0
    results = out / "results"
    guards = Guards(
        timeout_s=args.case_timeout,
        max_per_sample_gb=args.max_per_sample_gb,
        memory_limit_gb=args.memory_limit_gb,
    )

    def repeats_for(model: str) -> int:
        if args.quick:
            return 1
        return args.repeats if args.repeats is not None else MODELS.get(model).repeats

    cases = [(m, b, method) for m in args.models for b in batches for method in methods]
    print(
        f"{len(cases)} cases on {args.device}; repeats per model: "
        + ", ".join(f"{m} {repeats_for(m)}" for m in args.models)
        + f"; results in {results}"
    )
    start = time.perf_counter()
    for i, (model, batch, method) in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {model} b={batch} {method.name}", flush=True)
        measure_case(
            results,
            model=model,
            batch=batch,
            method=method,
            repeats=repeats_for(model),
            device=args.device,
            wait_idle=args.wait_idle,
            retries=args.retries,
            guards=guards,
        )
    report = write_report(out, note=args.note)
    print(f"done in {time.perf_counter() - start:.0f} s; wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
