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
weight gradient (the step they replace), both working block by block so that only a bounded
number of per-sample gradient values exists at a time and each block is reduced (squared,
summed) while it is still in cache:

* ``grouped``: the convolution's own weight-gradient kernel, with a block of samples folded
  into the groups. Fast while the maps are not small next to the patch length;
* ``blocked``: the patches unfolded once, then a batched matmul per block of output channels.
  The CPU grouped kernel slows 5-25x where tiny maps meet many channels (measured on 2 cores
  at batch 32: 512 channels on 4x4 maps, 256 on 4x4, 512 on 2x2), where this one stays
  near 4x the batch weight gradient, the cost of squaring B x C_out x C_in k values.

On small maps even that squaring is avoided for the diagonal: expanding the square,

    sum_n G_n * G_n [o, i] = sum_n sum_{l <= m} w_lm (B_nol B_nom) (A_nil A_nim),

w = 1 on the diagonal and 2 off it, is one matmul with inner size B L (L + 1) / 2 over
products of pairs of positions. It costs (L + 1) / 2 times the weight gradient's flops but
never forms a per-sample gradient, which wins on the smallest maps of large layers
(``uses_expanded_square``). Its price is rounding: its error scales with
eps (sum_l |B_nol A_nil|)^2 where the direct route's scales with eps |G_n| sum_l |B_nol A_nil|,
so an entry whose per-sample gradients cancel to near zero (a convolution followed by a
normalisation over positions, like GroupNorm) is known only to that absolute level: relative
to the layer's largest entries it stays at float rounding. Small layers, where the per-sample
route costs little, keep the direct route and its accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.fisher.samplers.base import ParameterSampler, register_sampler, sum_of_squares

Conv = nn.Conv1d | nn.Conv2d

GROUPED_ELEMENTS = 1 << 21
"""Per-sample gradient values formed at once by the grouped kernel (8 MiB in float32):
measured on 2 cores at batch 32, 256 channels on 8x8 maps, 3.1x the batch weight gradient
against 5.3x with 4 Mi values and 7.4x with 8 Mi."""

BLOCK_ELEMENTS = 1 << 23
"""Per-sample gradient values formed at once by the blocked kernel (32 MiB in float32):
measured likewise at 512 channels on 8x8 maps, 3.6x against 4.1x with 4 Mi and 5.5x with 2 Mi."""

EXPANDED_SQUARE_POSITIONS = 4
"""Largest number of output positions at which the diagonal may use the expanded square
(module docstring). Measured on 2 cores at batch 32, 512 channels, in units of the batch
weight gradient: 2x2 maps 3.3x (per-sample route 10.6x), 4x4 maps 15.6x (per-sample 5.0x)."""

EXPANDED_SQUARE_WEIGHTS = 1 << 16
"""Fewest weights per group for the expanded square: below, the per-sample route is cheap."""


def uses_expanded_square(positions: int, fan_in: int, fan_out: int) -> bool:
    """Whether the diagonal takes the expanded square: tiny maps, large layer."""
    return positions <= EXPANDED_SQUARE_POSITIONS and fan_in * fan_out >= EXPANDED_SQUARE_WEIGHTS


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
    """Whether the grouped kernel suits the layer: patches at most 64x the positions."""
    return fan_in <= 64 * positions


def _grads_shape(module: Conv) -> tuple[int, int, int]:
    """The weight seen as (groups, C_out/groups, C_in/groups * kernel)."""
    return module.groups, module.out_channels // module.groups, module.weight[0].numel()


@dataclass(frozen=True)
class WeightGradBlock:
    """Per-sample weight gradients of some samples and some output channels of each group:
    ``grads`` has shape (len(samples), groups, len(rows), C_in/groups * kernel). It is
    scratch memory: valid until the next block is asked for, and free to overwrite."""

    samples: slice
    rows: slice
    grads: Tensor


