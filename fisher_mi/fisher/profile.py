"""``profile``: per-layer Fisher information of a classifier on one dataset, as a table.

For layer l with parameters theta_l and a dataset of N samples,

    fisher_trace_l = (1/N) * sum_n ||grad_{theta_l} l_n||^2,     l_n = -log p(y_n | x_n),

the trace of the layer's block of the empirical Fisher, and fisher_per_param_l =
fisher_trace_l / n_params_l. With ``fisher="true"`` the labels are drawn from the model,
y ~ p(y | x_n), ``mc_samples`` times per input, and the squared norms are averaged over the
draws: an unbiased Monte-Carlo estimate of the true Fisher's trace,
(1/N) sum_n sum_c p(c|x_n) ||grad_{theta_l} -log p(c|x_n)||^2.

``profile`` costs what its backend costs: it runs no forward of its own. The labels are
checked against (empirical), or drawn from (true Fisher), the detached logits of the
backend's own forward (``fisher_mi.fisher.targets.LabelSource``). The (input, draw) pairs of
a batch of B inputs reach the backend B rows at a time, so memory is bounded by the batch
size, not by B x ``mc_samples``; draw m of input n is the inverse CDF of p(. | x_n) at the
(n * mc_samples + m)-th number of a uniform stream seeded by ``seed``, so a seed gives the
same labels on every backend, device and batch size.

The model is evaluated in ``eval()`` mode (BatchNorm running statistics, no dropout); its
per-module train/eval flags, ``requires_grad`` flags and device are restored afterwards, and
``.grad`` fields are never written. Sums are accumulated in float64 and only per-layer sums
and a sample count are kept, so memory does not grow with the dataset.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset
from tqdm.auto import tqdm

from fisher_mi.distributed import all_reduce_sum, is_main_process, shard
from fisher_mi.errors import ConfigError, DataError
from fisher_mi.fisher.backends import BatchNorms, FisherBackend, make_backend
from fisher_mi.fisher.estimators import check_fisher, estimators_for
from fisher_mi.fisher.guards import (
    check_at_least_one,
    check_deterministic,
    check_finite,
    check_has_layers,
)
from fisher_mi.fisher.targets import GivenLabels, LabelSource, MonteCarloLabels
from fisher_mi.models.layers import LayerInfo, named_layers

MAX_MC_SAMPLES = 1000
"""The most label draws per input ``fisher="true"`` takes. Each draw costs one forward and
backward per input, while the estimate's relative standard error falls only as
1/sqrt(N x mc_samples) over N inputs: past 1000 draws, more inputs buy the same precision and
also average over the data. (The limit also keeps a mistyped count from running for days.)"""
COLUMNS = [
    "layer",
    "depth",
    "kind",
    "n_params",
    "split",
    "n_samples",
    "fisher_trace",
    "fisher_per_param",
    "fisher",
    "backend",
]


@dataclass(frozen=True)
class FisherSums:
    """Sums of squared per-sample gradients over ``count`` inputs (float64): per layer of the
    squared norms (``sums``, the trace) or per parameter, elementwise (``squares``)."""

    sums: Tensor
    count: int
    squares: dict[str, Tensor] | None = None


def profile(
    model: nn.Module,
    data: Dataset | DataLoader | Iterable,
    *,
    split: str = "private",
    fisher: str = "auto",
    backend: str = "auto",
    batch_size: int = 64,
    max_samples: int | None = None,
    device: str | torch.device | None = None,
    mc_samples: int = 1,
    seed: int = 0,
    chunk_size: int = 32,
    num_workers: int = 0,
    trainable_only: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Per-layer Fisher information of ``model`` on ``data`` (formula in the module docstring).

    Args:
        model: a classifier returning logits, or a tuple whose last element is the logits.
        data: a map-style Dataset, or a DataLoader (or any iterable) yielding ``(x, y)`` batches.
        split: the label written in the table's ``split`` column.
        fisher: ``"auto"`` (empirical on ``private``, ``private-test``; true on other
            splits, whose labels are not the model's classes; both on ``inverted``),
            ``"empirical"`` (the given labels) or ``"true"`` (labels drawn from the model).
        backend: ``"auto"``, or a registered backend name (``loop``, ``vmap``, ...).
        batch_size: batch size when ``data`` is a Dataset.
        max_samples: use at most this many samples: a seeded random subset of a Dataset
            (so class-sorted data stay representative), the first ones of a loader.
        device: where to compute; default the model's device. The model is moved there and
            back.
        mc_samples: label draws per input for ``fisher="true"``, 1 to ``MAX_MC_SAMPLES``.
        seed: seeds the subset and the label draws; same seed, same table.
        chunk_size: per-sample gradients held at once by the ``vmap`` backend.
        num_workers: DataLoader worker processes decoding images when ``data`` is a Dataset.
        trainable_only: profile only parameters with ``requires_grad`` (frozen ones are
            profiled by default: where private information sits matters for frozen layers too).
        progress: show a progress bar over batches.

    Returns:
        A long DataFrame, one row per layer and estimator (two estimators only for
        reconstructions under ``auto``), with the columns in ``COLUMNS``.

    Under an initialised ``torch.distributed`` process group (e.g. ``torchrun``) each rank
    profiles a disjoint shard of a Dataset and the sums are all-reduced, so every rank
    returns the table of the whole dataset (a DataLoader is used as given: shard it yourself).
    """
    options = _Options.of(locals())
    tables = []
    for estimator in estimators_for(split, fisher):
        layers, totals, engine = _run(model, data, "trace", replace(options, fisher=estimator))
        tables.append(
            fisher_table(layers, totals, split=split, fisher=estimator, backend=engine.name)
        )
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)


