"""GAN files: the published layouts load strictly, ours round-trip, mismatches are one line.

Each published layout below is written out by hand from the reference class definitions
(names and shapes; the tensors are random): GMI-Attack's ``Celeba/generator.py``
(``Generator``), ``MNIST/generator.py`` (``GeneratorMNIST``), ``Celeba/discri.py``
(``DGWGAN``), ``MNIST/discri.py`` (``DGWGAN32``); Knowledge-Enriched-DMI's ``discri.py``
(``MinibatchDiscriminator``); TL-DMI's ``models/discri.py`` (``MinibatchDiscriminator_MNIST``);
PLG-MI-Attack's ``models/generators/resnet64.py`` and ``resblocks.py`` (``ResNetGenerator``,
``Block``, with ``links/conditional_batchnorm.py``) and ``models/discriminators/snresnet64.py``
and ``resblocks.py`` (``SNResNetProjectionDiscriminator``, ``Block``, ``OptimizedBlock``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import fisher_mi
from fisher_mi.attacks import GAN, GANArchitecture, build_gan, load_gan, save_gan
from fisher_mi.errors import ArchitectureMismatchError, CheckpointError, ConfigError
from tests.error_cases import one_line

Shape = tuple[int, ...]
Layout = list[tuple[str, Shape]]

# -- the reference layouts, by hand ---------------------------------------------------------


def batchnorm(prefix: str, features: int) -> Layout:
    """BatchNorm1d/2d (affine): weight, bias and the running statistics."""
    return [
        (f"{prefix}.weight", (features,)),
        (f"{prefix}.bias", (features,)),
        (f"{prefix}.running_mean", (features,)),
        (f"{prefix}.running_var", (features,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def gmi_generator_64() -> Layout:
    """``Generator(in_dim=100, dim=64)``: l1 = Linear(100, 8192, bias=False), BN1d, ReLU;
    l2_5 = three dconv_bn_relu (ConvT 5x5 no bias, BN2d, ReLU), ConvT(64, 3), Sigmoid."""
    return [
        ("l1.0.weight", (8192, 100)),
        *batchnorm("l1.1", 8192),
        ("l2_5.0.0.weight", (512, 256, 5, 5)),
        *batchnorm("l2_5.0.1", 256),
        ("l2_5.1.0.weight", (256, 128, 5, 5)),
        *batchnorm("l2_5.1.1", 128),
        ("l2_5.2.0.weight", (128, 64, 5, 5)),
        *batchnorm("l2_5.2.1", 64),
        ("l2_5.3.weight", (64, 3, 5, 5)),
        ("l2_5.3.bias", (3,)),
    ]


def gmi_generator_32() -> Layout:
    """``GeneratorMNIST(in_dim=100, dim=64)``: Linear(100, 4096), two dconv_bn_relu,
    ConvT(64, 1), Sigmoid."""
    return [
        ("l1.0.weight", (4096, 100)),
        *batchnorm("l1.1", 4096),
        ("l2_5.0.0.weight", (256, 128, 5, 5)),
        *batchnorm("l2_5.0.1", 128),
        ("l2_5.1.0.weight", (128, 64, 5, 5)),
        *batchnorm("l2_5.1.1", 64),
        ("l2_5.2.weight", (64, 1, 5, 5)),
        ("l2_5.2.bias", (1,)),
    ]


def gmi_critic_64() -> Layout:
    """``DGWGAN(in_dim=3, dim=64)``: ls = Conv(3, 64), LeakyReLU, three conv_ln_lrelu
    (Conv 5x5, InstanceNorm2d(affine=True), LeakyReLU), Conv(512, 1, 4)."""
    return [
        ("ls.0.weight", (64, 3, 5, 5)),
        ("ls.0.bias", (64,)),
        ("ls.2.0.weight", (128, 64, 5, 5)),
        ("ls.2.0.bias", (128,)),
        ("ls.2.1.weight", (128,)),
        ("ls.2.1.bias", (128,)),
        ("ls.3.0.weight", (256, 128, 5, 5)),
        ("ls.3.0.bias", (256,)),
        ("ls.3.1.weight", (256,)),
        ("ls.3.1.bias", (256,)),
        ("ls.4.0.weight", (512, 256, 5, 5)),
        ("ls.4.0.bias", (512,)),
        ("ls.4.1.weight", (512,)),
        ("ls.4.1.bias", (512,)),
        ("ls.5.weight", (1, 512, 4, 4)),
        ("ls.5.bias", (1,)),
    ]


def gmi_critic_32() -> Layout:
    """``DGWGAN32(in_dim=1, dim=64)``: layer1 = Conv(1, 64), LeakyReLU; layer2, layer3 =
    conv_ln_lrelu; layer4 = Conv(256, 1, 4)."""
    return [
        ("layer1.0.weight", (64, 1, 5, 5)),
        ("layer1.0.bias", (64,)),
        ("layer2.0.weight", (128, 64, 5, 5)),
        ("layer2.0.bias", (128,)),
        ("layer2.1.weight", (128,)),
        ("layer2.1.bias", (128,)),
        ("layer3.0.weight", (256, 128, 5, 5)),
        ("layer3.0.bias", (256,)),
        ("layer3.1.weight", (256,)),
        ("layer3.1.bias", (256,)),
        ("layer4.weight", (1, 256, 4, 4)),
        ("layer4.bias", (1,)),
    ]


def kedmi_discriminator(channels: int, features: int, classes: int) -> Layout:
    """``MinibatchDiscriminator(in_dim, dim=64, n_classes)``: layer1-3 conv_ln_lrelu 5x5
    stride 2 (64, 128, 256), layer4 3x3 stride 2 (256); mbd1.T (A, 64, 50); fc_layer
    (A + 64 -> n_classes). A = 4096 at 64 px; 1024 in TL-DMI's MNIST variant."""
    return [
        ("layer1.0.weight", (64, channels, 5, 5)),
        ("layer1.0.bias", (64,)),
        ("layer1.1.weight", (64,)),
        ("layer1.1.bias", (64,)),
        ("layer2.0.weight", (128, 64, 5, 5)),
        ("layer2.0.bias", (128,)),
        ("layer2.1.weight", (128,)),
        ("layer2.1.bias", (128,)),
        ("layer3.0.weight", (256, 128, 5, 5)),
        ("layer3.0.bias", (256,)),
        ("layer3.1.weight", (256,)),
        ("layer3.1.bias", (256,)),
        ("layer4.0.weight", (256, 256, 3, 3)),
        ("layer4.0.bias", (256,)),
        ("layer4.1.weight", (256,)),
        ("layer4.1.bias", (256,)),
        ("mbd1.T", (features, 64, 50)),
        ("fc_layer.weight", (classes, features + 64)),
        ("fc_layer.bias", (classes,)),
    ]


