"""Plans that run but defend nothing: warnings, not errors.

The cutoff rules are defined on the *public-pretrained* model that TL-DMI fine-tunes: its
early layers hold public features, and the plan keeps them there. A Fisher table profiled
from a model trained from scratch on the private data (the undefended baseline) plans for a
model with no public prefix to keep, and its private Fisher mass sits everywhere, so the
rules tend to train every layer (the README's old flow froze 0 of 7). Both cases are legal
(a user may want to inspect them), so they are ``PlanWarning``s, one line each.

How a profiled model was made travels in the table's ``fisher.json`` under
``MODEL_PROVENANCE``: the checkpoint meta's ``pretrained_on``, ``role`` and ``init``
(``model_provenance``), null for a foreign checkpoint that does not say.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from fisher_mi.plan.freeze_plan import FreezePlan

MODEL_PROVENANCE = "model_provenance"  # the key of fisher.json
PROVENANCE_FIELDS = ("pretrained_on", "role", "init")


class PlanWarning(UserWarning):
    """A freeze plan that is valid but unlikely to be what was meant."""


def model_provenance(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """How a model was made, from its checkpoint's meta (``PROVENANCE_FIELDS``, missing keys
    None); None when there is no meta (a foreign checkpoint: unknown)."""
    if not isinstance(meta, Mapping):
        return None
    return {key: meta.get(key) for key in PROVENANCE_FIELDS}


def warn_if_not_pretrained(provenance: Mapping[str, Any] | None, *, table: str) -> bool:
    """Warn (and return True) when ``provenance`` says the profiled model was neither
    pre-trained on public data (``pretrained_on``) nor started from pre-trained weights
    (``init``); an unknown provenance (None) is not warned about."""
    if provenance is None or provenance.get("pretrained_on") or provenance.get("init"):
        return False
    warnings.warn(
        f"the Fisher table {table} comes from a model that was not pre-trained on public data "
        "(its fisher.json: pretrained_on and init are null), but the cutoff rules are defined "
        "on the public-pretrained model that fine-tuning starts from; plan on that model: "
        "`fisher-mi train --public SPEC --rule RULE` profiles it, or profile its checkpoint",
        PlanWarning,
        stacklevel=2,
    )
    return True


def warn_if_freezes_nothing(plan: FreezePlan) -> bool:
    """Warn (and return True) when a rule, not a hand-set cutoff, froze no layer of a model
    with more than one (a plan always trains the last): fine-tuning under such a plan trains
    every layer, like the undefended baseline."""
    if plan.cutoff > 0 or plan.override or plan.rule == "fixed" or len(plan.layers) == 1:
        return False
    params = ", ".join(f"{key}={value}" for key, value in plan.params.items())
    warnings.warn(
        f"rule {plan.rule}({params}) freezes none of the {len(plan.layers)} layers, so "
        "fine-tuning under this plan trains every layer and defends nothing; check that the "
        "table is of the public-pretrained model, or choose another rule or parameter, or a "
        "cutoff by hand (--cutoff K)",
        PlanWarning,
        stacklevel=3,
    )
    return True
