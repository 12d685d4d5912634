"""What the Fisher is taken of: logits, the per-sample loss, and Monte-Carlo labels.

The per-sample loss is l_n = -log p(y_n | x_n), the cross-entropy of sample n. Models that
return a tuple ``(features, logits)`` (the model-inversion literature's convention) are
handled: the logits are the last element.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
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


def per_sample_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of each sample, no reduction: -log softmax(logits)[y]."""
    return F.cross_entropy(logits, labels, reduction="none")


def sample_labels(logits: Tensor, draws: int, generator: torch.Generator) -> Tensor:
    """Draw ``draws`` labels per row from p(y|x) = softmax(logits), shape (batch, draws).

    Sampling happens on the CPU with ``generator`` so that the same seed gives the same labels
    on every device and with every backend.
    """
    probabilities = torch.softmax(logits.detach().to("cpu", torch.float64), dim=1)
    return torch.multinomial(probabilities, draws, replacement=True, generator=generator)