def conditional_batchnorm(prefix: str, classes: int, features: int) -> Layout:
    """``CategoricalConditionalBatchNorm2d`` (affine=False): running statistics and the two
    class embeddings ``weights`` and ``biases``."""
    return [
        (f"{prefix}.running_mean", (features,)),
        (f"{prefix}.running_var", (features,)),
        (f"{prefix}.num_batches_tracked", ()),
        (f"{prefix}.weights.weight", (classes, features)),
        (f"{prefix}.biases.weight", (classes, features)),
    ]


def plgmi_up_block(prefix: str, fan_in: int, fan_out: int, classes: int) -> Layout:
    """Generator ``Block(in_ch, out_ch, upsample=True, num_classes)``: c1 3x3 in->out,
    c2 3x3 out->out, b1/b2 conditional BN, c_sc 1x1 in->out (all convolutions biased)."""
    return [
        (f"{prefix}.c1.weight", (fan_out, fan_in, 3, 3)),
        (f"{prefix}.c1.bias", (fan_out,)),
        (f"{prefix}.c2.weight", (fan_out, fan_out, 3, 3)),
        (f"{prefix}.c2.bias", (fan_out,)),
        *conditional_batchnorm(f"{prefix}.b1", classes, fan_in),
        *conditional_batchnorm(f"{prefix}.b2", classes, fan_out),
        (f"{prefix}.c_sc.weight", (fan_out, fan_in, 1, 1)),
        (f"{prefix}.c_sc.bias", (fan_out,)),
    ]


