"""Scale-out: two gloo processes give the single-process table (float64, 1e-10)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fisher_mi.fisher import profile
from tests.cases import CASES

CASE = CASES[1]  # CNN with BatchNorm in eval mode
N_SAMPLES = 11  # odd, so the two shards differ in size


def _data() -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(N_SAMPLES, *CASE.input_shape, generator=generator, dtype=torch.float64)
    y = torch.randint(0, CASE.num_classes, (N_SAMPLES,), generator=generator)
    return torch.utils.data.TensorDataset(x, y)


def _worker(
    rank: int, world: int, init_file: str, out: str, backend: str, max_samples: int | None
) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        table = profile(
            CASE.model(), _data(), backend=backend, batch_size=4, max_samples=max_samples
        )
        table.to_pickle(Path(out) / f"rank{rank}.pkl")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("backend", "max_samples"), [("hooks", None), ("vmap", 7)], ids=["hooks-all", "vmap-subset"]
)
def test_two_gloo_processes_match_one(
    tmp_path: Path, backend: str, max_samples: int | None
) -> None:
    args = (2, str(tmp_path / "init"), str(tmp_path), backend, max_samples)
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    single = profile(CASE.model(), _data(), backend=backend, batch_size=4, max_samples=max_samples)
    for rank in range(2):
        sharded = pd.read_pickle(tmp_path / f"rank{rank}.pkl")  # every rank holds the whole table
        assert sharded["n_samples"].tolist() == single["n_samples"].tolist()
        relative = (sharded["fisher_trace"] - single["fisher_trace"]).abs() / single["fisher_trace"]
        assert relative.max() <= 1e-10
