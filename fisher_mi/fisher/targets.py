"""What the Fisher is taken of: the per-sample loss and Monte-Carlo labels.

The per-sample loss is l_n = -log p(y_n | x_n), the cross-entropy of sample n, of the logits
that ``fisher_mi.models.logits_of`` finds in a model's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
