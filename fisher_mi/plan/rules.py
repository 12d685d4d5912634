"""Cutoff rules: where to cut a model into a frozen prefix and a fine-tuned suffix.

TL-DMI (Ho et al., "Model Inversion Robustness: Can Transfer Learning Help?", CVPR 2024)
pre-trains on public data and fine-tunes only the last layers on the private data, so that
few layers encode private information. Every plan here is therefore a *prefix* freeze:
layers with depth < cutoff stay at their public-pretrained values, layers with depth >= cutoff
are fine-tuned. A rule reads the Fisher table of the public-pretrained model (profiled on the
private and public data) and returns the cutoff depth with the per-layer scores it used.

Every rule has the signature ``rule(table, **params) -> RuleResult``, where ``table`` is the
whole long table (validated by ``check_table``), and is registered in ``RULES``. ``auto`` is an
alias of the default rule, ``mass`` with p = 0.9 (the rationale is in ``mass``'s docstring).
Rules never return cutoff = n_layers: a plan always fine-tunes at least the last layer.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fisher_mi.errors import ConfigError
from fisher_mi.fisher.estimators import FISHER_KINDS
from fisher_mi.models.layers import named_layers
from fisher_mi.plan.table import (
    PRIVATE,
    PUBLIC,
    few,
    layer_column,
    layer_names,
    require_mass,
    split_estimator,
    split_values,
)
from fisher_mi.registry import Registry

TOLERANCE = 1e-9  # float64 sums of shares: 0.7 may come out as 0.6999999999999998
DEFAULT_RULE = "mass"


@dataclass(frozen=True)
class RuleResult:
    """What a rule decided: the cutoff depth, its per-layer scores, the parameters it used."""

    cutoff: int
    scores: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


CutoffRule = Callable[..., RuleResult]
RULES: Registry[CutoffRule] = Registry("cutoff rule")


def _fraction(name: str, value: object) -> float:
    """A number in (0, 1]: a share of Fisher mass or of a maximum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def _whole(name: str, value: object, low: int, high: int, why: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not low <= value <= high
    ):
        raise ConfigError(
            f"{name} must be a whole number from {low} to {high} ({why}), got {value!r}"
        )
    return int(value)


def _scores(names: list[str], values: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(names, values, strict=True)}


def _first_at_least(scores: np.ndarray, threshold: float, eligible: np.ndarray) -> int:
    """The smallest depth whose score reaches ``threshold`` among ``eligible`` layers: the
    cutoff of the shortest trained suffix that holds every layer at or above the threshold."""
    hits = np.flatnonzero(eligible & (scores >= threshold - TOLERANCE))
    return int(hits[0])


@RULES.register("fixed")
def fixed(table: pd.DataFrame, *, depth: int | None = None, last: int | None = None) -> RuleResult:
    """A cutoff chosen by hand: freeze layers with depth < ``depth``, or train the ``last`` ones.

    cutoff = depth, or cutoff = n_layers - last; give exactly one. This is the paper code's
    per-architecture hand-picked cutoff made explicit, in this package's one meaning of depth
    (``named_layers``), and the rule to use when the Fisher table cannot rank layers (e.g.
    zero Fisher everywhere). It reads no Fisher values, so it records no scores.

    Args:
        table: the Fisher table (only its layers are read).
        depth: number of frozen layers, 0 (train everything) to n_layers - 1.
        last: number of trained layers, 1 to n_layers.
    """
    n = len(layer_names(table))
    if (depth is None) == (last is None):
        raise ConfigError("rule 'fixed' needs exactly one of depth=K (freeze K layers) or last=K")
    if depth is not None:
        cutoff = _whole("depth", depth, 0, n - 1, f"the model has {n} layers; train at least one")
        return RuleResult(cutoff, {}, {"depth": cutoff})
    kept = _whole("last", last, 1, n, f"the model has {n} layers")
    return RuleResult(n - kept, {}, {"last": kept})


