"""fisher_mi: which layers of a classifier hold its private training data, measured by
per-layer Fisher information, the transfer-learning defense (TL-DMI) built on it, and the
model-inversion attacks that test it."""

from fisher_mi import metrics
from fisher_mi._version import __version__
from fisher_mi.attacks import GAN, build_gan, load_gan, save_gan, train_gan
from fisher_mi.attacks.inversion import Inversion, invert
from fisher_mi.data import load_dataset
from fisher_mi.errors import FisherMIError
from fisher_mi.evaluate import accuracy, check_evaluator, features_and_logits, score_run
from fisher_mi.experiments import DemoConfig, run_demo
from fisher_mi.experiments.compare import compare
from fisher_mi.experiments.sweep import sweep
from fisher_mi.fisher import fisher_diagonal, profile
from fisher_mi.models import build_model, load_model, named_layers, save_model
from fisher_mi.plan import FreezePlan, apply_plan, plan_freeze
from fisher_mi.report import build_report
from fisher_mi.training import TrainConfig, load_init, pretrain_public, train

__all__ = [
    "GAN",
    "DemoConfig",
    "FisherMIError",
    "FreezePlan",
    "Inversion",
    "TrainConfig",
    "__version__",
    "accuracy",
    "apply_plan",
    "build_gan",
    "build_model",
    "build_report",
    "check_evaluator",
    "compare",
    "features_and_logits",
    "fisher_diagonal",
    "invert",
    "load_dataset",
    "load_gan",
    "load_init",
    "load_model",
    "metrics",
    "named_layers",
    "plan_freeze",
    "pretrain_public",
    "profile",
    "run_demo",
    "save_gan",
    "save_model",
    "score_run",
    "sweep",
    "train",
    "train_gan",
]
