"""``nn.Embedding``: rows of the table picked by integer indices.

Sample n's gradient is G_n[v] = sum_{t: i_t = v} b_t (positions with ``padding_idx`` get none),
so ||G_n||^2 = sum_{t,s} [i_t = i_s] (b_t . b_s): a T x T Gram matrix masked by equal indices,
never a vocabulary-sized tensor per sample. The diagonal adds each sample's rows once per
distinct (sample, row) pair.
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


@register_sampler(nn.Embedding)
class EmbeddingSampler(ParameterSampler):
    def supports(self, module: nn.Embedding) -> bool:
        # max_norm rewrites the table during the forward; scale_grad_by_freq rescales rows
        # by their count in the batch: both left to the fallback
        return module.max_norm is None and not module.scale_grad_by_freq

    def per_sample_grads(self, module: nn.Embedding, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        indices, grads = _rows(module, a, b)
        table = grads.new_zeros(indices.shape[0], module.num_embeddings, module.embedding_dim)
        table.scatter_add_(1, indices.unsqueeze(-1).expand_as(grads), grads)
        return {"weight": table}

    def squared_norms(self, module: nn.Embedding, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        indices, grads = _rows(module, a, b)
        same_row = indices.unsqueeze(2) == indices.unsqueeze(1)
        return {"weight": (torch.bmm(grads, grads.transpose(1, 2)) * same_row).sum((1, 2))}

    def diagonal(self, module: nn.Embedding, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        indices, grads = _rows(module, a, b)
        batch = torch.arange(indices.shape[0], device=indices.device).unsqueeze(1)
        pairs, slot = torch.unique(
            (batch * module.num_embeddings + indices).flatten(), return_inverse=True
        )
        per_pair = grads.new_zeros(pairs.numel(), module.embedding_dim)
        per_pair.index_add_(0, slot, grads.reshape(-1, module.embedding_dim))
        diagonal = grads.new_zeros(module.num_embeddings, module.embedding_dim)
        diagonal.index_add_(0, pairs % module.num_embeddings, per_pair.pow(2))
        return {"weight": diagonal}
