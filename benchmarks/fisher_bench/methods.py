"""The ``Method`` registry, the floor and ``fisher_mi``'s own methods.

A method is one function ``run(model, x, y) -> float64 (L,)``: the per-layer sums S_l in
``fisher_mi.models.named_layers`` order, registered with ``@register_method``. It raises
``Unsupported(reason)`` for a model it cannot handle; the reason is recorded, not raised. The
peers (``peers.py``) register after these, so the tables list ``fisher_mi`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

import fisher_mi
from fisher_bench.settings import VMAP_CHUNK_SIZE
from fisher_mi.fisher import make_backend
from fisher_mi.models import named_layers
from fisher_mi.models.outputs import logits_of
from fisher_mi.registry import Registry

Run = Callable[[nn.Module, Tensor, Tensor], Tensor]


class Unsupported(Exception):
    """The method cannot run this model; the message (the reason) is recorded, not raised."""


@dataclass(frozen=True)
class Method:
    """A way to compute per-layer sums S_l.

    Attributes:
        name: the ``METHODS`` key.
        run: ``run(model, x, y) -> float64 (L,)``.
        checked: whether S is compared with the float64 reference. False for the floor (a
            cost reference, not a Fisher quantity) and for the true Fisher (its labels are
            drawn from the model, so it is not the empirical S of the reference).
        tables: the RESULTS.md tables showing it (``settings.TABLES`` keys): methods that
            build per-sample gradients yield both quantities and appear in both.
        per_sample_gradients: materialises every per-sample gradient at once (B x P values),
            so ``--max-per-sample-gb`` guards it.
        requires: modules imported before the memory baseline (a peer's library), so that
            importing it is not counted as the method's memory; missing ones make the method
            ``unsupported``.
    """

    name: str
    run: Run
    checked: bool
    tables: tuple[str, ...]
    per_sample_gradients: bool
    requires: tuple[str, ...]


METHODS: Registry[Method] = Registry("benchmark method")


def register_method(
    name: str,
    *,
    checked: bool = True,
    tables: tuple[str, ...] = ("trace",),
    per_sample_gradients: bool = False,
    requires: tuple[str, ...] = (),
) -> Callable[[Run], Run]:
    """Decorator: register ``run(model, x, y) -> float64 per-layer sums`` under ``name``."""

    def decorate(run: Run) -> Run:
        METHODS.add(name, Method(name, run, checked, tables, per_sample_gradients, requires))
        return run

    return decorate


def layer_sums(model: nn.Module, value: Callable[[str, Tensor], Tensor | None]) -> Tensor:
    """S_l for every layer: the sum over the layer's parameters of ``value(name, param)``.

    ``value`` returns a scalar, or None where the method produced nothing for a parameter;
    any None makes the method ``Unsupported``, naming how many layers of which kind.
    """
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


@register_method("floor", checked=False, tables=("trace", "diagonal"))
def floor(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """One forward and ``loss.backward()`` of the mean loss: the cost any method pays.

    Returns ||grad_{theta_l} mean_n l_n||^2 per layer, which is not a Fisher trace.
    """
    model.zero_grad(set_to_none=True)
    F.cross_entropy(logits_of(model(x)), y).backward()
    return layer_sums(model, lambda _name, param: squared_norm(param.grad))


def fisher_mi_trace(backend: str, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The backend's ``squared_norms`` called directly, as ``profile`` calls it per batch."""
    engine = make_backend(backend, chunk_size=VMAP_CHUNK_SIZE)
    norms = engine.squared_norms(model, named_layers(model), x, y).squared_norms
    return norms.to(torch.float64).sum(dim=0)


def fisher_mi_diagonal(backend: str, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The backend's ``diagonal`` called directly, as ``fisher_diagonal`` calls it per batch."""
    engine = make_backend(backend, chunk_size=VMAP_CHUNK_SIZE)
    squares = engine.diagonal(model, named_layers(model), x, y).squares
    # torch's float32 ``sum`` is a cascade summation: ~1e-8 relative, at memory speed.
    return layer_sums(model, lambda name, _param: squares[name].sum().double())


def fisher_mi_profile(fisher: str, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The whole public call, ``fisher_mi.profile``, on a dataset of exactly this one batch.

    Everything ``profile`` adds to the backend is timed: the DataLoader collating the batch,
    the determinism check, the label checks, the model's state saved and restored, the
    finite-value check and the table. S_l = B * fisher_trace_l (``fisher="true"`` draws its
    labels from the model with ``mc_samples=1``, seed 0).
    """
    table = fisher_mi.profile(
        model,
        TensorDataset(x, y),
        fisher=fisher,
        batch_size=x.shape[0],
        chunk_size=VMAP_CHUNK_SIZE,
    )
    return torch.tensor(table["fisher_trace"].to_numpy() * x.shape[0], dtype=torch.float64)


register_method("fisher_mi.loop")(partial(fisher_mi_trace, "loop"))
register_method("fisher_mi.vmap")(partial(fisher_mi_trace, "vmap"))
register_method("fisher_mi.hooks")(partial(fisher_mi_trace, "hooks"))
register_method("fisher_mi.loop.diagonal", tables=("diagonal",))(
    partial(fisher_mi_diagonal, "loop")
)
register_method("fisher_mi.hooks.diagonal", tables=("diagonal",))(
    partial(fisher_mi_diagonal, "hooks")
)
register_method("fisher_mi.profile")(partial(fisher_mi_profile, "empirical"))
register_method("fisher_mi.profile.true", checked=False)(partial(fisher_mi_profile, "true"))