def plgmi_generator_64(classes: int) -> Layout:
    """``ResNetGenerator(num_features=64, dim_z=128, bottom_width=4, num_classes)``:
    l1 Linear(128, 16*64*16), block2-5 (1024 -> 512 -> 256 -> 128 -> 64), b6 BN2d(64),
    conv6 Conv(64, 3, 1)."""
    return [
        ("l1.weight", (16384, 128)),
        ("l1.bias", (16384,)),
        *plgmi_up_block("block2", 1024, 512, classes),
        *plgmi_up_block("block3", 512, 256, classes),
        *plgmi_up_block("block4", 256, 128, classes),
        *plgmi_up_block("block5", 128, 64, classes),
        *batchnorm("b6", 64),
        ("conv6.weight", (3, 64, 1, 1)),
        ("conv6.bias", (3,)),
    ]


def spectral(prefix: str, shape: Shape, *, bias: bool = True) -> Layout:
    """A layer under the old ``torch.nn.utils.spectral_norm``: weight_orig, and the
    buffers u (the weight's first dimension) and v (the rest, flattened)."""
    layout = [(f"{prefix}.bias", (shape[0],))] if bias else []
    return [
        *layout,
        (f"{prefix}.weight_orig", shape),
        (f"{prefix}.weight_u", (shape[0],)),
        (f"{prefix}.weight_v", (math.prod(shape[1:]),)),
    ]


def plgmi_down_block(prefix: str, fan_in: int, fan_out: int, *, optimized: bool) -> Layout:
    """``OptimizedBlock(in, out)``: c1 in->out, c2 out->out; ``Block(in, out,
    downsample=True)``: c1 in->in (h_ch = in_ch), c2 in->out; both c_sc 1x1 in->out."""
    hidden = fan_out if optimized else fan_in
    return [
        *spectral(f"{prefix}.c1", (hidden, fan_in, 3, 3)),
        *spectral(f"{prefix}.c2", (fan_out, hidden, 3, 3)),
        *spectral(f"{prefix}.c_sc", (fan_out, fan_in, 1, 1)),
    ]


def plgmi_discriminator_64(classes: int) -> Layout:
    """``SNResNetProjectionDiscriminator(num_features=64, num_classes)``: block1 optimized
    3 -> 64, block2-5 64 -> 128 -> 256 -> 512 -> 1024, l6 SN Linear(1024, 1), l_y SN
    Embedding(num_classes, 1024)."""
    return [
        *plgmi_down_block("block1", 3, 64, optimized=True),
        *plgmi_down_block("block2", 64, 128, optimized=False),
        *plgmi_down_block("block3", 128, 256, optimized=False),
        *plgmi_down_block("block4", 256, 512, optimized=False),
        *plgmi_down_block("block5", 512, 1024, optimized=False),
        *spectral("l6", (1, 1024)),
        *spectral("l_y", (classes, 1024), bias=False),
    ]


# -- published files ------------------------------------------------------------------------


def tensors(layout: Layout) -> dict[str, torch.Tensor]:
    """Random tensors of the layout's shapes (positive, so running variances are valid)."""
    return dict(_tensors(tuple(layout)))


@functools.lru_cache(maxsize=16)
def _tensors(layout: tuple[tuple[str, Shape], ...]) -> tuple[tuple[str, torch.Tensor], ...]:
    """Drawn once per layout (the reference widths make tens of megabytes); never mutated."""
    generator = torch.Generator().manual_seed(0)
    return tuple(
        (key, torch.rand(shape, generator=generator) if shape else torch.tensor(0))
        for key, shape in layout
    )


