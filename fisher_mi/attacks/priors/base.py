"""GAN priors: what a prior kind is, the registry of kinds, and the ``GAN`` attacks use.

A *prior kind* (``gmi``, ``kedmi``, ``plgmi``) is a small registered class that states only
what differs between the papers' priors: its latent dimension, whether its generator is
class-conditional, its training losses (``PriorLosses``) and the two networks it builds
(each a ``NetworkSpec``: how to build it from a ``GANArchitecture`` and how to read that
architecture back from a state dict, which is what lets ``load_gan`` recognise the
published checkpoints). Everything else (presets, input checks, building, the ``GAN``
object) is written once here.

Presets (the same for every kind; widths of generator / discriminator):

- ``reference``: 64 / 64, the papers' networks (64 px faces, and the reference code's 32 px
  digit variants).
- ``cpu``: 16 / 16, narrower networks that train on 2 CPU cores (32 px for digits); *not the
  reference*, and every GAN built with it carries that label in its meta (``preset_note``).

"Width" is the reference code's ``dim`` (GMI, KEDMI) or ``num_features`` (PLG-MI): the
channel count of the widest-resolution stage, every other stage a power of two above it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from fisher_mi.errors import ConfigError
from fisher_mi.registry import Registry

ROLES = ("generator", "discriminator")
IMAGE_SIZES = (32, 64)  # digits (the reference code's MNIST variants) and aligned faces


@dataclass(frozen=True)
class Preset:
    """Network widths of a preset and how its numbers must be labelled.

    Attributes:
        generator_width: the generator's ``dim`` / ``num_features``.
        discriminator_width: the discriminator's ``dim`` / ``num_features``.
        note: the label that goes into every GAN's meta (``preset_note``).
    """

    generator_width: int
    discriminator_width: int
    note: str


PRESETS: Mapping[str, Preset] = {
    "reference": Preset(64, 64, "reference: the papers' widths"),
    "cpu": Preset(16, 16, "cpu preset (widths 16/16), not the reference"),
}
CUSTOM_PRESET = "custom"
CUSTOM_NOTE = "widths read from a foreign file match no preset; not the reference"


@dataclass(frozen=True)
class GANArchitecture:
    """Everything that rebuilds a prior's networks (saved, as plain values, in GAN meta).

    Attributes:
        channels: image channels (1 for digits, 3 for faces).
        image_size: side of the square images, one of ``IMAGE_SIZES``.
        latent_dim: length of a latent vector z.
        generator_width: the generator's width (see the module docstring).
        discriminator_width: the discriminator's width; None when no discriminator is known
            (a published generator file read alone).
        num_classes: classes of the conditional generator (plgmi) or of the discriminator's
            class head (kedmi); None for gmi, or for a kedmi generator read alone.
        preset: the preset whose widths these are, or ``custom``.
    """

    channels: int
    image_size: int
    latent_dim: int
    generator_width: int
    discriminator_width: int | None
    num_classes: int | None
    preset: str

    def to_meta(self) -> dict[str, Any]:
        """The fields as a plain dict (what GAN files store under ``meta``)."""
        return dataclasses.asdict(self)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the generator makes."""
        return (self.channels, self.image_size, self.image_size)


ARCHITECTURE_FIELDS = tuple(field.name for field in dataclasses.fields(GANArchitecture))
WHOLE_FIELDS = ("channels", "image_size", "latent_dim", "generator_width")
OPTIONAL_FIELDS = ("discriminator_width", "num_classes")


@dataclass(frozen=True)
class NetworkSpec:
    """One network of a prior kind.

    Attributes:
        name: the class it is, with the reference class it follows, for messages.
        build: ``build(architecture) -> nn.Module``.
        sizes: ``sizes(state_dict) -> {architecture field: value}``, the fields that the
            state dict's shapes fix (only those whose keys are present).
    """

    name: str
    build: Callable[[GANArchitecture], nn.Module]
    sizes: Callable[[Mapping[str, Tensor]], dict[str, int]]


@dataclass(frozen=True)
class PriorLosses:
    """The training losses of a prior kind (pure functions, see ``losses.py``).

    Attributes:
        discriminator: the discriminator's (critic's) loss; its arguments are the kind's
            (scores for gmi and plgmi, class logits and soft labels for kedmi).
        generator: the generator's loss.
    """

    discriminator: Callable[..., Tensor]
    generator: Callable[..., Tensor]