def weight_grad_blocks(module: Conv, a: Tensor, b: Tensor) -> Iterator[WeightGradBlock]:
    """Every sample's weight gradient, block by block, by the kernel the shapes call for
    (module docstring)."""
    groups, fan_out, fan_in = _grads_shape(module)
    positions = math.prod(b.shape[2:])
    batch = a.shape[0]
    if batch == 0:
        return
    if grouped_kernel_is_fast(positions, fan_in):
        every_row = slice(0, fan_out)
        step = max(1, GROUPED_ELEMENTS // module.weight.numel())
        for start in range(0, batch, step):
            samples = slice(start, min(start + step, batch))
            grads = grouped_weight_grads(module, a[samples], b[samples])
            yield WeightGradBlock(samples, every_row, grads.reshape(-1, groups, fan_out, fan_in))
        return
    patches = unfold_patches(module, a).transpose(2, 3)  # (batch, groups, L, fan_in)
    grads_out = b.reshape(batch, groups, fan_out, positions)
    step = min(fan_out, max(1, BLOCK_ELEMENTS // (batch * groups * fan_in)))
    scratch = b.new_empty(batch * groups * step * fan_in)  # reused: fresh pages cost more
    every_sample = slice(0, batch)
    for start in range(0, fan_out, step):
        rows = slice(start, min(start + step, fan_out))
        grads = scratch[: batch * groups * (rows.stop - start) * fan_in]
        grads = grads.view(batch, groups, rows.stop - start, fan_in)
        torch.matmul(grads_out[:, :, rows], patches, out=grads)
        yield WeightGradBlock(every_sample, rows, grads)


def gram_is_cheaper(positions: int, fan_in: int, fan_out: int) -> bool:
    """L^2 (fan_in + fan_out) < fan_in fan_out L, i.e. the Gram form costs fewer flops."""
    return positions * (fan_in + fan_out) < fan_in * fan_out


def _bias(module: Conv, b: Tensor) -> dict[str, Tensor]:
    return {} if module.bias is None else {"bias": b.flatten(2).sum(2)}


def _expanded_square_diagonal(module: Conv, a: Tensor, b: Tensor) -> Tensor:
    """sum_n G_n * G_n as (groups, C_out/groups, C_in/groups * kernel), from products of
    pairs of positions (module docstring), in blocks of samples of bounded size."""
    groups, fan_out, fan_in = _grads_shape(module)
    patches = unfold_patches(module, a)  # (batch, groups, fan_in, L)
    grads_out = b.reshape(b.shape[0], groups, fan_out, patches.shape[-1])
    first, second = torch.triu_indices(*(patches.shape[-1],) * 2, device=b.device)
    twice_off_diagonal = (first != second).to(b.dtype) + 1
    step = max(1, BLOCK_ELEMENTS // (groups * (fan_in + fan_out) * first.numel()))
    weight = b.new_zeros(groups, fan_out, fan_in)
    for start in range(0, a.shape[0], step):
        inputs, outputs = patches[start : start + step], grads_out[start : start + step]
        input_pairs = inputs[..., first] * inputs[..., second]
        output_pairs = outputs[..., first] * outputs[..., second] * twice_off_diagonal
        weight += torch.einsum("ngop,ngip->goi", output_pairs, input_pairs)
    return weight


@register_sampler(nn.Conv1d, nn.Conv2d)
class ConvSampler(ParameterSampler):
    """1-D and 2-D convolutions: the Gram or the direct form for norms, the blocked kernels or
    the expanded square for the diagonal (module docstring), chosen from the shapes."""

    def per_sample_grads(self, module: Conv, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """All G_n at once, assembled from the bounded blocks, to check the closed forms
        against: the norms and the diagonal below reduce each block instead."""
        weight = b.new_zeros(a.shape[0], *_grads_shape(module))
        for block in weight_grad_blocks(module, a, b):
            weight[block.samples, :, block.rows] = block.grads
        return {"weight": weight.reshape(a.shape[0], *module.weight.shape), **_bias(module, b)}

    def squared_norms(self, module: Conv, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """||G_n||^2 by the Gram form where ``gram_is_cheaper``, else block by block from the
        per-sample weight gradients; the bias's ||sum_l B_nl||^2."""
        groups, fan_out, fan_in = _grads_shape(module)
        positions = math.prod(b.shape[2:])
        if gram_is_cheaper(positions, fan_in, fan_out):
            patches = unfold_patches(module, a)
            grads_out = b.reshape(b.shape[0], groups, fan_out, positions)
            gram_in = torch.einsum("bgil,bgim->bglm", patches, patches)
            gram_out = torch.einsum("bgol,bgom->bglm", grads_out, grads_out)
            weight = (gram_in * gram_out).sum((1, 2, 3))
        else:
            weight = b.new_zeros(a.shape[0])
            for block in weight_grad_blocks(module, a, b):
                weight[block.samples] += sum_of_squares(block.grads, dim=(1, 2, 3))
        norms = {"weight": weight}
        if module.bias is not None:
            norms["bias"] = _bias(module, b)["bias"].square().sum(1)
        return norms

    def diagonal(self, module: Conv, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """sum_n G_n * G_n by the expanded square on tiny maps of large layers
        (``uses_expanded_square``), else from the bounded blocks of per-sample gradients."""
        shape = _grads_shape(module)
        _, fan_out, fan_in = shape
        if uses_expanded_square(math.prod(b.shape[2:]), fan_in, fan_out):
            weight = _expanded_square_diagonal(module, a, b)
        else:
            weight = b.new_zeros(shape)
            for block in weight_grad_blocks(module, a, b):
                weight[:, block.rows] += block.grads.square_().sum(0)
        diagonal = {"weight": weight.reshape(module.weight.shape)}
        if module.bias is not None:
            diagonal["bias"] = _bias(module, b)["bias"].square().sum(0)
        return diagonal
