"""``Objective``: the loss the one training loop minimises, as a plug-in.

The loop (``epoch.EpochRunner``) hands every batch's model output to its objective, in training
and in evaluation alike, and gets a ``BatchLoss`` back: the batch-mean loss (minimised in
training, averaged over the data in evaluation) and the number of hits (the ``accuracy``
columns of ``history.csv``). The kept epoch is chosen on those two measures of the validation
part (``selection``), so an objective also says what "best" means: for ``CrossEntropy`` (the
default) accuracy on the labels and cross-entropy; for ``distill.Distillation`` agreement with
the teacher and KL divergence to it.

An objective is any object with the three methods of ``Objective``: training-time defenses
(MID, BiDO, label smoothing) plug in the same way, without a second loop. Its ``record`` is
written into ``model.pt`` and ``checkpoint.pt``, and ``--resume`` refuses a run whose record
differs (another loss, another teacher).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.models.outputs import logits_of


@dataclass(frozen=True)
class BatchLoss:
    """What an objective makes of one batch.

    Attributes:
        loss: scalar, the batch mean (what the optimiser minimises; evaluation sums
            ``loss * batch size`` over the data).
        hits: scalar count of the batch's samples counted as correct.
    """

    loss: Tensor
    hits: Tensor


class Objective(Protocol):
    """The loss of a training run: called on every batch, training and evaluation alike."""

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Check ``model`` (the one trained) fits, and move what the objective holds to
        ``device``; ``train`` calls it once, before the first step."""

    def __call__(self, output: Any, x: Tensor, y: Tensor) -> BatchLoss:
        """The batch's loss and hits from the model's raw ``output`` (logits, or a tuple with
        logits last), its inputs ``x`` and labels ``y``."""

    def record(self) -> dict[str, Any]:
        """Plain values naming the objective and its settings: written into the checkpoints
        and compared on resume."""


@dataclass(frozen=True)
class CrossEntropy:
    """The mean cross-entropy of the labels, ``(1/B) sum_n -log p(y_n | x_n)``; a hit is a
    top-1 prediction equal to the label. The default objective: a classifier of its data."""

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Nothing to check or move: the labels come with the batch."""

    def __call__(self, output: Any, x: Tensor, y: Tensor) -> BatchLoss:
        """Mean cross-entropy (in float32, also under mixed precision) and top-1 hits."""
        logits = logits_of(output).float()
        hits = (logits.detach().argmax(dim=1) == y).sum()
        return BatchLoss(F.cross_entropy(logits, y), hits)

    def record(self) -> dict[str, Any]:
        """``{"name": "cross_entropy"}``."""
        return {"name": "cross_entropy"}
