"""The images a prior trains on, and the epoch's batches.

The target (kedmi, plgmi) is run once over the public data, in eval mode and without
gradients (``target_logits``): KEDMI's discriminator then reads the target's soft labels of
each public image from that table, and PLG-MI's pseudo-labels are the top-n public images of
each class column of its softmax (``top_n_selection``). The reference code runs the target on
each batch again (KEDMI) or copies the chosen files into class folders (PLG-MI); one pass of
a frozen eval-mode target gives the same numbers.

Batches: each epoch draws ``streams`` independent permutations of the training images from
the epoch's generator (KEDMI reads three independently shuffled loaders: labelled,
unlabelled for D, unlabelled for G), in batches of ``batch_size``, the last incomplete batch
dropped (``drop_last=True`` as in the references).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from fisher_mi.errors import ConfigError, DataError
from fisher_mi.models.outputs import logits_of


@torch.no_grad()
def target_logits(
    target: nn.Module,
    public: Dataset,
    *,
    batch_size: int,
    device: torch.device,
    num_workers: int = 0,
) -> Tensor:
    """The target's logits on every public image, in dataset order (N x K, float32, CPU).

    The caller holds the target in eval mode (``frozen_eval``).
    """
    parts = [
        logits_of(target(x.to(device))).float().cpu()
        for x, _ in DataLoader(public, batch_size=batch_size, num_workers=num_workers)
    ]
    return torch.cat(parts)


def top_n_selection(probabilities: Tensor, top_n: int) -> Tensor:
    """PLG-MI's top-n selection: per class, the ``top_n`` images of highest probability.

    For each class column k of the N x K softmax, the indices of its ``top_n`` largest
    entries, highest first. An image may be chosen for several classes, as in the reference
    (``top_n_selection.py`` keeps a priority queue per class column); with fewer than
    ``top_n`` images, all of them.

    Args:
        probabilities: N x K target softmax on the public images.
        top_n: images kept per class.

    Returns:
        K x min(top_n, N) long indices into the public images.
    """
    if probabilities.dim() != 2 or probabilities.shape[0] == 0:
        raise DataError(
            f"pseudo-labelling needs N x K probabilities of N >= 1 images, got "
            f"{tuple(probabilities.shape)}; give non-empty public data"
        )
    keep = min(top_n, probabilities.shape[0])
    return probabilities.topk(keep, dim=0).indices.t().contiguous()


class RelabelledImages(Dataset[tuple[Tensor, Tensor]]):
    """Images of another dataset, picked by index, each with a label of ours: a class
    (PLG-MI's pseudo-labels) or a row of soft-label logits (KEDMI)."""

    def __init__(self, images: Dataset, indices: Tensor, labels: Tensor) -> None:
        if len(indices) != len(labels):
            raise DataError(f"{len(indices)} image indices but {len(labels)} labels")
        self.images = images
        self.indices = indices.tolist()
        self.labels = labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[Tensor, Tensor]:
        return self.images[self.indices[item]][0], self.labels[item]


def pseudo_labelled(public: Dataset, logits: Tensor, top_n: int) -> RelabelledImages:
    """PLG-MI's training data: the top-n public images of each class, labelled by it."""
    chosen = top_n_selection(F.softmax(logits, dim=1), top_n)
    classes = torch.arange(chosen.shape[0]).repeat_interleave(chosen.shape[1])
    return RelabelledImages(public, chosen.flatten(), classes)


def soft_labelled(public: Dataset, logits: Tensor) -> RelabelledImages:
    """KEDMI's training data: every public image with the target's logits on it."""
    return RelabelledImages(public, torch.arange(len(logits)), logits)


def check_batches(data: Dataset, batch_size: int) -> None:
    """Refuse data that gives no full batch (the last incomplete batch is dropped)."""
    if len(data) < batch_size:
        raise ConfigError(
            f"the prior trains on {len(data)} images, fewer than one batch of {batch_size}; "
            "lower --batch-size or give more public data"
        )


def epoch_batches(
    data: Dataset,
    *,
    streams: int,
    batch_size: int,
    generator: torch.Generator,
    num_workers: int = 0,
) -> Iterator[tuple[tuple[Tensor, Tensor], ...]]:
    """The epoch's batches: a tuple of one ``(x, labels)`` batch per stream, each stream a
    permutation of ``data`` drawn from ``generator``, incomplete batches dropped."""
    loaders = []
    for _ in range(streams):
        order = torch.randperm(len(data), generator=generator).tolist()
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        loaders.append(
            DataLoader(
                data,
                batch_size=batch_size,
                sampler=order,
                drop_last=True,
                num_workers=num_workers,
                generator=torch.Generator().manual_seed(seed),  # workers' seeds, not global
            )
        )
    return zip(*loaders, strict=True)
