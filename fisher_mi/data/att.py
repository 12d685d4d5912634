"""``att:ROOT``: the AT&T (ORL) faces, 40 subjects x 10 grey 92 x 112 images, read in place.

Layout: ``ROOT/s1 .. ROOT/s40``, each holding ``1.pgm .. 10.pgm`` (binary PGM).

Splits, the MI setup of a small private set and disjoint public identities:

* ``private``: subjects 1-20, images 1-8 (160 images), label ``subject - 1`` (0-19);
* ``private-test``: subjects 1-20, images 9-10 (40 images), same labels;
* ``public``: subjects 21-40, all images (200 images), label ``subject - 21`` (0-19).

``class_names`` are the folder names (``s1`` ...). Every file a split needs is checked to
exist when the split is loaded.

Preprocessing: the images are not square, so the centred 92 x 92 square is cropped first (box
``(0, 10, 92, 102)``: 10 rows off the top and the bottom, which hold hair and chin, not face)
and resized bilinearly to 64 x 64; grey, one channel (``channels=3`` repeats it).
"""

from __future__ import annotations

from pathlib import Path

from fisher_mi.data.datasets import ImageFileDataset
from fisher_mi.data.images import CentreCrop
from fisher_mi.data.listing import FolderListing, data_root
from fisher_mi.data.registry import SPLITS, DatasetEntry, register_dataset
from fisher_mi.errors import DataError

CROP = CentreCrop()  # the largest centred square: 92 x 92 of 92 x 112
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 1
PRIVATE_SUBJECTS = range(1, 21)
PUBLIC_SUBJECTS = range(21, 41)
TRAIN_IMAGES = range(1, 9)
TEST_IMAGES = range(9, 11)
LAYOUT = "expected ROOT/s1 .. ROOT/s40, each holding 1.pgm .. 10.pgm"

SPLIT_PARTS = {
    "private": (PRIVATE_SUBJECTS, TRAIN_IMAGES),
    "private-test": (PRIVATE_SUBJECTS, TEST_IMAGES),
    "public": (PUBLIC_SUBJECTS, range(1, 11)),
}


def subject_images(root: Path, subject: int, numbers: range) -> list[Path]:
    """``ROOT/s<subject>/<n>.pgm`` for each ``n``, checked against one listing of the folder.

    Raises:
        DataError: the subject folder or one of its images is missing.
    """
    folder = root / f"s{subject}"
    if not folder.is_dir():
        raise DataError(f"AT&T subject folder {folder} is missing; {LAYOUT}")
    listing = FolderListing(folder)
    paths = []
    for number in numbers:
        path = listing.find(f"{number}.pgm")
        if path is None:
            raise DataError(f"AT&T image {folder / f'{number}.pgm'} is missing; {LAYOUT}")
        paths.append(path)
    return paths


def load_att(
    root: Path | None, split: str, *, image_size: int | None, channels: int | None
) -> ImageFileDataset:
    """The ``split`` of the AT&T faces under ``root``, by the rules in the module docstring."""
    root = data_root(root, "att", LAYOUT)
    subjects, numbers = SPLIT_PARTS[split]
    samples = [
        (path, label)
        for label, subject in enumerate(subjects)
        for path in subject_images(root, subject, numbers)
    ]
    return ImageFileDataset(
        samples,
        class_names=[f"s{subject}" for subject in subjects],
        size=DEFAULT_IMAGE_SIZE if image_size is None else image_size,
        channels=DEFAULT_CHANNELS if channels is None else channels,
        crop=CROP,
    )


register_dataset(
    DatasetEntry(
        name="att",
        load=load_att,
        needs_root=True,
        splits=SPLITS,
        description=(
            "AT&T/ORL faces s1..s40/1..10.pgm; private s1-20 (1-8), test (9-10), public s21-40; "
            "centre 92x92, 1x64x64"
        ),
    )
)
