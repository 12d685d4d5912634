"""Training-time defenses against model inversion, as plug-ins to the one training loop.

``DEFENSES`` is the registry (``bido``, ``mid``, ``nls``); ``build_defense(name, params)`` makes one
from its name and parameters, as ``fisher-mi train --defense NAME --defense-param K=V`` does.
A defense is an objective of ``fisher_mi.training.train`` (``objective=...``); its ``record``
is written into ``model.pt``'s meta under ``defense``.

Modules: ``base`` (``Defense``, the registry, ``build_defense``, ``BatchLoss``), ``nls``
(negative label smoothing), ``kernels`` (kernel dependence measures), ``bido`` (BiDO),
``mid`` (MID: the VIB head's loss, the head added to a model and to its plan).
"""

from fisher_mi.defenses.base import (
    DEFENSES,
    BatchLoss,
    Defense,
    build_defense,
    parse_defense_params,
    register_defense,
)
from fisher_mi.defenses.bido import BiDO, hidden_layers
from fisher_mi.defenses.kernels import (
    MEASURES,
    coco,
    gaussian_kernel,
    linear_kernel,
    normalised_hsic,
    plain_hsic,
)
from fisher_mi.defenses.mid import MID, gaussian_kl, plan_with_head, with_vib_head
from fisher_mi.defenses.nls import (
    NegativeLabelSmoothing,
    scheduled_alpha,
    smoothed_cross_entropy,
)

__all__ = [
    "DEFENSES",
    "MEASURES",
    "MID",
    "BatchLoss",
    "BiDO",
    "Defense",
    "NegativeLabelSmoothing",
    "build_defense",
    "coco",
    "gaussian_kernel",
    "gaussian_kl",
    "hidden_layers",
    "linear_kernel",
    "normalised_hsic",
    "parse_defense_params",
    "plain_hsic",
    "plan_with_head",
    "register_defense",
    "scheduled_alpha",
    "smoothed_cross_entropy",
    "with_vib_head",
]
