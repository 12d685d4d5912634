"""Listing folders on disk: which entries are identity folders and which are image files.

Two rules decide whether a file is an image, by cost. :func:`is_image` lets Pillow read the
header; the ``folder`` loader uses it because its folders may hold anything. Datasets of
10^5 files with a known layout (FFHQ, FaceScrub) go by the name instead,
:func:`has_image_suffix`, as the literature's own loaders (torchvision's ``ImageFolder``) do.
Either way the pixels are later decoded by content (:func:`~fisher_mi.data.images.open_image`),
so a ``.png`` holding JPEG bytes reads fine.

:class:`FolderListing` reads a folder's names once so that split files naming 200,000 images
are checked against a set, without one ``stat`` per file.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from fisher_mi.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""The suffixes torchvision's ``ImageFolder`` accepts (compared case-insensitively)."""


def visible(path: Path) -> bool:
    """Whether the entry is not hidden (``.cache``, ``.DS_Store``, editor droppings)."""
    return not path.name.startswith(".")


def is_image(path: Path) -> bool:
    """Whether Pillow recognises the file's content (reads the header only, not the pixels).

    A decompression bomb (a header claiming more than twice ``PIL.Image.MAX_IMAGE_PIXELS``
    pixels) is not an image here: it cannot be decoded safely, so a loader skips it like a
    file Pillow cannot read.
    """
    try:
        with Image.open(path):
            return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def has_image_suffix(path: Path) -> bool:
    """Whether the file name ends in one of :data:`IMAGE_SUFFIXES`, in any case."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def require_folder(path: Path, layout: str) -> Path:
    """``path`` itself if it is a folder.

    Raises:
        DataError: ``path`` is missing or not a folder; the message ends with ``layout``.
    """
    if not path.is_dir():
        raise DataError(f"data root {path} is not a folder; {layout}")
    return path


def data_root(root: Path | None, name: str, layout: str) -> Path:
    """The root of dataset ``name``, checked to be a folder (None: the spec lacked a root).

    Raises:
        DataError: no root, or a root that is not a folder.
    """
    if root is None:
        raise DataError(f"dataset {name!r} reads images from disk; use {name}:/path/to/data")
    return require_folder(root, layout)


def subfolders(folder: Path) -> list[Path]:
    """The visible sub-folders of ``folder``, sorted by name."""
    return sorted(entry for entry in folder.iterdir() if entry.is_dir() and visible(entry))


def files(folder: Path) -> list[Path]:
    """The visible regular files in ``folder`` (not below it), sorted by name."""
    return sorted(entry for entry in folder.iterdir() if entry.is_file() and visible(entry))


def suffix_images(folder: Path) -> list[Path]:
    """The visible files in ``folder`` named like images (:func:`has_image_suffix`), sorted."""
    return [path for path in files(folder) if has_image_suffix(path)]


class FolderListing:
    """The names of the files in one folder, read once, for look-ups by name or by stem.

    Split files name images by a name that may differ from the file on disk in its suffix
    only (CelebA's lists say ``000001.jpg``; the ``img_align_celeba_png`` copy holds
    ``000001.png``), so :meth:`find` falls back to the stem.

    Args:
        folder: the folder to list (must exist).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with os.scandir(folder) as entries:  # file types come with the listing: no stat each
            names = sorted(entry.name for entry in entries if entry.is_file())
        self.names = frozenset(names)
        self.by_stem: dict[str, str] = {}
        for name in names:  # sorted: of 1.jpg and 1.png, the stem finds 1.jpg
            self.by_stem.setdefault(stem(name), name)

    def find(self, name: str) -> Path | None:
        """The file called ``name``, else the first (sorted) one with its stem, else None."""
        if name in self.names:
            return self.folder / name
        other = self.by_stem.get(stem(name))
        return None if other is None else self.folder / other


def stem(name: str) -> str:
    """``Path(name).stem`` by string operations: ten times faster over 200,000 names."""
    base, dot, _ = name.rpartition(".")
    return base if dot and base else name
