"""The dataset registry and :func:`load_dataset`, the one way a dataset spec becomes a Dataset.

A spec is ``NAME`` for bundled data (``mnist``, ``digits``) or ``NAME:ROOT`` for data on disk
(``folder:/data/faces``); only the first colon separates, so ROOT may hold colons. Each loader
module registers a :class:`DatasetEntry` in :data:`DATASETS` (:func:`register_dataset`) when
``fisher_mi.data`` is imported. Everything a loader need not repeat is checked here once: the
name, whether a root is needed, that the root exists, the split name, the options
(``image_size``, ``channels`` and the dataset's own, e.g. CelebA's ``private_identities``), and
that the split is not empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fisher_mi.data.datasets import LabelledDataset
from fisher_mi.data.images import check_channels, check_size
from fisher_mi.errors import ConfigError, DataError
from fisher_mi.registry import Registry

SPLITS = ("private", "private-test", "public")
"""The MI literature's splits: private (train) identities, their held-out images, and the
attacker's public auxiliary identities (disjoint from the private ones)."""


class DatasetLoader(Protocol):
    """Builds one split of a dataset; ``root`` is None for bundled data.

    A loader may take further keyword options, each with a default; it names them in
    :attr:`DatasetEntry.options` and :func:`load_dataset` passes only those.
    """

    def __call__(
        self, root: Path | None, split: str, *, image_size: int | None, channels: int | None
    ) -> LabelledDataset:
        """The ``split`` under ``root``; ``image_size``/``channels`` None mean its defaults."""


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset.

    Attributes:
        name: the NAME part of a spec.
        load: the loader; receives a root that exists (or None) and a valid split name.
        needs_root: True for data on disk (``NAME:ROOT``), False for bundled data.
        splits: the split names this dataset always has, or None when they depend on the
            root (the loader then checks the split itself).
        description: one line for listings and the CLI's help.
        options: the loader's own keyword options, beyond ``image_size`` and ``channels``.
        split_note: appended to the "unknown split" message, to say why a split is absent.
    """

    name: str
    load: DatasetLoader
    needs_root: bool
    splits: tuple[str, ...] | None
    description: str
    options: tuple[str, ...] = ()
    split_note: str = ""


DATASETS = Registry[DatasetEntry]("dataset")


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Register ``entry`` in :data:`DATASETS` under its own ``entry.name``.

    The name is written once, in the entry, so the registry key and the name a dataset reports
    cannot differ.

    Returns:
        ``entry`` itself.

    Raises:
        RegistryError: the name is registered already.
    """
    return DATASETS.add(entry.name, entry)


def load_dataset(
    spec: str,
    split: str,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    **options: Any,
) -> LabelledDataset:
    """The ``split`` of the dataset named by ``spec`` (``NAME`` or ``NAME:ROOT``).

    Args:
        spec: ``NAME`` for bundled data, ``NAME:ROOT`` for data on disk.
        split: ``private``, ``private-test``, ``public`` or a split the dataset adds.
        image_size: side of the square images returned; None keeps the dataset's default.
        channels: 1 (grey) or 3 (RGB); None keeps the dataset's default.
        **options: the dataset's own options (``DATASETS.get(NAME).options``), e.g.
            ``private_identities=10`` for ``celeba``.

    Raises:
        RegistryError: an unknown NAME (the message lists the registered ones).
        DataError: a missing or unexpected root, a root that does not exist, an unknown or
            empty split.
        ConfigError: an invalid ``image_size`` or ``channels``, or an option the dataset does
            not have.
    """
    name, has_root, root_text = spec.partition(":")
    entry = DATASETS.get(name)
    if entry.needs_root and not root_text:
        raise DataError(f"dataset {name!r} reads images from disk; use {name}:/path/to/data")
    if has_root and not entry.needs_root:
        raise DataError(f"dataset {name!r} is bundled and takes no root; use {name!r} alone")
    root = Path(root_text).expanduser() if root_text else None
    if root is not None and not root.exists():
        raise DataError(f"data root {root} does not exist; check the path in {spec!r}")
    if entry.splits is not None and split not in entry.splits:
        note = f"; {entry.split_note}" if entry.split_note else ""
        raise DataError(
            f"unknown split {split!r} of dataset {name!r}; known: {', '.join(entry.splits)}{note}"
        )
    check_size(image_size)
    check_channels(channels)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        accepted = ", ".join(entry.options) or "none besides image_size, channels"
        raise ConfigError(f"dataset {name!r} has no option {unknown[0]!r}; its options: {accepted}")
    dataset = entry.load(root, split, image_size=image_size, channels=channels, **options)
    if len(dataset) == 0:
        raise DataError(
            f"split {split!r} of {spec!r} holds no images; check the data or pick another split"
        )
    return dataset
