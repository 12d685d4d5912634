"""Transfer learning stages: public pre-training, a fresh classifier head for the private
classes on top of the pre-trained feature extractor (TL-DMI's first step), and fitting that
head alone before the model is profiled and planned.

Why fit the head first: a freshly initialised head gives near-uniform, seed-dependent
predictions, and every per-sample gradient flows back through it, so the Fisher profile of
the pre-trained model, and the cutoff planned from it, would depend on the head's random
seed rather than on the features. Training only the head on the private training part (a
linear probe) for a few epochs makes the profile one of the pre-trained features under a head
that has learnt the private classes (``HEAD_EPOCHS`` gives the measurement;
``tests/test_train_head.py`` checks that two head seeds differ far less after the fit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from fisher_mi.errors import ConfigError
from fisher_mi.models.layers import named_layers
from fisher_mi.models.registry import ARCHITECTURES, rebuilt, require_arch
from fisher_mi.models.vib import HEAD as VIB_HEAD
from fisher_mi.models.vib import VIBClassifier
from fisher_mi.plan import FreezePlan, apply_plan, prefix_plan
from fisher_mi.training.config import TrainConfig
from fisher_mi.training.loop import TrainResult, train
from fisher_mi.training.provenance import Provenance
from fisher_mi.training.split import split_validation

HEAD_EPOCHS = 5
"""Epochs of head-only training before a pre-trained model is profiled (``fit_head``). A
linear probe on fixed features converges within a few passes. Measured on the bundled mnist
(``mcnn`` pre-trained 10 epochs on public, SGD lr 0.01, cosine; two head seeds): hold-out
accuracy 97.0% and 96.5% after 5 epochs, 98.0% and 97.0% after 20 (at four times the cost);
both seeds plan cutoff 2 with ``mass`` after 5 or 20 epochs, where the unfitted heads gave
cutoffs 0 and 2."""


def head_prefix(arch: str) -> str:
    """The classifier head's module name, e.g. ``fc_layer``: the module of the state-dict key
    that the architecture entry reads ``num_classes`` from."""
    entry = ARCHITECTURES.get(arch)
    source = entry.kwargs_from_state.get("num_classes")
    if source is None:
        raise ConfigError(
            f"architecture {arch!r} does not say where its classifier head is "
            "(kwargs_from_state has no num_classes), so its head cannot be replaced"
        )
    return source[0].rpartition(".")[0]


def with_new_head(model: nn.Module, num_classes: int) -> nn.Module:
    """A copy of ``model`` with a freshly initialised head for ``num_classes`` classes.

    The model is rebuilt with ``build_model(arch, **arch_kwargs, num_classes=num_classes)``
    and every tensor except the head's is loaded strictly from ``model``, so the whole
    feature extractor (weights and BatchNorm statistics) carries over. The copy is on the
    model's device, in its train/eval mode.
    """
    spec = require_arch(model, "it cannot be rebuilt with a new head")
    return rebuilt(
        model,
        replaced=(head_prefix(spec.name),),
        change=f"a new head for {num_classes} classes",
        num_classes=num_classes,
    )


def pretrain_public(
    model: nn.Module,
    public: Dataset,
    *,
    num_classes: int,
    config: TrainConfig,
    provenance: Provenance | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> tuple[nn.Module, TrainResult]:
    """Train every layer of ``model`` on labelled public data (its own head, best epoch on a
    hold-out of the public data), then give it a fresh head for ``num_classes`` private
    classes. Returns the new model and the pre-training result.

    ``provenance`` describes the pre-trained model written to ``out`` (see ``train``); its
    ``class_names`` default to the public data's, the classes of the pre-training head.
    """
    result = train(
        model,
        public,
        config=config,
        provenance=provenance,
        out=out,
        resume=resume,
        progress=progress,
    )
    return with_new_head(model, num_classes), result


@dataclass(frozen=True)
class HeadFit:
    """What ``fit_head`` did, as recorded in ``fisher.json`` (``to_dict``).

    Attributes:
        epochs: head-only epochs (0: the head was left as initialised).
        lr: their learning rate.
        train_samples: the private training part it was fitted on (the hold-out left out).
        train_accuracy: running accuracy over the last epoch's batches (None: not fitted).
        holdout_samples: the validation hold-out of the run, never trained on.
        holdout_accuracy: the fitted head's accuracy there, measured, never used to choose.
    """

    epochs: int
    lr: float | None = None
    train_samples: int = 0
    train_accuracy: float | None = None
    holdout_samples: int = 0
    holdout_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as plain values."""
        return asdict(self)


def head_modules(model: nn.Module) -> tuple[str, ...]:
    """The classifier head's module names: ``head_prefix`` of the architecture, and for a
    model with MID's VIB head both of its layers (``st_layer``, ``fc_layer``), so that a head
    fit never leaves the code's statistics layer at its random start."""
    spec = require_arch(model, "its classifier head cannot be found")
    return VIB_HEAD if isinstance(model, VIBClassifier) else (head_prefix(spec.name),)


def head_plan(model: nn.Module) -> FreezePlan:
    """A plan that trains only the classifier head (``head_modules``), which must be the last
    layers of ``named_layers``; every other layer, BatchNorm statistics included, is frozen."""
    spec = require_arch(model, "its classifier head cannot be found")
    heads = head_modules(model)
    names = [layer.name for layer in named_layers(model)]
    inside = [any(n == h or n.startswith(f"{h}.") for h in heads) for n in names]
    if not any(inside) or inside != sorted(inside):
        head = ", ".join(heads)
        raise ConfigError(
            f"the head {head!r} of {spec.name!r} is not the last layers of the model, so it "
            "cannot be trained alone; pass head_epochs=0"
        )
    return prefix_plan(model, inside.index(True))


def fit_head(
    model: nn.Module,
    private_train: Dataset,
    *,
    config: TrainConfig,
    epochs: int = HEAD_EPOCHS,
    lr: float | None = None,
    progress: bool = False,
) -> HeadFit:
    """Train only the head of ``model`` (in place) on the training part of ``private_train``.

    The part is the one ``train(model, private_train, config=config)`` trains on: the same
    seeded hold-out (``config.validation_fraction``, ``config.seed``) is left out, so the run
    that follows still selects its epoch on images nothing has been fitted to. The head is
    trained for ``epochs`` epochs at ``lr`` (default ``config.lr``) with the run's other
    options, under ``head_plan`` (the feature extractor and its BatchNorm statistics are
    untouched; a VIB head is trained whole), and the last epoch is kept. Afterwards every
    layer is trainable again and the model is in its original train/eval mode, as
    ``with_new_head`` left it.
    """
    fit_part, holdout = split_validation(
        private_train, config.validation_fraction, seed=config.seed
    )
    stage = replace(
        config, epochs=epochs, lr=config.lr if lr is None else lr, validation_fraction=0.0
    )
    mode = model.training
    result = train(
        model, fit_part, config=stage, test=holdout, plan=head_plan(model), progress=progress
    )
    apply_plan(model, prefix_plan(model)).train(mode)
    return HeadFit(
        epochs=epochs,
        lr=stage.lr,
        train_samples=len(fit_part),
        train_accuracy=float(result.history["train_accuracy"].iloc[-1]),
        holdout_samples=len(holdout) if holdout is not None else 0,
        holdout_accuracy=result.test_accuracy,
    )
