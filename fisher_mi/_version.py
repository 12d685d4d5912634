"""The package version, in one place (``setup.cfg`` reads it; run records cite it)."""

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Versions of the software that produced a result, for run records and manifests."""
    import platform

    import pandas as pd
    import torch

    return {
        "fisher_mi": __version__,
        "torch": torch.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
