"""Per-layer Fisher information: ``profile`` and its backends."""

from fisher_mi.fisher import hooks, loop, vmap  # noqa: F401  (register the backends)
from fisher_mi.fisher.backends import BACKENDS, FisherBackend, make_backend, register_backend
from fisher_mi.fisher.profile import COLUMNS, FISHER_KINDS, fisher_diagonal, profile
from fisher_mi.fisher.splits import ProfileRun, profile_splits, summary

# "auto": the fastest exact backend that handles every model.
BACKENDS.alias("auto", "hooks")

__all__ = [
    "BACKENDS",
    "COLUMNS",
    "FISHER_KINDS",
    "FisherBackend",
    "ProfileRun",
    "fisher_diagonal",
    "make_backend",
    "profile",
    "profile_splits",
    "register_backend",
    "summary",
]
