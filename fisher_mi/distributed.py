"""Scale-out on ``torch.distributed``: the same code on one process or under ``torchrun``.

Nothing here talks to the network itself: ``torchrun`` starts the processes and sets the
environment, ``torch.distributed`` (gloo on CPU, NCCL on GPU) moves the numbers. A Fisher
profile only needs per-layer sums and a sample count, so each rank handles a disjoint shard of
the data and one all-reduce combines them; rank 0 writes the outputs.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Subset


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Whether this process writes outputs and prints (rank 0, or the only process)."""
    return rank() == 0


def shard(dataset: Dataset) -> Dataset:
    """This rank's share of a map-style dataset: items rank, rank + W, rank + 2W, ...

    Unlike ``DistributedSampler`` nothing is padded or repeated, so every sample is counted
    exactly once across ranks (a rank may get none when there are fewer samples than ranks).
    """
    if not is_distributed():
        return dataset
    return Subset(dataset, range(rank(), len(dataset), world_size()))  # type: ignore[arg-type]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (a no-op on one process) and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def init_from_environment(device: str | None) -> str | None:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Returns the device this rank should use: ``cuda`` becomes ``cuda:LOCAL_RANK`` so each
    process drives its own GPU. Uses NCCL for CUDA devices and gloo otherwise.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return device
    on_cuda = device is not None and device.startswith("cuda")
    if on_cuda and device == "cuda":
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if on_cuda else "gloo")
    return device
