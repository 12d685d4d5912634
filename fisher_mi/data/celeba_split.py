"""CelebA's private/public split built from ``identity_CelebA.txt`` when no split files exist.

The rule (deterministic, no seed):

* the ``private_identities`` (default 1,000) identities with the most images are private,
  ties broken by the smaller identity number; they are labelled ``0 .. k-1`` in order of
  identity number;
* of each private identity's images, sorted by file name, every fifth (position ``% 5 == 4``)
  is ``private-test`` and the rest ``private`` (:mod:`fisher_mi.data.holdout`);
* every other identity is public, labelled by its rank among the public identity numbers.

This follows the MI literature's choice of the 1,000 most frequent identities (Zhang et al.'s
GMI split files; Struppek et al.'s PPA ``CelebA1000``) but not their exact membership: PPA
labels by frequency rank and holds out a seeded random 10%, GMI's files are hand-made.
Use the split files (``ROOT/meta``) to reproduce a paper exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from fisher_mi.data.holdout import hold_out
from fisher_mi.data.splitfile import ListedImage
from fisher_mi.errors import ConfigError, DataError

PRIVATE_IDENTITIES = 1000

Labelled = tuple[list[ListedImage], list[int], list[str]]
"""The chosen images, their labels, and the class names (identity numbers) by label."""


def check_private_identities(count: object) -> int:
    """``count`` if it is a positive int.

    Raises:
        ConfigError: anything else.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"private_identities={count!r} is invalid; use a positive int")
    return count


def split_by_identity(
    listed: Sequence[ListedImage], split: str, private_identities: int
) -> Labelled:
    """The images of ``split`` among ``listed`` (``<file> <identity>`` lines), by the rule above.

    Labels index the split's identities, not the identities present, so ``private`` and
    ``private-test`` agree even where an identity of fewer than five images has no test image.

    Raises:
        DataError: fewer identities than ``private_identities``.
    """
    by_identity: dict[int, list[ListedImage]] = {}
    for entry in sorted(listed, key=lambda e: e.name):
        by_identity.setdefault(cast(int, entry.label), []).append(entry)
    if len(by_identity) < private_identities:
        raise DataError(
            f"identity_CelebA.txt lists {len(by_identity)} identities, fewer than the "
            f"{private_identities} private ones asked for; pass a smaller private_identities"
        )
    ranked = sorted(by_identity, key=lambda identity: (-len(by_identity[identity]), identity))
    public = split == "public"
    chosen = sorted(ranked[private_identities:] if public else ranked[:private_identities])
    images: list[ListedImage] = []
    labels: list[int] = []
    for label, identity in enumerate(chosen):
        part = by_identity[identity] if public else hold_out(by_identity[identity], split)
        images += part
        labels += [label] * len(part)
    return images, labels, [str(identity) for identity in chosen]
