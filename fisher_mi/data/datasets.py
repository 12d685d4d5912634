"""The Dataset kinds every loader returns: images held in memory, and image files on disk.

Both are :class:`LabelledDataset` subclasses: they yield ``(x, y)`` with ``x`` a float32
``C x H x W`` tensor in [0, 1] and ``y`` a 0-d int64 tensor (the default collate stacks it into
the ``(N,)`` labels cross-entropy expects), and both carry ``num_classes``, ``class_names`` and
``labels`` (all labels as an int64 tensor, read without decoding any image: per-class counts
and samplers need them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fisher_mi.data.images import (
    Box,
    CentreCrop,
    check_channels,
    check_size,
    image_to_tensor,
    open_image,
)
from fisher_mi.errors import DataError


class LabelledDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """What every loader returns: ``(x, y)`` items plus the labels and class names.

    Args:
        labels: int64 tensor ``(N,)``, one label per item, in ``[0, len(class_names))``.
        class_names: the name of each class, indexed by label.

    Raises:
        DataError: a label outside ``[0, len(class_names))`` (cross-entropy would fail far
            from here).
    """

    def __init__(self, labels: torch.Tensor, class_names: Sequence[str]) -> None:
        self.labels = labels
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise DataError(
                f"{type(self).__name__} has labels outside [0, {self.num_classes}); "
                "give one class name per label"
            )

    def __len__(self) -> int:
        return self.labels.shape[0]


class ImageTensorDataset(LabelledDataset):
    """Images already decoded into one tensor (bundled data).

    Args:
        images: float32 tensor ``(N, C, H, W)`` with values in [0, 1].
        labels: int64 tensor ``(N,)`` with values in ``[0, len(class_names))``.
        class_names: the name of each class, indexed by label.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, *, class_names: Sequence[str]
    ) -> None:
        if images.dtype != torch.float32 or images.dim() != 4:
            raise DataError(
                f"images must be a float32 (N, C, H, W) tensor, got {images.dtype} "
                f"{tuple(images.shape)}; convert with .float() and add the channel axis"
            )
        if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
            raise DataError(
                f"labels must be an int64 ({images.shape[0]},) tensor, got {labels.dtype} "
                f"{tuple(labels.shape)}; give one integer label per image"
            )
        super().__init__(labels, class_names)
        self.images = images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class ImageFileDataset(LabelledDataset):
    """Image files decoded lazily, one per ``__getitem__``, through :func:`image_to_tensor`.

    Files are recognised by content (:func:`open_image`); an unreadable file raises
    :class:`DataError` naming its path when its item is read.

    Args:
        samples: ``(path, label)`` pairs.
        class_names: the name of each class, indexed by label.
        size: output size (int square or ``(height, width)``), None keeps each file's size.
        channels: 1 (grey), 3 (RGB) or None (grey stays grey, the rest becomes RGB).
        crop: optional box ``(left, upper, right, lower)``, or a :class:`CentreCrop` sized from
            each image, applied before resizing.
        base_size: optional size every image is resized to before ``crop`` (FaceScrub's crop
            is defined on a 64 x 64 base).
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        *,
        class_names: Sequence[str],
        size: int | tuple[int, int] | None,
        channels: int | None,
        crop: Box | CentreCrop | None = None,
        base_size: int | tuple[int, int] | None = None,
    ) -> None:
        self.samples = [
            (path if isinstance(path, Path) else Path(path), int(label)) for path, label in samples
        ]
        labels = torch.tensor([label for _, label in self.samples], dtype=torch.int64)
        super().__init__(labels, class_names)
        self.size = check_size(size)
        self.channels = check_channels(channels)
        self.crop = crop
        self.base_size = check_size(base_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.samples[index][0]
        image = open_image(path)  # its errors name the path already
        try:
            x = image_to_tensor(
                image,
                size=self.size,
                channels=self.channels,
                crop=self.crop,
                base_size=self.base_size,
            )
        except DataError as err:  # a crop box that does not fit this file
            raise DataError(f"{path}: {err}") from err
        return x, self.labels[index]