@RULES.register(DEFAULT_RULE)
def mass(table: pd.DataFrame, *, p: float = 0.9) -> RuleResult:
    """Train the shortest suffix of layers that holds at least a share ``p`` of the private
    Fisher mass; this is the default rule (``auto``), with p = 0.9.

    With F_l the private ``fisher_trace`` of layer l and S(c) = sum_{l>=c} F_l / sum_l F_l the
    share of mass in the suffix starting at depth c, cutoff = max{c : S(c) >= p}. Scores: S(c)
    per layer.

    Why the trace: Fisher *mass* must add up over parameters, and the trace of a layer's block
    does (it is the sum of its parameters' diagonal entries) while ``fisher_per_param`` (a
    mean) does not: a wide layer with a small per-parameter value can hold most of the mass.
    The trace also has a direct meaning for fine-tuning: a gradient step of size eta on the
    trained set S lowers a private sample's loss by eta * ||g_S||^2 to first order, whose mean
    is eta * sum_{l in S} F_l. So S(c) is the share of the first-order private-loss decrease
    (the utility fine-tuning can recover) that training layers >= c keeps.

    Why the default: TL-DMI's Fisher analysis finds that the early layers matter most to
    model-inversion reconstruction while the last layers carry the classification task, and
    the Fisher mass of the private classification loss usually sits in those last layers.
    Training the suffix with 90% of the mass keeps almost all of the fine-tuning signal while
    leaving the early, inversion-critical layers at their public-pretrained values. Unlike
    ``knee`` and ``ratio`` it is defined for every table with non-zero private Fisher, needs
    one split only, and p is a share anyone can read; lower p to freeze more (more
    robustness, less utility), raise it to train more.

    Args:
        table: the Fisher table; reads the ``private`` split's ``fisher_trace``.
        p: the share of private Fisher mass the trained suffix must hold, in (0, 1].
    """
    p = _fraction("p", p)
    trace = split_values(table, PRIVATE, "fisher_trace", rule="mass")
    total = require_mass(trace, split=PRIVATE, rule="mass")
    suffix = np.cumsum(trace[::-1])[::-1] / total
    cutoff = int(np.flatnonzero(suffix >= p - TOLERANCE)[-1])
    return RuleResult(cutoff, _scores(layer_names(table), suffix), {"p": p})


@RULES.register("knee")
def knee(table: pd.DataFrame) -> RuleResult:
    """Cut at the knee of the cumulative private Fisher mass, counted from the output back.

    Kneedle (Satopää et al., "Finding a 'Kneedle' in a Haystack", ICDCS workshops 2011) on
    the curve of x_k = k / n (share of layers trained: the last k) against y_k = share of
    private ``fisher_trace`` in those k layers. The curve runs from (0, 0) to (1, 1); where
    mass concentrates in the last layers it bulges above the diagonal, and the knee is the
    k maximising the distance y_k - x_k: adding a further layer past it adds less mass than
    its share of layers (the curve's slope drops below 1). cutoff = n - k; ties go to the
    smaller k (shorter suffix). Scores: y_k - x_k for the suffix starting at each layer.

    Without a knee (max distance <= 1e-9: mass spread evenly, e.g. all layers equal, or
    concentrated in the early layers so the curve stays below the diagonal) no suffix
    stands out, and the rule trains every layer (cutoff 0) instead of guessing; it has no
    parameters.

    Args:
        table: the Fisher table; reads the ``private`` split's ``fisher_trace``.
    """
    trace = split_values(table, PRIVATE, "fisher_trace", rule="knee")
    total = require_mass(trace, split=PRIVATE, rule="knee")
    n = len(trace)
    distance = np.cumsum(trace[::-1]) / total - np.arange(1, n + 1) / n  # index k - 1
    best = int(np.argmax(distance))
    kept = best + 1 if distance[best] > TOLERANCE else n
    return RuleResult(n - kept, _scores(layer_names(table), distance[::-1]), {})


