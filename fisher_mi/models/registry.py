"""Architecture registry: names -> model builders, and ``build_model``.

Each entry says how to build the model and how to read its keyword arguments back from a
state dict (``kwargs_from_state``), which is what lets ``load_model`` recognise a foreign
checkpoint from its keys and shapes alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from fisher_mi.errors import ArchitectureMismatchError, ConfigError
from fisher_mi.models.vib import VIBClassifier
from fisher_mi.registry import Registry


@dataclass(frozen=True)
class ArchSpec:
    """How a model was built: registry name and keyword arguments (saved in checkpoints)."""

    name: str
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class ArchEntry:
    """A registered architecture.

    Attributes:
        name: registry key, as given to ``build_model`` and ``--arch``.
        build: ``build(**kwargs) -> nn.Module``.
        kwargs_from_state: keyword argument -> (state-dict key, dimension) it can be read
            from, e.g. ``{"num_classes": ("fc_layer.weight", 0)}``.
        description: one line for listings.
        hidden_layers: the modules whose outputs are the model's hidden representations,
            one per block in depth order (stage outputs, then the features the classifier
            reads): what BiDO regularises.
    """

    name: str
    build: Callable[..., nn.Module]
    kwargs_from_state: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    description: str = ""
    hidden_layers: tuple[str, ...] = ()

    def kwargs_for(self, state_dict: Mapping[str, Tensor]) -> dict[str, int]:
        """The keyword arguments this state dict implies (those whose key is present)."""
        return {
            kwarg: int(state_dict[key].shape[dim])
            for kwarg, (key, dim) in self.kwargs_from_state.items()
            if key in state_dict and state_dict[key].dim() > dim
        }


ARCHITECTURES: Registry[ArchEntry] = Registry("architecture")

ARCH_ATTRIBUTE = "fisher_mi_arch"
VIB_KWARG = "vib_dim"  # build_model's keyword for MID's VIB head (its code width K)


def register_architecture(
    name: str,
    *,
    kwargs_from_state: Mapping[str, tuple[str, int]] | None = None,
    description: str = "",
    hidden_layers: tuple[str, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class or function decorator that registers a model builder under ``name``."""

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        entry = ArchEntry(name, build, dict(kwargs_from_state or {}), description, hidden_layers)
        ARCHITECTURES.add(name, entry)
        return build

    return decorate


def build_model(arch: str, **arch_kwargs: Any) -> nn.Module:
    """Build a registered architecture; the result remembers how it was built.

    The spec is kept on the model (``model.fisher_mi_arch``) so ``save_model`` can write a
    self-describing checkpoint without being told the architecture again. ``vib_dim=K``
    (any architecture with a linear ``fc_layer``) replaces the classifier with MID's VIB head
    of width K (``vib.VIBClassifier``); being an architecture keyword, it is saved with the
    others, so ``load_model`` rebuilds the head from the file alone.
    """
    entry = ARCHITECTURES.get(arch)
    base_kwargs = {key: value for key, value in arch_kwargs.items() if key != VIB_KWARG}
    try:
        model = entry.build(**base_kwargs)
    except TypeError as err:
        raise ConfigError(f"architecture {arch!r} does not accept {arch_kwargs}: {err}") from None
    if VIB_KWARG in arch_kwargs:
        if isinstance(model, VIBClassifier):
            raise ConfigError(f"architecture {arch!r} has its VIB head already; drop {VIB_KWARG}")
        model = VIBClassifier(model, arch_kwargs[VIB_KWARG])
    setattr(model, ARCH_ATTRIBUTE, ArchSpec(arch, dict(arch_kwargs)))
    return model


def arch_of(model: nn.Module) -> ArchSpec | None:
    """The spec a model was built from, or None for a model built outside fisher_mi."""
    return getattr(model, ARCH_ATTRIBUTE, None)


def require_arch(model: nn.Module, why: str) -> ArchSpec:
    """The spec ``model`` was built from; refuse a model built outside fisher_mi.

    Saving, rebuilding with a new head and checkpointing a run all need to build the model
    again from its name and keyword arguments, which only ``build_model`` records. This is
    the one guard for that, so every caller's message reads the same.

    Args:
        model: the model whose architecture is needed.
        why: what cannot be done without it, completing "so ...", e.g.
            ``"its architecture is unknown"``.

    Returns:
        The model's ``ArchSpec``.

    Raises:
        ConfigError: the model was not built by ``build_model`` or ``load_model``.
    """
    spec = arch_of(model)
    if spec is None:
        raise ConfigError(
            f"{type(model).__name__} was not built by fisher_mi, so {why}; "
            "create it with fisher_mi.build_model(arch, ...) or fisher_mi.load_model(path)"
        )
    return spec


def rebuilt(
    model: nn.Module, *, replaced: tuple[str, ...], change: str, **kwargs: Any
) -> nn.Module:
    """``model`` rebuilt by ``build_model`` with ``kwargs`` changed in its ``arch_kwargs``,
    every tensor but those of the modules ``replaced`` (qualified names) loaded from
    ``model``; on its device, in its train/eval mode. Used to give a model a new head
    (``with_new_head``, MID's VIB head).

    Raises:
        ArchitectureMismatchError: the rebuild changed a tensor outside ``replaced`` (the
            architecture's kwargs do not describe it); ``change`` says what was asked.
    """
    spec = require_arch(model, f"it cannot be rebuilt ({change})")
    fresh = build_model(spec.name, **{**spec.kwargs, **kwargs})

    def kept(key: str) -> bool:
        return not any(key.startswith(module + ".") for module in replaced)

    state = {key: value for key, value in model.state_dict().items() if kept(key)}
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    stray = [key for key in missing if kept(key)] + list(unexpected)
    if stray:
        raise ArchitectureMismatchError(
            f"{change} changed more than {', '.join(replaced)} of {spec.name!r}: "
            f"{', '.join(stray[:3])}; report this architecture"
        )
    return fresh.to(next(model.parameters()).device).train(model.training)
