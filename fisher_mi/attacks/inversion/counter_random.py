"""Random numbers that are a pure function of where they are used: (seed, identity, draw, step).

An attack's images must not depend on the batch size, the ``--ids`` set, the number of ranks or
a resume. A ``torch.Generator`` per batch cannot give that (its stream is shared by whatever
shares the batch), and one generator per (identity, draw) would be a Python loop in the hot
path (KEDMI and PLG-MI draw noise at every step). So the numbers are hashed from their
coordinates instead: the PCG hash of Jarzynski and Olano ("Hash Functions for GPU Rendering",
JCGT 2020) chained over the key (seed, stream, identity, draw, step, column), in 32-bit words
held in int64 tensors so that every product fits without overflow, on any device. Uniforms
take the top 24 bits of the hash, in (0, 1); normals come from two uniforms by Box-Muller.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
UNIFORM_BITS = 24  # float32 has a 24-bit significand: every value is exact


def pcg_hash(words: Tensor) -> Tensor:
    """The PCG hash of 32-bit words (int64 tensor, values in [0, 2**32)), elementwise.

    state = w * 747796405 + 2891336453 (mod 2**32); word = ((state >> ((state >> 28) + 4)) ^
    state) * 277803737 (mod 2**32); result = (word >> 22) ^ word. Every product stays below
    2**62, so int64 arithmetic is exact on CPU and CUDA.
    """
    state = (words * 747796405 + 2891336453) & MASK32
    shift = (state >> 28) + 4
    word = (((state >> shift) ^ state) * 277803737) & MASK32
    return (word >> 22) ^ word


def _key(*parts: Tensor | int) -> Tensor:
    """Hash the coordinates one after another: h = pcg(h ^ part), parts broadcast."""
    hashed: Tensor | None = None
    for part in parts:
        value = torch.as_tensor(part, dtype=torch.int64) & MASK32
        hashed = pcg_hash(value if hashed is None else hashed ^ value)
    assert hashed is not None
    return hashed


def uniform(
    seed: int, stream: int, identities: Tensor, draws: Tensor, step: int, dim: int
) -> Tensor:
    """(N, dim) float32 uniforms in (0, 1) for the N (identity, draw) pairs at ``step``.

    Row n depends only on (seed, stream, identities[n], draws[n], step): the same pair gets the
    same numbers in any batch, on any rank, after any resume.
    """
    device = identities.device
    columns = torch.arange(dim, device=device, dtype=torch.int64)
    seed_words = (seed & MASK32, (seed >> 32) & MASK32)
    head = _key(*seed_words, stream, step)
    hashed = _key(head.to(device), identities.long()[:, None], draws.long()[:, None], columns)
    top = (hashed >> (32 - UNIFORM_BITS)).to(torch.float32)
    return (top + 0.5) / float(1 << UNIFORM_BITS)


def normal(
    seed: int, stream: int, identities: Tensor, draws: Tensor, step: int, dim: int
) -> Tensor:
    """(N, dim) standard normal draws for the pairs at ``step``, by Box-Muller:
    sqrt(-2 ln u1) cos(2 pi u2) with u1, u2 two independent ``uniform`` blocks."""
    both = uniform(seed, stream, identities, draws, step, 2 * dim)
    radius = torch.sqrt(-2.0 * torch.log(both[:, :dim]))
    return radius * torch.cos(2.0 * math.pi * both[:, dim:])