class PriorKind:
    """A GAN prior kind; subclasses state only what differs (class attributes).

    Attributes:
        name: registry key (``gmi``, ``kedmi``, ``plgmi``).
        latent_dim: length of z in the paper.
        conditional: whether the generator takes class labels.
        class_head: whether the discriminator has a class head (kedmi), which also makes
            ``num_classes`` required.
        generator: the generator's ``NetworkSpec``.
        discriminator: the discriminator's ``NetworkSpec``.
        losses: the training losses of the two networks.
        image_sizes: image sides it builds.
        presets: preset name -> ``Preset``.
        paper: the paper and reference code, for listings.
    """

    name: ClassVar[str]
    latent_dim: ClassVar[int]
    conditional: ClassVar[bool]
    class_head: ClassVar[bool] = False
    generator: ClassVar[NetworkSpec]
    discriminator: ClassVar[NetworkSpec]
    losses: ClassVar[PriorLosses]
    image_sizes: ClassVar[tuple[int, ...]] = IMAGE_SIZES
    presets: ClassVar[Mapping[str, Preset]] = PRESETS
    paper: ClassVar[str] = ""

    @classmethod
    def needs_classes(cls) -> bool:
        """Whether one of its networks has a width of ``num_classes``."""
        return cls.conditional or cls.class_head

    @classmethod
    def network(cls, role: str) -> NetworkSpec:
        """The ``NetworkSpec`` of ``role`` (``generator`` or ``discriminator``)."""
        return cls.generator if role == "generator" else cls.discriminator

    @classmethod
    def architecture(
        cls, *, channels: int, image_size: int, preset: str, num_classes: int | None
    ) -> GANArchitecture:
        """The architecture of ``preset`` for these images, its arguments checked.

        Raises:
            ConfigError: an unknown preset or image size, a missing or needless class count.
        """
        if preset not in cls.presets:
            raise ConfigError(
                f"unknown preset {preset!r} for the {cls.name} prior; known: "
                f"{', '.join(cls.presets)}"
            )
        widths = cls.presets[preset]
        architecture = GANArchitecture(
            channels=channels,
            image_size=image_size,
            latent_dim=cls.latent_dim,
            generator_width=widths.generator_width,
            discriminator_width=widths.discriminator_width,
            num_classes=num_classes,
            preset=preset,
        )
        problem = cls.problem(architecture)
        if problem:
            raise ConfigError(f"cannot build a {cls.name} GAN: {problem}")
        return architecture

    @classmethod
    def problem(cls, architecture: GANArchitecture) -> str | None:
        """What makes ``architecture`` unbuildable for this kind, in words, or None."""
        for name in WHOLE_FIELDS:
            if not _is_whole(getattr(architecture, name)):
                return f"{name} is {getattr(architecture, name)!r}, not a whole number >= 1"
        if architecture.image_size not in cls.image_sizes:
            sizes = ", ".join(map(str, cls.image_sizes))
            return f"image_size {architecture.image_size} is not one of {sizes} (resize the data)"
        for name in OPTIONAL_FIELDS:
            value = getattr(architecture, name)
            if value is not None and not _is_whole(value):
                return f"{name} is {value!r}, not a whole number >= 1"
        return cls._class_problem(architecture)

    @classmethod
    def _class_problem(cls, architecture: GANArchitecture) -> str | None:
        """A class count given to a kind without classes is as wrong as a missing one; a
        kedmi generator read alone has no class head, hence no count."""
        if architecture.num_classes is not None and not cls.needs_classes():
            return f"{cls.name} has no class-conditional network; drop num_classes"
        head = cls.class_head and architecture.discriminator_width is not None
        if architecture.num_classes is None and (cls.conditional or head):
            return f"{cls.name} needs num_classes (the target's classes); pass it"
        return None

    @classmethod
    def preset_of(cls, generator_width: int, discriminator_width: int | None) -> str:
        """The preset with these widths (a missing discriminator matches any), or custom."""
        for name, widths in cls.presets.items():
            if widths.generator_width == generator_width and discriminator_width in (
                None,
                widths.discriminator_width,
            ):
                return name
        return CUSTOM_PRESET

    @classmethod
    def note(cls, preset: str) -> str:
        """The label of ``preset``'s numbers (``not the reference`` unless it is)."""
        return cls.presets[preset].note if preset in cls.presets else CUSTOM_NOTE


def has_tensor(state: Mapping[str, Tensor], key: str, dims: int) -> bool:
    """``state`` holds ``key`` as a tensor of ``dims`` dimensions (so its shape can be read)."""
    return key in state and state[key].dim() == dims


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


PRIORS: Registry[type[PriorKind]] = Registry("GAN prior kind")


def register_prior(kind: type[PriorKind]) -> type[PriorKind]:
    """Class decorator: register a ``PriorKind`` subclass under its ``name``."""
    return PRIORS.add(kind.name, kind)


