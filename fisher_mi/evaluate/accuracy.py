"""Evaluation of classifiers: natural (top-k) accuracy on a labelled dataset."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fisher_mi.errors import DataError
from fisher_mi.models.outputs import logits_of


@torch.no_grad()
def accuracy(
    model: nn.Module,
    data: Dataset,
    *,
    top_k: int = 1,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> float:
    """Fraction of samples whose label is among the model's ``top_k`` classes (eval mode).

    The model's train/eval mode is restored afterwards.
    """
    if len(data) == 0:  # type: ignore[arg-type]
        raise DataError("cannot measure accuracy on an empty dataset; check the split")
    target = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    hits = total = 0
    try:
        for x, y in DataLoader(data, batch_size=batch_size):
            logits = logits_of(model(x.to(target)))
            top = logits.topk(min(top_k, logits.shape[1]), dim=1).indices.cpu()
            hits += int((top == y.view(-1, 1)).any(dim=1).sum())
            total += len(y)
    finally:
        model.train(was_training)
    return hits / total
