"""``apply_plan``: set ``requires_grad`` by layer name and keep frozen BatchNorm statistics fixed.

Freezing a layer's parameters is not enough when it is a normalisation layer with running
statistics: in ``model.train()`` a BatchNorm layer normalises with batch statistics and
overwrites its running mean and variance with the private data's, so a "frozen" prefix would
still move (and still encode the private data). Research code forgets this easily, because the
training loop calls ``model.train()`` after freezing. So instead of asking every loop to put
those layers back into eval mode, ``apply_plan`` gives each frozen normalisation module its
own ``train`` method that always selects eval mode (an instance attribute shadowing
``nn.Module.train``; ``nn.Module.train`` reaches children through their ``train``, so
``model.train()`` on any ancestor respects it). Nothing else changes: the module keeps its
class (``named_layers`` still reports ``BatchNorm2d``), its state dict and its hooks; a
deep copy keeps the behaviour; applying a plan with ``bn_stats="update"`` (or one that
trains the layer) removes it again.

A normalisation module is any module with a ``running_mean`` tensor (BatchNorm, SyncBatchNorm,
InstanceNorm with ``track_running_stats``). One without affine parameters owns no parameters,
so it is not a layer; it counts as frozen when it comes before the first trained layer in
``named_modules()`` order.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from fisher_mi.errors import ConfigError
from fisher_mi.models.layers import LayerInfo, named_layers
from fisher_mi.plan.freeze_plan import FreezePlan
from fisher_mi.plan.table import few

REMAKE = "make the plan from this model's Fisher table"


def apply_plan(model: nn.Module, plan: FreezePlan) -> nn.Module:
    """Freeze ``plan.frozen`` and unfreeze ``plan.trained`` in ``model``; return the model.

    Every parameter of a trained layer gets ``requires_grad=True``, of a frozen layer
    ``False``. The plan must name exactly the model's layers, in order (a plan is made for
    one model). With ``plan.bn_stats == "frozen"`` normalisation modules in the frozen
    prefix are put in eval mode and stay there under ``model.train()``, so their running
    statistics do not change during fine-tuning (see the module docstring).
    """
    if not isinstance(plan, FreezePlan):
        raise ConfigError(f"plan must be a FreezePlan, got {type(plan).__name__}")
    layers = named_layers(model)
    _check_layers([layer.name for layer in layers], plan)
    trained = set(plan.trained)
    parameters = dict(model.named_parameters())
    for layer in layers:
        for name in layer.param_names:
            parameters[name].requires_grad_(layer.name in trained)
    for module, frozen in _norm_modules(model, layers, plan):
        if frozen and plan.bn_stats == "frozen":
            _hold_eval(module)
        else:
            _release(module, model.training)
    return model


def frozen_norm_modules(model: nn.Module) -> list[str]:
    """Names of the modules ``apply_plan`` holds in eval mode (their statistics are fixed)."""
    return [name for name, module in model.named_modules() if _is_held(module)]


def _check_layers(names: list[str], plan: FreezePlan) -> None:
    known = set(names)
    unknown = [name for name in plan.layers if name not in known]
    if unknown:
        raise ConfigError(
            f"the plan names layers the model does not have: {few(unknown, 3)}; {REMAKE}"
        )
    listed = set(plan.layers)
    missing = [name for name in names if name not in listed]
    if missing:
        raise ConfigError(
            f"the model has layers the plan does not mention: {few(missing, 3)}; {REMAKE}"
        )
    if list(plan.layers) != names:
        depth = next(i for i, (a, b) in enumerate(zip(plan.layers, names, strict=True)) if a != b)
        raise ConfigError(
            f"the plan orders the layers differently from the model (depth {depth}: plan "
            f"{plan.layers[depth]!r}, model {names[depth]!r}); {REMAKE}"
        )


def _norm_modules(
    model: nn.Module, layers: list[LayerInfo], plan: FreezePlan
) -> list[tuple[nn.Module, bool]]:
    """Each module with running statistics, and whether it lies in the frozen prefix."""
    first_trained = next(layer.module for layer in layers if layer.name == plan.trained[0])
    found, reached = [], False
    for module in model.modules():
        reached = reached or module is first_trained
        if isinstance(getattr(module, "running_mean", None), torch.Tensor):
            found.append((module, not reached))
    return found


def _train_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    """``train`` of a frozen normalisation module: whatever ``mode``, select eval mode, so the
    running statistics are used, not re-estimated from the batch."""
    return nn.Module.train(self, False)


def _is_held(module: nn.Module) -> bool:
    method = module.__dict__.get("train")
    return getattr(method, "__func__", None) is _train_in_eval


def _hold_eval(module: nn.Module) -> None:
    if not _is_held(module):
        module.train = types.MethodType(_train_in_eval, module)  # type: ignore[method-assign]
    module.train(False)


def _release(module: nn.Module, mode: bool) -> None:
    """Give the module back its class's ``train`` and the model's mode."""
    if _is_held(module):
        del module.train
        module.train(mode)
