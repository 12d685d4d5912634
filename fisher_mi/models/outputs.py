"""The one output convention: where the logits are in a model's output.

Models that return a tuple ``(features, logits)`` (the model-inversion literature's
convention) are handled: the logits are the last element.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from fisher_mi.errors import ConfigError


def logits_of(output: Any) -> Tensor:
    """The logits in a model's output: the output itself, or the last element of a tuple."""
    if isinstance(output, (tuple, list)):
        if not output:
            raise ConfigError("the model returned an empty tuple; it must return logits last")
        output = output[-1]
    if not isinstance(output, Tensor) or output.dim() != 2:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ConfigError(
            "the model's output (last element) must be logits of shape (batch, classes), "
            f"got {shape}"
        )
    return output
