"""Freeze plans for a training run: a hand-chosen prefix, or one chosen from a Fisher profile.

Every run trains under a plan, so what was frozen is always written down (``plan.json``); a
run without a plan trains every layer (cutoff 0). Freezing happens only through
``apply_plan``, never by setting attributes by hand.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from fisher_mi.models.layers import named_layers
from fisher_mi.plan import RULES, FreezePlan, plan_freeze
from fisher_mi.profiling import ProfileRun, profile_splits


def prefix_plan(model: nn.Module, cutoff: int = 0, *, bn_stats: str = "frozen") -> FreezePlan:
    """Freeze the first ``cutoff`` layers of ``model`` (``named_layers`` order), train the rest.

    The plan records rule ``fixed`` with ``depth=cutoff``, as ``plan_freeze(rule="fixed")``
    would, but needs no Fisher table; cutoff 0 trains everything.
    """
    layers = named_layers(model)
    sizes = [layer.n_params for layer in layers]
    total = sum(sizes)
    return FreezePlan(
        layers=tuple(layer.name for layer in layers),
        cutoff=cutoff,
        rule="fixed",
        params={"depth": cutoff},
        rule_cutoff=cutoff,
        trainable_param_fraction=sum(sizes[cutoff:]) / total if total else None,
        bn_stats=bn_stats,
    )


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