def gmi_style(state: dict[str, torch.Tensor]) -> dict:
    """GMI/KEDMI/LOMMA/TL-DMI: ``torch.save({'state_dict': DataParallel(G).state_dict()})``."""
    return {"state_dict": {f"module.{key}": value for key, value in state.items()}}


def plgmi_style(state: dict[str, torch.Tensor]) -> dict:
    """PLG-MI's ``save_checkpoints``: ``{'model': gen.state_dict(), 'opt': opt.state_dict()}``."""
    optimizer = {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.0, 0.9), "params": [0]}]}
    return {"model": state, "opt": optimizer}


@dataclass(frozen=True)
class Published:
    """A published GAN: its two layouts, how its files are packed, what it must load as."""

    generator: Layout
    discriminator: Layout
    pack: object
    kind: str
    architecture: GANArchitecture


def _architecture(channels, image_size, latent, classes=None) -> GANArchitecture:
    return GANArchitecture(channels, image_size, latent, 64, 64, classes, "reference")


PUBLISHED = {
    "gmi-celeba_G-celeba_D": Published(
        gmi_generator_64(), gmi_critic_64(), gmi_style, "gmi", _architecture(3, 64, 100)
    ),
    "gmi-mnist": Published(
        gmi_generator_32(), gmi_critic_32(), gmi_style, "gmi", _architecture(1, 32, 100)
    ),
    "kedmi-improved_celeba_G-improved_celeba_D": Published(
        gmi_generator_64(),
        kedmi_discriminator(3, 4096, 1000),
        gmi_style,
        "kedmi",
        _architecture(3, 64, 100, 1000),
    ),
    "kedmi-tl_dmi-mnist": Published(
        gmi_generator_32(),
        kedmi_discriminator(1, 1024, 10),
        gmi_style,
        "kedmi",
        _architecture(1, 32, 100, 10),
    ),
    "plgmi-gen-dis": Published(
        plgmi_generator_64(1000),
        plgmi_discriminator_64(1000),
        plgmi_style,
        "plgmi",
        _architecture(3, 64, 128, 1000),
    ),
}
CASES = [pytest.param(published, id=name) for name, published in PUBLISHED.items()]


def write(tmp_path: Path, name: str, payload: dict) -> Path:
    path = tmp_path / name
    torch.save(payload, path)
    return path


def write_pair(tmp_path: Path, published: Published, generator=None, discriminator=None):
    """The two files, from the layouts or from the given state dicts."""
    g_state = tensors(published.generator) if generator is None else generator
    d_state = tensors(published.discriminator) if discriminator is None else discriminator
    return (
        write(tmp_path, "G.tar", published.pack(g_state)),
        write(tmp_path, "D.tar", published.pack(d_state)),
    )


@pytest.mark.parametrize("published", CASES)
def test_published_files_load_strictly_and_are_recognised(tmp_path, published):
    gan = load_gan(*write_pair(tmp_path, published))
    assert gan.kind == published.kind
    assert gan.architecture == published.architecture
    assert not gan.generator.training and not gan.discriminator.training


@pytest.mark.parametrize("published", CASES)
def test_published_tensors_arrive_unchanged(tmp_path, published):
    gan = load_gan(*write_pair(tmp_path, published))
    key, _ = published.discriminator[-1]
    loaded = dict(gan.discriminator.state_dict())
    name = key.replace("weight_v", "parametrizations.weight.0._v")
    assert torch.equal(loaded[name], tensors(published.discriminator)[key])


@pytest.mark.parametrize("role", ["generator", "discriminator"])
@pytest.mark.parametrize("published", CASES)
def test_a_missing_key_fails_naming_it(tmp_path, published, role):
    layout = getattr(published, role)
    dropped, _ = layout[-1]
    state = {key: value for key, value in tensors(layout).items() if key != dropped}
    with pytest.raises(ArchitectureMismatchError) as caught:
        load_gan(*write_pair(tmp_path, published, **{role: state}), kind=published.kind)
    assert f"1 missing ({dropped})" in one_line(caught)


