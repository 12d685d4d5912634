"""Freeze planning for TL-DMI fine-tuning: which prefix of layers to freeze, chosen from the
Fisher table, and applied to a model verifiably.

Modules, one job each: ``table`` (validating and reading the Fisher table), ``rules`` (the
cutoff-rule registry), ``freeze_plan`` (the ``FreezePlan`` record and its JSON),
``planner`` (``plan_freeze``), ``from_model`` (prefix plans and plans from a fresh
profile), ``apply`` (``apply_plan`` and frozen BatchNorm statistics), ``blocks`` (the layers a
sweep's cutoffs fall between), ``advice`` (warnings about plans that defend nothing).
"""

from fisher_mi.plan.advice import (
    MODEL_PROVENANCE,
    PlanWarning,
    model_provenance,
    warn_if_freezes_nothing,
    warn_if_not_pretrained,
)
from fisher_mi.plan.apply import apply_plan, frozen_norm_modules
from fisher_mi.plan.blocks import (
    block_boundaries,
    block_of,
    block_starts,
    parse_cutoffs,
    snap_to_block,
    sweep_cutoffs,
)
from fisher_mi.plan.freeze_plan import BN_STATS, FreezePlan
from fisher_mi.plan.from_model import layer_table, plan_by_rule, prefix_plan, training_plan
from fisher_mi.plan.planner import parse_params, plan_freeze
from fisher_mi.plan.rules import DEFAULT_RULE, RULES, RuleResult, layer_norms
from fisher_mi.plan.table import read_fisher_table

__all__ = [
    "BN_STATS",
    "DEFAULT_RULE",
    "MODEL_PROVENANCE",
    "RULES",
    "FreezePlan",
    "PlanWarning",
    "RuleResult",
    "apply_plan",
    "block_boundaries",
    "block_of",
    "block_starts",
    "frozen_norm_modules",
    "layer_norms",
    "layer_table",
    "model_provenance",
    "parse_cutoffs",
    "parse_params",
    "plan_by_rule",
    "plan_freeze",
    "prefix_plan",
    "read_fisher_table",
    "snap_to_block",
    "sweep_cutoffs",
    "training_plan",
    "warn_if_freezes_nothing",
    "warn_if_not_pretrained",
]