@RULES.register("ratio")
def ratio(table: pd.DataFrame, *, threshold: float = 0.5, fisher: str | None = None) -> RuleResult:
    """Freeze the prefix of layers that are not specific to the private data.

    r_l = private ``fisher_per_param`` / public ``fisher_per_param``: how much more the
    private data than the public data use layer l, per parameter (per parameter so that
    layer sizes cancel; any per-layer constant would). A model pre-trained on public data
    fits the public data better everywhere, so r_l is rarely near 1 and its scale says
    little; what matters is where it stands out. Each layer is scored s_l = r_l / max r, a
    layer is private-specific when s_l >= ``threshold``, and cutoff = the depth of the first
    specific layer: the longest frozen prefix holding no specific layer. All layers equal
    means none stands out from the rest, so every layer is trained (cutoff 0).

    The two splits must be read with one estimator: the empirical Fisher of the private data
    over the true Fisher of the public data (what ``fisher="auto"`` profiles) divides two
    different quantities, so such a table is refused; profile both with ``fisher="true"``.

    Args:
        table: the Fisher table; reads ``fisher_per_param`` of the ``private`` and ``public``
            splits.
        threshold: s_l at or above which a layer counts as private-specific, in (0, 1].
        fisher: the estimator to read both splits with (``empirical`` or ``true``; the CLI's
            ``--param fisher=true`` arrives as the boolean true), where they hold several;
            default: each split's own (``split_estimator``).
    """
    threshold = _fraction("threshold", threshold)
    estimator = _one_estimator(table, (PRIVATE, PUBLIC), rule="ratio", fisher=_kind(fisher))
    private = split_values(table, PRIVATE, "fisher_per_param", rule="ratio", fisher=estimator)
    public = split_values(table, PUBLIC, "fisher_per_param", rule="ratio", fisher=estimator)
    require_mass(private, split=PRIVATE, rule="ratio")
    names = layer_names(table)
    zero = [name for name, value in zip(names, public, strict=True) if value <= 0.0]
    if zero:
        raise ConfigError(
            f"the public Fisher information is zero in layers {few(zero)}, so the "
            "private/public ratio is undefined; profile more public samples or use rule 'mass'"
        )
    ratios = private / public
    scores = ratios / ratios.max()
    cutoff = _first_at_least(scores, threshold, np.ones(len(names), dtype=bool))
    return RuleResult(cutoff, _scores(names, scores), {"threshold": threshold})


def _kind(fisher: object) -> str | None:
    """A rule's ``fisher`` parameter: None, ``empirical`` or ``true`` (boolean true, as
    ``parse_params`` reads ``fisher=true``, is ``true``)."""
    fisher = "true" if fisher is True else fisher
    if fisher is not None and fisher not in FISHER_KINDS:
        raise ConfigError(f"fisher must be one of {', '.join(FISHER_KINDS)}, got {fisher!r}")
    return fisher  # type: ignore[return-value]


def _one_estimator(
    table: pd.DataFrame, compared: tuple[str, ...], *, rule: str, fisher: str | None
) -> str:
    """The one estimator the ``compared`` splits are read with; refuse a mix."""
    chosen = {split: split_estimator(table, split, rule=rule, fisher=fisher) for split in compared}
    if len(set(chosen.values())) > 1:
        used = ", ".join(f"{split} {estimator}" for split, estimator in chosen.items())
        raise ConfigError(
            f"rule {rule!r} compares splits read with different Fisher estimators ({used}), "
            "which measure different things; profile every split with one estimator, e.g. "
            "`fisher-mi profile MODEL --data SPEC --splits private,public --fisher true` "
            f"(or `train --rule {rule} --fisher true`)"
        )
    return next(iter(chosen.values()))


NORM_KIND = re.compile(r"Norm")


@RULES.register("rgn")
def rgn(
    table: pd.DataFrame,
    *,
    model: nn.Module | None = None,
    param_norms: Mapping[str, float] | None = None,
    threshold: float = 0.5,
    norm_layers: bool = False,
) -> RuleResult:
    """Relative gradient norm on the private data, after Auto-RGN (surgical fine-tuning).

    Auto-RGN (Lee et al., "Surgical Fine-Tuning Improves Adaptation to Distribution Shifts",
    ICLR 2023; reference code anniesch/surgical-finetuning, ``main.py::get_lr_weights``)
    scores each parameter tensor by RGN = ||g|| / ||theta||, the gradient norm of the target
    (here: private) loss relative to the parameter norm, divides by the largest RGN to get
    scores in [0, 1], and uses them as per-tensor learning-rate multipliers; normalisation
    (``bn``) parameters are left out. From a Fisher table the per-layer version is

        RGN_l = sqrt(fisher_trace_l) / ||theta_l||,    s_l = RGN_l / max_l RGN_l,

    where sqrt(fisher_trace_l) is the root-mean-square per-sample gradient norm on the
    private data (an upper bound of the mini-batch gradient norm the paper averages over
    five batches: it also counts gradient noise) and ||theta_l|| the l2 norm of all of the
    layer's parameters. A plan needs a hard, contiguous choice rather than soft learning
    rates, so a layer is trained when its suggested learning rate would be at least
    ``threshold`` of the largest (default 0.5: half) and cutoff = the first such depth,
    the shortest trained suffix holding all of them. As in the paper, normalisation layers
    (``kind`` containing ``Norm``) are scored but neither set the maximum nor the cutoff
    unless ``norm_layers=True`` (or every layer is one).

    Args:
        table: the Fisher table; reads the ``private`` split's ``fisher_trace``.
        model: the model the table was profiled from (its parameter norms are read); or
        param_norms: layer name -> ||theta_l||, instead of ``model``.
        threshold: share of the largest RGN at or above which a layer is trained, in (0, 1].
        norm_layers: let normalisation layers take part in the choice.
    """
    threshold = _fraction("threshold", threshold)
    if not isinstance(norm_layers, bool):
        raise ConfigError(f"norm_layers must be true or false, got {norm_layers!r}")
    names = layer_names(table)
    norms, source = _parameter_norms(table, model, param_norms)
    trace = split_values(table, PRIVATE, "fisher_trace", rule="rgn")
    require_mass(trace, split=PRIVATE, rule="rgn")
    relative = np.sqrt(trace) / norms
    eligible = np.array(
        [norm_layers or not NORM_KIND.search(k) for k in layer_column(table, "kind")]
    )
    if not eligible.any():
        eligible[:] = True
    top = relative[eligible].max()
    if top <= 0.0:
        raise ConfigError(
            "the private Fisher information is zero in every non-normalisation layer, so rule "
            "'rgn' has nothing to rank; pass norm_layers=true or use rule 'fixed'"
        )
    scores = relative / top
    cutoff = _first_at_least(scores, threshold, eligible)
    params = {"threshold": threshold, "norm_layers": norm_layers, "param_norms": source}
    return RuleResult(cutoff, _scores(names, scores), params)


