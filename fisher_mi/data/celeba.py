"""``celeba:ROOT``: the aligned CelebA images with the MI literature's splits, read in place.

Layout (what GMI/KEDMI/LOMMA users already have; nothing is converted or downloaded):

* images: the first folder that exists of ``ROOT/img_align_celeba/img_align_celeba`` (the
  Kaggle zip), ``ROOT/img_align_celeba``, ``ROOT/img_align_celeba_png``,
  ``ROOT/Img/img_align_celeba``, ``ROOT/Img/img_align_celeba_png``. Split files name
  ``NNNNNN.jpg`` or ``.png``; a name missing from the folder is matched by its stem, so the
  JPEG lists serve the PNG copy. Files are decoded by content.
* split files, the literature's (e.g. ``datasets/celeba/meta/`` in Re-thinking_MI's configs):
  ``ROOT/meta/trainset.txt`` -> ``private`` and ``ROOT/meta/testset.txt`` -> ``private-test``,
  ``<file> <label>`` lines with labels 0..999, the private identities;
  ``ROOT/meta/ganset.txt`` -> ``public``, ``<file>`` lines: images of other identities.
* ``identity_CelebA.txt`` (``<file> <identity 1..10177>``), in ``ROOT`` or ``ROOT/Anno``.

Labels: the split files' labels for ``private`` and ``private-test``, with ``num_classes`` one
more than the largest label in either file, so both splits agree (at most
:data:`~fisher_mi.data.labels.MAX_CLASSES`; a larger label is refused, naming its line). The
public images are unlabelled for the private classifier; where ``identity_CelebA.txt`` is
present they get their CelebA identity, as a rank among the split's distinct identities
(``class_names`` hold the identity numbers, ``num_classes`` is their count); where it is absent
they are all labelled 0 (one class, ``"unlabelled"``).

Without ``ROOT/meta`` split files, the split is built from ``identity_CelebA.txt`` by the rule
of :mod:`fisher_mi.data.celeba_split` (``private_identities`` most frequent identities private,
default 1,000; a logged message says so). Split files are never mixed with that rule.

Preprocessing, the literature's: crop box ``(35, 55, 143, 163)`` of the 178 x 218 image (the
centred 108 x 108 face, offsets ``(178 - 108) // 2`` and ``(218 - 108) // 2``), bilinear resize
to 64 x 64 (``image_size=112`` for the evaluator), RGB (``channels=1`` for grey).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fisher_mi.data.celeba_split import (
    PRIVATE_IDENTITIES,
    check_private_identities,
    split_by_identity,
)
from fisher_mi.data.datasets import ImageFileDataset
from fisher_mi.data.labels import numbered_class_names
from fisher_mi.data.listing import FolderListing, data_root, stem
from fisher_mi.data.registry import SPLITS, DatasetEntry, register_dataset
from fisher_mi.data.splitfile import (
    ListedImage,
    labels_of,
    largest_label,
    locate,
    read_split_file,
)
from fisher_mi.errors import ConfigError, DataError

CROP_BOX = (35, 55, 143, 163)
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 3
IMAGE_FOLDERS = (
    "img_align_celeba/img_align_celeba",
    "img_align_celeba",
    "img_align_celeba_png",
    "Img/img_align_celeba",
    "Img/img_align_celeba_png",
)
SPLIT_FILES = {"private": "trainset.txt", "private-test": "testset.txt", "public": "ganset.txt"}
PRIVATE_PAIR = {"private": "private-test", "private-test": "private"}
IDENTITY_FILES = ("identity_CelebA.txt", "Anno/identity_CelebA.txt")
LAYOUT = (
    "expected ROOT/img_align_celeba (or img_align_celeba_png) with ROOT/meta/trainset.txt, "
    "testset.txt, ganset.txt or ROOT/identity_CelebA.txt"
)

logger = logging.getLogger(__name__)

Samples = tuple[list[tuple[Path, int]], list[str]]


def image_folder(root: Path) -> Path:
    """The first of :data:`IMAGE_FOLDERS` under ``root`` that exists."""
    for name in IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    raise DataError(f"{root} holds no CelebA image folder; {LAYOUT}")


def identity_file(root: Path) -> Path | None:
    """``identity_CelebA.txt`` in ``root`` or ``root/Anno``, or None."""
    return next((root / name for name in IDENTITY_FILES if (root / name).is_file()), None)


def split_file(root: Path, split: str) -> Path:
    """Where the literature's split file for ``split`` sits: ``ROOT/meta/<name>.txt``."""
    return root / "meta" / SPLIT_FILES[split]


def has_split_files(root: Path) -> bool:
    """Whether ``root/meta`` holds any of the three split files."""
    return any(split_file(root, split).is_file() for split in SPLITS)