def fisher_diagonal(
    model: nn.Module,
    data: Dataset | DataLoader | Iterable,
    *,
    split: str = "private",
    fisher: str = "auto",
    backend: str = "auto",
    batch_size: int = 64,
    max_samples: int | None = None,
    device: str | torch.device | None = None,
    mc_samples: int = 1,
    seed: int = 0,
    chunk_size: int = 32,
    num_workers: int = 0,
    trainable_only: bool = False,
    progress: bool = False,
) -> dict[str, Tensor]:
    """The diagonal of the Fisher, per parameter: (1/N) sum_n g_n * g_n elementwise.

    Same data, options and guarantees as ``profile`` (whose per-layer ``fisher_trace`` is the
    sum of a layer's diagonal); returns float64 CPU tensors keyed by qualified parameter name,
    shaped like the parameters, e.g. for heatmaps of where in a layer the information sits.
    One diagonal, one estimator: ``auto`` takes the split's first (empirical on
    reconstructions).
    """
    options = _Options.of(locals())
    estimator = estimators_for(split, fisher)[0]
    _, totals, _ = _run(model, data, "diagonal", replace(options, fisher=estimator))
    assert totals.squares is not None
    return {name: value / totals.count for name, value in totals.squares.items()}


@dataclass(frozen=True)
class _Options:
    """The keyword options of ``profile`` and ``fisher_diagonal`` (documented on ``profile``,
    whose defaults they are), validated once, on construction."""

    split: str
    fisher: str
    backend: str
    batch_size: int
    max_samples: int | None
    device: str | torch.device | None
    mc_samples: int
    seed: int
    chunk_size: int
    num_workers: int
    trainable_only: bool
    progress: bool

    @classmethod
    def of(cls, arguments: dict) -> _Options:
        """From the public function's ``locals()`` (its inputs left out)."""
        return cls(
            **{key: value for key, value in arguments.items() if key not in ("model", "data")}
        )

    def __post_init__(self) -> None:
        """Refuse, each in one line: an unknown estimator, counts below 1, more than
        ``MAX_MC_SAMPLES`` draws per input, negative worker counts."""
        check_fisher(self.fisher)
        for name in ("batch_size", "max_samples", "mc_samples"):
            check_at_least_one(name, getattr(self, name))
        if self.mc_samples > MAX_MC_SAMPLES:
            raise ConfigError(
                f"mc_samples must be at most {MAX_MC_SAMPLES} label draws per input, got "
                f"{self.mc_samples}; for a more precise true Fisher profile more inputs instead"
            )
        if self.num_workers < 0:
            raise ConfigError(
                f"num_workers must be 0 (load in this process) or more, got {self.num_workers}"
            )


