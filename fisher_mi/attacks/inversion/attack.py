"""``InversionAttack``: the one loop of every white-box GAN-prior inversion attack.

The base class owns what every attack does alike (torchattacks' ``Attack`` is the model):
checks before any compute, eval mode for every network (a generator's BatchNorm over the
identity batch is a known error source), latents seeded per (identity, draw), batching of all
optimised units into batches of ``batch_size``, the optimiser loop with one loss per image,
non-finite checks naming the step and the term, and the final images. A subclass states only
its latent, its optimiser, its prior term and its defaults, with the paper they come from.

Per-image losses are summed and divided by the reference code's batch size (``reference_batch``)
instead of averaged over the batch at hand: the references average over their batch, so a
latent moves by lr / B times its own loss gradient; dividing by the fixed B keeps the
reference's step while making each latent's path independent of ``batch_size`` (Adam is
invariant to that scale anyway; GMI's momentum SGD is not).

The identity loss is cross-entropy, or LOMMA's logit loss, averaged over the target and any
surrogate classifiers (LOMMA's model augmentation); LOMMA's feature regulariser
lambda * mean_d (f_T(x) - mu_public)^2 is added to it, on the target's features only, as the
reference does (Re-thinking_MI attack.py ``iden_loss``).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from fisher_mi.attacks.inversion import losses
from fisher_mi.errors import ConfigError, NonFiniteError
from fisher_mi.models.outputs import logits_of


@dataclass(frozen=True)
class AttackSettings:
    """The options of one attack run; each method's class states its defaults.

    Attributes:
        iterations: optimiser steps per batch; 0 gives the prior-only baseline (the
            unoptimised samples of the same prior, seeds and draws).
        lr: learning rate of the latent optimiser.
        identity_weight: lambda in prior + lambda * identity (GMI and KEDMI: 100).
        per_identity: reconstructions per identity (draws).
        seed: every random number is a function of it and of (identity, draw, step).
        batch_size: optimised units (latents or latent distributions) per batch.
        logit_loss: LOMMA's -logit[y] instead of cross-entropy.
        feature_reg: LOMMA's regulariser weight (0: off); needs the public feature mean.
        clip_latent: clamp latents to [-1, 1] (GMI clamps after every step).
        sample_head: query a MID target's VIB head with sampling (z = mu + sigma eps at each
            query, as the literature attacks MID) instead of its mean mu (the adaptive
            attacker); the target's natural accuracy is still that of mu.
    """

    iterations: int
    lr: float
    identity_weight: float
    per_identity: int = 5
    seed: int = 0
    batch_size: int = 64
    logit_loss: bool = False
    feature_reg: float = 0.0
    clip_latent: bool = False
    sample_head: bool = False

    def __post_init__(self) -> None:
        for name, low in (("iterations", 0), ("per_identity", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be a whole number of at least {low}, got {value!r}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be a whole number from 0 to 2**63 - 1, got {self.seed}")
        if not self.lr > 0 or self.identity_weight < 0 or self.feature_reg < 0:
            raise ConfigError("lr must be positive, identity_weight and feature_reg not negative")


@dataclass
class Inversion:
    """An attack's reconstructions, one row per image (the keys of ``inversions.pt``).

    Attributes:
        images: N x C x H x W in [0, 1].
        identities: the target class each image was optimised for.
        draws: the image's index among its identity's reconstructions.
        seeds: the run's seed, per image.
        latents: the generator input that made each image.
        target_confidence: softmax probability the target gives the identity.
        settings: what ran (method, options, batch size).
    """

    images: Tensor
    identities: Tensor
    draws: Tensor
    seeds: Tensor
    latents: Tensor
    target_confidence: Tensor
    settings: dict[str, Any] = field(default_factory=dict)

    def tensors(self) -> dict[str, Tensor]:
        """The tensors, as saved in ``inversions.pt`` (readable with weights_only=True)."""
        return {
            "images": self.images,
            "identities": self.identities,
            "draws": self.draws,
            "seeds": self.seeds,
            "latents": self.latents,
            "target_confidence": self.target_confidence,
        }

    @staticmethod
    def concatenate(parts: Sequence[Inversion]) -> Inversion:
        """The rows of several batches, in order."""
        keys = ("images", "identities", "draws", "seeds", "latents", "target_confidence")
        joined = {key: torch.cat([getattr(part, key) for part in parts]) for key in keys}
        return Inversion(**joined, settings=dict(parts[0].settings) if parts else {})


@dataclass
class Batch:
    """The optimised units of one batch: identity and unit index of each row."""

    identities: Tensor
    units: Tensor


@contextlib.contextmanager
def frozen_eval(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Every network in eval mode with no parameter gradients; modes and flags restored."""
    saved = [(m, m.training, [p.requires_grad for p in m.parameters()]) for m in modules]
    try:
        for module in modules:
            module.eval()
            module.requires_grad_(False)
        yield
    finally:
        for module, training, flags in saved:
            module.train(training)
            for parameter, flag in zip(module.parameters(), flags, strict=True):
                parameter.requires_grad_(flag)


