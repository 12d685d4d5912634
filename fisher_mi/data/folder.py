"""``folder:ROOT``: identity sub-folders of images (a face dataset, an attack's reconstructions).

Layout: ``ROOT/<identity>/<image files>``, or, per split, ``ROOT/<split>/<identity>/<image
files>`` with ``<split>`` among ``private``, ``private-test``, ``public``.

* Splits: if ROOT holds any split-named folder, each such folder is its own identity tree
  (other folders beside them are ignored) and a split without its folder is an error listing
  the ones present. Otherwise ROOT is one flat set of identities that answers every split
  name, so ``--also inverted=folder:runs/gmi/images`` serves whichever split is asked for.
* Images: every non-hidden regular file Pillow can open, recognised by content (a ``.png``
  holding JPEG bytes is read as JPEG); other files, decompression bombs included (over
  twice ``PIL.Image.MAX_IMAGE_PIXELS``), are skipped with one logged warning.
  Files are read in ``sorted()`` name order.
* Labels: if every identity folder name is a non-negative integer, the label is that integer
  (attacks save reconstructions as ``ROOT/<target class>/...`` and some classes may be
  missing), so folders 0, 2, 7 give labels 0, 2, 7 and ``num_classes`` 8; a name past
  :data:`~fisher_mi.data.labels.MAX_CLASSES` is refused. If no name is an integer, the label
  is the index of the name among the sorted identity folder names, computed per tree: give
  ``private`` and ``private-test`` the same identity folders (or integer names) so their
  labels agree. Integer and other names side by side are refused: indexing them all by sorted
  name would renumber the integer classes silently (beside ``notes``, folder ``2`` of
  ``0 .. 11`` would get label 4). ``num_classes`` is the largest label + 1; empty identity
  folders still count.
* Defaults: ``image_size`` 64 (the MI literature's size), ``channels`` 3 (RGB).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fisher_mi.data.datasets import ImageFileDataset
from fisher_mi.data.labels import numbered_class_names
from fisher_mi.data.listing import data_root, files, is_image, require_folder, subfolders
from fisher_mi.data.registry import SPLITS, DatasetEntry, register_dataset
from fisher_mi.errors import DataError

DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 3
MAX_LISTED = 10  # non-integer folder names shown in an error; the count says how many more
LAYOUT = (
    "expected ROOT/<identity>/<image files> or ROOT/<split>/<identity>/<image files> "
    f"with <split> in {', '.join(SPLITS)}"
)

logger = logging.getLogger(__name__)


def split_tree(root: Path, split: str) -> Path:
    """The identity tree serving ``split``: ``ROOT/<split>`` in the split layout, else ROOT."""
    require_folder(root, LAYOUT)
    present = [name for name in SPLITS if (root / name).is_dir()]
    if not present:
        return root
    if split not in present:
        raise DataError(
            f"{root} has no folder for split {split!r}; present: {', '.join(present)}; "
            f"pick one of those or add {root / split}"
        )
    return root / split


def is_integer_name(name: str) -> bool:
    """Whether a folder name is a non-negative integer in ASCII digits (``7``, ``007``)."""
    return name.isascii() and name.isdigit()


def label_identities(names: list[str], tree: Path) -> tuple[dict[str, int], list[str]]:
    """Label of each identity folder name, and the class names indexed by label.

    Integer names are their own labels (:func:`integer_labels`); names that are all
    non-integer are labelled by their index in ``names`` (sorted by the caller).

    Raises:
        DataError: integer and non-integer names side by side (the message lists the
            non-integer ones), or an integer label refused by :func:`integer_labels`.
    """
    others = [name for name in names if not is_integer_name(name)]
    if len(others) == len(names):
        return {name: index for index, name in enumerate(names)}, list(names)
    if others:
        shown = ", ".join(repr(name) for name in others[:MAX_LISTED])
        more = f" and {len(others) - MAX_LISTED} more" if len(others) > MAX_LISTED else ""
        raise DataError(
            f"{tree} mixes integer class folders with non-integer ones ({shown}{more}); "
            "integer names are the labels, so rename or move the others"
        )
    return integer_labels(names, tree)


def integer_labels(names: list[str], tree: Path) -> tuple[dict[str, int], list[str]]:
    """Labels of integer folder names (the integers), and class names for ``0 .. max``.

    Raises:
        DataError: two names of one integer (``07`` and ``7``), or a label past
            :data:`~fisher_mi.data.labels.MAX_CLASSES` (before any class name is made).
    """
    by_label: dict[int, str] = {}
    for name in names:
        label = int(name)
        if label in by_label:
            raise DataError(
                f"folders {by_label[label]!r} and {name!r} under {tree} both name class "
                f"{label}; merge or rename one"
            )
        by_label[label] = name
    largest = max(by_label)
    class_names = numbered_class_names(
        largest, where=f"folder {tree / by_label[largest]}", named=by_label
    )
    return {name: label for label, name in by_label.items()}, class_names


def index_tree(tree: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``(path, label)`` of every image under ``tree``'s identity folders, and class names.

    Raises:
        DataError: ``tree`` holds no identity folder or no image.
    """
    identities = subfolders(tree)
    if not identities:
        raise DataError(f"{tree} holds no identity sub-folders; {LAYOUT}")
    labels, class_names = label_identities([p.name for p in identities], tree)
    samples: list[tuple[Path, int]] = []
    skipped: list[Path] = []
    for identity in identities:
        for path in files(identity):
            if is_image(path):
                samples.append((path, labels[identity.name]))
            else:
                skipped.append(path)
    if skipped:
        logger.warning(
            "skipped %d file(s) under %s that Pillow cannot read as images (or that exceed "
            "PIL.Image.MAX_IMAGE_PIXELS), e.g. %s",
            len(skipped),
            tree,
            skipped[0],
        )
    if not samples:
        raise DataError(f"{tree} holds no images Pillow can read; {LAYOUT}")
    return samples, class_names


def load_folder(
    root: Path | None, split: str, *, image_size: int | None, channels: int | None
) -> ImageFileDataset:
    """The images of ``split`` under ``root``, by the rules in the module docstring."""
    samples, class_names = index_tree(split_tree(data_root(root, "folder", LAYOUT), split))
    return ImageFileDataset(
        samples,
        class_names=class_names,
        size=DEFAULT_IMAGE_SIZE if image_size is None else image_size,
        channels=DEFAULT_CHANNELS if channels is None else channels,
    )


register_dataset(
    DatasetEntry(
        name="folder",
        load=load_folder,
        needs_root=True,
        splits=None,
        description="ROOT/<identity>/<images> or ROOT/<split>/<identity>/<images>, any format",
    )
)
