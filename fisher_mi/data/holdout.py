"""The held-out rule shared by datasets without a published test split.

Within each private identity, with its images in a fixed order (file order, or sorted file
names), every fifth image, position ``% 5 == 4``, is ``private-test`` and the rest
``private``: ``n // 5`` of an identity's ``n`` images are held out, deterministically and
without a random seed to record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

HELD_OUT_EVERY = 5

T = TypeVar("T")


def is_held_out(position: int) -> bool:
    """Whether the image at ``position`` (0-based, within its identity) is held out."""
    return position % HELD_OUT_EVERY == HELD_OUT_EVERY - 1


def hold_out(items: Sequence[T], split: str) -> list[T]:
    """``split``'s part of one identity's ordered images: ``private`` or ``private-test``."""
    held = split == "private-test"
    return [item for position, item in enumerate(items) if is_held_out(position) == held]