def _run(
    model: nn.Module, data: Dataset | DataLoader | Iterable, quantity: str, options: _Options
) -> tuple[list[LayerInfo], FisherSums, FisherBackend]:
    """Stream the data through a backend, return the layers, the reduced sums, the backend."""
    layers = _select_layers(model, trainable_only=options.trainable_only)
    engine = make_backend(options.backend, chunk_size=options.chunk_size)
    batches, n_batches = _batches(
        data,
        batch_size=options.batch_size,
        max_samples=options.max_samples,
        seed=options.seed,
        num_workers=options.num_workers,
    )
    bar = tqdm(
        total=n_batches,
        desc=f"fisher[{options.split}]",
        unit="batch",
        disable=None if options.progress and is_main_process() else True,
    )
    with _profiling_state(model, layers, options.device) as target:
        totals = accumulate(
            model,
            layers,
            batches,
            engine,
            quantity=quantity,
            device=target,
            split=options.split,
            fisher=options.fisher,
            mc_samples=options.mc_samples,
            max_samples=options.max_samples,
            seed=options.seed,
            progress=bar,
        )
    return layers, totals, engine


def _select_layers(model: nn.Module, *, trainable_only: bool) -> list[LayerInfo]:
    layers = named_layers(model)
    if trainable_only:
        parameters = dict(model.named_parameters())
        kept = []
        for layer in layers:
            names = tuple(n for n in layer.param_names if parameters[n].requires_grad)
            if names:
                n_params = sum(parameters[n].numel() for n in names)
                kept.append(
                    LayerInfo(layer.name, layer.module, layer.depth, layer.kind, names, n_params)
                )
        layers = kept
    check_has_layers(layers, trainable_only=trainable_only)
    return layers


def _batches(
    data: Dataset | DataLoader | Iterable,
    *,
    batch_size: int,
    max_samples: int | None,
    seed: int,
    num_workers: int,
) -> tuple[Iterable, int | None]:
    """An iterable of ``(x, y)`` batches and, when known, how many there are."""
    dataset = data.dataset if isinstance(data, DataLoader) else data
    sized = isinstance(dataset, Dataset) and not isinstance(dataset, IterableDataset)
    if sized:
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise DataError("the dataset is empty; check the data path and the split name")
        check_deterministic(dataset)
    if isinstance(data, DataLoader) or not isinstance(data, Dataset):
        return data, len(data) if sized else None
    size = len(data) if sized else None  # type: ignore[arg-type]
    if sized and max_samples is not None and max_samples < size:
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(size, generator=generator)[:max_samples].sort().values
        data, size = Subset(data, chosen.tolist()), max_samples
    if sized:  # under torch.distributed: this rank's disjoint share of the same subset
        data = shard(data)
        size = len(data)  # type: ignore[arg-type]
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return loader, math.ceil(size / batch_size) if size is not None else None


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _profiling_state(
    model: nn.Module, layers: Sequence[LayerInfo], device: str | torch.device | None
) -> Iterator[torch.device]:
    """Eval mode, profiled parameters differentiable, model on ``device``; all undone after."""
    parameters = dict(model.named_parameters())
    profiled = [parameters[name] for layer in layers for name in layer.param_names]
    modes = {module: module.training for module in model.modules()}
    flags = [(param, param.requires_grad) for param in profiled]
    home = _model_device(model)
    target = torch.device(device) if device is not None else home
    try:
        model.eval()
        for param in profiled:
            param.requires_grad_(True)
        if target != home:
            model.to(target)
        yield target
    finally:
        if target != home:
            model.to(home)
        for param, flag in flags:
            param.requires_grad_(flag)
        for module, mode in modes.items():
            module.train(mode)


