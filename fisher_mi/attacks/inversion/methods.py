"""The registered attacks: GMI, KEDMI and PLG-MI, each stating only what differs.

LOMMA (Nguyen et al., "Re-thinking Model Inversion Attacks Against Deep Neural Networks", CVPR
2023) is not a fourth attack but options of GMI and KEDMI: ``logit_loss``, ``feature_reg`` and
surrogate models (``InversionAttack``); ``LOMMA`` below names the values its paper uses.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from fisher_mi.attacks.inversion import counter_random, losses
from fisher_mi.attacks.inversion.attack import Batch, InversionAttack
from fisher_mi.attacks.inversion.augment import UNIFORMS_PER_IMAGE, augment
from fisher_mi.models.outputs import logits_of
from fisher_mi.registry import Registry

ATTACKS = Registry[type[InversionAttack]]("attack")
LOMMA = {"logit_loss": True, "feature_reg": 1.0}  # with surrogates: the paper's full LOMMA

# Streams of counter_random: each use of randomness has its own.
INITIAL, STEP_NOISE, FINAL_DRAWS, AUGMENT_A, AUGMENT_B = range(5)


def _normal(attack: InversionAttack, stream: int, batch: Batch, step: int, draws=None) -> Tensor:
    units = batch.units if draws is None else draws
    return counter_random.normal(
        attack.settings.seed, stream, batch.identities, units, step, attack.gan.latent_dim
    )


@ATTACKS.register("gmi")
class GMI(InversionAttack):
    """GMI (Zhang et al., "The Secret Revealer", CVPR 2020; AI-secure/GMI-Attack attack.py).

    z ~ N(0, I) in R^100 per (identity, draw); loss -D(G(z)) + 100 * CE(T(G(z)), y); momentum
    SGD in GMI's Nesterov form (v = 0.9 v - lr g; z += -0.9 v_prev + 1.9 v, which is torch's
    SGD with nesterov=True), z clamped to [-1, 1] after every step; lr 0.02 (LOMMA's value;
    GMI's own code uses 0.01), 1500 iterations.
    """

    name: ClassVar[str] = "gmi"
    prior_kinds: ClassVar[tuple[str, ...]] = ("gmi",)
    defaults: ClassVar[dict[str, Any]] = {
        "iterations": 1500,
        "lr": 0.02,
        "identity_weight": 100.0,
        "clip_latent": True,
    }
    momentum: ClassVar[float] = 0.9

    def init_state(self, batch: Batch) -> dict[str, Tensor]:
        """z drawn per (identity, draw) from the run's seed."""
        return {"z": _normal(self, INITIAL, batch, 0).requires_grad_(True)}

    def optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """GMI's Nesterov momentum (see the class docstring)."""
        return torch.optim.SGD(params, lr=self.settings.lr, momentum=self.momentum, nesterov=True)

    def latents(self, state: dict[str, Tensor], batch: Batch, step: int) -> Tensor:
        """The optimised z itself."""
        return state["z"]

    def prior(self, images: Tensor) -> Tensor:
        """-D(x), the WGAN critic's score."""
        return losses.wgan_prior(self.gan.discriminator(images))

    def final_latents(self, state: dict[str, Tensor], batch: Batch) -> tuple[Tensor, Tensor]:
        """The last z of each (identity, draw)."""
        return state["z"].detach(), batch.units


@ATTACKS.register("kedmi")
class KEDMI(InversionAttack):
    """KEDMI (Chen et al., "Knowledge-Enriched Distributional Model Inversion Attacks", ICCV
    2021; SCccc21/Knowledge-Enriched-DMI recovery.py, Re-thinking_MI attack.py
    ``dist_inversion``).

    One Gaussian N(mu, exp(log_var)) per identity, mu = 0 and log_var = 1 at the start; at every
    step one reparametrised draw z = mu + exp(log_var / 2) eps; loss KEDMI prior (softplus(l) -
    l, l the logsumexp of the discriminator's class logits) + 100 * identity; Adam, lr 0.02,
    2400 iterations; no clipping of z unless ``clip_latent`` (LOMMA's variant clips). At the
    end ``per_identity`` draws from each learnt Gaussian. The discriminator's minibatch
    discrimination makes the prior depend on the batch: the batch size is recorded.
    """

    name: ClassVar[str] = "kedmi"
    prior_kinds: ClassVar[tuple[str, ...]] = ("kedmi",)
    defaults: ClassVar[dict[str, Any]] = {
        "iterations": 2400,
        "lr": 0.02,
        "identity_weight": 100.0,
        "clip_latent": False,
    }

    def units_per_identity(self) -> int:
        """One latent distribution per identity."""
        return 1

    def init_state(self, batch: Batch) -> dict[str, Tensor]:
        """mu = 0, log_var = 1 per identity (KEDMI's start)."""
        shape = (batch.identities.numel(), self.gan.latent_dim)
        return {
            "mu": torch.zeros(shape, device=self.device, requires_grad=True),
            "log_var": torch.ones(shape, device=self.device, requires_grad=True),
        }

    def optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """Adam on (mu, log_var)."""
        return torch.optim.Adam(params, lr=self.settings.lr)

    def _sample(self, state: dict[str, Tensor], noise: Tensor) -> Tensor:
        z = state["mu"] + torch.exp(0.5 * state["log_var"]) * noise
        return z.clamp(-1.0, 1.0) if self.settings.clip_latent else z

    def latents(self, state: dict[str, Tensor], batch: Batch, step: int) -> Tensor:
        """One reparametrised draw per identity, its noise seeded by (identity, step)."""
        return self._sample(state, _normal(self, STEP_NOISE, batch, step))

    def prior(self, images: Tensor) -> Tensor:
        """KEDMI's prior on the discriminator's class logits."""
        return losses.kedmi_prior(logits_of(self.gan.discriminator(images)))

    def final_latents(self, state: dict[str, Tensor], batch: Batch) -> tuple[Tensor, Tensor]:
        """``per_identity`` draws from each identity's learnt Gaussian."""
        per = self.settings.per_identity
        draws = torch.arange(per, device=self.device).repeat(batch.identities.numel())
        expanded = Batch(batch.identities.repeat_interleave(per), draws)
        noise = _normal(self, FINAL_DRAWS, expanded, 0)
        rows = {k: v.detach().repeat_interleave(per, dim=0) for k, v in state.items()}
        return self._sample(rows, noise), draws


@ATTACKS.register("plgmi")
class PLGMI(InversionAttack):
    """PLG-MI (Yuan et al., "Pseudo Label-Guided Model Inversion Attack via Conditional
    Generative Adversarial Network", AAAI 2023; LetheSec/PLG-MI-Attack reconstruct.py).

    z ~ N(0, I) in R^128 per (identity, draw) into the conditional generator G(z, y); its raw
    output goes to the target through two random augmentations (resized crop, colour jitter,
    flip, small rotation); loss max-margin(T(aug1(x))) + max-margin(T(aug2(x))); no prior term;
    Adam, lr 0.1, 600 iterations.
    """

    name: ClassVar[str] = "plgmi"
    prior_kinds: ClassVar[tuple[str, ...]] = ("plgmi",)
    defaults: ClassVar[dict[str, Any]] = {
        "iterations": 600,
        "lr": 0.1,
        "identity_weight": 1.0,
        "clip_latent": False,
    }

    def init_state(self, batch: Batch) -> dict[str, Tensor]:
        """z drawn per (identity, draw) from the run's seed."""
        return {"z": _normal(self, INITIAL, batch, 0).requires_grad_(True)}

    def optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """Adam on z."""
        return torch.optim.Adam(params, lr=self.settings.lr)

    def latents(self, state: dict[str, Tensor], batch: Batch, step: int) -> Tensor:
        """The optimised z itself."""
        return state["z"]

    def generator_input(self, z: Tensor, identities: Tensor) -> Tensor:
        """The conditional generator's raw output, as the reference feeds the target."""
        return self.gan.raw(z, identities)

    def prior(self, images: Tensor) -> Tensor:
        """No prior term: the conditional GAN's latent space is the prior."""
        return torch.zeros(images.shape[0], device=images.device, dtype=images.dtype)

    def identity(self, images: Tensor, batch: Batch, step: int) -> dict[str, Tensor]:
        """Max-margin losses of the target on two augmentations of each image."""
        total = torch.zeros(images.shape[0], device=images.device, dtype=images.dtype)
        for stream in (AUGMENT_A, AUGMENT_B):
            uniforms = counter_random.uniform(
                self.settings.seed, stream, batch.identities, batch.units, step, UNIFORMS_PER_IMAGE
            )
            logits = logits_of(self.target(augment(images, uniforms)))
            total = total + losses.max_margin(logits, batch.identities)
        return {"identity": total}

    def final_latents(self, state: dict[str, Tensor], batch: Batch) -> tuple[Tensor, Tensor]:
        """The last z of each (identity, draw)."""
        return state["z"].detach(), batch.units
