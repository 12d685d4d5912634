"""Inversion attacks: oracle tests of each update and loss, seeding, and the attack's checks.

The prior here is a tiny stand-in with the GAN interface (``kind``, ``generator``,
``discriminator``, ``latent_dim``, ``conditional``, ``num_classes``, ``image_shape``,
``generate``, ``raw``), so every number can be checked by hand or by a plain loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.attacks.inversion import ATTACKS, counter_random, invert, losses
from fisher_mi.attacks.inversion.attack import Batch
from fisher_mi.attacks.inversion.augment import UNIFORMS_PER_IMAGE, augment
from fisher_mi.attacks.inversion.methods import INITIAL
from fisher_mi.errors import ConfigError, NonFiniteError

SHAPE = (1, 4, 4)
CLASSES = 5


class Generator(nn.Module):
    """z (or z and a label) -> sigmoid(Linear) images of SHAPE."""

    def __init__(self, latent: int, classes: int | None = None) -> None:
        super().__init__()
        self.net = nn.Linear(latent, math.prod(SHAPE))
        self.embed = nn.Embedding(classes, math.prod(SHAPE)) if classes else None

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.net(z)
        if self.embed is not None:
            out = out + self.embed(y)
        return out.view(-1, *SHAPE)


class Critic(nn.Module):
    def __init__(self, outputs: int | None = None) -> None:
        super().__init__()
        self.net = nn.Linear(math.prod(SHAPE), outputs or 1)
        self.classes = outputs

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        out = self.net(x.flatten(1))
        return (x.flatten(1), out) if self.classes else out.view(-1)


class Target(nn.Module):
    """A linear classifier returning (features, logits), as the literature's targets."""

    input_shape = SHAPE

    def __init__(self) -> None:
        super().__init__()
        self.fc_layer = nn.Linear(math.prod(SHAPE), CLASSES)  # the layer MID's head replaces

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = x.flatten(1)
        return features, self.fc_layer(features)