@dataclass(frozen=True)
class _BackendCall:
    """One call of the backend: rows ``x`` (the inputs, or for the true Fisher its (input,
    draw) pairs), where their labels come from, the draws per input (each row weighs
    1/draws), and the split-wide index of the first row (for ``check_finite``)."""

    x: Tensor
    labels: LabelSource
    draws: int
    first_row: int


@dataclass
class _Running:
    """Float64 sums while streaming one split: per layer (the trace), per parameter (the
    diagonal, only when asked) and the inputs seen so far."""

    split: str
    sums: Tensor
    squares: dict[str, Tensor] = field(default_factory=dict)
    count: int = 0

    def add_trace(
        self,
        engine: FisherBackend,
        model: nn.Module,
        layers: Sequence[LayerInfo],
        call: _BackendCall,
    ) -> None:
        """One backend call's per-sample squared norms, summed over its rows."""
        result = engine.squared_norms(model, layers, call.x, call.labels)
        self._check(result, model, layers, call)
        self.sums += result.squared_norms.to(torch.float64).sum(dim=0) / call.draws

    def add_diagonal(
        self,
        engine: FisherBackend,
        model: nn.Module,
        layers: Sequence[LayerInfo],
        call: _BackendCall,
    ) -> None:
        """One backend call's diagonal; the per-layer trace is its sum over each layer."""
        diagonal = engine.diagonal(model, layers, call.x, call.labels)
        per_layer = torch.stack(
            [sum(diagonal.squares[n].sum() for n in layer.param_names) for layer in layers]
        )
        self._check(BatchNorms(diagonal.losses, per_layer[None]), model, layers, call)
        self.sums += per_layer.to(torch.float64) / call.draws
        for name, value in diagonal.squares.items():
            self.squares[name] = self.squares.get(name, 0) + value.to(torch.float64) / call.draws

    def _check(
        self, result: BatchNorms, model: nn.Module, layers: Sequence[LayerInfo], call: _BackendCall
    ) -> None:
        check_finite(
            result,
            layers,
            model,
            call.x,
            split=self.split,
            first_row=call.first_row,
            repeats=call.draws,
        )


def _backend_calls(
    x: Tensor,
    y: Tensor,
    *,
    split: str,
    draws: int | None,
    first_input: int,
    generator: torch.Generator,
) -> Iterator[_BackendCall]:
    """The backend calls of one batch of B inputs: the batch with its own labels
    (``draws=None``: empirical Fisher), or its (input, draw) pairs input by input, B rows a
    call, each row with the next uniform number of ``generator`` (true Fisher)."""
    if draws is None:
        yield _BackendCall(x, GivenLabels(y, split), 1, first_input)
        return
    pairs = x.shape[0] * draws
    for start in range(0, pairs, x.shape[0]):
        rows = torch.arange(start, min(start + x.shape[0], pairs), device=x.device)
        uniforms = torch.rand(len(rows), generator=generator, dtype=torch.float64)
        labels = MonteCarloLabels(uniforms.to(x.device))
        yield _BackendCall(
            x.index_select(0, rows // draws), labels, draws, first_input * draws + start
        )


def _inputs(
    batches: Iterable, *, max_samples: int | None, device: torch.device, dtype: torch.dtype
) -> Iterator[tuple[Tensor, Tensor]]:
    """Each batch's ``(x, y)`` on ``device`` (floating inputs in the model's dtype), cut at
    ``max_samples`` inputs in all; no batch is fetched once that many have been seen."""
    seen = 0
    for batch in batches:
        x, y = _unpack(batch)
        if max_samples is not None:
            x, y = x[: max_samples - seen], y[: max_samples - seen]
        if x.shape[0] == 0:
            return
        x = x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)
        yield x, y.to(device)
        seen += x.shape[0]
        if max_samples is not None and seen >= max_samples:
            return


