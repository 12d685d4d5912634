"""Hostile checkpoints that claim more than they hold: a few-megabyte file must never make
``load_model`` allocate what its shapes claim (expanded, stride-0 tensors; zero-size tensors
with a huge first dimension; a self-describing file whose ``arch_kwargs`` claim 10^9 classes).

Each load runs under an address-space cap (``memory_cap``), so that on the unfixed code the
1 TB allocation fails at once instead of taking the test machine down.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from fisher_mi.data.labels import MAX_CLASSES
from fisher_mi.errors import CheckpointError
from fisher_mi.io import load_checkpoint
from fisher_mi.models import build_model, load_model

HUGE = 10**9
HEADROOM = 4 * 2**30  # bytes of address space a load may add: far above a 4 MB model


@contextlib.contextmanager
def memory_cap() -> Iterator[None]:
    """Cap this process's address space at its current size plus ``HEADROOM`` (Linux)."""
    resource = pytest.importorskip("resource")
    if not Path("/proc/self/statm").exists():
        yield
        return
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = pages * os.sysconf("SC_PAGE_SIZE") + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def mcnn_state(**replaced: Tensor) -> dict[str, Tensor]:
    """mcnn's state dict (5 classes, 256 features) with some tensors replaced."""
    return {**build_model("mcnn").state_dict(), **replaced}


def expanded_head(width: int = 256) -> dict[str, Tensor]:
    """A classifier claiming ``HUGE`` classes, stored as one row (stride 0)."""
    return {
        "fc_layer.weight": torch.zeros(1, width).expand(HUGE, width),
        "fc_layer.bias": torch.zeros(1).expand(HUGE),
    }


def own_format(state: dict[str, Tensor], num_classes: int) -> dict[str, Any]:
    return {
        "format": "fisher_mi/1",
        "arch": "mcnn",
        "arch_kwargs": {"num_classes": num_classes},
        "state_dict": state,
        "meta": {},
    }


HOSTILE: list[Any] = [
    pytest.param(
        lambda: mcnn_state(**expanded_head()),
        {},
        ("fc_layer.weight", "256 stored"),
        id="expanded-head-recognised",
    ),
    pytest.param(
        lambda: {"state_dict": {f"module.{k}": v for k, v in expanded_head(512).items()}},
        {"arch": "facenet64"},
        ("fc_layer.weight", "expanded"),
        id="expanded-head-arch-given",
    ),
    pytest.param(
        lambda: own_format(mcnn_state(**expanded_head()), HUGE),
        {},
        ("fc_layer.weight",),
        id="own-format-expanded-head",
    ),
    pytest.param(
        lambda: own_format(mcnn_state(), HUGE),
        {},
        ("1000000000 classes", f"{MAX_CLASSES}"),
        id="own-format-claims-1e9-classes",
    ),
    pytest.param(
        lambda: mcnn_state(
            **{"fc_layer.weight": torch.zeros(HUGE, 0), "fc_layer.bias": torch.zeros(0)}
        ),
        {"arch": "mcnn"},
        ("1000000000 classes", f"{MAX_CLASSES}"),
        id="empty-head-claims-1e9-classes",
    ),
    pytest.param(
        lambda: mcnn_state(**{"feature.0.weight": torch.zeros(64, HUGE, 7, 0)}),
        {"arch": "mcnn"},
        ("feature.0.weight", "(64, 1000000000, 7, 0)"),
        id="empty-stem-claims-1e9-channels",
    ),
]


@pytest.mark.parametrize(("make", "options", "says"), HOSTILE)
def test_hostile_checkpoint_is_refused_before_allocating(
    tmp_path: Path, make: Callable[[], Any], options: dict[str, Any], says: tuple[str, ...]
) -> None:
    path = tmp_path / "hostile.pt"
    torch.save(make(), path)
    assert path.stat().st_size < 5_000_000  # the file itself is small
    with memory_cap(), pytest.raises(CheckpointError) as caught:
        load_model(path, **options)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in says:
        assert fragment in message, (fragment, message)


def test_max_classes_is_allowed_and_one_more_is_not(tmp_path: Path) -> None:
    # A head of exactly MAX_CLASSES classes is a real (dense) model and loads.
    head = {"fc_layer.weight": torch.zeros(MAX_CLASSES, 256), "fc_layer.bias": torch.zeros(0)}
    torch.save(own_format(mcnn_state(**head), MAX_CLASSES + 1), tmp_path / "over.pt")
    with pytest.raises(CheckpointError, match=f"{MAX_CLASSES + 1} classes"):
        load_model(tmp_path / "over.pt")
    head["fc_layer.bias"] = torch.zeros(MAX_CLASSES)
    torch.save(own_format(mcnn_state(**head), MAX_CLASSES), tmp_path / "max.pt")
    assert load_model(tmp_path / "max.pt").fc_layer.out_features == MAX_CLASSES


DENSE_OR_NOT: list[Any] = [
    pytest.param(lambda: torch.zeros(3).expand(4, 3), "12 values", id="expanded-rows"),
    pytest.param(lambda: torch.zeros(1).expand(5), "5 values", id="expanded-vector"),
    pytest.param(
        lambda: torch.arange(4.0).as_strided((2, 3), (1, 1)), "6 values", id="overlapping-view"
    ),
    pytest.param(
        lambda: torch.arange(10.0)[6:].as_strided((2, 3), (1, 1)),
        "6 values",
        id="overlapping-view-at-offset",
    ),
]


@pytest.mark.parametrize(("make", "says"), DENSE_OR_NOT)
def test_tensor_with_less_storage_than_its_shape_is_refused(
    tmp_path: Path, make: Callable[[], Tensor], says: str
) -> None:
    path = tmp_path / "sparse.pt"
    torch.save({"nested": [{"w": make()}]}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and says in message, message
    assert "nested" in message  # where the tensor is


@pytest.mark.parametrize(
    "tensor",
    [
        pytest.param(torch.arange(10.0)[2:5], id="view-of-a-larger-storage"),
        pytest.param(torch.arange(6.0).view(2, 3).t(), id="transposed"),
        pytest.param(torch.tensor(3.0), id="scalar"),
        pytest.param(torch.zeros(0, 4), id="empty"),
    ],
)
def test_dense_tensors_load(tmp_path: Path, tensor: Tensor) -> None:
    torch.save({"w": tensor}, tmp_path / "dense.pt")
    assert torch.equal(load_checkpoint(tmp_path / "dense.pt")["w"], tensor)


def test_self_referencing_payload_loads(tmp_path: Path) -> None:
    cycle: list[Any] = [torch.ones(2)]
    cycle.append(cycle)
    torch.save(cycle, tmp_path / "cycle.pt")
    loaded = load_checkpoint(tmp_path / "cycle.pt")
    assert loaded[1] is loaded and torch.equal(loaded[0], torch.ones(2))
