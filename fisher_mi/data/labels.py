"""Class labels taken from what a file claims, bounded before anything is built from them.

Integer folder names (``folder:ROOT``) and split-file labels (CelebA's ``meta/trainset.txt``)
are the labels as written, so the class count is the largest label + 1 and one class name is
made per label. A hostile or mistyped name (a folder ``400000000``) would otherwise make a list
of 4 * 10^8 names and exhaust memory before any image is read; :func:`numbered_class_names`
refuses such a label first.
"""

from __future__ import annotations

from collections.abc import Mapping

from fisher_mi.errors import DataError

MAX_CLASSES = 100_000
"""The most classes a folder tree or split file may claim (labels 0 .. 99,999).

About ten times CelebA's 10,177 identities, the most of the datasets read here, and above the
85,742 of MS1MV2 (the cleaned MS-Celeb-1M), the largest face-recognition set in common use.
Its class names cost a few megabytes, where a label of 4 * 10^8 would cost tens of gigabytes.
"""


def numbered_class_names(
    largest: int, *, where: str, named: Mapping[int, str] | None = None
) -> list[str]:
    """Class names for labels ``0 .. largest``: ``named[label]`` where given, else ``str(label)``.

    Args:
        largest: the largest label claimed (-1 for none: no classes).
        where: what claims it (a folder, ``FILE line N``), for the error message.
        named: names of some labels (folder names); the other labels get their number.

    Returns:
        ``largest + 1`` names, indexed by label.

    Raises:
        DataError: ``largest + 1`` is more than :data:`MAX_CLASSES`, raised before any name
            is made.
    """
    if largest >= MAX_CLASSES:
        raise DataError(
            f"{where} claims class {largest}, but at most {MAX_CLASSES:,} classes (labels 0 to "
            f"{MAX_CLASSES - 1:,}) are accepted; number the classes from 0"
        )
    names = named or {}
    return [names.get(label, str(label)) for label in range(largest + 1)]
