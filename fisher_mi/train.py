"""Training a classifier: one loop, used by ``fisher-mi demo`` to make a target model.

Mini-batch training of the mean cross-entropy with Adam; every random choice (initial
shuffling order, dropout) flows from ``seed``, and a non-finite loss stops training with a
clear error instead of silently producing a NaN model.
"""

from __future__ import annotations

import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fisher_mi.errors import DataError, NonFiniteError
from fisher_mi.evaluate import accuracy
from fisher_mi.fisher.guards import check_at_least_one
from fisher_mi.fisher.targets import logits_of


def fit(
    model: nn.Module,
    train: Dataset,
    *,
    test: Dataset | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Train ``model`` in place on ``train``; return one history row per epoch.

    Columns: ``epoch, loss, train_accuracy, test_accuracy, seconds`` (``test_accuracy`` is
    NaN without ``test``). Only parameters with ``requires_grad`` are optimised.
    """
    check_at_least_one("epochs", epochs)
    check_at_least_one("batch_size", batch_size)
    if len(train) == 0:  # type: ignore[arg-type]
        raise DataError("the training set is empty; check the data path and the split")
    torch.manual_seed(seed)
    target = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(target)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    loader = DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    history = []
    for epoch in range(1, epochs + 1):
        start, total_loss, seen = time.perf_counter(), 0.0, 0
        model.train()
        for x, y in tqdm(
            loader, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=None if progress else True
        ):
            x, y = x.to(target), y.to(target)
            loss = F.cross_entropy(logits_of(model(x)), y)
            if not torch.isfinite(loss):
                raise NonFiniteError(
                    f"training loss became {loss.item()} in epoch {epoch}; lower the learning rate"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(y)
            seen += len(y)
        history.append(
            {
                "epoch": epoch,
                "loss": total_loss / seen,
                "train_accuracy": accuracy(model, train, device=target),
                "test_accuracy": accuracy(model, test, device=target)
                if test is not None
                else float("nan"),
                "seconds": time.perf_counter() - start,
            }
        )
    model.eval()
    return pd.DataFrame(history)
