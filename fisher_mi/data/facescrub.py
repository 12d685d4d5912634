"""``facescrub:ROOT``: the FaceScrub face crops, read in place in either common layout.

Layouts, and the split each one's code uses:

* ``ROOT/<Person_Name>/face/<images>``: identities labelled by their sorted folder names; of
  each identity's images, sorted by name, every fifth (position ``% 5 == 4``) is
  ``private-test`` and the rest ``private`` (:mod:`fisher_mi.data.holdout`).
* ``ROOT/actors/faces/<Name>/<images>`` and ``ROOT/actresses/faces/<Name>/<images>``, what the
  FaceScrub download script writes with ``--crop_face`` (lightalchemist/FaceScrub) and what
  Plug-and-Play Attacks (Struppek et al., ICML 2022; ``datasets/facescrub.py``) reads. Labels
  and split are PPA's, so a classifier trained with PPA's code sees the same indices: the
  actors' sorted names, then the actresses' (``ImageFolder`` over each group, concatenated);
  images in sorted name order; the indices of all images shuffled by NumPy's legacy
  generator seeded with 42, the first ``int(0.9 * N)`` ``private``, the rest
  ``private-test``, each split in that shuffled order. Either group may be absent.

Files named like images are taken (torchvision's ``ImageFolder`` suffixes, as the literature's
loaders do) and decoded by content. There is no ``public`` split: FaceScrub serves as a
private set here; take public data from ``ffhq:ROOT`` or ``celeba:ROOT``.

Preprocessing, the MI literature's "crop 54": FaceScrub images are brought to 64 x 64
(bilinear), the centred 54 x 54 box ``(5, 5, 59, 59)`` is cropped (offsets ``(64 - 54) // 2``)
and resized to 64 x 64 (``image_size`` otherwise), RGB. Sources: the KEDMI/GMI-style loaders
(``PublicFaceScrub`` resizes to 64 x 64, then ``crop_size = 54``,
``offset = (64 - crop_size) // 2``, ``Resize(64)``; e.g. Re-thinking_MI's ``dataloader.py``
for FaceScrub as GAN data) and PPA's ``preprocess_facescrub_fn`` (``Resize(64)``,
``CenterCrop(54)``, ``Resize(64)``), which agree on this box.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from fisher_mi.data.datasets import ImageFileDataset
from fisher_mi.data.holdout import hold_out
from fisher_mi.data.images import CentreCrop
from fisher_mi.data.listing import data_root, subfolders, suffix_images
from fisher_mi.data.registry import DatasetEntry, register_dataset
from fisher_mi.errors import DataError

BASE_SIZE = 64
CROP = CentreCrop(Fraction(54, 64))
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 3
GROUPS = ("actors", "actresses")
PPA_SEED = 42
PPA_TRAIN_FRACTION = 0.9  # a float on purpose: int(0.9 * N) exactly as PPA computes it
LAYOUT = (
    "expected ROOT/<Person_Name>/face/<images> or "
    "ROOT/actors/faces/<Name>/<images> and ROOT/actresses/faces/<Name>/<images>"
)

Samples = tuple[list[tuple[Path, int]], list[str]]


def group_identities(root: Path) -> list[Path]:
    """The identity folders of the actors/actresses layout, in PPA's label order."""
    return [
        folder
        for group in GROUPS
        if (root / group / "faces").is_dir()
        for folder in subfolders(root / group / "faces")
    ]


def ppa_indices(count: int, split: str) -> list[int]:
    """PPA's split of ``count`` images: seeded shuffle, first 90% ``private``, rest test."""
    order = np.random.RandomState(PPA_SEED).permutation(count).tolist()
    cut = int(PPA_TRAIN_FRACTION * count)
    return order[:cut] if split == "private" else order[cut:]


def group_samples(identities: list[Path], split: str) -> Samples:
    """``split`` of the actors/actresses layout (PPA's labels and split)."""
    every = [
        (path, label) for label, folder in enumerate(identities) for path in suffix_images(folder)
    ]
    chosen = [every[index] for index in ppa_indices(len(every), split)]
    return chosen, [folder.name for folder in identities]


def face_samples(identities: list[Path], split: str) -> Samples:
    """``split`` of the ``<Person_Name>/face`` layout (every fifth image held out)."""
    chosen = [
        (path, label)
        for label, folder in enumerate(identities)
        for path in hold_out(suffix_images(folder / "face"), split)
    ]
    return chosen, [folder.name for folder in identities]


def load_facescrub(
    root: Path | None, split: str, *, image_size: int | None, channels: int | None
) -> ImageFileDataset:
    """The ``private`` or ``private-test`` split of FaceScrub under ``root``."""
    root = data_root(root, "facescrub", LAYOUT)
    if any((root / group / "faces").is_dir() for group in GROUPS):
        samples, class_names = group_samples(group_identities(root), split)
    else:
        identities = [folder for folder in subfolders(root) if (folder / "face").is_dir()]
        if not identities:
            raise DataError(f"{root} holds no FaceScrub identity folders; {LAYOUT}")
        samples, class_names = face_samples(identities, split)
    return ImageFileDataset(
        samples,
        class_names=class_names,
        size=DEFAULT_IMAGE_SIZE if image_size is None else image_size,
        channels=DEFAULT_CHANNELS if channels is None else channels,
        crop=CROP,
        base_size=BASE_SIZE,
    )


register_dataset(
    DatasetEntry(
        name="facescrub",
        load=load_facescrub,
        needs_root=True,
        splits=("private", "private-test"),
        description=(
            "FaceScrub <Name>/face/*.jpg or actors|actresses/faces/<Name>/*; private splits "
            "only; 64x64 base, centre crop 54, 3x64x64"
        ),
        split_note=(
            "FaceScrub has no public split in these layouts (all its identities are private); "
            "use ffhq:ROOT or celeba:ROOT for public data"
        ),
    )
)
