"""Which Fisher estimator a split is profiled with: ``fisher="auto"`` and its warning.

The empirical Fisher, (1/N) sum_n ||grad -log p(y_n | x_n)||^2, differentiates the loss of the
*given* label y_n, so it describes the model only where y_n is one of its classes for x_n:
the private training and test images (``private``, ``private-test``) and an attack's
reconstructions, each labelled with the identity it was made for (``inverted``, and
``inverted-<name>`` for several attacks side by side, e.g. ``inverted-gmi``). Any other split
(``public`` identities, another dataset) carries labels of other classes, and its empirical
Fisher is the gradient of a loss the model was never trained on: at every layer it is 100 to
1000 times the private one (measured on the demo model) and says nothing about privacy. The
true Fisher draws y ~ p(y | x) from the model instead, so it needs no labels at all.

``fisher="auto"`` therefore picks per split: the empirical Fisher where the labels are the
model's classes, the true Fisher elsewhere, and on reconstructions both (two sets of rows,
told apart by the table's ``fisher`` column): the empirical one is the paper's MI-task
Fisher, the true one compares with the public splits.
"""

from __future__ import annotations

import warnings

from fisher_mi.errors import ConfigError

FISHER_KINDS = ("empirical", "true")
AUTO = "auto"
FISHER_CHOICES = (AUTO, *FISHER_KINDS)
CLASS_SPLITS = ("private", "private-test")
INVERTED = "inverted"


class FisherWarning(UserWarning):
    """A Fisher profile that runs but measures something other than what it is read as."""


def check_fisher(fisher: object) -> str:
    """``fisher`` if it is ``auto``, ``empirical`` or ``true``; else one-line ``ConfigError``."""
    if fisher not in FISHER_CHOICES:
        raise ConfigError(f"unknown fisher {fisher!r}; known: {', '.join(FISHER_CHOICES)}")
    return str(fisher)


def is_inverted(split: str) -> bool:
    """Reconstructions of an attack: ``inverted`` or ``inverted-<name>``."""
    return split == INVERTED or split.startswith(f"{INVERTED}-")


def labels_are_classes(split: str) -> bool:
    """Whether a split's labels are the model's own classes (its empirical Fisher means
    something): the private splits and reconstructions."""
    return split in CLASS_SPLITS or is_inverted(split)


def preferred_estimator(split: str) -> str:
    """The one estimator a split is read with when a table holds several: empirical where
    the labels are the model's classes, true otherwise (the first of ``estimators_for``)."""
    return "empirical" if labels_are_classes(split) else "true"


def estimators_for(split: str, fisher: str) -> tuple[str, ...]:
    """The estimators ``profile`` computes on ``split`` for option ``fisher``.

    ``auto``: ``("empirical",)`` on the private splits, ``("empirical", "true")`` on
    reconstructions, ``("true",)`` on any other split. An explicit estimator is used as given;
    the empirical Fisher of a split whose labels are not the model's classes comes with a
    ``FisherWarning`` saying why it is meaningless there.
    """
    fisher = check_fisher(fisher)
    if fisher == AUTO:
        if is_inverted(split):
            return FISHER_KINDS
        return (preferred_estimator(split),)
    if fisher == "empirical" and not labels_are_classes(split):
        warnings.warn(
            f"the empirical Fisher of split {split!r} differentiates the loss of labels that "
            "are not the model's classes (only private, private-test and inverted splits "
            "carry those), so it says nothing about the model; use fisher 'auto' or 'true'",
            FisherWarning,
            stacklevel=3,
        )
    return (fisher,)
