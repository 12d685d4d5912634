"""Plans made from a model rather than a saved table: a hand-chosen prefix, or a rule applied to
a fresh Fisher profile of the model.

Every training run trains under a plan, so what was frozen is always written down
(``plan.json``); a run without a plan trains every layer (cutoff 0). Both functions go through
``plan_freeze``: a prefix plan is rule ``fixed`` on the model's layers.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd
from torch import nn
from torch.utils.data import Dataset

from fisher_mi.errors import ConfigError
from fisher_mi.fisher.splits import ProfileRun, profile_splits
from fisher_mi.models.layers import named_layers
from fisher_mi.plan.freeze_plan import FreezePlan, check_cutoff
from fisher_mi.plan.planner import plan_freeze
from fisher_mi.plan.rules import RULES

LAYERS_ONLY = "layers"  # the split of a layer table: no Fisher values, read by rule ``fixed``


def layer_table(model: nn.Module) -> pd.DataFrame:
    """The model's layers as a Fisher table with zero Fisher values in split ``layers``.

    Rule ``fixed`` reads only the layers, so this is all it needs; the zero values never count
    as private Fisher mass (the split is not ``private``).
    """
    return pd.DataFrame(
        [
            {
                "layer": layer.name,
                "depth": layer.depth,
                "kind": layer.kind,
                "n_params": layer.n_params,
                "split": LAYERS_ONLY,
                "fisher_trace": 0.0,
                "fisher_per_param": 0.0,
            }
            for layer in named_layers(model)
        ]
    )


def prefix_plan(model: nn.Module, cutoff: int = 0, *, bn_stats: str = "frozen") -> FreezePlan:
    """Freeze the first ``cutoff`` layers of ``model`` (``named_layers`` order), train the rest.

    The same as ``plan_freeze(table, rule="fixed", depth=cutoff)`` on the model's layers; it
    needs no Fisher table. Cutoff 0 trains everything.
    """
    table = layer_table(model)
    depth = check_cutoff(cutoff, len(table))  # said as a cutoff, the caller's word for it
    return plan_freeze(table, rule="fixed", depth=depth, bn_stats=bn_stats)


def plan_by_rule(
    model: nn.Module,
    datasets: Mapping[str, Dataset],
    *,
    rule: str,
    cutoff: int | None = None,
    rule_params: Mapping[str, Any] | None = None,
    bn_stats: str = "frozen",
    **profile_options: Any,
) -> tuple[FreezePlan, ProfileRun]:
    """Profile ``model`` on ``datasets`` (split name -> data, e.g. private and public) and plan
    with ``rule``; return the plan and the profile it was made from.

    A rule that reads the model itself (``rgn``) is given it. ``cutoff`` overrides the rule's
    choice (its scores are kept), as in ``plan_freeze``.
    """
    run = profile_splits(model, datasets, **profile_options)
    params = dict(rule_params or {})
    if "model" in inspect.signature(RULES.get(rule)).parameters:
        params.setdefault("model", model)
    plan = plan_freeze(run.table, rule=rule, cutoff=cutoff, bn_stats=bn_stats, **params)
    return plan, run


def training_plan(
    model: nn.Module,
    *,
    plan: FreezePlan | str | os.PathLike[str] | None = None,
    rule: str | None = None,
    cutoff: int | None = None,
    rule_params: Mapping[str, Any] | None = None,
    bn_stats: str = "frozen",
    datasets: Mapping[str, Dataset] | None = None,
    **profile_options: Any,
) -> tuple[FreezePlan | None, ProfileRun | None]:
    """The freeze plan of a training run, from exactly one source; and the profile it needed.

    Args:
        model: the (pre-trained) model to be fine-tuned.
        plan: a finished plan (or the path of its ``plan.json``): used as it is, alone.
        rule: profile ``model`` on ``datasets`` and plan with this rule (``cutoff`` then
            overrides the rule's choice, its scores kept).
        cutoff: without ``rule``: freeze the first ``cutoff`` layers (``prefix_plan``).
        rule_params: the rule's parameters (only with ``rule``).
        bn_stats: frozen BatchNorm statistics, ``"frozen"`` or ``"update"``.
        datasets: split -> data to profile for ``rule`` (e.g. private and public).
        **profile_options: options of ``fisher_mi.profile`` for ``rule``.

    Returns:
        ``(plan, profile)``: plan None trains every layer; profile None unless a rule ran.
    """
    if plan is not None:
        if rule is not None or cutoff is not None:
            raise ConfigError("--plan is a finished plan; give it alone, or --rule/--cutoff")
        return (plan if isinstance(plan, FreezePlan) else FreezePlan.load(plan)), None
    if rule is None:
        if rule_params:
            raise ConfigError("--param sets a parameter of --rule; give --rule NAME too")
        return (None if cutoff is None else prefix_plan(model, cutoff, bn_stats=bn_stats)), None
    if not datasets:
        raise ConfigError(f"rule {rule!r} plans from a Fisher profile: pass the datasets")
    made, run = plan_by_rule(
        model,
        datasets,
        rule=rule,
        cutoff=cutoff,
        rule_params=rule_params,
        bn_stats=bn_stats,
        **profile_options,
    )
    return made, run