@pytest.mark.parametrize("role", ["generator", "discriminator"])
@pytest.mark.parametrize("published", CASES)
def test_an_unexpected_key_fails_naming_it(tmp_path, published, role):
    state = {**tensors(getattr(published, role)), "extra.weight": torch.zeros(2)}
    with pytest.raises(ArchitectureMismatchError) as caught:
        load_gan(*write_pair(tmp_path, published, **{role: state}), kind=published.kind)
    assert "1 unexpected (extra.weight)" in one_line(caught)


def test_a_misshapen_key_fails_naming_both_shapes(tmp_path):
    published = PUBLISHED["gmi-mnist"]
    state = {**tensors(published.discriminator), "layer4.weight": torch.zeros(1, 256, 3, 3)}
    with pytest.raises(ArchitectureMismatchError) as caught:
        load_gan(*write_pair(tmp_path, published, discriminator=state), kind="gmi")
    assert "layer4.weight (1, 256, 3, 3) vs (1, 256, 4, 4)" in one_line(caught)


def test_recognition_without_kind_names_the_closest_kind_and_the_missing_key(tmp_path):
    published = PUBLISHED["gmi-celeba_G-celeba_D"]
    state = {key: v for key, v in tensors(published.discriminator).items() if key != "ls.5.bias"}
    with pytest.raises(ArchitectureMismatchError) as caught:
        load_gan(*write_pair(tmp_path, published, discriminator=state))
    message = one_line(caught)
    assert "fit no GAN prior kind; closest is gmi" in message and "ls.5.bias" in message


@pytest.mark.parametrize("name", ["gmi-mnist", "kedmi-improved_celeba_G-improved_celeba_D"])
def test_a_gmi_or_kedmi_generator_alone_needs_kind(tmp_path, name):
    generator, _ = write_pair(tmp_path, PUBLISHED[name])
    with pytest.raises(CheckpointError, match="fits the generator of gmi, kedmi") as caught:
        load_gan(generator)
    assert "pass kind=" in one_line(caught)


def test_a_generator_alone_loads_with_kind(tmp_path):
    generator, _ = write_pair(tmp_path, PUBLISHED["kedmi-improved_celeba_G-improved_celeba_D"])
    gan = load_gan(generator, kind="kedmi")
    assert gan.discriminator is None and gan.num_classes is None and gan.kind == "kedmi"
    assert gan.preset == "reference" and not gan.generator.training
    with torch.no_grad():
        assert gan.generate(torch.randn(2, 100)).shape == (2, 3, 64, 64)


def test_a_plgmi_generator_alone_is_recognised(tmp_path):
    generator, _ = write_pair(tmp_path, PUBLISHED["plgmi-gen-dis"])
    gan = load_gan(generator)
    assert (gan.kind, gan.num_classes, gan.discriminator) == ("plgmi", 1000, None)


def test_files_of_different_sizes_are_refused(tmp_path):
    gmi_64, gmi_32 = PUBLISHED["gmi-celeba_G-celeba_D"], PUBLISHED["gmi-mnist"]
    generator = write(tmp_path, "G.tar", gmi_style(tensors(gmi_64.generator)))
    discriminator = write(tmp_path, "D.tar", gmi_style(tensors(gmi_32.discriminator)))
    with pytest.raises(CheckpointError) as caught:
        load_gan(generator, discriminator, kind="gmi")
    assert f"{generator} implies channels=3 but {discriminator} channels=1" in one_line(caught)


# -- the old spectral norm's tensors mean the same in the parametrization -------------------


