"""``nn.Linear`` with any number of leading dimensions.

With a_n in R^{T x in} and b_n in R^{T x out} (T = 1 for plain 2-D input), the weight
gradient is G_n = b_n^T a_n and

    ||G_n||^2 = ||a_n||^2 ||b_n||^2                       (T = 1)
              = sum_{t,s} (a_t . a_s)(b_t . b_s)           (Gram form, T^2 (in + out) flops)
              = ||b_n^T a_n||_F^2                          (direct form, T in out flops)

the cheaper of the last two chosen per layer from the shapes. The bias gradient is
sum_t b_t.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fisher_mi.fisher.samplers.base import ParameterSampler, register_sampler, sum_of_squares


def _as_sequences(module: nn.Linear, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    batch = a.shape[0]
    length = math.prod(a.shape[1:-1])  # explicit, so an empty batch reshapes too
    return (
        a.reshape(batch, length, module.in_features),
        b.reshape(batch, length, module.out_features),
    )


def gram_is_cheaper(length: int, fan_in: int, fan_out: int) -> bool:
    """Whether sum_{t,s} (a_t.a_s)(b_t.b_s) costs less than forming b^T a per sample."""
    return length * (fan_in + fan_out) < fan_in * fan_out


@register_sampler(nn.Linear)
class LinearSampler(ParameterSampler):
    """Linear layers on (batch, ..., features) input: the norm identities of the module
    docstring, and the diagonal as one matmul of squares for 2-D input."""

    def per_sample_grads(self, module: nn.Linear, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """G_n = b_n^T a_n (summed over any sequence positions) and the bias's sum_t b_t."""
        a3, b3 = _as_sequences(module, a, b)
        grads = {"weight": torch.einsum("bto,bti->boi", b3, a3)}
        if module.bias is not None:
            grads["bias"] = b3.sum(1)
        return grads

    def squared_norms(self, module: nn.Linear, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """||G_n||^2 without forming G_n where possible: ||a_n||^2 ||b_n||^2 for T = 1, else
        the Gram or the direct form, whichever ``gram_is_cheaper`` says costs less."""
        a3, b3 = _as_sequences(module, a, b)
        length = a3.shape[1]
        if length == 1:
            weight = a3.pow(2).sum((1, 2)) * b3.pow(2).sum((1, 2))
        elif gram_is_cheaper(length, module.in_features, module.out_features):
            weight = (torch.bmm(a3, a3.transpose(1, 2)) * torch.bmm(b3, b3.transpose(1, 2))).sum(
                (1, 2)
            )
        else:
            weight = sum_of_squares(torch.bmm(b3.transpose(1, 2), a3), dim=(1, 2))
        norms = {"weight": weight}
        if module.bias is not None:
            norms["bias"] = b3.sum(1).pow(2).sum(1)
        return norms

    def diagonal(self, module: nn.Linear, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """sum_n G_n * G_n = (b * b)^T (a * a) for T = 1 (entries factor as b_o a_i); with
        sequences the per-sample gradients are formed (the square does not factor)."""
        a3, b3 = _as_sequences(module, a, b)
        if a3.shape[1] != 1:
            return super().diagonal(module, a, b)
        a2, b2 = a3[:, 0], b3[:, 0]
        diagonal = {"weight": b2.pow(2).T @ a2.pow(2)}
        if module.bias is not None:
            diagonal["bias"] = b2.pow(2).sum(0)
        return diagonal
