"""Per-layer Fisher information: ``profile`` and its backends."""

from fisher_mi.fisher import hooks, loop, vmap  # noqa: F401  (register the backends)
from fisher_mi.fisher.backends import BACKENDS, FisherBackend, make_backend, register_backend
from fisher_mi.fisher.estimators import (
    FISHER_CHOICES,
    FISHER_KINDS,
    FisherWarning,
    estimators_for,
    preferred_estimator,
)
from fisher_mi.fisher.profile import COLUMNS, fisher_diagonal, profile
from fisher_mi.fisher.splits import ProfileRun, profile_splits, series_labels, shares, summary

# "auto": the fastest exact backend that handles every model.
BACKENDS.alias("auto", "hooks")

__all__ = [
    "BACKENDS",
    "COLUMNS",
    "FISHER_CHOICES",
    "FISHER_KINDS",
    "FisherBackend",
    "FisherWarning",
    "ProfileRun",
    "estimators_for",
    "fisher_diagonal",
    "make_backend",
    "preferred_estimator",
    "profile",
    "profile_splits",
    "register_backend",
    "series_labels",
    "shares",
    "summary",
]