def test_old_spectral_norm_tensors_give_the_same_layer_after_renaming():
    """In eval mode both divide W by sigma = u . (W v) with the stored u and v."""
    torch.manual_seed(0)
    old = nn.utils.spectral_norm(nn.Conv2d(3, 4, 3)).eval()
    with torch.no_grad():
        old.weight_u.copy_(nn.functional.normalize(torch.randn(4), dim=0))
        old.weight_v.copy_(nn.functional.normalize(torch.randn(27), dim=0))
    new = nn.utils.parametrizations.spectral_norm(nn.Conv2d(3, 4, 3)).eval()
    renamed = {
        "bias": old.bias,
        "parametrizations.weight.original": old.weight_orig,
        "parametrizations.weight.0._u": old.weight_u,
        "parametrizations.weight.0._v": old.weight_v,
    }
    new.load_state_dict(renamed, strict=True)
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        assert torch.allclose(old(x), new(x), atol=1e-6)


# -- our own files --------------------------------------------------------------------------

OWN = [
    pytest.param("gmi", 1, 32, None, id="gmi-32px"),
    pytest.param("kedmi", 3, 64, 4, id="kedmi-64px"),
    pytest.param("plgmi", 1, 32, 4, id="plgmi-32px"),
]


def _outputs(gan: GAN, z: torch.Tensor, labels):
    with torch.no_grad():
        images = gan.generate(z, labels)
        scores = gan.discriminator(images, labels) if gan.conditional else gan.discriminator(images)
    return images, scores


@pytest.mark.parametrize(("kind", "channels", "image_size", "classes"), OWN)
def test_round_trip_gives_identical_outputs(tmp_path, kind, channels, image_size, classes):
    gan = build_gan(kind, channels=channels, image_size=image_size, num_classes=classes, seed=0)
    gan.generator.eval(), gan.discriminator.eval()
    paths = save_gan(gan, tmp_path / "gan", meta={"steps": 3})
    assert paths == {
        role: tmp_path / "gan" / f"{role}.pt" for role in ("generator", "discriminator")
    }
    loaded = load_gan(tmp_path / "gan")
    z = torch.randn(4, gan.latent_dim)
    labels = torch.arange(4) % classes if gan.conditional else None
    for before, after in zip(_outputs(gan, z, labels), _outputs(loaded, z, labels), strict=True):
        for a, b in zip(
            before if isinstance(before, tuple) else (before,),
            after if isinstance(after, tuple) else (after,),
            strict=True,
        ):
            assert torch.equal(a, b)
    assert (loaded.kind, loaded.architecture) == (kind, gan.architecture)
    assert loaded.meta == {**gan.meta, "steps": 3}


def test_our_files_load_one_by_one(tmp_path):
    gan = build_gan("kedmi", channels=1, image_size=32, num_classes=3, seed=0)
    paths = save_gan(gan, tmp_path)
    both = load_gan(paths["generator"], paths["discriminator"])
    alone = load_gan(paths["generator"])  # our file names its kind
    assert both.kind == alone.kind == "kedmi" and alone.discriminator is None


def test_our_file_format(tmp_path):
    gan = build_gan("gmi", channels=1, image_size=32, seed=0)
    payload = torch.load(save_gan(gan, tmp_path)["generator"], weights_only=True)
    assert set(payload) == {"format", "kind", "role", "state_dict", "meta"}
    assert (payload["format"], payload["kind"], payload["role"]) == (
        "fisher_mi-gan/1",
        "gmi",
        "generator",
    )


def test_meta_may_not_contradict_the_architecture(tmp_path):
    gan = build_gan("gmi", channels=1, image_size=32, seed=0)
    with pytest.raises(ConfigError, match="meta sets image_size=64"):
        save_gan(gan, tmp_path, meta={"image_size": 64})


# -- refusals -------------------------------------------------------------------------------


@pytest.fixture
def gan_folder(tmp_path) -> Path:
    save_gan(build_gan("gmi", channels=1, image_size=32, seed=0), tmp_path / "gan")
    return tmp_path / "gan"


