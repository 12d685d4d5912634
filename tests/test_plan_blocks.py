"""Blocks and block boundaries (``fisher_mi.plan.blocks``) against lists written out by hand
from each architecture's ``named_layers``."""

from __future__ import annotations

import pytest
from torch import nn

from fisher_mi.errors import ConfigError
from fisher_mi.models import build_model
from fisher_mi.plan import (
    block_boundaries,
    block_of,
    block_starts,
    parse_cutoffs,
    snap_to_block,
    sweep_cutoffs,
)

# mcnn: conv+bn x3, fc (7 layers); vgg_small: conv+bn x3, conv+bn2d+bn1d, fc (10 layers);
# resnet18: stem conv+bn, then every conv (downsample convs included) with its bn, fc (41).
BOUNDARIES = {
    "mcnn": [0, 2, 4, 6, 7],
    "vgg_small": [0, 2, 4, 6, 9, 10],
    "resnet18": [*range(0, 41, 2), 41],
}


@pytest.mark.parametrize("arch", sorted(BOUNDARIES))
def test_block_boundaries_by_hand(arch: str) -> None:
    model = build_model(arch, num_classes=5)
    assert block_boundaries(model) == BOUNDARIES[arch]
    assert sweep_cutoffs(model) == BOUNDARIES[arch][:-1]  # the head stays trainable


def test_a_leading_norm_layer_starts_a_block() -> None:
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    assert block_starts(model) == [0, 1, 3]


def test_cutoff_inside_a_block_lies_in_that_block() -> None:
    starts = [0, 2, 4, 6, 9]
    assert [block_of(c, starts) for c in range(10)] == [0, 0, 1, 1, 2, 2, 3, 3, 3, 4]
    assert [snap_to_block(c, starts) for c in (1, 2, 7, 8, 9)] == [0, 2, 6, 6, 9]


def test_parse_cutoffs() -> None:
    model = build_model("vgg_small", num_classes=5)
    assert parse_cutoffs("all", model) == [0, 2, 4, 6, 9]
    assert parse_cutoffs("6,2,2", model) == [2, 6]


@pytest.mark.parametrize("text", ["1", "10", "2,x", ""])
def test_parse_cutoffs_refuses_non_boundaries(text: str) -> None:
    with pytest.raises(ConfigError, match=r"block boundaries|whole numbers"):
        parse_cutoffs(text, build_model("mcnn", num_classes=5))
