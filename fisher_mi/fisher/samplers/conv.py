"""``nn.Conv1d`` and ``nn.Conv2d`` (stride, padding of any mode, dilation, groups, bias).

The input is unfolded into patches A_n (per group: (C_in/G * k) x L, L output positions) and
the output gradient is B_n (per group: C_out/G x L), so the weight gradient is
G_n = B_n A_n^T per group and

    ||G_n||^2 = sum_g ||B_ng A_ng^T||_F^2                          (direct form)
              = sum_g sum_{l,m} (A_ng^T A_ng)_{lm} (B_ng^T B_ng)_{lm}   (Gram form)

costing C_out C_in k L / G and L^2 (C_in k + C_out) flops per sample respectively,

so the cheaper of the two is chosen per layer from the shapes (Gram wins where few output positions
meet many channels, late in a CNN). The bias gradient is B_n summed over positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.fisher.samplers.base import ParameterSampler, register_sampler

Conv = nn.Conv1d | nn.Conv2d


def _pair(values: tuple[int, ...], one_d: bool, fill: int) -> tuple[int, int]:
    return (fill, values[0]) if one_d else (values[0], values[1])


def unfold_patches(module: Conv, a: Tensor) -> Tensor:
    """Input patches (batch, groups, C_in/groups * kernel, positions), padding applied."""
    one_d = isinstance(module, nn.Conv1d)
    padding = (0, 0)
    if isinstance(module.padding, str) or module.padding_mode != "zeros":  # pad explicitly
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        a = F.pad(a, module._reversed_padding_repeated_twice, mode=mode)
    else:
        padding = _pair(module.padding, one_d, 0)
    if one_d:
        a = a.unsqueeze(2)
    patches = F.unfold(
        a,
        kernel_size=_pair(module.kernel_size, one_d, 1),
        dilation=_pair(module.dilation, one_d, 1),
        padding=padding,
        stride=_pair(module.stride, one_d, 1),
    )
    return patches.reshape(a.shape[0], module.groups, -1, patches.shape[-1])


def output_gradients(module: Conv, b: Tensor) -> Tensor:
    """Output gradients as (batch, groups, C_out/groups, positions)."""
    return b.reshape(b.shape[0], module.groups, module.out_channels // module.groups, -1)


def gram_is_cheaper(positions: int, fan_in: int, fan_out: int) -> bool:
    return positions * (fan_in + fan_out) < fan_in * fan_out


@register_sampler(nn.Conv1d, nn.Conv2d)
class ConvSampler(ParameterSampler):
    def per_sample_grads(self, module: Conv, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        patches, grads_out = unfold_patches(module, a), output_gradients(module, b)
        weight = torch.einsum("bgol,bgil->bgoi", grads_out, patches)
        grads = {"weight": weight.reshape(a.shape[0], *module.weight.shape)}
        if module.bias is not None:
            grads["bias"] = b.flatten(2).sum(2)
        return grads

    def squared_norms(self, module: Conv, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        patches, grads_out = unfold_patches(module, a), output_gradients(module, b)
        positions, fan_in, fan_out = patches.shape[-1], patches.shape[2], grads_out.shape[2]
        if gram_is_cheaper(positions, fan_in, fan_out):
            gram_in = torch.einsum("bgil,bgim->bglm", patches, patches)
            gram_out = torch.einsum("bgol,bgom->bglm", grads_out, grads_out)
            weight = (gram_in * gram_out).sum((1, 2, 3))
        else:
            weight = torch.einsum("bgol,bgil->bgoi", grads_out, patches).pow(2).sum((1, 2, 3))
        norms = {"weight": weight}
        if module.bias is not None:
            norms["bias"] = b.flatten(2).sum(2).pow(2).sum(1)
        return norms
