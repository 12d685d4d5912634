"""The one definition of "a layer" used everywhere in fisher_mi.

A layer is a module that directly owns parameters (``module._parameters``, not its
children's), taken in ``named_modules()`` order and named by its qualified name
(``feature.0``, ``fc_layer``). ``depth`` is its 0-based index in that order. Frozen parameters
(``requires_grad=False``) still belong to their layer: where the private information lives is
exactly the question when deciding what to freeze. A parameter shared by several modules
belongs to the first one that owns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

ROOT_LAYER_NAME = "(root)"


@dataclass(frozen=True)
class LayerInfo:
    """One layer: its name, module, depth, class name and parameters.

    ``param_names`` are qualified names as in ``model.named_parameters()``, so they index a
    ``functional_call`` parameter dict or a state dict directly.
    """

    name: str
    module: nn.Module = field(compare=False, repr=False)
    depth: int
    kind: str
    param_names: tuple[str, ...]
    n_params: int

    @property
    def trainable(self) -> bool:
        """True when any of the layer's parameters has ``requires_grad``."""
        return any(p.requires_grad for p in self.module.parameters(recurse=False))


def named_layers(model: nn.Module) -> list[LayerInfo]:
    """List the layers of ``model`` in depth order (see the module docstring)."""
    seen: set[int] = set()
    layers: list[LayerInfo] = []
    for module_name, module in model.named_modules():
        owned = [
            (local, param)
            for local, param in module.named_parameters(recurse=False)
            if id(param) not in seen
        ]
        if not owned:
            continue
        seen.update(id(param) for _, param in owned)
        prefix = f"{module_name}." if module_name else ""
        layers.append(
            LayerInfo(
                name=module_name or ROOT_LAYER_NAME,
                module=module,
                depth=len(layers),
                kind=type(module).__name__,
                param_names=tuple(prefix + local for local, _ in owned),
                n_params=sum(param.numel() for _, param in owned),
            )
        )
    return layers
