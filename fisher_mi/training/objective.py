"""``Objective``: the loss the one training loop minimises, as a plug-in.

The loop (``epoch.EpochRunner``) hands every batch's model output to its objective, in training
and in evaluation alike, and gets a ``BatchLoss`` back: the batch-mean loss (minimised in
training, averaged over the data in evaluation) and the number of hits (the ``accuracy``
columns of ``history.csv``). The kept epoch is chosen on those two measures of the validation
part (``selection``), so an objective also says what "best" means: for ``CrossEntropy`` (the
default) accuracy on the labels and cross-entropy; for ``distill.Distillation`` agreement with
the teacher and KL divergence to it.

An objective is any object with the three methods of ``Objective``: the training-time
defenses (``fisher_mi.defenses``: BiDO, negative label smoothing) plug in the same way,
without a second loop. Its ``record`` is written into ``model.pt`` and ``checkpoint.pt``, and
``--resume`` refuses a run whose record differs (another loss, another teacher). Two methods
are optional, for objectives that need them (every ``Defense`` has both): ``start_epoch``
(a schedule: the loop calls it before each epoch and logs what it returns in that epoch's
``history.csv`` row) and ``release`` (what ``prepare`` attached, such as forward hooks,
removed when training ends, also on an error: ``attached``). A third, ``for_measuring``,
gives the objective the validation and test data are measured with (``measuring``), for an
objective whose loss changes from epoch to epoch (NLS's schedule): the kept epoch is chosen
on the validation loss, which must be the same function in every epoch to compare them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.defenses.base import BatchLoss, top1_hits
from fisher_mi.models.outputs import logits_of


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
        return BatchLoss(F.cross_entropy(logits, y), top1_hits(logits, y))

    def record(self) -> dict[str, Any]:
        """``{"name": "cross_entropy"}``."""
        return {"name": "cross_entropy"}


def epoch_values(objective: Objective, epoch: int, epochs: int) -> dict[str, float]:
    """Call the objective's optional ``start_epoch(epoch, epochs)`` before epoch ``epoch``
    (1-based) of ``epochs``; the values it returns, for the history row ({} without one)."""
    start_epoch = getattr(objective, "start_epoch", None)
    return dict(start_epoch(epoch, epochs)) if start_epoch is not None else {}


def measuring(objective: Objective) -> Objective:
    """The objective's optional ``for_measuring()``: what held-out data are measured with
    (the same in every epoch); the objective itself without one."""
    for_measuring = getattr(objective, "for_measuring", None)
    return for_measuring() if for_measuring is not None else objective


@contextmanager
def attached(objective: Objective, model: nn.Module, device: torch.device) -> Iterator[None]:
    """``objective.prepare(model, device)`` for the block, then its optional ``release()``
    (hooks removed) however the block ends."""
    objective.prepare(model, device)
    try:
        yield
    finally:
        release = getattr(objective, "release", None)
        if release is not None:
            release()
