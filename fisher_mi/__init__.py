"""fisher_mi: which layers of a classifier hold its private training data, measured by
per-layer Fisher information, and the transfer-learning defense (TL-DMI) built on it."""

from fisher_mi._version import __version__
from fisher_mi.data import load_dataset
from fisher_mi.errors import FisherMIError
from fisher_mi.fisher import fisher_diagonal, profile
from fisher_mi.models import build_model, load_model, named_layers, save_model
from fisher_mi.plan import FreezePlan, apply_plan, plan_freeze
from fisher_mi.training import TrainConfig, load_init, pretrain_public, train

__all__ = [
    "FisherMIError",
    "FreezePlan",
    "TrainConfig",
    "__version__",
    "apply_plan",
    "build_model",
    "fisher_diagonal",
    "load_dataset",
    "load_init",
    "load_model",
    "named_layers",
    "plan_freeze",
    "pretrain_public",
    "profile",
    "save_model",
    "train",
]
