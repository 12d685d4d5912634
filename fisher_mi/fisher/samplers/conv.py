"""``nn.Conv1d`` and ``nn.Conv2d`` (stride, padding of any mode, dilation, groups, bias).

With input patches A_n (per group: C_in/G * k rows, L output positions) and output gradient
B_n (per group: C_out/G x L), the weight gradient is G_n = B_n A_n^T per group and

    ||G_n||^2 = sum_g ||B_ng A_ng^T||_F^2                          (direct form)
              = sum_g sum_{l,m} (A_ng^T A_ng)_{lm} (B_ng^T B_ng)_{lm}   (Gram form)

costing C_out C_in k L / G and L^2 (C_in k + C_out) flops per sample respectively, so the
cheaper of the two is chosen per layer from the shapes (Gram wins where few output positions
meet many channels, late in a CNN). The bias gradient is B_n summed over positions.

The direct form and the diagonal (sum_n G_n * G_n) need the G_n themselves, built by one of
two kernels, both vectorised over the samples and costing the flops of the ordinary batch
weight gradient (the step they replace):

* ``grouped``: the convolution's own weight-gradient kernel once, with the batch folded into
  the groups. Fast while the maps are large next to the patch length (early layers);
* ``blocked``: the patches unfolded once, then a batched matmul over a block of output
  channels at a time, each block reduced (squared, summed) as soon as it exists. The CPU
  grouped kernel slows 3-80x where small maps meet many channels (measured, 2 cores: 9x at
  512 channels on 8x8, 30x on 4x4), and blocks sized to stay in cache avoid ever holding all
  B x C_out x C_in k values at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.fisher.samplers.base import ParameterSampler, register_sampler

Conv = nn.Conv1d | nn.Conv2d

BLOCK_ELEMENTS = 1 << 21
"""Per-sample gradient values formed at once by the blocked kernel (8 MiB in float32)."""


def _padded(module: Conv, a: Tensor) -> tuple[Tensor, list[int]]:
    """The input with any non-zero or string padding applied, and the padding left to do."""
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        return F.pad(a, module._reversed_padding_repeated_twice, mode=mode), [0] * (a.dim() - 2)
    return a, list(module.padding)


def grouped_weight_grads(module: Conv, a: Tensor, b: Tensor) -> Tensor:
    """G_n for every sample, (batch, *weight shape): one grouped weight-gradient kernel call."""
    batch = a.shape[0]
    if batch == 0:
        return a.new_zeros(0, *module.weight.shape)
    a, padding = _padded(module, a)
    spatial = a.dim() - 2
    shape_only = a.new_empty(()).expand(batch * module.out_channels, *module.weight.shape[1:])
    grads = torch.ops.aten.convolution_backward(
        b.reshape(1, -1, *b.shape[2:]),
        a.reshape(1, -1, *a.shape[2:]),
        shape_only,
        None,
        list(module.stride),
        padding,
        list(module.dilation),
        False,
        [0] * spatial,
        batch * module.groups,
        [False, True, False],
    )[1]
    return grads.reshape(batch, *module.weight.shape)


def unfold_patches(module: Conv, a: Tensor) -> Tensor:
    """Input patches (batch, groups, C_in/groups * kernel, positions), padding applied."""
    one_d = isinstance(module, nn.Conv1d)
    a, padding = _padded(module, a)
    if one_d:
        a, padding = a.unsqueeze(2), [0, *padding]
    patches = F.unfold(
        a,
        kernel_size=(1, *module.kernel_size) if one_d else module.kernel_size,
        dilation=(1, *module.dilation) if one_d else module.dilation,
        padding=padding,
        stride=(1, *module.stride) if one_d else module.stride,
    )
    per_group = patches.shape[1] // module.groups
    return patches.reshape(a.shape[0], module.groups, per_group, patches.shape[-1])


def grouped_kernel_is_fast(positions: int, fan_in: int) -> bool:
    """Whether the grouped kernel suits the layer: patches no longer than 4x the positions."""
    return fan_in <= 4 * positions


def weight_grad_blocks(module: Conv, a: Tensor, b: Tensor) -> Iterator[tuple[slice, Tensor]]:
    """Per-sample weight gradients block by block: ``(rows, G)`` with G of shape
    (batch, groups, len(rows), C_in/groups * kernel), ``rows`` a slice of the output
    channels of each group. Either kernel (module docstring), chosen from the shapes."""
    groups = module.groups
    fan_out = module.out_channels // groups
    fan_in = module.weight[0].numel()
    positions = math.prod(b.shape[2:])
    batch = a.shape[0]
    if batch == 0 or grouped_kernel_is_fast(positions, fan_in):
        grads = grouped_weight_grads(module, a, b)
        yield slice(0, fan_out), grads.reshape(batch, groups, fan_out, fan_in)
        return
    patches = unfold_patches(module, a).transpose(2, 3)  # (batch, groups, L, fan_in)
    grads_out = b.reshape(batch, groups, fan_out, positions)
    rows = max(1, BLOCK_ELEMENTS // (batch * groups * fan_in))
    for start in range(0, fan_out, rows):
        block = slice(start, min(start + rows, fan_out))
        yield block, torch.matmul(grads_out[:, :, block], patches)


def gram_is_cheaper(positions: int, fan_in: int, fan_out: int) -> bool:
    """L^2 (fan_in + fan_out) < fan_in fan_out L, i.e. the Gram form costs fewer flops."""
    return positions * (fan_in + fan_out) < fan_in * fan_out


def _bias(module: Conv, b: Tensor) -> dict[str, Tensor]:
    return {} if module.bias is None else {"bias": b.flatten(2).sum(2)}


@register_sampler(nn.Conv1d, nn.Conv2d)
class ConvSampler(ParameterSampler):
    def per_sample_grads(self, module: Conv, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        blocks = [grads for _, grads in weight_grad_blocks(module, a, b)]
        weight = torch.cat(blocks, dim=2).reshape(a.shape[0], *module.weight.shape)
        return {"weight": weight, **_bias(module, b)}

    def squared_norms(self, module: Conv, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        positions = math.prod(b.shape[2:])
        fan_in = module.weight[0].numel()
        fan_out = module.out_channels // module.groups
        if gram_is_cheaper(positions, fan_in, fan_out):
            patches = unfold_patches(module, a)
            grads_out = b.reshape(b.shape[0], module.groups, fan_out, positions)
            gram_in = torch.einsum("bgil,bgim->bglm", patches, patches)
            gram_out = torch.einsum("bgol,bgom->bglm", grads_out, grads_out)
            weight = (gram_in * gram_out).sum((1, 2, 3))
        else:
            weight = sum(
                grads.square().sum((1, 2, 3)) for _, grads in weight_grad_blocks(module, a, b)
            )
        norms = {"weight": weight}
        if module.bias is not None:
            norms["bias"] = _bias(module, b)["bias"].pow(2).sum(1)
        return norms

    def diagonal(self, module: Conv, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        groups = module.groups
        weight = b.new_zeros(groups, module.out_channels // groups, module.weight[0].numel())
        for rows, grads in weight_grad_blocks(module, a, b):
            weight[:, rows] = grads.square().sum(0)
        diagonal = {"weight": weight.reshape(module.weight.shape)}
        if module.bias is not None:
            diagonal["bias"] = _bias(module, b)["bias"].square().sum(0)
        return diagonal
