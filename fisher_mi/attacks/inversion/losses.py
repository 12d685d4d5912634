"""Per-reconstruction losses of the inversion attacks, never reduced over the batch.

Each function returns one value per image, so an image's gradient is its own loss's gradient
and its path does not depend on what else is in the batch. The attacks divide by the reference
code's batch size where the reference averaged (see ``InversionAttack.reference_batch``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_entropy(logits: Tensor, identities: Tensor) -> Tensor:
    """-log softmax(logits)[y]: GMI's and KEDMI's identity loss."""
    return F.cross_entropy(logits, identities, reduction="none")


def logit_loss(logits: Tensor, identities: Tensor) -> Tensor:
    """-logits[y]: LOMMA's identity loss (the reference applies NLLLoss to raw logits), which
    keeps pushing the target logit up after the softmax saturates."""
    return -logits.gather(1, identities[:, None]).squeeze(1)


def max_margin(logits: Tensor, identities: Tensor) -> Tensor:
    """-logits[y] + max_{c != y} logits[c]: PLG-MI's max-margin loss (the reference takes the
    second-largest logit when the largest is the target's, i.e. the largest other logit)."""
    target = logits.gather(1, identities[:, None]).squeeze(1)
    others = logits.scatter(1, identities[:, None], float("-inf"))
    return others.max(dim=1).values - target


def feature_regulariser(features: Tensor, public_mean: Tensor) -> Tensor:
    """mean_d (f_d - mu_d)^2 per image: LOMMA's pull of the target's penultimate features
    towards their mean on public data (the reference's mean over batch and dimensions, here
    per image; the attack's division by the batch makes it the reference's mean)."""
    return (features.flatten(1) - public_mean.flatten()[None]).square().mean(dim=1)


def wgan_prior(scores: Tensor) -> Tensor:
    """-D(x): GMI's prior term, the WGAN critic's score of the image (higher is more real)."""
    return -scores.reshape(scores.shape[0])


def kedmi_prior(class_logits: Tensor) -> Tensor:
    """softplus(l) - l with l = logsumexp of the discriminator's class logits: KEDMI's prior,
    -log sigmoid(l), the loss of the image being judged real by the (K+1)-class discriminator
    whose real/fake logit is the logsumexp of its class logits."""
    lse = torch.logsumexp(class_logits, dim=1)
    return F.softplus(lse) - lse
