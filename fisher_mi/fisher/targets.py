"""What the Fisher is taken of: the per-sample loss, and where each row's label comes from.

The per-sample loss is l_n = -log p(y_n | x_n), the cross-entropy of sample n, of the logits
that ``fisher_mi.models.logits_of`` finds in a model's output.

The labels come from a ``LabelSource`` that a backend asks *after its own forward*, given the
detached logits of the rows it is differentiating: the given labels are checked against the
logits' class count there (empirical Fisher), or labels are drawn from p(y|x) = softmax of
those very logits (true Fisher). So ``profile`` needs no forward of its own, and the labels
always belong to the forward the gradients come from. A source is a per-row rule
``pick(logits, payload) -> labels`` plus one payload entry per row (the label itself, or the
uniform number that picks it), so a backend may ask for all rows at once (``hooks``), one row
at a time (``loop``) or per sample inside ``torch.func.vmap`` (``vmap``) and get the same
labels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from fisher_mi.fisher.guards import check_label_format, check_label_range


def per_sample_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of each sample, no reduction: -log softmax(logits)[y]."""
    return F.cross_entropy(logits, labels, reduction="none")


class LabelSource(ABC):
    """A per-row rule turning the logits of a backend's forward into the rows' labels.

    Attributes:
        payload: one entry per row of the batch the backend receives; backends pass the
            entries of the rows they hold to ``pick`` (all, a slice, or vmap's per-sample
            view), so the rule must work row by row.
    """

    def __init__(self, payload: Tensor) -> None:
        self.payload = payload

    @abstractmethod
    def pick(self, logits: Tensor, payload: Tensor) -> Tensor:
        """Labels (rows,) of rows with detached ``logits`` (rows, classes) and ``payload``
        entries (rows,); must be pure tensor arithmetic so it runs under ``vmap``."""


class GivenLabels(LabelSource):
    """The dataset's own labels (empirical Fisher), checked against the model's classes.

    Their format (one integer per row) is checked on construction, before any forward; their
    range against ``logits.shape[-1]`` the first time the backend's logits are known, on all
    rows at once (a static shape and a plain tensor, so this works inside ``vmap`` too).
    """

    def __init__(self, labels: Tensor, split: str | None = None) -> None:
        check_label_format(labels, split)
        super().__init__(labels.long())
        self.split = split
        self._checked_classes: int | None = None

    def pick(self, logits: Tensor, payload: Tensor) -> Tensor:
        """The given labels, once checked to lie in 0..classes-1."""
        classes = logits.shape[-1]
        if self._checked_classes != classes:
            check_label_range(self.payload, classes, self.split)
            self._checked_classes = classes
        return payload


class MonteCarloLabels(LabelSource):
    """Labels drawn from the model, y ~ p(y|x) = softmax(logits), by inverting the CDF.

    Row r's label is the first class c whose cumulative probability exceeds the row's
    uniform number u_r in [0, 1): P(label = c) = p(c|x). Drawing the uniforms beforehand (on
    the CPU, from a seeded generator) rather than calling a sampler on the logits is what
    makes the draw a per-row rule: the same seed then gives the same labels whichever way a
    backend batches its rows, on any device (only a uniform within float rounding of a CDF
    step could land differently, with probability ~1e-16 per draw). Zero-probability classes
    are never drawn; the CDF's last entry may round below 1, so the label is capped at the
    last class.
    """

    def pick(self, logits: Tensor, payload: Tensor) -> Tensor:
        """The inverse CDF of softmax(logits) (in float64) at each row's uniform number."""
        cdf = torch.softmax(logits.to(torch.float64), dim=-1).cumsum(dim=-1)
        below = (cdf <= payload.to(cdf.device).unsqueeze(-1)).sum(dim=-1)
        return below.clamp(max=logits.shape[-1] - 1)


def as_label_source(labels: Tensor | LabelSource) -> LabelSource:
    """A backend's ``labels`` argument as a source: a plain tensor of class indices becomes
    ``GivenLabels`` (checked against the logits of the backend's forward)."""
    return labels if isinstance(labels, LabelSource) else GivenLabels(labels)
