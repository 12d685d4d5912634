"""Training losses of the GAN prior kinds, as pure functions of scores, logits and features.

Each kind's pair is registered on it as ``PriorKind.losses`` (a ``PriorLosses``). Nothing
here draws random numbers or touches a network's mode: the gradient penalty takes its
interpolation weights and the critic as arguments, so every value can be checked by hand.

- gmi (GMI-Attack's ``Celeba/train_gan.py``, WGAN-GP of Gulrajani et al. 2017): critic loss
  -(mean D(x) - mean D(G(z))) + 10 GP, generator loss -mean D(G(z)).
- kedmi (Knowledge-Enriched-DMI's ``k+1_gan.py``): discriminator loss = soft cross-entropy
  to the target's softmax on public images + 0.5 x the unlabelled real/fake loss read
  through logsumexp of the class logits; generator loss = L1 distance of batch-mean
  discriminator features (fake vs. public) + 1e-4 x the entropy of the fakes' class logits.
- plgmi (PLG-MI-Attack's ``losses.py``, ``dis_hinge`` / ``gen_hinge``): hinge losses; the
  generator's inversion term on the target (cross-entropy or max-margin to the pseudo label)
  belongs to the training loop, which owns the target and the augmentations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fisher_mi.attacks.priors.base import PriorLosses

PENALTY_WEIGHT = 10.0  # lambda of WGAN-GP, as GMI uses it
UNLABELLED_WEIGHT = 0.5  # KEDMI's factor on the unlabelled real/fake loss
ENTROPY_WEIGHT = 1e-4  # KEDMI's factor on the entropy of the fakes' class logits


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, alpha: Tensor
) -> Tensor:
    """WGAN-GP's penalty: mean_n (||grad_x D(x_n)||_2 - 1)^2 at x = real + alpha (fake - real).

    Args:
        critic: maps N images to N scores.
        real: N x ... real images.
        fake: N x ... generated images (detached: the penalty trains the critic only).
        alpha: N interpolation weights in [0, 1] (drawn by the caller, e.g. ``torch.rand``).

    Returns:
        The scalar penalty, differentiable in the critic's parameters (``create_graph``).
    """
    weights = alpha.view(-1, *([1] * (real.dim() - 1)))
    between = (real + weights * (fake - real)).detach().requires_grad_(True)
    (gradients,) = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
    return ((gradients.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def wgan_critic_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    penalty: Tensor,
    *,
    penalty_weight: float = PENALTY_WEIGHT,
) -> Tensor:
    """-(mean D(real) - mean D(fake)) + penalty_weight * penalty (GMI: weight 10)."""
    return fake_scores.mean() - real_scores.mean() + penalty_weight * penalty


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """-mean D(G(z)): the generator raises the critic's score of its images."""
    return -fake_scores.mean()


def soft_cross_entropy(logits: Tensor, target_logits: Tensor) -> Tensor:
    """-(1/N) sum_n sum_k softmax(t_n)_k log softmax(l_n)_k (KEDMI's ``softXEnt``)."""
    soft_labels = F.softmax(target_logits, dim=1)
    return -(soft_labels * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def unlabelled_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Real/fake loss of a (K+1)-class discriminator whose fake logit is fixed at 0.

    With L = logsumexp_k l_k, D(x) = e^L / (e^L + 1), so -log D(real) = softplus(L) - L and
    -log(1 - D(fake)) = softplus(L). Returns mean_real [softplus(L) - L] +
    mean_fake softplus(L) (Salimans et al. 2016; KEDMI's ``loss_unlab`` before its 0.5).
    """
    real = torch.logsumexp(real_logits, dim=1)
    fake = torch.logsumexp(fake_logits, dim=1)
    return F.softplus(real).mean() - real.mean() + F.softplus(fake).mean()


def kedmi_discriminator_loss(
    labelled_logits: Tensor,
    target_logits: Tensor,
    unlabelled_logits: Tensor,
    fake_logits: Tensor,
    *,
    unlabelled_weight: float = UNLABELLED_WEIGHT,
) -> Tensor:
    """KEDMI's discriminator loss: soft labels of the target + the unlabelled loss.

    Args:
        labelled_logits: the discriminator's class logits on a public batch.
        target_logits: the target's logits on the same batch (its soft labels).
        unlabelled_logits: the discriminator's logits on another public batch.
        fake_logits: the discriminator's logits on generated images.
        unlabelled_weight: factor on ``unlabelled_loss`` (0.5 in the reference).

    Returns:
        soft_cross_entropy(labelled, target) + unlabelled_weight * unlabelled_loss.
    """
    labelled = soft_cross_entropy(labelled_logits, target_logits)
    return labelled + unlabelled_weight * unlabelled_loss(unlabelled_logits, fake_logits)


def entropy(logits: Tensor) -> Tensor:
    """-sum_n sum_k p_nk log p_nk with p = softmax(logits): summed over the batch, not
    averaged, as KEDMI's ``HLoss``."""
    return -(F.softmax(logits, dim=1) * F.log_softmax(logits, dim=1)).sum()


def kedmi_generator_loss(
    fake_features: Tensor,
    unlabelled_features: Tensor,
    fake_logits: Tensor,
    *,
    entropy_weight: float = ENTROPY_WEIGHT,
) -> Tensor:
    """KEDMI's generator loss: feature matching plus the entropy of the fakes' classes.

    mean_j |mean_n f(G(z_n))_j - mean_n f(x_n)_j| + entropy_weight * entropy(fake logits),
    with f the discriminator's features (the first element of its output) and x a public
    batch.
    """
    matching = (fake_features.mean(dim=0) - unlabelled_features.mean(dim=0)).abs().mean()
    return matching + entropy_weight * entropy(fake_logits)


def hinge_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """mean relu(1 - D(real)) + mean relu(1 + D(fake)) (PLG-MI's ``dis_hinge``)."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def hinge_generator_loss(fake_scores: Tensor) -> Tensor:
    """-mean D(G(z, y), y) (PLG-MI's ``gen_hinge``)."""
    return -fake_scores.mean()


WGAN_GP = PriorLosses(discriminator=wgan_critic_loss, generator=wgan_generator_loss)
KEDMI = PriorLosses(discriminator=kedmi_discriminator_loss, generator=kedmi_generator_loss)
HINGE = PriorLosses(discriminator=hinge_discriminator_loss, generator=hinge_generator_loss)
