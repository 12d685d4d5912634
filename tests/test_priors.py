"""GAN prior kinds: the registry, the networks' shapes and hand values, ``GAN``'s contract."""

from __future__ import annotations

import math

import pytest
import torch

from fisher_mi.attacks import GAN, PRIORS, build_gan
from fisher_mi.attacks.priors import losses
from fisher_mi.attacks.priors.minibatch import MinibatchDiscrimination
from fisher_mi.attacks.priors.snresnet import CategoricalConditionalBatchNorm2d
from fisher_mi.errors import ConfigError, RegistryError

KINDS = ["gmi", "kedmi", "plgmi"]
PRESETS = ["cpu", "reference"]
IMAGES = [pytest.param(1, 32, id="32px-grey"), pytest.param(3, 64, id="64px-rgb")]
CLASSES = 5
BATCH = 3


def _build(kind: str, channels: int, image_size: int, preset: str = "cpu") -> GAN:
    num_classes = None if kind == "gmi" else CLASSES
    return build_gan(
        kind,
        channels=channels,
        image_size=image_size,
        preset=preset,
        num_classes=num_classes,
        seed=0,
    )


def _inputs(gan: GAN, count: int = BATCH, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    z = scale * torch.randn(count, gan.latent_dim, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(count) % CLASSES if gan.conditional else None
    return z, labels


def _discriminate(gan: GAN, images: torch.Tensor, labels: torch.Tensor | None):
    if gan.kind == "plgmi":
        return gan.discriminator(images, labels)
    return gan.discriminator(images)


# -- the registry ---------------------------------------------------------------------------

KIND_FACTS = [
    pytest.param("gmi", 100, False, id="gmi"),
    pytest.param("kedmi", 100, False, id="kedmi"),
    pytest.param("plgmi", 128, True, id="plgmi"),
]


@pytest.mark.parametrize(("kind", "latent_dim", "conditional"), KIND_FACTS)
def test_kind_states_its_latent_and_conditioning(kind, latent_dim, conditional):
    entry = PRIORS.get(kind)
    assert (entry.latent_dim, entry.conditional) == (latent_dim, conditional)


def test_registry_holds_the_three_kinds():
    assert PRIORS.names() == KINDS


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(RegistryError, match="known: gmi, kedmi, plgmi"):
        build_gan("vae", channels=1, image_size=32)


def test_gmi_and_kedmi_share_one_generator_class():
    assert type(_build("gmi", 1, 32).generator) is type(_build("kedmi", 1, 32).generator)


# -- shapes and ranges for every kind x images x preset -------------------------------------


def _discriminator_shapes(kind: str, channels: int, image_size: int, preset: str):
    """(N,) scores, or KEDMI's (features, logits) with features = 4 width (S/16)^2."""
    width = 64 if preset == "reference" else 16
    if kind == "kedmi":
        return [(BATCH, 4 * width * (image_size // 16) ** 2), (BATCH, CLASSES)]
    return [(BATCH,)]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("channels", "image_size"), IMAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_output_shapes(kind, channels, image_size, preset):
    gan = _build(kind, channels, image_size, preset)
    z, labels = _inputs(gan)
    with torch.no_grad():
        images = gan.generate(z, labels)
        scores = _discriminate(gan, images, labels)
    assert (
        tuple(images.shape)
        == (BATCH, channels, image_size, image_size)
        == (BATCH, *gan.image_shape)
    )
    found = [tuple(t.shape) for t in (scores if isinstance(scores, tuple) else (scores,))]
    assert found == _discriminator_shapes(kind, channels, image_size, preset)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("kind", KINDS)
def test_generate_is_the_raw_output_clamped_to_the_unit_range(kind, preset):
    gan = _build(kind, 1, 32, preset)
    z, labels = _inputs(gan, scale=10.0)  # large latents push the output to its extremes
    with torch.no_grad():
        raw, images = gan.raw(z, labels), gan.generate(z, labels)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert torch.equal(images, raw.clamp(0.0, 1.0))


def test_plgmi_raw_output_is_tanh_and_reaches_below_zero():
    gan = _build("plgmi", 1, 32)
    with torch.no_grad():
        raw = gan.raw(*_inputs(gan, scale=10.0))
    assert -1.0 <= raw.min() < 0.0 and raw.max() <= 1.0


@pytest.mark.parametrize("kind", ["gmi", "kedmi"])
def test_sigmoid_generators_need_no_clamp(kind):
    gan = _build(kind, 1, 32)
    with torch.no_grad():
        raw = gan.raw(*_inputs(gan, scale=10.0))
    assert raw.min() >= 0.0 and raw.max() <= 1.0


def test_gradients_reach_the_latents():
    gan = _build("plgmi", 1, 32)
    gan.generator.eval()
    z, labels = _inputs(gan)
    z.requires_grad_(True)
    gan.generate(z, labels).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


# -- presets (the reference widths are checked key for key in test_gan_checkpoints) ------


@pytest.mark.parametrize("kind", KINDS)
def test_cpu_preset_is_narrower_and_labelled_not_the_reference(kind):
    cpu, reference = _build(kind, 1, 32, "cpu"), _build(kind, 1, 32, "reference")
    assert (cpu.architecture.generator_width, cpu.architecture.discriminator_width) == (16, 16)
    assert "not the reference" in cpu.meta["preset_note"]
    assert "not the reference" not in reference.meta["preset_note"]
    assert cpu.meta["preset"] == "cpu" and cpu.preset == "cpu"


def test_meta_holds_what_rebuilds_the_networks():
    gan = _build("plgmi", 1, 32)
    expected = {
        "channels": 1,
        "image_size": 32,
        "latent_dim": 128,
        "generator_width": 16,
        "discriminator_width": 16,
        "num_classes": CLASSES,
        "preset": "cpu",
    }
    assert {key: gan.meta[key] for key in expected} == expected


# -- seeding -------------------------------------------------------------------------------


def test_seed_fixes_the_initialisation_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    first, second = _build("kedmi", 1, 32), _build("kedmi", 1, 32)
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(
        first.discriminator.state_dict().values(),
        second.discriminator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)


# -- hand values of the building blocks -----------------------------------------------------


def test_minibatch_discrimination_by_hand():
    """T = 1 (A = B = C = 1): M = x; o(x_i) = sum over the others of exp(-|x_i - x_j|)."""
    layer = MinibatchDiscrimination(1, kernels=1, kernel_dim=1)
    with torch.no_grad():
        layer.T.fill_(1.0)
    x = torch.tensor([[0.0], [1.0], [3.0]])
    e = math.exp
    expected = torch.tensor([[0.0, e(-1) + e(-3)], [1.0, e(-1) + e(-2)], [3.0, e(-3) + e(-2)]])
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_minibatch_discrimination_matches_the_pairwise_difference_formula():
    """The cdist route against the N x N x B x C difference tensor of the definition."""
    generator = torch.Generator().manual_seed(0)
    layer = MinibatchDiscrimination(6, kernels=4, kernel_dim=3).double()
    x = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    projected = (x @ layer.T.flatten(1)).view(5, 4, 3)
    l1 = (projected[None] - projected[:, None]).abs().sum(3)  # N x N x B
    closeness = torch.exp(-l1).sum(0) - 1.0
    expected = torch.cat([x, closeness], 1)
    assert torch.allclose(layer(x), expected, atol=1e-12)  # float64: rounding only


def test_conditional_batchnorm_by_hand():
    """Eval mode, running mean 0 and variance 1: y = gamma[c] x / sqrt(1 + eps) + beta[c]."""
    norm = CategoricalConditionalBatchNorm2d(2, 1).eval()
    with torch.no_grad():
        norm.weights.weight.copy_(torch.tensor([[2.0], [-1.0]]))
        norm.biases.weight.copy_(torch.tensor([[0.5], [3.0]]))
    x = torch.tensor([1.0, 4.0]).view(2, 1, 1, 1)
    scale = 1.0 / math.sqrt(1.0 + norm.eps)
    expected = torch.tensor([2.0 * 1.0 * scale + 0.5, -1.0 * 4.0 * scale + 3.0]).view(2, 1, 1, 1)
    assert torch.allclose(norm(x, torch.tensor([0, 1])), expected)


def test_conditional_batchnorm_starts_as_plain_batchnorm():
    norm = CategoricalConditionalBatchNorm2d(3, 2)
    x = torch.randn(4, 2, 3, 3)
    plain = torch.nn.BatchNorm2d(2, affine=False)
    assert torch.allclose(norm(x, torch.tensor([0, 1, 2, 0])), plain(x))


def test_projection_discriminator_adds_the_class_embedding_product():
    """score(x, y) - score(x) = <l_y(y), h> with h the pooled features."""
    gan = _build("plgmi", 1, 32)
    discriminator = gan.discriminator.eval()
    images = torch.rand(2, 1, 32, 32)
    labels = torch.tensor([1, 3])
    with torch.no_grad():
        difference = discriminator(images, labels) - discriminator(images)
        hidden = images
        for name in discriminator.block_names:
            hidden = getattr(discriminator, name)(hidden)
        pooled = torch.relu(hidden).sum(dim=(2, 3))
        expected = (discriminator.l_y(labels) * pooled).sum(1)
    assert torch.allclose(difference, expected, atol=1e-5)


# -- refusals (one line each) ---------------------------------------------------------------

BUILD_ERRORS = [
    pytest.param(
        "gmi",
        {"preset": "huge"},
        "unknown preset 'huge'.*known: reference, cpu",
        id="unknown-preset",
    ),
    pytest.param("gmi", {"image_size": 48}, "image_size 48 is not one of 32, 64", id="image-size"),
    pytest.param(
        "gmi", {"num_classes": 5}, "gmi has no class-conditional network", id="gmi-with-classes"
    ),
    pytest.param("plgmi", {}, "plgmi needs num_classes", id="plgmi-without-classes"),
    pytest.param("kedmi", {}, "kedmi needs num_classes", id="kedmi-without-classes"),
    pytest.param("gmi", {"channels": 0}, "channels is 0", id="no-channels"),
]


@pytest.mark.parametrize(("kind", "options", "says"), BUILD_ERRORS)
def test_build_refuses(kind, options, says):
    arguments = {"channels": 1, "image_size": 32, **options}
    with pytest.raises(ConfigError, match=says) as caught:
        build_gan(kind, **arguments)
    assert "\n" not in str(caught.value)


def _wrong_latent(gan):
    return torch.randn(2, gan.latent_dim + 1), _inputs(gan, 2)[1]


def _flat_latent(gan):
    return torch.randn(gan.latent_dim), None


def _labels_missing(gan):
    return _inputs(gan, 2)[0], None


def _labels_float(gan):
    return _inputs(gan, 2)[0], torch.zeros(2)


def _labels_out_of_range(gan):
    return _inputs(gan, 2)[0], torch.tensor([0, CLASSES])


def _labels_for_gmi(gan):
    return _inputs(gan, 2)[0], torch.zeros(2, dtype=torch.long)


INPUT_ERRORS = [
    pytest.param("gmi", _wrong_latent, "takes N x 100 latents", id="wrong-latent"),
    pytest.param("gmi", _flat_latent, "takes N x 100 latents", id="one-dimensional-z"),
    pytest.param("plgmi", _labels_missing, "takes 2 long labels", id="labels-missing"),
    pytest.param("plgmi", _labels_float, "takes 2 long labels", id="labels-float"),
    pytest.param("plgmi", _labels_out_of_range, "classes 0 to 4", id="labels-out-of-range"),
    pytest.param("gmi", _labels_for_gmi, "not class-conditional", id="labels-for-gmi"),
]


@pytest.mark.parametrize(("kind", "make", "says"), INPUT_ERRORS)
def test_generate_refuses(kind, make, says):
    gan = _build(kind, 1, 32)
    with pytest.raises(ConfigError, match=says) as caught:
        gan.generate(*make(gan))
    assert "\n" not in str(caught.value)


# -- training losses, by hand ---------------------------------------------------------------

LOG2, LOG3 = math.log(2.0), math.log(3.0)


def test_each_kind_registers_its_losses():
    found = {
        name: (kind.losses.discriminator.__name__, kind.losses.generator.__name__)
        for name, kind in PRIORS.items()
    }
    assert found == {
        "gmi": ("wgan_critic_loss", "wgan_generator_loss"),
        "kedmi": ("kedmi_discriminator_loss", "kedmi_generator_loss"),
        "plgmi": ("hinge_discriminator_loss", "hinge_generator_loss"),
    }


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = w . x has gradient w everywhere: GP = (||w|| - 1)^2 = (5 - 1)^2 = 16."""
    w = torch.tensor([3.0, 4.0])
    real, fake = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 2.0], [5.0, 1.0]])
    penalty = losses.gradient_penalty(lambda x: x @ w, real, fake, torch.tensor([0.3, 0.9]))
    assert penalty.item() == pytest.approx(16.0)


def test_gradient_penalty_interpolates_with_alpha():
    """D(x) = ||x||^2 / 2 has gradient x: at x = real + alpha (fake - real) = (0, 3) the norm
    is 3 and GP = (3 - 1)^2 = 4."""
    real, fake = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 5.0]])

    def critic(x):
        return 0.5 * (x**2).sum(1)

    penalty = losses.gradient_penalty(critic, real, fake, torch.tensor([0.5]))
    assert penalty.item() == pytest.approx(4.0)


def test_gradient_penalty_trains_the_critic():
    critic = torch.nn.Linear(2, 1)
    real, fake = torch.randn(3, 2), torch.randn(3, 2)
    penalty = losses.gradient_penalty(lambda x: critic(x).view(-1), real, fake, torch.rand(3))
    penalty.backward()
    assert critic.weight.grad is not None


def test_wgan_losses_by_hand():
    """-(mean real - mean fake) + 10 GP = -(2 - (-1)) + 10 * 0.5 = 2; generator: -(-1) = 1."""
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    critic = losses.wgan_critic_loss(real, fake, torch.tensor(0.5))
    assert critic.item() == pytest.approx(2.0)
    assert losses.wgan_generator_loss(fake).item() == pytest.approx(1.0)


def test_soft_cross_entropy_by_hand():
    """Uniform discriminator logits over 2 classes: -sum_k p_k log(1/2) = log 2 per sample,
    whatever the target's soft labels."""
    logits, target = torch.zeros(3, 2), torch.tensor([[5.0, -1.0], [0.0, 0.0], [2.0, 7.0]])
    assert losses.soft_cross_entropy(logits, target).item() == pytest.approx(LOG2)


def test_soft_cross_entropy_uses_the_targets_softmax():
    """Target logits (0, log 3) give soft labels (1/4, 3/4); with the same discriminator
    logits the loss is their entropy -(1/4 log 1/4 + 3/4 log 3/4)."""
    target = torch.tensor([[0.0, LOG3]])
    logits = torch.tensor([[0.0, LOG3]])
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert losses.soft_cross_entropy(logits, target).item() == pytest.approx(expected)


def test_kedmi_discriminator_loss_by_hand():
    """Zero logits over 2 classes: L = logsumexp = log 2, softplus(L) = log 3.
    Labelled: log 2; unlabelled: 0.5 (log 3 - log 2 + log 3)."""
    zeros = torch.zeros(2, 2)
    loss = losses.kedmi_discriminator_loss(zeros, torch.randn(2, 2), zeros, zeros)
    assert loss.item() == pytest.approx(LOG2 + 0.5 * (2 * LOG3 - LOG2))


def test_unlabelled_loss_is_the_k_plus_one_class_log_likelihood():
    """With the fake logit fixed at 0: -log D(real) - log(1 - D(fake)), D = Z / (Z + 1)."""
    real, fake = torch.tensor([[0.2, -1.0, 0.5]]), torch.tensor([[1.0, 0.3, -0.7]])
    z_real, z_fake = real.exp().sum(), fake.exp().sum()
    expected = -torch.log(z_real / (z_real + 1)) - torch.log(1 / (z_fake + 1))
    assert losses.unlabelled_loss(real, fake).item() == pytest.approx(expected.item())


def test_kedmi_generator_loss_by_hand():
    """Batch means (2, 3) and (1, 1): L1 mean 1.5; entropy of zero logits over 2 classes,
    summed over 2 samples: 2 log 2, times 1e-4."""
    fake_features = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    public_features = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    loss = losses.kedmi_generator_loss(fake_features, public_features, torch.zeros(2, 2))
    assert loss.item() == pytest.approx(1.5 + 1e-4 * 2 * LOG2)


def test_hinge_losses_by_hand():
    """mean relu(1 - (2, 0.5)) = 0.25, mean relu(1 + (-2, 0.5)) = 0.75; generator
    -mean(-2, 0.5) = 0.75."""
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert losses.hinge_discriminator_loss(real, fake).item() == pytest.approx(1.0)
    assert losses.hinge_generator_loss(fake).item() == pytest.approx(0.75)
