"""BiDO, the bilateral dependency optimisation (Peng et al., "Bilateral Dependency
Optimization: Defending Against Model-inversion Attacks", KDD 2022).

An attacker inverts a classifier by following what its hidden layers keep of the input.
BiDO trains the classifier with

    loss = CE + sum_j [a1 d(X, Z_j) - a2 d(Z_j, Y)],

over the hidden representations Z_j of a batch: the first term lowers what each layer keeps
of the inputs X, the second keeps what it needs of the labels Y. ``d`` is a kernel dependence
measure (``kernels``): the normalised HSIC (``measure="hsic"``, BiDO-HSIC) or COCO
(``measure="coco"``, BiDO-COCO), on Gaussian kernels (sigma 5, scaled by the dimension) of the
flattened inputs and features and a linear kernel of the one-hot labels. Defaults (a1, a2) =
(0.05, 0.5), the paper's VGG16/CelebA setting for HSIC.

The Z_j are the outputs of the modules the architecture's registry entry names
(``ArchEntry.hidden_layers``: block outputs), caught by forward hooks that ``prepare``
registers and ``release`` removes. Under a freeze plan only the outputs that depend on trained
weights are regularised: a block wholly in the frozen prefix is a fixed function of the
input, and its term would add cost and no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
from fisher_mi.defenses.kernels import MEASURES, gaussian_kernel, linear_kernel
from fisher_mi.errors import ConfigError
from fisher_mi.models.layers import ROOT_LAYER_NAME, named_layers
from fisher_mi.models.outputs import logits_of
from fisher_mi.models.registry import ARCHITECTURES, require_arch

SIGMA = 5.0  # BiDO's Gaussian bandwidth (before the scaling by the dimension)


def hidden_layers(model: nn.Module) -> tuple[str, ...]:
    """The modules whose outputs BiDO regularises in ``model`` as it is now: those its
    architecture's registry entry names whose output depends on a trained layer (one with
    ``requires_grad``), i.e. whose subtree ends at or after the first trained layer in
    ``named_modules()`` order.

    Raises:
        ConfigError: the model was not built by fisher_mi, its architecture names no hidden
            layers, a named module is missing, or every named output is frozen.
    """
    spec = require_arch(model, "the hidden layers BiDO regularises are unknown")
    names = ARCHITECTURES.get(spec.name).hidden_layers
    order = {name: index for index, (name, _) in enumerate(model.named_modules())}
    missing = [name for name in names if name not in order]
    if not names or missing:
        raise ConfigError(
            f"architecture {spec.name!r} does not name hidden layers for bido that it has "
            f"({', '.join(missing) or 'none named'}); list them in its hidden_layers"
        )
    trained = [
        order["" if layer.name == ROOT_LAYER_NAME else layer.name]
        for layer in named_layers(model)
        if layer.trainable
    ]
    first = min(trained, default=len(order))
    kept = tuple(name for name in names if first <= _subtree_end(order, name))
    if not kept:
        raise ConfigError(
            f"bido regularises hidden layers with trained weights behind them, but the plan "
            f"freezes every one {spec.name!r} names ({', '.join(names)}); lower the cutoff "
            "or drop the bido defense"
        )
    return kept


def _subtree_end(order: dict[str, int], name: str) -> int:
    """The last ``named_modules()`` index of the module ``name`` and its descendants."""
    return max(index for key, index in order.items() if key == name or key.startswith(name + "."))


@register_defense("bido")
@dataclass(eq=False)
class BiDO(Defense):
    """BiDO's loss (the module docstring); a hit is a top-1 prediction equal to the label.

    Attributes:
        a1: weight of d(X, Z_j), what each hidden layer keeps of the input (default 0.05).
        a2: weight of d(Z_j, Y), what it keeps of the label (default 0.5).
        sigma: the Gaussian kernels' bandwidth (default 5).
        measure: ``hsic`` (normalised HSIC), ``coco`` or ``plain_hsic``.
    """

    a1: float = 0.05
    a2: float = 0.5
    sigma: float = SIGMA
    measure: str = "hsic"
    layers: tuple[str, ...] = field(init=False, default=())
    _hidden: dict[str, Tensor] = field(init=False, default_factory=dict, repr=False)
    _handles: list[RemovableHandle] = field(init=False, default_factory=list, repr=False)

    def __post_init__(self) -> None:
        check_number(self.name, "a1", self.a1, low=0)
        check_number(self.name, "a2", self.a2, low=0)
        check_number(self.name, "sigma", self.sigma)
        if self.sigma <= 0:
            raise ConfigError(
                f"defense 'bido' parameter sigma must be positive, got {self.sigma!r}"
            )
        MEASURES.get(self.measure)

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Hook the outputs of ``hidden_layers(model)`` (the model under its plan)."""
        self.release()
        self.layers = hidden_layers(model)
        modules = dict(model.named_modules())
        for name in self.layers:
            self._handles.append(modules[name].register_forward_hook(self._catch(name)))

    def _catch(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._hidden[name] = output

        return hook

    def release(self) -> None:
        """Remove the hooks and drop the features they caught."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._hidden.clear()

    def __call__(self, output: Any, x: Tensor, y: Tensor) -> BatchLoss:
        """CE plus the dependence terms of the features caught in this batch's forward;
        the kernels in float32, outside autocast."""
        logits = logits_of(output)
        if set(self.layers) - set(self._hidden):
            raise ConfigError(
                "bido caught no hidden features in this forward; call prepare(model, device) "
                "on the model being trained"
            )
        hidden = [self._hidden.pop(name) for name in self.layers]
        loss = F.cross_entropy(logits.float(), y)
        with torch.autocast(x.device.type, enabled=False):
            loss = loss + self.regulariser(x, y, hidden, logits.shape[1])
        return BatchLoss(loss, top1_hits(logits, y))

    def regulariser(self, x: Tensor, y: Tensor, hidden: list[Tensor], classes: int) -> Tensor:
        """``sum_j a1 d(X, Z_j) - a2 d(Z_j, Y)`` for the flattened inputs ``x``, the labels
        ``y`` (one-hot over ``classes``) and the features ``hidden``, in float32."""
        measure = MEASURES.get(self.measure)
        k_x = gaussian_kernel(x.flatten(1).float(), self.sigma)
        k_y = linear_kernel(F.one_hot(y, classes).float())
        total = x.new_zeros((), dtype=torch.float32)
        for z in hidden:
            k_z = gaussian_kernel(z.flatten(1).float(), self.sigma)
            total = total + self.a1 * measure(k_x, k_z) - self.a2 * measure(k_z, k_y)
        return total

    def record(self) -> dict[str, Any]:
        """The name, the parameters and the hidden layers regularised (after ``prepare``)."""
        return {**super().record(), "layers": list(self.layers)}