@contextlib.contextmanager
def sampling_head(target: nn.Module, seed: int | None) -> Iterator[None]:
    """With ``seed``: a VIB target's ``sample`` flag on for the duration, its noise drawn from
    torch's generator seeded with ``seed`` inside ``fork_rng`` (the caller's stream is left as
    it was), flag restored after. With None: nothing changes.

    The head's noise is the one random number an attack does not take from ``counter_random``
    (the VIB head draws it itself), so a sampled-head attack is reproducible for the same
    batches, but unlike the latents it depends on which rows share a batch.
    """
    if seed is None:
        yield
        return
    device = next(target.parameters()).device
    saved = target.sample
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        try:
            target.sample = True
            yield
        finally:
            target.sample = saved


@contextlib.contextmanager
def channels_last(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Every 4-D parameter in channels-last layout for the duration; each restored after.

    oneDNN's CPU convolutions work on channels-last data and reorder NCHW tensors on every
    call; an attack step is one forward and backward through generator, critic and target, so
    it pays that each step. Measured on the AT&T gmi step (vgg_small target, 64 px, batch 64,
    one core, median of 8): 0.52-0.62 s before, 0.39 s after; outputs agree to float rounding.
    Restrided with ``to``, not ``contiguous``: a 1 x 1 kernel counts as channels-last in either
    layout, so ``contiguous`` keeps its NCHW strides; a shortcut convolution with it then
    returns NCHW, and the residual sum and every later layer inherit that (PLG-MI's generator
    ran NCHW throughout: 1.6x its floor at 64 px).
    """
    saved = [(p, p.data) for m in modules for p in m.parameters() if p.dim() == 4]
    try:
        for parameter, data in saved:
            parameter.data = data.to(memory_format=torch.channels_last)
        yield
    finally:
        for parameter, data in saved:
            parameter.data = data


class InversionAttack(ABC):
    """The template: subclasses set ``name``, ``prior_kinds``, ``defaults`` and the hooks."""

    name: ClassVar[str]
    prior_kinds: ClassVar[tuple[str, ...]]
    defaults: ClassVar[dict[str, Any]]
    reference_batch: ClassVar[int] = 60  # Re-thinking_MI recovery.py attacks 60 identities a batch

    def __init__(
        self,
        target: nn.Module,
        gan: Any,
        *,
        surrogates: Sequence[nn.Module] = (),
        public_mean: Tensor | None = None,
        **options: Any,
    ) -> None:
        self.target, self.gan, self.surrogates = target, gan, tuple(surrogates)
        self.settings = AttackSettings(**{**self.defaults, **options})
        self.public_mean = public_mean
        self.device = next(target.parameters()).device
        self._check()

    # ------------------------------------------------------------------ checks

    def _check(self) -> None:
        if self.gan.kind not in self.prior_kinds:
            raise ConfigError(
                f"attack {self.name!r} needs a {' or '.join(self.prior_kinds)} prior, got a "
                f"{self.gan.kind!r} GAN; train one with `fisher-mi train-gan --kind "
                f"{self.prior_kinds[0]}`"
            )
        shape = tuple(getattr(self.target, "input_shape", ()) or ())
        if shape and tuple(shape) != tuple(self.gan.image_shape):
            raise ConfigError(
                f"the generator makes {tuple(self.gan.image_shape)} images but the target "
                f"takes {shape}; train the prior at the target's input size and channels"
            )
        self.classes = target_classes(self.target, self.gan.image_shape)
        if self.gan.conditional and self.gan.num_classes != self.classes:
            raise ConfigError(
                f"the conditional prior was trained for {self.gan.num_classes} classes but the "
                f"target has {self.classes}; train the prior with this target (--target)"
            )
        if self.settings.feature_reg > 0 and self.public_mean is None:
            raise ConfigError("feature_reg needs public_mean, the target's mean public feature")
        if self.settings.sample_head and not hasattr(self.target, "sample"):
            raise ConfigError(
                f"sample_head queries MID's sampling VIB head, which the target "
                f"({type(self.target).__name__}) lacks; drop --sample-head"
            )

    def check_identities(self, identities: Tensor, classes: int) -> None:
        """Refuse an empty identity set or identities outside the target's classes."""
        if identities.numel() == 0:
            raise ConfigError("no identities to attack; pass --ids all, A-B or a,b,c")
        low, high = int(identities.min()), int(identities.max())
        if low < 0 or high >= classes:
            raise ConfigError(
                f"identities {low}..{high} lie outside the target's {classes} classes "
                f"(0..{classes - 1}); pick --ids within them"
            )

    # ------------------------------------------------------------------ hooks

    def units_per_identity(self) -> int:
        """Optimised units per identity (one latent per draw; KEDMI: one distribution)."""
        return self.settings.per_identity

    @abstractmethod
    def init_state(self, batch: Batch) -> dict[str, Tensor]:
        """The batch's optimised tensors (leaves requiring grad), from its seeded draws."""

    @abstractmethod
    def optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """The latent optimiser."""

    @abstractmethod
    def latents(self, state: dict[str, Tensor], batch: Batch, step: int) -> Tensor:
        """The generator inputs at ``step`` (one row per unit)."""

    def after_step(self, state: dict[str, Tensor]) -> None:
        """Projection after each optimiser step: latents clamped to [-1, 1] when
        ``clip_latent`` (GMI clamps z after every step, as LOMMA's KEDMI may)."""
        if self.settings.clip_latent and "z" in state:
            state["z"].clamp_(-1.0, 1.0)

    @abstractmethod
    def prior(self, images: Tensor) -> Tensor:
        """The per-image prior term (0 for attacks without one)."""

    def identity(self, images: Tensor, batch: Batch, step: int) -> dict[str, Tensor]:
        """Per-image identity terms: the loss averaged over target and surrogates, and LOMMA's
        feature regulariser on the target (terms named for non-finite messages)."""
        loss_of = losses.logit_loss if self.settings.logit_loss else losses.cross_entropy
        output = self.target(images)
        terms = [loss_of(logits_of(output), batch.identities)]
        terms += [loss_of(logits_of(s(images)), batch.identities) for s in self.surrogates]
        named = {"identity": torch.stack(terms).mean(dim=0)}
        if self.settings.feature_reg > 0:
            features = output[0] if isinstance(output, (tuple, list)) else None
            if features is None:
                raise ConfigError("feature_reg needs a target returning (features, logits)")
            reg = losses.feature_regulariser(features, self.public_mean.to(features))
            named["feature_reg"] = self.settings.feature_reg * reg
        return named

    @abstractmethod
    def final_latents(self, state: dict[str, Tensor], batch: Batch) -> tuple[Tensor, Tensor]:
        """(latents, draws) of the batch's reconstructions after the last step."""

    def generator_input(self, z: Tensor, identities: Tensor) -> Tensor:
        """What the target is shown: the prior's images in [0, 1] (PLG-MI: its raw output)."""
        return self.gan.generate(z, identities if self.gan.conditional else None)

    # ------------------------------------------------------------------ the loop

    def batches(self, identities: Tensor) -> list[Batch]:
        """All (identity, unit) rows in order, cut into batches of ``batch_size``."""
        units = self.units_per_identity()
        ids = identities.to(torch.long).repeat_interleave(units)
        index = torch.arange(units).repeat(identities.numel())
        size = self.settings.batch_size
        return [
            Batch(
                ids[start : start + size].to(self.device),
                index[start : start + size].to(self.device),
            )
            for start in range(0, ids.numel(), size)
        ]

    def _loss(self, state: dict[str, Tensor], batch: Batch, step: int) -> Tensor:
        z = self.latents(state, batch, step)
        images = self._layout(self.generator_input(z, batch.identities))
        terms = {"prior": self.prior(images), **self._weighted(self.identity(images, batch, step))}
        for term, values in terms.items():
            if not torch.isfinite(values).all():
                raise NonFiniteError(
                    f"attack {self.name!r}: the {term} term is not finite at step {step} "
                    f"(identities {batch.identities.unique().tolist()[:4]}); lower the learning "
                    "rate or check the target and prior"
                )
        return sum(terms.values()).sum() / self.reference_batch

    def _weighted(self, identity_terms: dict[str, Tensor]) -> dict[str, Tensor]:
        weight = self.settings.identity_weight
        return {name: weight * values for name, values in identity_terms.items()}

    def run_batch(
        self, batch: Batch, *, progress: Callable[[int], None] | None = None
    ) -> Inversion:
        """Optimise one batch and return its reconstructions."""
        state = self.init_state(batch)
        solver = self.optimizer(list(state.values()))
        networks = self._networks()
        layout = channels_last(networks) if self._channels_last() else contextlib.nullcontext()
        noise = self._head_seed(batch) if self.settings.sample_head else None
        with frozen_eval(networks), layout, sampling_head(self.target, noise):
            for step in range(self.settings.iterations):
                solver.zero_grad(set_to_none=True)
                self._loss(state, batch, step).backward()
                solver.step()
                with torch.no_grad():
                    self.after_step(state)
                if progress is not None:
                    progress(1)
            return self._reconstructions(state, batch)

    @torch.no_grad()
    def _reconstructions(self, state: dict[str, Tensor], batch: Batch) -> Inversion:
        z, draws = self.final_latents(state, batch)
        repeats = z.shape[0] // batch.identities.numel()
        identities = batch.identities.repeat_interleave(repeats)
        images = self.gan.generate(z, identities if self.gan.conditional else None)
        shown = self.generator_input(z, identities)
        confidence = torch.softmax(logits_of(self.target(shown)).float(), dim=1)
        return Inversion(
            images=images.cpu(),
            identities=identities.cpu(),
            draws=draws.cpu(),
            seeds=torch.full_like(identities, self.settings.seed).cpu(),
            latents=z.detach().cpu(),
            target_confidence=confidence.gather(1, identities[:, None]).squeeze(1).cpu(),
            settings={"method": self.name, **vars(self.settings)},
        )

    def _head_seed(self, batch: Batch) -> int:
        """The sampled head's seed for ``batch``: a hash of the run's seed and the batch's
        first (identity, unit) row (ints hash the same in every process)."""
        first = (self.settings.seed, int(batch.identities[0]), int(batch.units[0]))
        return hash(first) & (2**63 - 1)

    def _channels_last(self) -> bool:
        """Channels-last on CPU only (see ``channels_last``); CUDA is left as it is, since
        no GPU measured it here."""
        return self.device.type == "cpu"

    def _layout(self, images: Tensor) -> Tensor:
        if images.dim() == 4 and self._channels_last():
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def _networks(self) -> list[nn.Module]:
        found = [self.target, self.gan.generator, *self.surrogates]
        return found + ([self.gan.discriminator] if self.gan.discriminator is not None else [])

    def run(self, identities: Sequence[int] | Tensor, *, progress: bool = False) -> Inversion:
        """Attack every identity; batches of ``batch_size`` units, never one identity at a time."""
        ids = torch.as_tensor(identities, dtype=torch.long).flatten()
        self.check_identities(ids, self.classes)
        batches = self.batches(ids)
        total = len(batches) * self.settings.iterations
        with tqdm(total=total, desc=f"{self.name} attack", disable=not progress) as bar:
            parts = [self.run_batch(batch, progress=bar.update) for batch in batches]
        return Inversion.concatenate(parts)


@torch.no_grad()
def target_classes(target: nn.Module, image_shape: Sequence[int]) -> int:
    """The target's class count: the width of its logits on one blank image (eval mode)."""
    with frozen_eval([target]):
        device = next(target.parameters()).device
        return int(logits_of(target(torch.zeros(1, *image_shape, device=device))).shape[1])
