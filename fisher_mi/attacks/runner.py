"""Running an attack into a folder: one checkpoint per batch, resume, and ranks.

Each batch of (identity, draw) units is an independent optimisation whose result depends only
on the settings and the units (``counter_random``), so the run is checkpointed per batch: a
finished batch is saved atomically to ``batches/<k>.pt`` with the protocol's hash, and a
resumed run loads the batches it has and computes the rest; the images are those of an
uninterrupted run. Under ``torchrun`` rank r computes batches r, r + W, ...; after a barrier
every rank reads the whole set from the shared folder (rank 0 then writes the outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from fisher_mi.attacks.inversion import Inversion, InversionAttack
from fisher_mi.distributed import is_distributed, rank, world_size
from fisher_mi.errors import ConfigError
from fisher_mi.evaluate import protocol_hash
from fisher_mi.io import load_checkpoint, save_checkpoint

BATCHES = "batches"


def protocol_of(attack: InversionAttack, identities: Sequence[int]) -> dict[str, Any]:
    """What determines the images: method, settings (batch size included) and identities."""
    return {"method": attack.name, **vars(attack.settings), "identities": list(identities)}


def _batch_path(out: Path, index: int) -> Path:
    return out / BATCHES / f"{index:05d}.pt"


def _load_batch(path: Path, expected: str) -> Inversion:
    saved = load_checkpoint(path)
    if not isinstance(saved, dict) or saved.get("protocol_hash") != expected:
        raise ConfigError(
            f"{path} belongs to an attack with other settings; resume with the settings it "
            "was started with, or write to another --out"
        )
    return Inversion(**saved["tensors"])


def run_attack(
    attack: InversionAttack,
    identities: Sequence[int],
    *,
    out: Path,
    resume: bool = False,
    progress: bool = False,
) -> tuple[Inversion, dict[str, Any]]:
    """Attack ``identities`` into ``out``, batch by batch; return the reconstructions and the
    protocol (with its hash) that made them."""
    ids = torch.as_tensor(list(identities), dtype=torch.long)
    attack.check_identities(ids, attack.classes)
    protocol = protocol_of(attack, ids.tolist())
    digest = protocol_hash(protocol)
    batches = attack.batches(ids)
    if not resume and (out / BATCHES).is_dir() and any((out / BATCHES).iterdir()):
        raise ConfigError(f"{out} holds an attack already; pass --resume or use another --out")
    mine = range(rank(), len(batches), world_size())
    todo = [k for k in mine if not (resume and _batch_path(out, k).is_file())]
    with tqdm(
        total=len(todo) * attack.settings.iterations,
        disable=not progress,
        desc=f"{attack.name} attack",
    ) as bar:
        for k in todo:
            result = attack.run_batch(batches[k], progress=bar.update)
            tensors = result.tensors()
            save_checkpoint(_batch_path(out, k), {"protocol_hash": digest, "tensors": tensors})
    if is_distributed():
        torch.distributed.barrier()
    parts = [_load_batch(_batch_path(out, k), digest) for k in range(len(batches))]
    inversion = Inversion.concatenate(parts)
    inversion.settings = protocol
    return inversion, {**protocol, "protocol_hash": digest}
