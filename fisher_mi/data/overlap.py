"""Are the attacker's public data really disjoint from the private data?

An attack evaluated with public images that are private training images (or of the same
people) measures memorisation of the auxiliary data, not inversion; so an attack refuses such
data before spending compute, with the counts. Two checks:

- identities: class names present in both splits. Names that are only positions (``0`` ..
  ``K-1``, as integer-named folders give) carry no identity and are not compared.
- images: the same content in both: sha256 of each file's bytes for datasets read from files
  (``samples`` of paths), else of each decoded image tensor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset, Subset

from fisher_mi.errors import DataError


@dataclass(frozen=True)
class Overlap:
    """What two datasets share: identity names and identical images (counts and examples)."""

    names: tuple[str, ...]
    images: int

    def __bool__(self) -> bool:
        return bool(self.names) or self.images > 0


def _root(dataset: Dataset) -> tuple[Dataset, list[int]]:
    """The underlying dataset and the indices a (nested) ``Subset`` keeps."""
    indices: list[int] | None = None
    while isinstance(dataset, Subset):
        inner = list(dataset.indices)
        indices = inner if indices is None else [inner[i] for i in indices]
        dataset = dataset.dataset
    return dataset, indices if indices is not None else list(range(len(dataset)))  # type: ignore[arg-type]


def _names(dataset: Dataset) -> set[str]:
    names = [str(name) for name in getattr(_root(dataset)[0], "class_names", []) or []]
    if names == [str(i) for i in range(len(names))]:
        return set()  # positions, not identities
    return set(names)


def _content_keys(dataset: Dataset) -> set[str]:
    base, indices = _root(dataset)
    samples = getattr(base, "samples", None)
    if samples is not None:
        return {hashlib.sha256(Path(samples[i][0]).read_bytes()).hexdigest() for i in indices}
    return {hashlib.sha256(base[i][0].numpy().tobytes()).hexdigest() for i in indices}


def overlap(private: Dataset, public: Dataset) -> Overlap:
    """Identity names and images that ``private`` and ``public`` share."""
    shared_names = tuple(sorted(_names(private) & _names(public)))
    shared_images = len(_content_keys(private) & _content_keys(public))
    return Overlap(shared_names, shared_images)


def check_disjoint(private: Dataset, public: Dataset, *, what: str) -> None:
    """Refuse public data that overlaps the private data, with the counts.

    Args:
        private: the private training split.
        public: the attacker's public split.
        what: names the two, for the message (``"celeba:/d private and ffhq:/f public"``).
    """
    found = overlap(private, public)
    if found:
        names = ", ".join(found.names[:4]) + (" ..." if len(found.names) > 4 else "")
        raise DataError(
            f"{what} overlap: {found.images} identical image(s) and {len(found.names)} shared "
            f"identit{'y' if len(found.names) == 1 else 'ies'}{f' ({names})' if names else ''}; "
            "an attack's auxiliary data must be disjoint from the private data"
        )
