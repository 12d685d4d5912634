"""Transfer learning stages: public pre-training, and a fresh classifier head for the private
classes on top of a pre-trained feature extractor (TL-DMI's first step)."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torch.utils.data import Dataset

from fisher_mi.errors import ArchitectureMismatchError, ConfigError
from fisher_mi.models.registry import ARCHITECTURES, build_model, require_arch
from fisher_mi.plan.table import few
from fisher_mi.training.config import TrainConfig
from fisher_mi.training.loop import TrainResult, train
from fisher_mi.training.provenance import Provenance


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
    head = head_prefix(spec.name) + "."
    fresh = build_model(spec.name, **{**spec.kwargs, "num_classes": num_classes})
    kept = {key: value for key, value in model.state_dict().items() if not key.startswith(head)}
    missing, unexpected = fresh.load_state_dict(kept, strict=False)
    stray = [key for key in missing if not key.startswith(head)] + list(unexpected)
    if stray:
        raise ArchitectureMismatchError(
            f"rebuilding {spec.name!r} with {num_classes} classes changed more than its head "
            f"{head[:-1]!r}: {few(stray, 3)}; report this architecture's kwargs_from_state"
        )
    device = next(model.parameters()).device
    return fresh.to(device).train(model.training)


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