def _parameter_norms(
    table: pd.DataFrame, model: nn.Module | None, param_norms: Mapping[str, float] | None
) -> tuple[np.ndarray, str]:
    """||theta_l|| per layer in depth order, and where they came from (for the plan record)."""
    names = layer_names(table)
    if (model is None) == (param_norms is None):
        raise ConfigError(
            "rule 'rgn' divides by parameter norms: pass the profiled model (model=..., or "
            "--model on the command line) or a param_norms mapping, exactly one of them"
        )
    if model is not None:
        _require_table_layers(table, model)
        param_norms, source = layer_norms(model), "model"
    else:
        source = "given"
    assert param_norms is not None
    missing = [name for name in names if name not in param_norms]
    if missing:
        raise ConfigError(
            f"no parameter norm for layers {few(missing)}; use the model the Fisher table was "
            "profiled from"
        )
    norms = np.array([float(param_norms[name]) for name in names], dtype=np.float64)
    bad = [name for name, value in zip(names, norms, strict=True) if not value > 0.0]
    if bad:
        raise ConfigError(
            f"layers {few(bad)} have parameter norm 0 (or not a positive number), so their "
            "relative gradient norm is undefined; use rule 'mass' or 'fixed'"
        )
    return norms, source


def _require_table_layers(table: pd.DataFrame, model: nn.Module) -> None:
    """Refuse a model whose layers are not the table's: the same names with the same
    parameter counts, in the same depth order.

    rgn divides each layer's Fisher trace by that layer's norm in the model, matched by
    name; a model of another architecture or class count can share the names (vgg_small
    has every layer name of mcnn) and would give scores that mean nothing.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch nn.Module, got {type(model).__name__}")
    in_table = zip(layer_names(table), layer_column(table, "n_params").tolist(), strict=True)
    in_model = [(layer.name, layer.n_params) for layer in named_layers(model)]
    for depth, (ours, theirs) in enumerate(itertools.zip_longest(in_model, in_table)):
        if ours != theirs:
            raise ConfigError(
                f"the model is not the one the Fisher table was profiled from; at depth {depth}: "
                f"{_layer_words(ours)} in the model, {_layer_words(theirs)} in the table; pass "
                "the profiled model (or param_norms)"
            )


def _layer_words(layer: tuple[str, int] | None) -> str:
    """``layer 'fc_layer' with 1285 parameters``, or ``no layer``."""
    return "no layer" if layer is None else f"layer {layer[0]!r} with {layer[1]} parameters"


def layer_norms(model: nn.Module) -> dict[str, float]:
    """||theta_l||_2 over all parameters of each layer (``named_layers``), in float64."""
    parameters = dict(model.named_parameters())
    norms = {}
    with torch.no_grad():
        for layer in named_layers(model):
            squares = sum(parameters[n].double().square().sum().item() for n in layer.param_names)
            norms[layer.name] = math.sqrt(squares)
    return norms


RULES.alias("auto", DEFAULT_RULE)
