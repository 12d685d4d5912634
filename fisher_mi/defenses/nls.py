"""Negative label smoothing (Struppek et al., "Be Careful What You Smooth For: Label Smoothing
Can Be a Privacy Shield but Also a Catalyst for Model Inversion Attacks", ICLR 2024).

Smoothing the labels with a *negative* factor pushes the model's non-target probabilities
down, which leaves an attacker's optimisation flat gradients away from the decision
boundary. Our own loss, because ``F.cross_entropy(..., label_smoothing=-0.05)`` in torch 2.13
silently returns the unsmoothed loss:

    l_n = (1 - alpha) (-log p(y_n | x_n)) + alpha * (1/C) sum_c (-log p(c | x_n)),

the batch mean of ``l_n``; for ``alpha > 0`` it is ``F.cross_entropy``'s label smoothing.
The published runs train with plain cross-entropy first and bring the smoothing in late;
scaled to a run of E epochs, ``alpha_e = alpha * clip((e - E/2) / (E/4), 0, 1)`` for epoch e
(1-based): 0 until half the epochs, linearly to ``alpha`` by three quarters, then ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from fisher_mi.defenses.base import (
    BatchLoss,
    Defense,
    check_number,
    register_defense,
    top1_hits,
)
from fisher_mi.errors import ConfigError
from fisher_mi.models.outputs import logits_of

ALPHA = -0.05  # the paper's smoothing factor for its CelebA/FaceScrub targets
SCHEDULE_START = 0.5  # share of the epochs trained with alpha = 0
SCHEDULE_END = 0.75  # share of the epochs by which alpha is reached


def smoothed_cross_entropy(logits: Tensor, y: Tensor, alpha: float) -> Tensor:
    """``(1/B) sum_n [(1 - alpha)(-log p_{y_n}) + alpha mean_c(-log p_c)]`` in float32 (the
    module docstring); any real ``alpha``, negative included."""
    log_p = F.log_softmax(logits.float(), dim=1)
    label = -log_p.gather(1, y[:, None]).squeeze(1)
    uniform = -log_p.mean(dim=1)
    return ((1 - alpha) * label + alpha * uniform).mean()


def scheduled_alpha(alpha: float, epoch: int, epochs: int) -> float:
    """``alpha * clip((epoch - start) / (end - start), 0, 1)`` with ``start = E/2`` and
    ``end = 3E/4`` epochs of ``E = epochs`` (the published schedule scaled to the run)."""
    start, end = SCHEDULE_START * epochs, SCHEDULE_END * epochs
    share = min(max((epoch - start) / (end - start), 0.0), 1.0)
    return alpha * share if share > 0 else 0.0  # not -0.0 in history.csv


@register_defense("nls")
@dataclass(eq=False)
class NegativeLabelSmoothing(Defense):
    """Label smoothing with ``alpha`` (negative: the defense) on the schedule of the module
    docstring; a hit is a top-1 prediction equal to the label.

    Attributes:
        alpha: the smoothing factor reached at three quarters of the run (default -0.05).
        current: the factor of the epoch under way (``start_epoch`` sets it; logged in
            ``history.csv`` as ``alpha``).
    """

    alpha: float = ALPHA
    current: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        check_number(self.name, "alpha", self.alpha)
        if self.alpha >= 1:
            raise ConfigError(f"defense 'nls' parameter alpha must be below 1, got {self.alpha!r}")

    def start_epoch(self, epoch: int, epochs: int) -> dict[str, float]:
        """Set this epoch's factor; ``{"alpha": factor}`` for the history row."""
        self.current = scheduled_alpha(self.alpha, epoch, epochs)
        return {"alpha": self.current}

    def for_measuring(self) -> NegativeLabelSmoothing:
        """A copy at the run's final factor ``alpha``, for the held-out data: the validation
        loss that breaks accuracy ties between epochs is then one function in every epoch
        (at the scheduled factor, the late epochs' loss is lower by construction when alpha
        < 0, which would favour them); ``history.csv``'s validation_loss is this one."""
        measured = replace(self)
        measured.current = self.alpha
        return measured

    def __call__(self, output: Any, x: Tensor, y: Tensor) -> BatchLoss:
        """The smoothed cross-entropy at the current factor, and top-1 hits."""
        logits = logits_of(output)
        return BatchLoss(smoothed_cross_entropy(logits, y, self.current), top1_hits(logits, y))
