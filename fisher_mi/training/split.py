"""The validation hold-out: the part of the private training data that picks the best epoch.

Choosing the epoch on the test split and then reporting that split's accuracy reports the
maximum over epochs of a noisy number, an optimistic bias (the released TL-DMI code did this).
Here the best epoch is chosen on a hold-out carved from the *training* data; the private-test
split is only ever measured and reported.

The hold-out is stratified and seeded: within each class, the samples are ordered by a
permutation drawn from a generator seeded with ``seed`` and the first
``round(fraction * n_class)`` are held out, so every class is represented in proportion and the
same seed gives the same split (on every machine, and again on ``--resume``).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset

from fisher_mi.errors import DataError


def labels_of(dataset: Dataset) -> torch.Tensor:
    """All labels of a map-style dataset as int64, read from ``dataset.labels`` when it has
    them (every fisher_mi dataset, and subsets of one), else item by item."""
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, torch.Tensor) and labels.shape == (len(dataset),):  # type: ignore[arg-type]
        return labels.long()
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)  # type: ignore[arg-type]


def split_validation(
    dataset: Dataset, fraction: float, *, seed: int
) -> tuple[Subset, Subset | None]:
    """``(train, validation)`` subsets of ``dataset``: disjoint, covering it, indices sorted.

    ``fraction == 0`` gives ``(all of it, None)``. A class with n samples gives
    ``round(fraction * n)`` of them to validation, but never all of them.
    """
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise DataError("the training set is empty; check the data path and the split")
    if fraction == 0:
        return Subset(dataset, list(range(size))), None
    labels = labels_of(dataset)
    generator = torch.Generator().manual_seed(seed)
    held: list[int] = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        order = members[torch.randperm(members.numel(), generator=generator)]
        count = min(round(fraction * members.numel()), members.numel() - 1)
        held += order[:count].tolist()
    if not held:
        raise DataError(
            f"a validation fraction of {fraction} holds out no sample of {size}; "
            "raise validation_fraction or pass 0 to keep the last epoch"
        )
    validation = sorted(held)
    chosen = set(validation)
    train = [i for i in range(size) if i not in chosen]
    return Subset(dataset, train), Subset(dataset, validation)
