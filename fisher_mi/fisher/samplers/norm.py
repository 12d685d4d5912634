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
    def supports(self, module: nn.Module) -> bool:
        return not module.training and module.running_mean is not None

    def normalised(self, module: nn.modules.batchnorm._BatchNorm, a: Tensor) -> Tensor:
        return F.batch_norm(
            a, module.running_mean, module.running_var, training=False, eps=module.eps
        )


@register_sampler(nn.GroupNorm)
class GroupNormSampler(AffineNormSampler):
    def normalised(self, module: nn.GroupNorm, a: Tensor) -> Tensor:
        return F.group_norm(a, module.num_groups, eps=module.eps)


@register_sampler(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
class InstanceNormSampler(AffineNormSampler):
    def normalised(self, module: nn.modules.instancenorm._InstanceNorm, a: Tensor) -> Tensor:
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
    def reduce_dims(self, module: nn.LayerNorm, b: Tensor) -> tuple[int, ...]:
        return tuple(range(1, b.dim() - len(module.normalized_shape)))

    def normalised(self, module: nn.LayerNorm, a: Tensor) -> Tensor:
        return F.layer_norm(a, module.normalized_shape, eps=module.eps)