def test_a_gan_file_given_to_load_model_is_refused(gan_folder):
    with pytest.raises(CheckpointError, match="fisher_mi-gan/1") as caught:
        fisher_mi.load_model(gan_folder / "generator.pt")
    one_line(caught)


def test_a_published_gan_file_given_to_load_model_is_refused(tmp_path):
    generator, _ = write_pair(tmp_path, PUBLISHED["gmi-celeba_G-celeba_D"])
    with pytest.raises(CheckpointError, match="fits no registered architecture") as caught:
        fisher_mi.load_model(generator)
    one_line(caught)


def test_our_classifier_file_given_as_a_gan_is_refused(tmp_path):
    fisher_mi.save_model(fisher_mi.build_model("mcnn", num_classes=5), tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"classifier checkpoint.*fisher_mi\.load_model") as c:
        load_gan(tmp_path / "model.pt", kind="gmi")
    one_line(c)


def test_a_foreign_classifier_state_dict_given_as_a_gan_is_refused(tmp_path):
    state = fisher_mi.build_model("mcnn", num_classes=5).state_dict()
    path = write(tmp_path, "target.tar", {"state_dict": state})
    with pytest.raises(
        ArchitectureMismatchError, match="fits no GAN prior: none of its keys"
    ) as caught:
        load_gan(path)
    one_line(caught)


def test_roles_swapped_are_refused(gan_folder):
    with pytest.raises(CheckpointError, match="holds a GAN's 'discriminator'") as caught:
        load_gan(gan_folder / "discriminator.pt", gan_folder / "generator.pt")
    one_line(caught)


def test_kind_contradicting_our_file_is_refused(gan_folder):
    with pytest.raises(ConfigError, match="holds a gmi GAN, not kedmi") as caught:
        load_gan(gan_folder, kind="kedmi")
    one_line(caught)


def test_files_of_different_kinds_are_refused(tmp_path, gan_folder):
    other = save_gan(build_gan("plgmi", channels=1, image_size=32, num_classes=2), tmp_path / "p")
    with pytest.raises(CheckpointError, match="of different GANs") as caught:
        load_gan(gan_folder / "generator.pt", other["discriminator"])
    one_line(caught)


def test_a_folder_without_its_discriminator_is_refused(gan_folder):
    (gan_folder / "discriminator.pt").unlink()
    with pytest.raises(CheckpointError, match=r"lacks discriminator\.pt") as caught:
        load_gan(gan_folder)
    one_line(caught)


def test_a_folder_with_a_discriminator_path_is_refused(gan_folder):
    with pytest.raises(ConfigError, match="is a folder") as caught:
        load_gan(gan_folder, gan_folder / "discriminator.pt")
    one_line(caught)


def test_a_run_folder_file_its_manifest_does_not_list_is_refused(gan_folder):
    (gan_folder / "manifest.json").write_text('{"files": {}}')
    with pytest.raises(fisher_mi.FisherMIError, match="not listed") as caught:
        load_gan(gan_folder)
    one_line(caught)


def test_a_pickled_object_is_refused(tmp_path):
    path = write(tmp_path, "G.tar", {"state_dict": {"l1.0.weight": torch.zeros(1)}, "x": Path()})
    with pytest.raises(CheckpointError, match="pickled Python object") as caught:
        load_gan(path, kind="gmi")
    one_line(caught)


def _tampered(folder: Path, **meta) -> Path:
    path = folder / "generator.pt"
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "meta": {**payload["meta"], **meta}}, path)
    return path


def test_a_meta_claiming_other_widths_is_refused_before_building(gan_folder):
    path = _tampered(gan_folder, generator_width=10**6)  # a terabyte if it were built
    with pytest.raises(ArchitectureMismatchError, match="wrong shape") as caught:
        load_gan(path)
    one_line(caught)


def test_a_meta_that_builds_nothing_is_refused(gan_folder):
    path = _tampered(gan_folder, image_size="64")
    with pytest.raises(CheckpointError, match="builds no network: image_size is '64'") as caught:
        load_gan(path)
    one_line(caught)
