"""MID, the mutual information defense (Wang et al., "Improving Robustness to Model Inversion
Attacks via Mutual Information Regularization", AAAI 2021).

An attack inverts what the model's output says about its input; MID bounds that with a
variational information bottleneck between the features and the classifier
(``fisher_mi.models.vib``: ``z = mu + sigma * eps`` classified by ``fc_layer``) and trains

    loss = CE + beta * (1/B) sum_n KL(N(mu_n, diag sigma_n^2) || N(0, I)),
    KL = (1/2) sum_k (mu_k^2 + sigma_k^2 - 1 - log sigma_k^2)   (nats, as the reference),

with beta = 0.003 by default (the reference's VGG16/CelebA value; the paper sweeps it).

MID changes the model: ``model_for`` gives a copy with the VIB head in place of ``fc_layer``
(everything else carried over), which ``train`` then trains; ``plan_for`` appends the head's
layers to a plan made for the undefended model and keeps them trained under any cutoff. The
statistics (mu, sigma) are read by a forward hook on ``st_layer`` that ``prepare`` registers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from fisher_mi.defenses.base import (
    BatchLoss,
    Defense,
    check_number,
    register_defense,
    top1_hits,
)
from fisher_mi.errors import ConfigError
from fisher_mi.models.layers import named_layers
from fisher_mi.models.outputs import logits_of
from fisher_mi.models.registry import VIB_KWARG, rebuilt, require_arch
from fisher_mi.models.vib import HEAD, VIBClassifier, split_statistics
from fisher_mi.plan import FreezePlan

BETA = 0.003


def gaussian_kl(mu: Tensor, sigma: Tensor) -> Tensor:
    """``(1/B) sum_n (1/2) sum_k (mu_nk^2 + sigma_nk^2 - 1 - 2 log sigma_nk)``: the batch mean
    of KL(N(mu_n, diag sigma_n^2) || N(0, I)) in nats."""
    return 0.5 * (mu.square() + sigma.square() - 1 - 2 * sigma.log()).sum(dim=1).mean()


def with_vib_head(model: nn.Module, k: int | None = None) -> nn.Module:
    """A copy of ``model`` with MID's VIB head (width ``k``, default feature_dim / 2) in place
    of its ``fc_layer``: rebuilt with ``build_model(arch, **arch_kwargs, vib_dim=k)``, every
    tensor but the old classifier's loaded from ``model``; on its device, in its mode. A
    model that has the head already is returned as it is."""
    if isinstance(model, VIBClassifier):
        return model
    spec = require_arch(model, "the VIB head cannot be added")
    classifier = getattr(model, "fc_layer", None)
    if not isinstance(classifier, nn.Linear):
        raise ConfigError(
            f"mid replaces a linear classifier fc_layer, which {spec.name!r} lacks; pick an "
            "architecture with one"
        )
    width = classifier.in_features // 2 if k is None else k
    return rebuilt(model, replaced=HEAD, change="adding the VIB head", **{VIB_KWARG: width})


def plan_with_head(plan: FreezePlan, model: nn.Module) -> FreezePlan:
    """``plan`` for ``model`` (which has the VIB head) with the head trained.

    A plan made for the undefended model (its layers without ``st_layer``) gets the head's
    layers appended, with the same frozen prefix; a plan freezing ``st_layer`` has its cutoff
    lowered to the head. The trainable parameter share is counted again; the private Fisher
    share becomes None (the head was not profiled). Any other plan is returned as it is,
    for ``apply_plan`` to refuse.
    """
    layers = named_layers(model)
    names = tuple(layer.name for layer in layers)
    body = [name for name in names if name not in HEAD]
    if [name for name in plan.layers if name not in HEAD] != body:
        return plan
    cutoff = min(plan.cutoff, len(body))
    if names == plan.layers and cutoff == plan.cutoff:
        return plan
    trained = sum(layer.n_params for layer in layers[cutoff:])
    return replace(
        plan,
        layers=names,
        cutoff=cutoff,
        trainable_param_fraction=trained / sum(layer.n_params for layer in layers),
        trainable_private_fisher_fraction=None,
    )


@register_defense("mid")
@dataclass(eq=False)
class MID(Defense):
    """MID's loss (the module docstring); a hit is a top-1 prediction equal to the label.

    Attributes:
        beta: the weight of the KL term (default 0.003).
    """

    beta: float = BETA
    attack_variants: ClassVar[tuple[str, ...]] = ("sample",)  # the literature samples z
    k: int = field(init=False, default=0)
    _statistics: dict[str, Tensor] = field(init=False, default_factory=dict, repr=False)
    _handle: RemovableHandle | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        check_number(self.name, "beta", self.beta, low=0)

    def model_for(self, model: nn.Module) -> nn.Module:
        """``with_vib_head(model)``: the model MID trains."""
        return with_vib_head(model)

    def plan_for(self, plan: FreezePlan, model: nn.Module) -> FreezePlan:
        """``plan_with_head(plan, model)``."""
        return plan_with_head(plan, model)

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Refuse a model without a trained VIB head; hook ``st_layer``'s output."""
        if not isinstance(model, VIBClassifier):
            raise ConfigError(
                "mid trains a model with the VIB head; train defense.model_for(model) (a copy "
                f"with the head) instead of the {type(model).__name__}"
            )
        frozen = [name for name in HEAD if not getattr(model, name).weight.requires_grad]
        if frozen:
            raise ConfigError(
                f"the plan freezes the VIB head ({', '.join(frozen)}); make the plan with "
                "defense.plan_for(plan, model)"
            )
        self.release()
        self.k = model.k
        self._handle = model.st_layer.register_forward_hook(self._catch)

    def _catch(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._statistics["last"] = output  # the latest forward's only, whatever runs between

    def release(self) -> None:
        """Remove the hook and drop what it caught."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._statistics.clear()

    def __call__(self, output: Any, x: Tensor, y: Tensor) -> BatchLoss:
        """CE plus beta times the KL of this batch's code, in float32."""
        logits = logits_of(output)
        if not self._statistics:
            raise ConfigError(
                "mid caught no VIB statistics in this forward; call prepare(model, device) on "
                "the model being trained"
            )
        mu, sigma = split_statistics(self._statistics.pop("last").float())
        loss = F.cross_entropy(logits.float(), y) + self.beta * gaussian_kl(mu, sigma)
        return BatchLoss(loss, top1_hits(logits, y))

    def record(self) -> dict[str, Any]:
        """The name, the parameters and the code width K (after ``prepare``)."""
        return {**super().record(), "k": self.k}
