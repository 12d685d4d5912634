"""``invert``: run a registered attack against a target with a GAN prior."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from fisher_mi.attacks.inversion.attack import Inversion
from fisher_mi.attacks.inversion.methods import ATTACKS, LOMMA


def invert(
    target: nn.Module,
    gan: Any,
    *,
    method: str = "gmi",
    identities: Sequence[int] | Tensor,
    per_identity: int = 5,
    iterations: int | None = None,
    lomma: bool = False,
    seed: int = 0,
    surrogates: Sequence[nn.Module] = (),
    public_mean: Tensor | None = None,
    progress: bool = False,
    **options: Any,
) -> Inversion:
    """Reconstruct ``per_identity`` images of each of ``identities`` from ``target``.

    Args:
        target: the attacked classifier (eval mode is enforced during the attack).
        gan: the prior (``fisher_mi.load_gan`` / ``train_gan``), of a kind the method takes.
        method: a name in ``ATTACKS`` (``gmi``, ``kedmi``, ``plgmi``).
        identities: target classes to reconstruct.
        per_identity: reconstructions per identity.
        iterations: optimiser steps (default: the method's, from its paper).
        lomma: LOMMA's logit loss and feature regulariser (lambda 1); add ``surrogates`` for
            its model augmentation; needs ``public_mean`` (the target's mean penultimate
            feature on public data).
        seed: every random number is a function of (seed, identity, draw, step).
        surrogates: classifiers distilled from the target, averaged into the identity loss.
        public_mean: see ``lomma``.
        progress: show a progress bar.
        **options: any other ``AttackSettings`` field (lr, identity_weight, batch_size,
            logit_loss, feature_reg, clip_latent).

    Returns:
        The reconstructions, images in [0, 1], in (identity, draw) order.
    """
    chosen = {**(LOMMA if lomma else {}), **options, "per_identity": per_identity, "seed": seed}
    if iterations is not None:
        chosen["iterations"] = iterations
    attack = ATTACKS.get(method)(
        target, gan, surrogates=surrogates, public_mean=public_mean, **chosen
    )
    return attack.run(identities, progress=progress)