def private_samples(root: Path, split: str, images: FolderListing) -> Samples:
    """``private`` or ``private-test`` as listed in ``meta/trainset.txt`` or ``testset.txt``."""
    source, other = (split_file(root, name) for name in (split, PRIVATE_PAIR[split]))
    if not source.is_file():
        raise DataError(
            f"split file {source} is missing; add it, or remove {root / 'meta'} to build "
            "the split from identity_CelebA.txt"
        )
    listed = read_split_file(source, labelled=True)
    paired = read_split_file(other, labelled=True) if other.is_file() else []
    largest, where = max(largest_label(listed, source), largest_label(paired, other))
    class_names = numbered_class_names(largest, where=where)
    return list(zip(locate(listed, images, source), labels_of(listed), strict=True)), class_names


def identities_of(listed: Sequence[ListedImage], source: Path, identities: Path) -> list[int]:
    """The CelebA identity of each listed image, from ``identity_CelebA.txt`` (by stem)."""
    listed_identities = read_split_file(identities, labelled=True)
    by_stem = {
        stem(entry.name): identity
        for entry, identity in zip(listed_identities, labels_of(listed_identities), strict=True)
    }
    found = []
    for entry in listed:
        identity = by_stem.get(stem(entry.name))
        if identity is None:
            raise DataError(
                f"{source} line {entry.line} names {entry.name!r}, which {identities} does "
                "not list; fix the line or the identity file"
            )
        found.append(identity)
    return found


def public_samples(root: Path, images: FolderListing) -> Samples:
    """``public`` as listed in ``meta/ganset.txt``, labelled by CelebA identity if known."""
    source = split_file(root, "public")
    if not source.is_file():
        raise DataError(f"split file {source} is missing; add it, or use ffhq:ROOT for public data")
    listed = read_split_file(source, labelled=False)
    paths = locate(listed, images, source)
    identities = identity_file(root)
    if identities is None:
        return [(path, 0) for path in paths], ["unlabelled"]
    found = identities_of(listed, source, identities)
    distinct = sorted(set(found))
    rank = {identity: label for label, identity in enumerate(distinct)}
    return [(p, rank[i]) for p, i in zip(paths, found, strict=True)], [str(i) for i in distinct]


def identity_samples(
    root: Path, split: str, images: FolderListing, private_identities: int
) -> Samples:
    """``split`` built from ``identity_CelebA.txt`` (:mod:`fisher_mi.data.celeba_split`)."""
    source = identity_file(root)
    if source is None:
        raise DataError(
            f"{root} has neither split files ({root / 'meta'}/trainset.txt, testset.txt, "
            f"ganset.txt) nor identity_CelebA.txt (in {root} or {root / 'Anno'}); add one"
        )
    listed = read_split_file(source, labelled=True)
    chosen, labels, class_names = split_by_identity(listed, split, private_identities)
    logger.info(
        "celeba split %r built from %s: the %d identities with the most images are private",
        split,
        source,
        private_identities,
    )
    return list(zip(locate(chosen, images, source), labels, strict=True)), class_names


def load_celeba(
    root: Path | None,
    split: str,
    *,
    image_size: int | None,
    channels: int | None,
    private_identities: int | None = None,
) -> ImageFileDataset:
    """The ``split`` of CelebA under ``root``, by the rules in the module docstring.

    Args:
        private_identities: how many of the most frequent identities are private when the
            split is built from ``identity_CelebA.txt`` (default 1,000); an error where split
            files decide the split.
    """
    root = data_root(root, "celeba", LAYOUT)
    images = FolderListing(image_folder(root))
    if has_split_files(root):
        if private_identities is not None:
            raise ConfigError(
                f"private_identities applies to a split built from identity_CelebA.txt, but "
                f"{root / 'meta'} holds split files; drop the option"
            )
        samples, class_names = (
            public_samples(root, images)
            if split == "public"
            else private_samples(root, split, images)
        )
    else:
        count = check_private_identities(
            PRIVATE_IDENTITIES if private_identities is None else private_identities
        )
        samples, class_names = identity_samples(root, split, images, count)
    return ImageFileDataset(
        samples,
        class_names=class_names,
        size=DEFAULT_IMAGE_SIZE if image_size is None else image_size,
        channels=DEFAULT_CHANNELS if channels is None else channels,
        crop=CROP_BOX,
    )


register_dataset(
    DatasetEntry(
        name="celeba",
        load=load_celeba,
        needs_root=True,
        splits=SPLITS,
        description=(
            "aligned CelebA (img_align_celeba[_png]) with meta/trainset|testset|ganset.txt or "
            "identity_CelebA.txt; crop (35,55,143,163), 3x64x64"
        ),
        options=("private_identities",),
    )
)
