"""Affine parameters of normalisation layers: BatchNorm (eval), GroupNorm, LayerNorm,
InstanceNorm.

Each computes y = x_hat * weight + bias with x_hat the normalised input, so sample n's
gradients are weight: sum over the non-parameter positions of b_n * x_hat_n, bias: the sum of
b_n. x_hat is recomputed from the input (one normalisation pass, no parameter gradients).
BatchNorm is handled only with running statistics (eval mode), where samples do not interact.
"""

from __future__ import annotations

from abc import abstractmethod

import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.fisher.samplers.base import ParameterSampler, register_sampler


class AffineNormSampler(ParameterSampler):
    """Shared math: per-sample sums of b * x_hat and of b over the non-parameter dims."""

    @abstractmethod
    def normalised(self, module: nn.Module, a: Tensor) -> Tensor:
        """The input normalised as the module does it, before the affine map."""

    def reduce_dims(self, module: nn.Module, b: Tensor) -> tuple[int, ...]:
        """Dims summed away: all but batch and the channel dim 1 (overridden by LayerNorm)."""
        return tuple(range(2, b.dim()))

    def per_sample_grads(self, module: nn.Module, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """weight: b_n * x_hat_n, bias: b_n, each summed over the non-parameter dims (so
        as many values per sample as the parameter has)."""
        dims = self.reduce_dims(module, b)

        def reduce(t: Tensor) -> Tensor:  # Tensor.sum(()) would sum everything
            return t.sum(dims) if dims else t

        grads = {}
        if module.weight is not None:
            grads["weight"] = reduce(b * self.normalised(module, a))
        if module.bias is not None:
            grads["bias"] = reduce(b)
        return grads


@register_sampler(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
class BatchNormSampler(AffineNormSampler):
    """Eval-mode BatchNorm: x_hat from the running statistics."""

    def supports(self, module: nn.Module) -> bool:
        """Only with running statistics in eval mode: batch statistics mix the samples."""
        return not module.training and module.running_mean is not None

    def normalised(self, module: nn.modules.batchnorm._BatchNorm, a: Tensor) -> Tensor:
        """(a - running_mean) / sqrt(running_var + eps), per channel."""
        return F.batch_norm(
            a, module.running_mean, module.running_var, training=False, eps=module.eps
        )


@register_sampler(nn.GroupNorm)
class GroupNormSampler(AffineNormSampler):
    """GroupNorm: x_hat normalised within each sample's channel groups."""

    def normalised(self, module: nn.GroupNorm, a: Tensor) -> Tensor:
        """``F.group_norm`` without the affine map."""
        return F.group_norm(a, module.num_groups, eps=module.eps)


@register_sampler(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
class InstanceNormSampler(AffineNormSampler):
    """InstanceNorm (affine): x_hat per sample and channel, or from running statistics."""

    def normalised(self, module: nn.modules.instancenorm._InstanceNorm, a: Tensor) -> Tensor:
        """``F.instance_norm`` without the affine map, with the module's choice of
        statistics (the input's unless it tracks running ones and is in eval mode)."""
        use_input_stats = module.training or not module.track_running_stats
        return F.instance_norm(
            a,
            module.running_mean,
            module.running_var,
            use_input_stats=use_input_stats,
            eps=module.eps,
        )


@register_sampler(nn.LayerNorm)
class LayerNormSampler(AffineNormSampler):
    """LayerNorm: parameters span the trailing normalised dims, not channel dim 1."""

    def reduce_dims(self, module: nn.LayerNorm, b: Tensor) -> tuple[int, ...]:
        """The dims between the batch and the normalised shape (e.g. sequence positions)."""
        return tuple(range(1, b.dim() - len(module.normalized_shape)))

    def normalised(self, module: nn.LayerNorm, a: Tensor) -> Tensor:
        """``F.layer_norm`` over ``normalized_shape`` without the affine map."""
        return F.layer_norm(a, module.normalized_shape, eps=module.eps)
