"""Blocks: the units a cutoff sweep moves over.

A *block* is a layer with parameters (``named_layers``) together with the normalisation layers
that directly follow it in depth order, e.g. a Conv2d and its BatchNorm2d, or VGG's last
convolution with its BatchNorm2d and the BatchNorm1d after the flattening. Freezing a
convolution but training the BatchNorm that rescales its output (or the reverse) is a cutoff
inside one computation, so sweeps cut between blocks only.

The *boundaries* are the cutoffs (``named_layers`` depth: layers with depth < cutoff are
frozen) at which a block starts, and the end of the model, ``n_layers``. ``--cutoffs all`` is
every boundary but the last: cutoff ``n_layers`` would freeze the head too, and a plan always
trains at least the last layer (``plan.rules``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from fisher_mi.errors import ConfigError
from fisher_mi.models.layers import LayerInfo, named_layers

# Module types that normalise the output of the layer before them (they own only an affine
# scale and shift); _NormBase covers BatchNorm1d/2d/3d, SyncBatchNorm and InstanceNorm
# (RMSNorm exists from torch 2.4 on).
NORMALISATION = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    getattr(nn, "RMSNorm", nn.LayerNorm),
)


def _is_normalisation(layer: LayerInfo) -> bool:
    return isinstance(layer.module, NORMALISATION)


def block_starts(model: nn.Module) -> list[int]:
    """The depth at which each block starts, in order (the first is 0).

    A layer starts a block unless it is a normalisation layer directly after another layer
    (a normalisation layer at depth 0 starts the first block).
    """
    layers = named_layers(model)
    if not layers:
        raise ConfigError("the model has no layer with parameters, so it has no blocks")
    return [layer.depth for layer in layers if layer.depth == 0 or not _is_normalisation(layer)]


def block_boundaries(model: nn.Module) -> list[int]:
    """The cutoffs between blocks: every block start and ``n_layers`` (the end)."""
    return [*block_starts(model), len(named_layers(model))]


def sweep_cutoffs(model: nn.Module) -> list[int]:
    """``--cutoffs all``: every block boundary but the last (the head stays trainable)."""
    return block_boundaries(model)[:-1]


def block_of(cutoff: int, starts: Sequence[int]) -> int:
    """The block a cutoff lies in: the index of the last block starting at or before it.

    At a boundary this is the number of frozen blocks; a cutoff inside a block (a rule that
    freezes a convolution but trains its BatchNorm) lies in that block.
    """
    if cutoff < 0:
        raise ConfigError(f"a cutoff is a depth of 0 or more, got {cutoff}")
    return max(index for index, start in enumerate(starts) if start <= cutoff)


def snap_to_block(cutoff: int, starts: Sequence[int]) -> int:
    """The boundary of the block a cutoff lies in (``block_of``): a cutoff inside a block moves
    down to the block's start, so the block's normalisation layers train with its layer."""
    return starts[block_of(cutoff, starts)]


def parse_cutoffs(text: str, model: nn.Module) -> list[int]:
    """``all`` (``sweep_cutoffs``) or ``K1,K2,...``: block boundaries below ``n_layers``.

    Refuses a cutoff that is not a block boundary, naming the boundaries.
    """
    allowed = sweep_cutoffs(model)
    if text.strip() == "all":
        return allowed
    try:
        cutoffs = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--cutoffs {text!r} is not all or K1,K2,... (whole numbers)") from None
    wrong = [cutoff for cutoff in cutoffs if cutoff not in allowed]
    if not cutoffs or wrong:
        shown = ", ".join(str(c) for c in allowed)
        raise ConfigError(
            f"--cutoffs {text!r}: cutoffs must be block boundaries of the model ({shown}); "
            "pick from them or pass all"
        )
    return cutoffs
