"""``nn.PReLU`` (IR-152/FaceNet's activation): y = max(x, 0) + w * min(x, 0).

Sample n's gradient of w is sum over positions of b_n * min(a_n, 0), per channel (dim 1) when
the layer has one parameter per channel, over everything when it has a single one.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from fisher_mi.fisher.samplers.base import ParameterSampler, register_sampler


@register_sampler(nn.PReLU)
class PReLUSampler(ParameterSampler):
    """PReLU's slope gradients (module docstring); squared norms and diagonal come from them,
    as there are only as many values per sample as channels."""

    def per_sample_grads(self, module: nn.PReLU, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """g_n = sum over positions of b_n * min(a_n, 0), per channel or over everything."""
        contribution = b * a.clamp(max=0)
        batch = contribution.shape[0]
        if module.num_parameters == 1:
            return {
                "weight": contribution.reshape(batch, math.prod(contribution.shape[1:])).sum(
                    1, keepdim=True
                )
            }
        positions = math.prod(contribution.shape[2:])  # explicit, so an empty batch reshapes too
        return {"weight": contribution.reshape(batch, module.num_parameters, positions).sum(2)}