@dataclass
class TinyGAN:
    kind: str
    generator: nn.Module
    discriminator: nn.Module | None
    latent_dim: int
    conditional: bool = False
    num_classes: int | None = None
    image_shape: tuple[int, ...] = SHAPE

    def raw(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        out = self.generator(z, labels)
        return out if self.conditional else torch.sigmoid(out)

    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.raw(z, labels).clamp(0, 1)


def gan(kind: str) -> TinyGAN:
    torch.manual_seed(1)
    if kind == "gmi":
        return TinyGAN("gmi", Generator(100), Critic(), 100)
    if kind == "kedmi":
        return TinyGAN("kedmi", Generator(100), Critic(CLASSES), 100)
    return TinyGAN("plgmi", Generator(128, CLASSES), None, 128, True, CLASSES)


def target(scale: float = 1.0) -> Target:
    torch.manual_seed(2)
    model = Target()
    with torch.no_grad():
        model.fc_layer.weight.mul_(scale)
    return model


# ---------------------------------------------------------------------------- losses


LOGITS = torch.tensor([[2.0, 1.0, -1.0], [0.5, 3.0, 3.0]])
LABELS = torch.tensor([0, 2])


def test_cross_entropy_by_hand() -> None:
    lse0 = math.log(math.e**2 + math.e + math.e**-1)
    lse1 = math.log(math.e**0.5 + 2 * math.e**3)
    expected = torch.tensor([lse0 - 2.0, lse1 - 3.0])
    torch.testing.assert_close(losses.cross_entropy(LOGITS, LABELS), expected)


def test_logit_loss_by_hand() -> None:
    assert losses.logit_loss(LOGITS, LABELS).tolist() == [-2.0, -3.0]


def test_max_margin_by_hand() -> None:
    # row 0: largest other logit 1 - target 2; row 1: tie, the other 3.0 - target 3.0
    assert losses.max_margin(LOGITS, LABELS).tolist() == [-1.0, 0.0]


def test_feature_regulariser_is_a_mean_over_dimensions() -> None:
    features = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mean = torch.tensor([0.0, 2.0, 1.0, 4.0])
    assert losses.feature_regulariser(features, mean).tolist() == [(1 + 0 + 4 + 0) / 4]


def test_priors_by_hand() -> None:
    assert losses.wgan_prior(torch.tensor([[0.5], [-2.0]])).tolist() == [-0.5, 2.0]
    class_logits = torch.tensor([[0.0, 0.0]])  # logsumexp = log 2
    lse = math.log(2)
    expected = math.log1p(math.exp(lse)) - lse  # softplus(l) - l = -log sigmoid(l)
    assert losses.kedmi_prior(class_logits).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(-math.log(2 / 3), rel=1e-12)


# ---------------------------------------------------------------------------- GMI's update


def test_gmi_update_is_gmi_nesterov_momentum_with_the_clamp() -> None:
    """10 steps against GMI's own formula: v = m v - lr g; z += -m v_prev + (1 + m) v;
    z clamped to [-1, 1] (AI-secure/GMI-Attack attack.py), per-latent loss over 60."""
    prior, model, ids = gan("gmi"), target(), torch.tensor([0, 1, 2, 3])
    attack = ATTACKS.get("gmi")(model, prior, iterations=10, per_identity=1)
    batch = Batch(ids, torch.zeros(4, dtype=torch.long))
    z = counter_random.normal(0, INITIAL, ids, batch.units, 0, 100)
    v = torch.zeros_like(z)
    for _ in range(10):
        z = z.detach().requires_grad_(True)
        images = prior.generate(z)
        per_image = -prior.discriminator(images) + 100 * F.cross_entropy(
            model(images)[1], ids, reduction="none"
        )
        (grad,) = torch.autograd.grad(per_image.sum() / 60, z)
        v_prev, v = v, 0.9 * v - 0.02 * grad
        z = (z + (-0.9 * v_prev + 1.9 * v)).clamp(-1, 1)
    result = attack.run_batch(batch)
    torch.testing.assert_close(result.latents, z.detach(), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- KEDMI


def test_kedmi_reparametrisation_by_hand() -> None:
    attack = ATTACKS.get("kedmi")(target(), gan("kedmi"), iterations=1)
    state = {"mu": torch.tensor([[1.0, -1.0]]), "log_var": torch.tensor([[0.0, math.log(4.0)]])}
    noise = torch.tensor([[0.5, 0.5]])
    assert attack._sample(state, noise).tolist() == [[1.5, 0.0]]  # mu + exp(lv / 2) eps
    clipped = ATTACKS.get("kedmi")(target(), gan("kedmi"), iterations=1, clip_latent=True)
    assert clipped._sample(state, noise * 4).tolist() == [[1.0, 1.0]]


def test_kedmi_gives_per_identity_draws_of_each_distribution() -> None:
    result = invert(
        target(), gan("kedmi"), method="kedmi", identities=[1, 3], per_identity=3, iterations=3
    )
    assert result.identities.tolist() == [1, 1, 1, 3, 3, 3]
    assert result.draws.tolist() == [0, 1, 2, 0, 1, 2]
    assert len({tuple(row.tolist()) for row in result.latents}) == 6


# ---------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("method", ["gmi", "plgmi", "kedmi"])
def test_images_do_not_depend_on_batch_size_or_the_id_set(method: str) -> None:
    prior, model = gan(method), target()
    run = {"method": method, "per_identity": 2, "iterations": 5, "seed": 7}
    if method == "kedmi":  # its minibatch prior depends on the batch: same batches only
        whole = invert(model, prior, identities=[0, 1, 2], batch_size=64, **run)
        again = invert(model, prior, identities=[0, 1, 2], batch_size=64, **run)
        assert torch.equal(whole.images, again.images)
        return
    whole = invert(model, prior, identities=[0, 1, 2], batch_size=64, **run)
    small = invert(model, prior, identities=[0, 1, 2], batch_size=1, **run)
    alone = invert(model, prior, identities=[2], batch_size=3, **run)
    torch.testing.assert_close(whole.images, small.images, rtol=0, atol=1e-6)
    torch.testing.assert_close(whole.images[-2:], alone.images, rtol=0, atol=1e-6)
    other_seed = invert(model, prior, identities=[0, 1, 2], **{**run, "seed": 8})
    assert not torch.equal(whole.images, other_seed.images)


def test_counter_random_rows_depend_only_on_their_coordinates() -> None:
    ids = torch.arange(1000)
    draws = torch.zeros(1000, dtype=torch.long)
    everything = counter_random.normal(3, 0, ids, draws, 4, 16)
    torch.testing.assert_close(
        counter_random.normal(3, 0, ids[10:12], draws[10:12], 4, 16), everything[10:12]
    )
    values = counter_random.normal(3, 0, torch.arange(50_000), torch.zeros(50_000).long(), 0, 4)
    # mean and variance of 200,000 N(0, 1) draws: 5 standard errors (2.2e-3 and 3.2e-3)
    assert abs(values.mean().item()) < 0.012 and abs(values.var().item() - 1) < 0.016


# ---------------------------------------------------------------------------- success


def test_gmi_reaches_high_target_confidence_on_a_tiny_target() -> None:
    """A prior wide enough to reach every class inside GMI's clamp |z| <= 1 (weights x 10)."""
    prior = gan("gmi")
    with torch.no_grad():
        prior.generator.net.weight.mul_(10)
    result = invert(
        target(scale=20.0),
        prior,
        method="gmi",
        identities=range(CLASSES),
        per_identity=4,
        iterations=300,
    )
    assert (result.target_confidence >= 0.9).float().mean() >= 0.9
    assert result.images.min() >= 0 and result.images.max() <= 1


def test_plgmi_augmentation_is_differentiable_and_in_range() -> None:
    images = torch.rand(6, 3, 8, 8, requires_grad=True)
    uniforms = counter_random.uniform(
        0, 3, torch.arange(6), torch.zeros(6).long(), 0, UNIFORMS_PER_IMAGE
    )
    out = augment(images, uniforms)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_identity_augmentation_parameters_leave_the_image() -> None:
    """Uniforms at the middle of every range: area 0.9 crop centred, no rotation, no flip
    (u=0.5 -> not flipped), brightness and contrast 1: a centred 0.9-area zoom."""
    image = torch.rand(1, 1, 8, 8)
    middle = torch.full((1, UNIFORMS_PER_IMAGE), 0.5)
    middle[0, 0] = 1.0  # area 1: no crop
    torch.testing.assert_close(augment(image, middle), image, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- checks


def test_wrong_prior_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs a kedmi prior"):
        ATTACKS.get("kedmi")(target(), gan("gmi"))


def test_image_shape_mismatch_is_refused() -> None:
    prior = gan("gmi")
    prior.image_shape = (3, 4, 4)
    with pytest.raises(ConfigError, match=r"makes \(3, 4, 4\) images"):
        ATTACKS.get("gmi")(target(), prior)


def test_identities_outside_the_classes_are_refused() -> None:
    with pytest.raises(ConfigError, match="outside the target's 5 classes"):
        invert(target(), gan("gmi"), identities=[4, 5], iterations=1)


def test_conditional_prior_of_other_classes_is_refused() -> None:
    prior = gan("plgmi")
    prior.num_classes = 7
    with pytest.raises(ConfigError, match="trained for 7 classes"):
        ATTACKS.get("plgmi")(target(), prior)


def test_non_finite_loss_names_the_step_and_term() -> None:
    prior = gan("gmi")
    with torch.no_grad():
        prior.discriminator.net.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="prior term is not finite at step 0"):
        invert(target(), prior, identities=[0], iterations=2)


def test_networks_stay_in_their_modes_and_flags() -> None:
    prior, model = gan("gmi"), target()
    model.train()
    prior.generator.train()
    invert(model, prior, identities=[0], per_identity=1, iterations=2)
    assert model.training and prior.generator.training
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("method", ["gmi", "kedmi", "plgmi"])
def test_zero_iterations_are_the_prior_only_baseline(method: str) -> None:
    prior = gan(method)
    result = invert(
        target(), prior, method=method, identities=[0, 1], per_identity=2, iterations=0, seed=3
    )
    again = invert(
        target(), prior, method=method, identities=[0, 1], per_identity=2, iterations=0, seed=3
    )
    assert torch.equal(result.images, again.images) and result.images.shape[0] == 4
    if method == "gmi":  # unoptimised: exactly the seeded initial latents
        ids, draws = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
        initial = counter_random.normal(3, INITIAL, ids, draws, 0, 100)
        torch.testing.assert_close(result.latents, initial)


class ConvTarget(nn.Module):
    """A convolutional classifier, to exercise the channels-last layout of the CPU attack."""

    input_shape = SHAPE

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_channels_last_on_cpu_matches_the_default_layout_and_is_restored(monkeypatch) -> None:
    """The CPU layout changes no result beyond float rounding (atol 1e-5 on images after 30
    steps) and leaves every parameter as it found it (same tensor, same layout)."""
    from fisher_mi.attacks.inversion.attack import InversionAttack

    torch.manual_seed(4)
    model, prior = ConvTarget(), gan("gmi")
    before = [(p, p.data_ptr(), p.stride()) for p in model.parameters()]
    options = {"identities": [0, 3], "per_identity": 2, "iterations": 30, "seed": 5}
    fast = invert(model, prior, **options)
    assert all(p.data_ptr() == ptr and p.stride() == s for p, ptr, s in before)
    monkeypatch.setattr(InversionAttack, "_channels_last", lambda self: False)
    plain = invert(model, prior, **options)
    torch.testing.assert_close(fast.images, plain.images, atol=1e-5, rtol=0)
    assert not torch.equal(fast.images, invert(model, prior, **{**options, "iterations": 0}).images)


def test_channels_last_restrides_one_by_one_kernels_so_shortcuts_stay_channels_last() -> None:
    """A 1 x 1 kernel is "channels-last contiguous" with NCHW strides too; kept so, a shortcut
    convolution returns NCHW and the rest of a residual network inherits it."""
    from fisher_mi.attacks.inversion.attack import channels_last

    shortcut = nn.Conv2d(3, 4, 1)
    x = torch.randn(2, 3, 8, 8)
    assert shortcut.weight.stride() == (3, 1, 1, 1)
    with channels_last([shortcut]):
        assert shortcut.weight.stride() == (3, 1, 3, 3)
        assert shortcut(x).is_contiguous(memory_format=torch.channels_last)
    assert shortcut.weight.stride() == (3, 1, 1, 1)


def _vib_target() -> nn.Module:
    from fisher_mi.models.vib import VIBClassifier

    torch.manual_seed(6)
    model = VIBClassifier(Target(), k=4)
    with torch.no_grad():
        model.st_layer.bias[4:] = 6.0  # sigma = softplus(6 - 5) ~ 1.3: the noise matters
    return model


def test_sample_head_queries_the_vib_head_by_sampling_reproducibly() -> None:
    """Sampling changes the images (the attacker sees a noisy head), the same seed gives the
    same images, the caller's random stream is untouched and the flag is restored."""
    model, prior = _vib_target(), gan("gmi")
    options = {"identities": [0, 2], "per_identity": 2, "iterations": 20, "seed": 1}
    mean = invert(model, prior, **options)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    sampled = invert(model, prior, sample_head=True, **options)
    assert torch.equal(torch.rand(3), expected_next)
    assert model.sample is False
    again = invert(model, prior, sample_head=True, **options)
    assert torch.equal(sampled.images, again.images)
    assert not torch.allclose(sampled.images, mean.images, atol=1e-3)
    assert sampled.settings["sample_head"] is True


def test_sample_head_on_a_target_without_a_vib_head_is_refused() -> None:
    with pytest.raises(ConfigError, match="lacks; drop --sample-head"):
        invert(target(), gan("gmi"), identities=[0], sample_head=True)