def accumulate(
    model: nn.Module,
    layers: Sequence[LayerInfo],
    batches: Iterable,
    engine: FisherBackend,
    *,
    quantity: str = "trace",
    device: torch.device,
    split: str,
    fisher: str,
    mc_samples: int,
    max_samples: int | None,
    seed: int,
    progress: tqdm,
) -> FisherSums:
    """Stream over batches, adding squared per-sample gradients into float64 sums: per layer
    (``quantity="trace"``) or per parameter (``"diagonal"``); all-reduced across ranks.

    Each batch goes to the backend as it is (empirical Fisher) or as its (input, draw)
    pairs, a batch's worth of rows at a time (true Fisher, ``mc_samples`` draws per input,
    each weighted 1/mc_samples); the backend checks or draws the labels from its own forward.
    """
    dtype = next(model.parameters()).dtype
    generator = torch.Generator().manual_seed(seed)
    draws = mc_samples if fisher == "true" else None
    running = _Running(split, torch.zeros(len(layers), dtype=torch.float64, device=device))
    add = running.add_trace if quantity == "trace" else running.add_diagonal
    with progress:
        for x, y in _inputs(batches, max_samples=max_samples, device=device, dtype=dtype):
            calls = _backend_calls(
                x, y, split=split, draws=draws, first_input=running.count, generator=generator
            )
            for call in calls:
                add(engine, model, layers, call)
            running.count += x.shape[0]
            progress.update(1)
    return _reduce(running.sums, running.squares, running.count, layers, model, split)


def _reduce(
    sums: Tensor,
    squares: dict[str, Tensor],
    count: int,
    layers: Sequence[LayerInfo],
    model: nn.Module,
    split: str,
) -> FisherSums:
    """Add up every rank's sums and counts (one all-reduce) and refuse an empty result."""
    names = [name for layer in layers for name in layer.param_names] if squares else []
    parameters = dict(model.named_parameters())
    flat = [
        squares[n].flatten()
        if n in squares
        else torch.zeros_like(parameters[n], dtype=sums.dtype).flatten()
        for n in names
    ]
    packed = all_reduce_sum(torch.cat([sums, *flat, sums.new_tensor([count])]))
    count = int(packed[-1])
    if count == 0:
        raise DataError(f"split {split!r} yielded no samples; check the data path and the split")
    reduced = packed[: len(layers)].cpu()
    if not names:
        return FisherSums(reduced, count)
    pieces = packed[len(layers) : -1].cpu().split([parameters[n].numel() for n in names])
    shaped = {n: p.view(parameters[n].shape) for n, p in zip(names, pieces, strict=True)}
    return FisherSums(reduced, count, shaped)


def _unpack(batch: object) -> tuple[Tensor, Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x, y = batch[0], batch[1]
        if isinstance(x, Tensor) and isinstance(y, Tensor):
            return x, y
    raise DataError("each batch must be a pair (images, labels) of tensors; check the data loader")


def fisher_table(
    layers: Sequence[LayerInfo], totals: FisherSums, *, split: str, fisher: str, backend: str
) -> pd.DataFrame:
    """The tidy per-layer table (``COLUMNS``) from accumulated sums."""
    traces = (totals.sums / totals.count).tolist()
    rows = [
        {
            "layer": layer.name,
            "depth": layer.depth,
            "kind": layer.kind,
            "n_params": layer.n_params,
            "split": split,
            "n_samples": totals.count,
            "fisher_trace": trace,
            "fisher_per_param": trace / layer.n_params,
            "fisher": fisher,
            "backend": backend,
        }
        for layer, trace in zip(layers, traces, strict=True)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)