@dataclass(frozen=True, eq=False)
class GAN:
    """A GAN prior: its two networks, what they are, and how attacks draw images from it.

    Attributes:
        kind: the prior kind's name (a key of ``PRIORS``).
        generator: maps z (N x latent_dim), and labels (N,) for conditional kinds, to images.
        discriminator: the kind's discriminator, or None (a generator file read alone).
        architecture: what rebuilds both networks.
        meta: plain values saved with the networks; always holds the architecture's fields
            and ``preset_note`` (``not the reference`` for the cpu preset).
    """

    kind: str
    generator: nn.Module
    discriminator: nn.Module | None
    architecture: GANArchitecture
    meta: dict[str, Any]

    @property
    def latent_dim(self) -> int:
        """Length of a latent vector."""
        return self.architecture.latent_dim

    @property
    def conditional(self) -> bool:
        """Whether ``generate`` needs labels."""
        return PRIORS.get(self.kind).conditional

    @property
    def num_classes(self) -> int | None:
        """Classes of the conditional generator or of the discriminator's class head."""
        return self.architecture.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the generated images."""
        return self.architecture.image_shape

    @property
    def preset(self) -> str:
        """``reference``, ``cpu`` or ``custom``."""
        return self.architecture.preset

    def raw(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The generator's own output for a batch of latents (and labels).

        This is what the PLG-MI attack feeds the target: tanh output in [-1, 1] for plgmi,
        sigmoid output in [0, 1] for gmi and kedmi. Gradients flow; modes are the caller's.

        Args:
            z: N x latent_dim latents.
            labels: N class indices (long) for conditional kinds; None otherwise.

        Returns:
            N x C x H x W images, unclamped.
        """
        self._check_inputs(z, labels)
        if self.conditional:
            return self.generator(z, labels)
        return self.generator(z)

    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in [0, 1]: the raw output clamped (never min-max rescaled).

        Clamping is the identity for the sigmoid generators (gmi, kedmi); for plgmi it keeps
        the part of the tanh range that a target trained on [0, 1] images has seen, as the
        reference feeds the raw output to the target.

        Args:
            z: N x latent_dim latents.
            labels: N class indices (long) for conditional kinds; None otherwise.

        Returns:
            N x C x H x W images in [0, 1].
        """
        return self.raw(z, labels).clamp(0.0, 1.0)

    def to(self, device: torch.device | str) -> GAN:
        """Move both networks to ``device`` (in place); returns the GAN itself."""
        for network in (self.generator, self.discriminator):
            if network is not None:
                network.to(device)
        return self

    def _check_inputs(self, z: Tensor, labels: Tensor | None) -> None:
        """Refuse latents of the wrong shape and labels missing, superfluous or unknown."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ConfigError(
                f"z has shape {tuple(z.shape)}, but the {self.kind} generator takes "
                f"N x {self.latent_dim} latents; draw z with shape (N, gan.latent_dim)"
            )
        if not self.conditional:
            if labels is not None:
                raise ConfigError(
                    f"the {self.kind} generator is not class-conditional; pass labels=None"
                )
            return
        _check_labels(labels, len(z), self.num_classes or 0, self.kind)


def _check_labels(labels: Tensor | None, count: int, num_classes: int, kind: str) -> None:
    """Labels of a conditional generator: N long class indices in [0, num_classes)."""
    if labels is None or labels.shape != (count,) or labels.dtype != torch.long:
        shown = "None" if labels is None else f"{tuple(labels.shape)} {labels.dtype}"
        raise ConfigError(
            f"the {kind} generator is class-conditional and takes {count} long labels, one "
            f"per latent (got {shown}); pass labels=torch.tensor([...], dtype=torch.long)"
        )
    if count and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise ConfigError(
            f"labels run from {int(labels.min())} to {int(labels.max())}, but the {kind} "
            f"generator knows classes 0 to {num_classes - 1}; pass labels in that range"
        )


def build_gan(
    kind: str,
    *,
    channels: int,
    image_size: int,
    preset: str = "cpu",
    num_classes: int | None = None,
    seed: int | None = None,
) -> GAN:
    """A freshly initialised GAN prior, both networks in train mode.

    Args:
        kind: a key of ``PRIORS`` (``gmi``, ``kedmi``, ``plgmi``).
        channels: image channels.
        image_size: image side (32 or 64).
        preset: ``cpu`` (default; not the reference) or ``reference``.
        num_classes: the target's classes; required by kedmi (its discriminator's class
            head) and plgmi (its conditional generator), refused by gmi.
        seed: seeds the initialisation, without touching the global random state.

    Returns:
        The GAN; its ``meta`` holds the architecture and the preset's label.
    """
    entry = PRIORS.get(kind)
    architecture = entry.architecture(
        channels=channels, image_size=image_size, preset=preset, num_classes=num_classes
    )
    with _seeded(seed):
        generator = entry.generator.build(architecture)
        discriminator = entry.discriminator.build(architecture)
    return GAN(kind, generator, discriminator, architecture, gan_meta(entry, architecture))


def gan_meta(
    entry: type[PriorKind], architecture: GANArchitecture, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Meta of a GAN: ``extra`` entries, then the architecture's fields and preset label."""
    return {
        **dict(extra or {}),
        **architecture.to_meta(),
        "preset_note": entry.note(architecture.preset),
    }


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded, restoring it afterwards."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
