"""Split files: text lists naming one image per line, with or without an integer label.

The MI literature ships its splits this way (CelebA's ``meta/trainset.txt``: ``<file>
<label>``; ``meta/ganset.txt``: ``<file>``), and CelebA's own ``identity_CelebA.txt`` has the
labelled form too. Fields are separated by any whitespace; blank lines are skipped. Every
problem is reported with the file and the 1-based line number, and every named image is
checked to exist when the split is loaded, against one listing of the image folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from fisher_mi.data.listing import FolderListing
from fisher_mi.errors import DataError


@dataclass(frozen=True)
class ListedImage:
    """One line of a split file.

    Attributes:
        name: the image's file name, as written.
        label: the non-negative integer label, or None in an unlabelled file.
        line: the 1-based line number, for error messages.
    """

    name: str
    label: int | None
    line: int


def read_split_file(path: Path, *, labelled: bool) -> list[ListedImage]:
    """The images named by the split file at ``path``, in file order.

    Args:
        path: the text file.
        labelled: True for ``<file> <label>`` lines (exactly two fields, the label a
            non-negative integer); False for ``<file>`` lines (further fields, such as a label
            some copies carry, are ignored).

    Raises:
        DataError: the file is missing or unreadable, or a line is malformed (the message
            names the file and the line).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM is not part of a name
    except FileNotFoundError:
        raise DataError(f"split file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read split file {path} ({type(err).__name__})") from err
    listed = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if fields:
            label = _label(fields, path, number) if labelled else None
            listed.append(ListedImage(fields[0], label, number))
    return listed


def labels_of(listed: Sequence[ListedImage]) -> list[int]:
    """The labels of the lines of a file read with ``labelled=True``."""
    return [cast(int, entry.label) for entry in listed]


def largest_label(listed: Sequence[ListedImage], source: Path) -> tuple[int, str]:
    """The largest label of a file read with ``labelled=True``, and ``"FILE line N"`` of it.

    Where a label becomes a class count, the place names the line to fix. An empty list gives
    ``(-1, str(source))``: no classes.
    """
    top = max(listed, key=lambda entry: cast(int, entry.label), default=None)
    if top is None:
        return -1, str(source)
    return cast(int, top.label), f"{source} line {top.line}"


def _label(fields: list[str], path: Path, number: int) -> int:
    """The label of a ``<file> <label>`` line: ASCII digits that make a Python int.

    A label longer than Python converts (``sys.get_int_max_str_digits()``, 4,300 digits by
    default) is a malformed line like any other, not a ``ValueError`` traceback.
    """
    if len(fields) == 2 and fields[1].isascii() and fields[1].isdigit():
        with contextlib.suppress(ValueError):
            return int(fields[1])
    shown = " ".join(fields)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise DataError(
        f"{path} line {number}: expected '<file> <label>' with a non-negative integer label, "
        f"got {shown!r}; fix or remove the line"
    )


def locate(listed: Sequence[ListedImage], images: FolderListing, source: Path) -> list[Path]:
    """The path of every listed image in the folder behind ``images``, in order.

    A name missing from the folder matches a file with the same stem (``.jpg`` listed,
    ``.png`` on disk).

    Raises:
        DataError: an image is in neither form; the message names ``source`` and its line.
    """
    paths = []
    for entry in listed:
        path = images.find(entry.name)
        if path is None:
            raise DataError(
                f"{source} line {entry.line} names {entry.name!r}, which is not in "
                f"{images.folder}; restore the image or remove the line"
            )
        paths.append(path)
    return paths
