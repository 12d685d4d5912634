"""Scale-out on ``torch.distributed``: the same code on one process or under ``torchrun``.

Nothing here talks to the network itself: ``torchrun`` starts the processes and sets the
environment, ``torch.distributed`` (gloo on CPU, NCCL on GPU) moves the numbers. A Fisher
profile only needs per-layer sums and a sample count, so each rank handles a disjoint shard of
the data and one all-reduce combines them; rank 0 writes the outputs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Subset

from fisher_mi.errors import ConfigError

_SOLO: list[bool] = []  # the solo() blocks this process is in


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process (and not solo)."""
    if _SOLO:
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextlib.contextmanager
def solo() -> Iterator[None]:
    """Run the enclosed code as if this process were alone, inside a process group.

    A sweep under ``torchrun`` gives each rank whole runs (one model trained in one process)
    instead of a shard of every run: inside the block ``is_distributed()`` is False, so
    training, profiling and attacks neither shard their data nor wait for other ranks, and
    this rank writes its own run's outputs; ``torch.distributed.barrier`` outside the block
    still synchronises the ranks.
    """
    _SOLO.append(True)
    try:
        yield
    finally:
        _SOLO.pop()


def rank() -> int:
    """This process's rank in the process group (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes in the group (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_launch_main() -> bool:
    """Whether ``torchrun`` started this process as rank 0 (or it runs alone).

    Read from the environment, so it is known before the process group is joined: the CLI
    takes the output folder's lock before any work.
    """
    return os.environ.get("RANK", "0") == "0"


def check_device(spec: str | None) -> str | None:
    """Refuse a device this machine cannot compute on, before any work; return ``spec``.

    Accepts None (the CPU), ``cpu``, ``cuda`` and ``cuda:N`` for an N this machine has.
    """
    if spec is None:
        return None
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"--device {spec!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return spec
    if device.type != "cuda":
        raise ConfigError(f"--device {spec!r}: fisher_mi computes on cpu or cuda[:N] only")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"--device {spec!r} needs CUDA, but this torch sees no CUDA device; use --device cpu"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"--device {spec!r}: this machine has {count} CUDA device(s), cuda:0 to "
            f"cuda:{count - 1}"
        )
    return spec


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
