"""``ffhq:ROOT``: the FFHQ face thumbnails, public data only, read in place.

Layout: ``ROOT/thumbnails128x128/DDDDD/NNNNN.png`` (the official folders ``00000``,
``01000``, ... of up to 1,000 images each), or the same with ROOT being ``thumbnails128x128``
itself, or a flat folder of images (ROOT or ``ROOT/thumbnails128x128``). Files named like
images (``.png``, ``.jpg``, ...) are taken in sorted order and decoded by content; other files
(the dataset's JSON and licence) are ignored.

FFHQ has no identity annotations, so it serves as the attacker's auxiliary data only: the one
split is ``public``, every label is 0, ``num_classes`` is 1 (``class_names == ["ffhq"]``).

Preprocessing, the MI literature's (KEDMI, PLG-MI, LOMMA): the centred 88 x 88 crop of the
128 x 128 thumbnail, box ``(20, 20, 108, 108)``, then bilinear resize to 64 x 64, RGB. The
crop is 88/128 of each image's shorter side (:class:`~fisher_mi.data.images.CentreCrop`), so
the 1024 x 1024 images give the same face region.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from fisher_mi.data.datasets import ImageFileDataset
from fisher_mi.data.images import CentreCrop
from fisher_mi.data.listing import data_root, subfolders, suffix_images
from fisher_mi.data.registry import DatasetEntry, register_dataset

CROP = CentreCrop(Fraction(88, 128))
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 3
THUMBNAILS = "thumbnails128x128"
LAYOUT = "expected ROOT/thumbnails128x128/<DDDDD>/<images> or a folder of images"


def image_paths(root: Path) -> list[Path]:
    """Every image under the thumbnail tree: numbered sub-folders in order, else flat."""
    tree = root / THUMBNAILS if (root / THUMBNAILS).is_dir() else root
    chunks = [folder for folder in subfolders(tree) if folder.name.isdigit()]
    if not chunks:
        return suffix_images(tree)
    return [path for chunk in chunks for path in suffix_images(chunk)]


def load_ffhq(
    root: Path | None, split: str, *, image_size: int | None, channels: int | None
) -> ImageFileDataset:
    """The ``public`` split of FFHQ under ``root`` (the registry refuses any other split)."""
    paths = image_paths(data_root(root, "ffhq", LAYOUT))
    return ImageFileDataset(
        [(path, 0) for path in paths],
        class_names=["ffhq"],
        size=DEFAULT_IMAGE_SIZE if image_size is None else image_size,
        channels=DEFAULT_CHANNELS if channels is None else channels,
        crop=CROP,
    )


register_dataset(
    DatasetEntry(
        name="ffhq",
        load=load_ffhq,
        needs_root=True,
        splits=("public",),
        description=(
            "FFHQ thumbnails128x128/<DDDDD>/*.png or a flat folder; public only, label 0; "
            "centre crop 88/128, 3x64x64"
        ),
        split_note="FFHQ has no identities, so it serves as public (auxiliary) data only",
    )
)
