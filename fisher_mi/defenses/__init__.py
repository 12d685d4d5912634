"""Training-time defenses against model inversion, as plug-ins to the one training loop.

``DEFENSES`` is the registry (``nls``, ``bido``); ``build_defense(name, params)`` makes one
from its name and parameters, as ``fisher-mi train --defense NAME --defense-param K=V`` does.
A defense is an objective of ``fisher_mi.training.train`` (``objective=...``); its ``record``
is written into ``model.pt``'s meta under ``defense``.

Modules: ``base`` (``Defense``, the registry, ``build_defense``, ``BatchLoss``), ``nls``
(negative label smoothing), ``kernels`` (kernel dependence measures), ``bido`` (BiDO).
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
from fisher_mi.defenses.nls import (
    NegativeLabelSmoothing,
    scheduled_alpha,
    smoothed_cross_entropy,
)

__all__ = [
    "DEFENSES",
    "MEASURES",
    "BatchLoss",
    "BiDO",
    "Defense",
    "NegativeLabelSmoothing",
    "build_defense",
    "coco",
    "gaussian_kernel",
    "hidden_layers",
    "linear_kernel",
    "normalised_hsic",
    "parse_defense_params",
    "plain_hsic",
    "register_defense",
    "scheduled_alpha",
    "smoothed_cross_entropy",
]
