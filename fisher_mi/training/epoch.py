"""One epoch of training and the per-epoch accuracies: what ``train`` repeats.

Randomness: each epoch re-seeds torch's generator from ``(seed, epoch, rank)`` (dropout, data
workers) and shuffles with a ``DistributedSampler`` seeded by ``seed + epoch`` (one process is
a world of one), so an epoch's randomness depends on nothing that happened before it and a
resumed run repeats it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from fisher_mi.distributed import (
    all_reduce_sum,
    is_distributed,
    is_main_process,
    rank,
    shard,
    world_size,
)
from fisher_mi.errors import NonFiniteError
from fisher_mi.training.config import TrainConfig
from fisher_mi.training.norm_stats import recompute_batch_norm
from fisher_mi.training.objective import Objective, measuring


@dataclass
class EpochRunner:
    """What an epoch needs: the model (and its DDP wrapper), options, device, optimiser and
    the objective.

    Attributes:
        model: the model itself (evaluated and checkpointed).
        net: what the training batches go through: the model, or its DDP wrapper.
        objective: the loss and hits of a batch (``objective``), in training and evaluation.
        show: draw a progress bar (rank 0 only).
    """

    model: nn.Module
    net: nn.Module
    config: TrainConfig
    device: torch.device
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    objective: Objective
    show: bool = False

    def train_epoch(self, data: Dataset, epoch: int, step: int) -> tuple[float, float, int]:
        """One pass over ``data``, stopping early at ``config.max_steps`` in all, then the
        BatchNorm statistics recomputed over ``data`` with the weights reached
        (``norm_stats``: the running averages lag the weights and keep part of their initial
        values when an epoch has few steps).

        Returns the mean loss, the running hit rate (the objective's accuracy, of the
        training batches in train mode as they went by; cheaper than a second pass) and the
        step count reached.
        """
        config = self.config
        torch.manual_seed(epoch_seed(config.seed, epoch, rank()))
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss, hits, samples
        self.net.train()
        batches = tqdm(
            loader(data, config, epoch, pin=self.device.type == "cuda"),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            leave=False,
            disable=not (self.show and is_main_process()),
        )
        for x, y in batches:
            step += 1
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss, hits = self._step(x, y, epoch, step)
            totals += torch.stack(
                [loss.double() * len(y), hits.double(), totals.new_tensor(len(y))]
            )
            if config.max_steps is not None and step >= config.max_steps:
                break
        all_reduce_sum(totals)
        self._share_buffers()
        recompute_batch_norm(
            self.model,
            data,
            batch_size=config.batch_size,
            device=self.device,
            num_workers=config.num_workers,
        )
        loss_sum, hits, seen = totals.tolist()
        return loss_sum / max(seen, 1), hits / max(seen, 1), step

    def _share_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics), as DDP does before each
        forward: after the last step each rank's statistics moved on its own batches, and
        all ranks must evaluate, select and stop with the same model."""
        if is_distributed():
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)

    def _step(self, x: Tensor, y: Tensor, epoch: int, step: int) -> tuple[Tensor, Tensor]:
        """One optimiser step on the objective's batch loss; the detached loss and hits."""
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.config.amp):
            batch = self.objective(self.net(x), x, y)
        loss = batch.loss.float()
        if not torch.isfinite(loss):
            raise NonFiniteError(
                f"the training loss became {loss.item()} at step {step} (epoch {epoch}); "
                f"lower the learning rate (now {self.optimizer.param_groups[0]['lr']:g}) or "
                "check the inputs for NaN"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss.detach(), batch.hits

    @torch.no_grad()
    def evaluate(self, data: Dataset | None) -> tuple[float, float]:
        """The hit rate and mean loss on ``data`` in eval mode of ``measuring``'s objective
        (top-1 accuracy and cross-entropy by default; NaN, NaN without data). Each rank sums
        over its shard and the sums are added up, so every rank gets the same numbers."""
        if data is None:
            return float("nan"), float("nan")
        self.model.eval()
        measure = measuring(self.objective)
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # hits, loss, samples
        batches = DataLoader(
            shard(data), batch_size=self.config.batch_size, num_workers=self.config.num_workers
        )
        for x, y in batches:
            x, y = x.to(self.device), y.to(self.device)
            batch = measure(self.model(x), x, y)
            sums[0] += batch.hits
            sums[1] += batch.loss.double() * len(y)
            sums[2] += len(y)
        all_reduce_sum(sums)
        self.model.train()
        if not sums[2]:
            return float("nan"), float("nan")
        return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def epoch_seed(seed: int, epoch: int, process: int) -> int:
    """A well-mixed 63-bit seed from (seed, epoch, rank): no two epochs or ranks share one."""
    state = np.random.SeedSequence([seed, epoch, process]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def loader(data: Dataset, config: TrainConfig, epoch: int, *, pin: bool) -> DataLoader:
    """This rank's shuffled batches for ``epoch``. A trailing batch of a single sample is
    dropped, because BatchNorm cannot normalise one sample in train mode."""
    sampler = DistributedSampler(
        data, num_replicas=world_size(), rank=rank(), shuffle=True, seed=config.seed
    )
    sampler.set_epoch(epoch)
    return DataLoader(
        data,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        drop_last=len(sampler) % config.batch_size == 1,
        pin_memory=pin,
    )
