"""``nn.Embedding``: rows of the table picked by integer indices.

Sample n's gradient is G_n[v] = sum_{t: i_t = v} b_t (positions with ``padding_idx`` get none).
Only the rows a sample uses are non-zero, so each distinct (sample, row) pair's sum is formed
once (never a vocabulary-sized tensor per sample): ||G_n||^2 sums its pairs' squared norms,
and the diagonal adds each pair's squares to its row. Summing before squaring matters: the
expanded form sum_{t,s} [i_t = i_s] (b_t . b_s) loses all relative precision when a row's
gradients cancel (found by fuzzing: repeated tokens under a LayerNorm, 1e-7 off in float64).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fisher_mi.fisher.samplers.base import ParameterSampler, register_sampler


def _rows(module: nn.Embedding, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Indices (batch, T) and output gradients (batch, T, dim), padding positions zeroed."""
    length = math.prod(a.shape[1:])  # explicit, so an empty batch reshapes too
    indices = a.reshape(a.shape[0], length)
    grads = b.reshape(b.shape[0], length, module.embedding_dim)
    if module.padding_idx is not None:
        grads = grads * (indices != module.padding_idx).unsqueeze(-1)
    return indices, grads


def _row_sums(module: nn.Embedding, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct (sample, row) pairs, coded sample * vocabulary + row, and each pair's
    gradient sum_{t: i_t = row} b_t, shape (pairs, dim)."""
    indices, grads = _rows(module, a, b)
    batch = torch.arange(indices.shape[0], device=indices.device).unsqueeze(1)
    pairs, slot = torch.unique(
        (batch * module.num_embeddings + indices).flatten(), return_inverse=True
    )
    sums = grads.new_zeros(pairs.numel(), module.embedding_dim)
    sums.index_add_(0, slot, grads.reshape(-1, module.embedding_dim))
    return pairs, sums


@register_sampler(nn.Embedding)
class EmbeddingSampler(ParameterSampler):
    """Embedding tables: per (sample, row) pair sums of output gradients (module docstring)."""

    def supports(self, module: nn.Embedding) -> bool:
        """Not with ``max_norm`` or ``scale_grad_by_freq``, which change the gradient."""
        # max_norm rewrites the table during the forward; scale_grad_by_freq rescales rows
        # by their count in the batch: both left to the fallback
        return module.max_norm is None and not module.scale_grad_by_freq

    def per_sample_grads(self, module: nn.Embedding, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """The whole (batch, vocabulary, dim) table of G_n, to check the closed forms against:
        the norms and the diagonal below never build it."""
        indices, grads = _rows(module, a, b)
        table = grads.new_zeros(indices.shape[0], module.num_embeddings, module.embedding_dim)
        table.scatter_add_(1, indices.unsqueeze(-1).expand_as(grads), grads)
        return {"weight": table}

    def squared_norms(self, module: nn.Embedding, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """||G_n||^2 = sum over sample n's distinct rows of ||sum_{t: i_t = row} b_t||^2."""
        pairs, sums = _row_sums(module, a, b)
        norms = b.new_zeros(a.shape[0])
        norms.index_add_(0, pairs // module.num_embeddings, sums.square().sum(1))
        return {"weight": norms}

    def diagonal(self, module: nn.Embedding, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """Each (sample, row) pair's squared gradient sum added to its row of the table."""
        pairs, sums = _row_sums(module, a, b)
        diagonal = b.new_zeros(module.num_embeddings, module.embedding_dim)
        diagonal.index_add_(0, pairs % module.num_embeddings, sums.square())
        return {"weight": diagonal}
