"""MID's variational information bottleneck head (Wang et al., "Improving Robustness to Model
Inversion Attacks via Mutual Information Regularization", AAAI 2021), on any classifier whose
``fc_layer`` is a linear map of its features.

The head replaces ``fc_layer``: ``st_layer`` (Linear, feature_dim -> 2K) gives the statistics
of a Gaussian code, ``mu`` its first K outputs and ``sigma = softplus(s - 5)`` of the last K
(the shift starts sigma near e^-5: the code begins almost deterministic), ``z = mu + sigma *
eps`` with eps ~ N(0, I), and a new ``fc_layer`` (Linear, K -> classes) classifies z. K is
feature_dim / 2 by default, as in the MID reference. The forward returns ``(z, logits)`` while
training or with ``sample = True``, else ``(mu, logits)``: evaluation, Fisher profiles and
the adaptive attacker see the deterministic head; the literature attacks MID with sampling.

Layout: the head's layers are registered at the top level next to the base model's own
children (``feature``, ``bn``, ...), so the state-dict keys are the base's, with
``st_layer.*`` and ``fc_layer.*`` for the head, as in the MID reference's ``VGG16_vib``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.errors import ConfigError

SIGMA_SHIFT = 5.0  # sigma = softplus(s - 5): the reference's shift
HEAD = ("st_layer", "fc_layer")  # the head's layers, in depth order


def split_statistics(statistics: Tensor) -> tuple[Tensor, Tensor]:
    """``(mu, sigma)`` from ``st_layer``'s output: its first half, and softplus(second half
    - 5)."""
    s_mu, s_sigma = statistics.chunk(2, dim=1)
    return s_mu, F.softplus(s_sigma - SIGMA_SHIFT)


class VIBClassifier(nn.Module):
    """``base`` with its ``fc_layer`` replaced by the VIB head (the module docstring).

    The base model runs as it is with an identity in place of its ``fc_layer``, so its
    forward yields the features the old classifier read. The base itself is held outside
    the module tree (its children are registered here directly, under their own names), so
    parameters, buffers, ``train``/``eval`` and devices go through this module alone.

    Attributes:
        k: the code's width K.
        sample: draw z also in eval mode (the literature's attack on MID); False: mu.
    """

    def __init__(self, base: nn.Module, k: int | None = None) -> None:
        super().__init__()
        classifier = getattr(base, "fc_layer", None)
        if not isinstance(classifier, nn.Linear):
            raise ConfigError(
                f"the VIB head replaces a linear classifier fc_layer, which "
                f"{type(base).__name__} lacks; pick an architecture with one"
            )
        width = classifier.in_features // 2 if k is None else k
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"the VIB code width must be a whole number of at least 1, got {k!r}")
        base.fc_layer = nn.Identity()
        for name, child in base.named_children():
            if name != "fc_layer":
                self.add_module(name, child)
        self.__dict__["body"] = base  # outside the module tree: its children are ours
        self.k = width
        self.sample = False
        self.input_shape = getattr(base, "input_shape", None)
        self.feat_dim = width
        self.st_layer = nn.Linear(classifier.in_features, 2 * width)
        self.fc_layer = nn.Linear(width, classifier.out_features)

    def train(self, mode: bool = True) -> VIBClassifier:
        """Set the mode of every layer, and of the held base (whose ``training`` flag its
        forward may read)."""
        super().train(mode)
        self.body.training = mode
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, logits)`` in training or with ``sample``, else ``(mu, logits)``.

        Args:
            x: a batch of the base model's inputs.

        Returns:
            The N x K code (sampled, or its mean) and the N x classes logits.
        """
        features = self.body(x)[0]
        mu, sigma = split_statistics(self.st_layer(features))
        code = mu + sigma * torch.randn_like(sigma) if self.training or self.sample else mu
        return code, self.fc_layer(code)
