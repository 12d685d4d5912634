"""``plan_freeze``: a Fisher table and a rule in, a ``FreezePlan`` out."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from fisher_mi.errors import ConfigError
from fisher_mi.plan.advice import warn_if_freezes_nothing
from fisher_mi.plan.freeze_plan import FreezePlan, check_cutoff
from fisher_mi.plan.rules import RULES, CutoffRule
from fisher_mi.plan.table import (
    PRIVATE,
    check_table,
    has_split,
    layer_column,
    layer_names,
    split_values,
)


def plan_freeze(
    table: pd.DataFrame,
    *,
    rule: str = "auto",
    cutoff: int | None = None,
    bn_stats: str = "frozen",
    **rule_kwargs: Any,
) -> FreezePlan:
    """Choose which prefix of layers to freeze for fine-tuning on the private data.

    Args:
        table: the long Fisher table of the public-pretrained model (``fisher_mi.profile``
            on the ``private`` and, for ``ratio``, ``public`` splits; every layer).
        rule: a name in ``RULES`` (``auto`` = ``mass`` with p = 0.9).
        cutoff: a hand-chosen cutoff overriding the rule's (the rule still runs, and its
            scores and own cutoff are recorded next to the override).
        bn_stats: ``"frozen"`` (default) keeps the running statistics of normalisation
            layers in the frozen prefix fixed during fine-tuning; ``"update"`` lets them move.
        **rule_kwargs: the rule's parameters (see each rule's docstring), e.g. ``p=0.8``, or
            ``model=...`` for ``rgn``.

    Returns:
        The plan; ``apply_plan(model, plan)`` applies it to the model. A rule that freezes no
        layer (no override) gives a ``PlanWarning``: such a plan defends nothing.
    """
    checked = check_table(table)
    entry = RULES.get(rule)
    name = RULES.resolve(rule)
    _check_rule_params(name, entry, rule_kwargs)
    result = entry(checked, **rule_kwargs)
    layers = layer_names(checked)
    chosen = result.cutoff if cutoff is None else check_cutoff(cutoff, len(layers))
    plan = FreezePlan(
        layers=tuple(layers),
        cutoff=chosen,
        rule=name,
        params=dict(result.params),
        scores=dict(result.scores),
        rule_cutoff=result.cutoff,
        override=cutoff is not None,
        trainable_param_fraction=_trained_share(layer_column(checked, "n_params"), chosen),
        trainable_private_fisher_fraction=_private_share(checked, chosen, rule=name),
        bn_stats=bn_stats,
    )
    warn_if_freezes_nothing(plan)
    return plan


def _check_rule_params(name: str, rule: CutoffRule, given: dict[str, Any]) -> None:
    """Refuse a parameter the rule does not take, listing the ones it does."""
    accepted = [p for p in inspect.signature(rule).parameters if p != "table"]
    unknown = [key for key in given if key not in accepted]
    if unknown:
        known = ", ".join(accepted) if accepted else "none"
        raise ConfigError(f"rule {name!r} has no parameter {unknown[0]!r}; its parameters: {known}")


def _trained_share(values: np.ndarray, cutoff: int) -> float | None:
    total = float(np.asarray(values, dtype=np.float64).sum())
    return float(np.asarray(values[cutoff:], dtype=np.float64).sum()) / total if total > 0 else None


def _private_share(table: pd.DataFrame, cutoff: int, *, rule: str) -> float | None:
    if not has_split(table, PRIVATE):
        return None
    trace = split_values(table, PRIVATE, "fisher_trace", rule=rule)
    return _trained_share(trace, cutoff)


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (the CLI's ``--param``) as rule parameters.

    VALUE is read as JSON when it is a number, ``true``/``false`` or ``null`` (``p=0.8``,
    ``last=2``, ``norm_layers=true``), otherwise kept as text.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"a rule parameter is KEY=VALUE (e.g. p=0.8), got {pair!r}")
        if key in params:
            raise ConfigError(f"rule parameter {key!r} is given twice; give it once")
        params[key] = _value(text.strip())
    return params


def _value(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if value is None or isinstance(value, (bool, int, float)) else text
