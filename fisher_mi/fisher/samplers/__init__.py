"""Per-module-type samplers of per-sample gradient quantities (the ``hooks`` backend's math).

Importing this package registers every sampler; ``sampler_for(module)`` finds one.
"""

from fisher_mi.fisher.samplers import activation, conv, embedding, linear, norm  # noqa: F401
from fisher_mi.fisher.samplers.base import SAMPLERS, ParameterSampler, register_sampler, sampler_for

__all__ = ["SAMPLERS", "ParameterSampler", "register_sampler", "sampler_for"]
