"""Training: one loop for every stage of TL-DMI and its baseline.

Train from scratch (the baseline), pre-train on labelled public data and swap in a fresh head
(``pretrain_public``), start from a local pre-trained file (``load_init``), then fine-tune
under a freeze plan (``train(..., plan=...)``), with checkpoints, resume, and ``torchrun``;
distil a surrogate of a target on public data (``train(..., objective=Distillation(target))``).

Modules, one job each: ``config`` (``TrainConfig``, optimiser, schedule), ``split`` (the
validation hold-out), ``init`` (``load_init``), ``epoch`` (one epoch and its measures),
``norm_stats`` (BatchNorm statistics recomputed for the weights reached), ``selection``
(which epoch is kept, and why), ``provenance`` (what a model was trained on and for),
``state`` (checkpoints and outputs), ``resume`` (reading a checkpoint back and checking it is
the same run), ``loop`` (``train``), ``transfer`` (head swap, public pre-training, and
``fit_head``: the new head trained alone before the model is profiled), ``objective`` (the
loss plug-in the loop calls: ``CrossEntropy``), ``distill`` (LOMMA's surrogates:
``Distillation``, ``build_surrogate``).
"""

from fisher_mi.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from fisher_mi.training.distill import Distillation, build_surrogate, distillation_loss
from fisher_mi.training.init import load_init
from fisher_mi.training.loop import TrainResult, train
from fisher_mi.training.objective import BatchLoss, CrossEntropy, Objective
from fisher_mi.training.provenance import ROLES, Provenance
from fisher_mi.training.split import split_validation
from fisher_mi.training.state import CHECKPOINT, COLUMNS, HISTORY, MODEL, PLAN
from fisher_mi.training.transfer import (
    HEAD_EPOCHS,
    HeadFit,
    fit_head,
    head_plan,
    head_prefix,
    pretrain_public,
    with_new_head,
)

__all__ = [
    "CHECKPOINT",
    "COLUMNS",
    "HEAD_EPOCHS",
    "HISTORY",
    "MODEL",
    "OPTIMIZERS",
    "PLAN",
    "ROLES",
    "SCHEDULES",
    "BatchLoss",
    "CrossEntropy",
    "Distillation",
    "HeadFit",
    "Objective",
    "Provenance",
    "TrainConfig",
    "TrainResult",
    "build_surrogate",
    "distillation_loss",
    "fit_head",
    "head_plan",
    "head_prefix",
    "load_init",
    "pretrain_public",
    "split_validation",
    "train",
    "with_new_head",
]
