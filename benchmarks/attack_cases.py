"""The cases of ``bench_attacks.py``: what one attack iteration and its floor are, and timing.

A case is (method, size, batch). Its networks are untrained (the cost does not depend on the
weights) and seeded with ``torch.manual_seed``; every network is in eval mode without
parameter gradients, as the attack's ``frozen_eval`` holds them, so neither side computes
weight gradients.

- **attack**: ``InversionAttack.run_batch`` on one batch of B units; the progress callback
  stamps the clock after each optimiser step, so the intervals between stamps are whole
  iterations (zero_grad, loss, backward, step, projection) without the batch's set-up (latent
  initialisation, optimiser) or its final reconstructions. The callback also times one floor
  call between two attack iterations (outside the attack's intervals), so attack and floor
  alternate call by call.
- **floor**: the same networks at the same batch in plain torch: a leaf z requiring grad, one
  forward of G and T (+ D for gmi and kedmi; + the surrogate for gmi+lomma; plgmi: two target
  passes, each on an ``affine_grid`` + ``grid_sample`` warp of G's output, as the attack's two
  augmentations), the loss summed, backward, one step of the attack's optimiser class on z. On
  CPU it runs in the attack's layout (copies of the networks in channels-last, G's output made
  channels-last), so that the ratio measures the attack's overhead, not the layout.
- **NCHW**: the attack with its CPU channels-last layout turned off (``nchw_times``): what the
  layout buys.
- **one at a time**: the same attack on batches of one unit; B such batches are the same
  total work as one batch of B units.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.attacks.inversion import ATTACKS, LOMMA, InversionAttack
from fisher_mi.attacks.inversion.attack import Batch
from fisher_mi.attacks.priors.base import GAN, build_gan
from fisher_mi.models import build_model
from fisher_mi.registry import Registry

SEED = 0
PRESET = "reference"  # the papers' widths (64 / 64), at 32 px and at 64 px
# The floor's plgmi warp: the identity map plus N(0, WARP_NOISE) per entry of the 2 x 3 matrix,
# about the attack's crop (sqrt(0.8) to 1), shift and +-5 degree rotation.
WARP_NOISE = 0.05


@dataclass(frozen=True)
class Size:
    """An image size: the images, the target and the surrogate of another architecture.

    Attributes:
        name: the label in tables (``32px``, ``64px``).
        channels: image channels.
        image_size: image side.
        target: the target's registered architecture.
        classes: the target's classes (and the kedmi / plgmi priors').
        surrogate: LOMMA's surrogate classifier, another registered architecture.
        arch_kwargs: extra ``build_model`` arguments of the target and the surrogate.
    """

    name: str
    channels: int
    image_size: int
    target: str
    classes: int
    surrogate: str
    arch_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def model(self, arch: str) -> nn.Module:
        """A freshly initialised classifier ``arch`` of this size, frozen in eval mode."""
        kwargs = self.arch_kwargs.get(arch, {})
        return frozen(build_model(arch, num_classes=self.classes, **kwargs))


# Digits: GMI's MNIST target and, as surrogate, its MNIST evaluator's layout (another
# architecture at 1 x 32 x 32). Faces: the 1/20-size VGG and the LOMMA/TL-DMI ResNet-18 (the
# literature's VGG16 target is in ``64px-vgg16``, not run by default: too slow on 2 cores).
GREY = {"mcnn": {"in_channels": 1}, "scnn": {"in_channels": 1}}
SIZES: dict[str, Size] = {
    "32px": Size("32px", 1, 32, "mcnn", 10, "scnn", GREY),
    "64px": Size("64px", 3, 64, "vgg_small", 1000, "resnet18"),
    "64px-vgg16": Size("64px-vgg16", 3, 64, "vgg16", 1000, "resnet18"),
}
DEFAULT_SIZES = ("32px", "64px")


@dataclass(frozen=True)
class Method:
    """An attack as benchmarked: its registered attack and the options it runs with.

    Attributes:
        name: the label in tables.
        attack: the ``ATTACKS`` key (also the prior kind).
        options: extra ``AttackSettings`` fields.
        surrogate: whether one surrogate classifier joins the identity loss.
    """

    name: str
    attack: str
    options: dict[str, Any] = field(default_factory=dict)
    surrogate: bool = False


METHODS = Registry[Method]("benchmarked attack")
METHODS.add("gmi", Method("gmi", "gmi"))
METHODS.add("kedmi", Method("kedmi", "kedmi"))
METHODS.add("plgmi", Method("plgmi", "plgmi"))
METHODS.add("gmi+lomma", Method("gmi+lomma", "gmi", dict(LOMMA), surrogate=True))


def frozen(module: nn.Module) -> nn.Module:
    """``module`` in eval mode without parameter gradients (the attack's ``frozen_eval``)."""
    return module.eval().requires_grad_(False)


@dataclass
class Case:
    """One built case: the networks, the batch of B units and the attack on it.

    Attributes:
        method: what is attacked with.
        size: the image size.
        batch_size: B, the units optimised together.
        target: the attacked classifier.
        gan: the prior (reference preset).
        surrogates: LOMMA's surrogate classifiers (none or one).
        public_mean: LOMMA's mean public feature (random: speed does not depend on it).
        batch: identities ``n mod classes``, units ``n div classes``.
    """

    method: Method
    size: Size
    batch_size: int
    target: nn.Module
    gan: GAN
    surrogates: tuple[nn.Module, ...]
    public_mean: Tensor
    batch: Batch

    @property
    def key(self) -> str:
        """``method/size/bB``, the case's name in the JSON file."""
        return f"{self.method.name}/{self.size.name}/b{self.batch_size}"

    def attack(self, iterations: int) -> InversionAttack:
        """The registered attack with ``iterations`` steps (other settings its defaults)."""
        return ATTACKS.get(self.method.attack)(
            self.target,
            self.gan,
            surrogates=self.surrogates,
            public_mean=self.public_mean,
            iterations=iterations,
            batch_size=self.batch_size,
            **self.method.options,
        )


def build_case(method: Method, size: Size, batch_size: int) -> Case:
    """The seeded networks and batch of one case."""
    torch.manual_seed(SEED)
    target = size.model(size.target)
    classes = None if method.attack == "gmi" else size.classes
    gan = build_gan(
        method.attack,
        channels=size.channels,
        image_size=size.image_size,
        preset=PRESET,
        num_classes=classes,
        seed=SEED,
    )
    for network in (gan.generator, gan.discriminator):
        frozen(network)
    surrogates = (size.model(size.surrogate),) if method.surrogate else ()
    with torch.no_grad():
        features = target(torch.zeros(1, *gan.image_shape))[0]
    index = torch.arange(batch_size)
    batch = Batch(index % size.classes, index // size.classes)
    return Case(
        method, size, batch_size, target, gan, surrogates, torch.randn(features.shape[1:]), batch
    )


# ---------------------------------------------------------------------------- the floor


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    return model(x)[1]


def _warp(x: Tensor, theta: Tensor) -> Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def in_attack_layout(case: Case) -> Case:
    """``case`` with copies of its networks in the layout the attack runs them in on CPU
    (channels-last; ``InversionAttack.channels_last``)."""
    gan = copy.deepcopy(case.gan)
    for network in (gan.generator, gan.discriminator):
        if network is not None:
            network.to(memory_format=torch.channels_last)
    target = copy.deepcopy(case.target).to(memory_format=torch.channels_last)
    surrogates = tuple(
        copy.deepcopy(s).to(memory_format=torch.channels_last) for s in case.surrogates
    )
    return dataclasses.replace(case, target=target, gan=gan, surrogates=surrogates)


def floor_loss(case: Case, z: Tensor, thetas: tuple[Tensor, Tensor]) -> Tensor:
    """The summed loss of the floor's one forward (see the module docstring)."""
    y, generator, critic = case.batch.identities, case.gan.generator, case.gan.discriminator
    if case.method.attack == "plgmi":
        x = _channels_last(generator(z, y))
        return sum(-_logits(case.target, _warp(x, t)).gather(1, y[:, None]).sum() for t in thetas)
    x = _channels_last(generator(z))
    if case.method.attack == "kedmi":
        lse = _logits(critic, x).logsumexp(dim=1)
        prior = (F.softplus(lse) - lse).sum()
    else:
        prior = -critic(x).sum()
    features, logits = case.target(x)
    if not case.method.surrogate:
        return prior + F.cross_entropy(logits, y, reduction="sum")
    own = -logits.gather(1, y[:, None]).sum()
    others = sum(-_logits(s, x).gather(1, y[:, None]).sum() for s in case.surrogates)
    return prior + own + others + (features - case.public_mean).square().mean(dim=1).sum()


def floor_step(case: Case) -> Callable[[], None]:
    """One floor iteration of the case, as a call (its z and optimiser kept between calls),
    in the attack's CPU layout (``in_attack_layout``)."""
    case = in_attack_layout(case)
    generator = torch.Generator().manual_seed(SEED)
    z = torch.randn(case.batch_size, case.gan.latent_dim, generator=generator)
    z.requires_grad_(True)
    if case.method.attack == "gmi":
        solver: torch.optim.Optimizer = torch.optim.SGD([z], lr=0.02, momentum=0.9, nesterov=True)
    else:
        solver = torch.optim.Adam([z], lr=0.02)
    eye = torch.eye(2, 3).expand(case.batch_size, 2, 3)
    thetas = tuple(eye + WARP_NOISE * torch.randn(eye.shape, generator=generator) for _ in "ab")

    def step() -> None:
        solver.zero_grad(set_to_none=True)
        floor_loss(case, z, thetas).backward()
        solver.step()

    return step


# ---------------------------------------------------------------------------- timing


def timed_calls(call: Callable[[], None], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def iteration_times(attack: InversionAttack, batch: Batch) -> list[float]:
    """Seconds of the attack's iterations 2..n on ``batch`` (``run_batch`` with its progress
    callback as a clock; the first interval also holds the set-up and is dropped)."""
    stamps: list[float] = []
    attack.run_batch(batch, progress=lambda _: stamps.append(time.perf_counter()))
    return [after - before for before, after in itertools.pairwise(stamps)]


def paired_times(
    attack: InversionAttack, batch: Batch, floor: Callable[[], None]
) -> tuple[list[float], list[float]]:
    """Attack iterations 2..n on ``batch`` and n - 1 floor calls, interleaved: the attack's
    progress callback times one floor call after each of the iterations 1..n-1, so attack
    iteration i runs right after floor call i - 1 and the pair shares the machine's load of
    that moment. ``floor`` should have been called once before (its optimiser state).

    Returns:
        (attack seconds, floor seconds), n - 1 of each, pair by pair.
    """
    attack_s: list[float] = []
    floor_s: list[float] = []
    resumed: list[float] = []
    last = attack.settings.iterations

    def progress(_: int) -> None:
        if resumed:
            attack_s.append(time.perf_counter() - resumed[-1])
        if len(resumed) < last - 1:
            floor_s.extend(timed_calls(floor, 1))
            resumed.append(time.perf_counter())

    attack.run_batch(batch, progress=progress)
    return attack_s, floor_s


def nchw_times(attack: InversionAttack, batch: Batch) -> list[float]:
    """``iteration_times`` with the attack's channels-last CPU layout turned off."""
    attack._channels_last = lambda: False  # type: ignore[method-assign]
    return iteration_times(attack, batch)


def single_unit_times(attack: InversionAttack, batch: Batch, units: int) -> list[float]:
    """Iteration seconds of the first ``units`` of ``batch``, each alone in a batch of one."""
    times: list[float] = []
    for row in range(min(units, batch.identities.numel())):
        alone = Batch(batch.identities[row : row + 1], batch.units[row : row + 1])
        times += iteration_times(attack, alone)
    return times
