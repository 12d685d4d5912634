"""GAN files: writing our own, reading ours and the published ones, strictly.

Our format (DESIGN.md, Outputs) is one file per network, a ``torch.save``d dict
``{"format": "fisher_mi-gan/1", "kind", "role": "generator"|"discriminator", "state_dict",
"meta"}`` whose meta holds the ``GANArchitecture`` fields as plain values; ``save_gan``
writes ``generator.pt`` and ``discriminator.pt`` into a folder.

``load_gan`` also reads the published checkpoints as they are: GMI, KEDMI, LOMMA and TL-DMI
files ``{"state_dict": ...}`` with DataParallel's ``module.`` prefixes (``celeba_G.tar``,
``celeba_D.tar``, ``improved_celeba_G.tar``, ``improved_celeba_D.tar``) and PLG-MI files
``{"model": ..., "opt": ...}`` with the old spectral-norm names (renamed on load, see
``snresnet``). Their kind is recognised by which kind's networks the files fit, name for name
and shape for shape (built on the ``meta`` device: no memory), and their sizes (channels,
image side, widths, classes, latent) from the shapes. GMI and KEDMI share one generator, so
a generator file alone of either needs ``kind=``. Every file is read with
``weights_only=True`` and loaded strictly: a mismatch is one line naming the missing,
unexpected and misshapen keys, in the names the file uses.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from fisher_mi.attacks.priors.base import (
    ARCHITECTURE_FIELDS,
    GAN,
    PRIORS,
    GANArchitecture,
    PriorKind,
    gan_meta,
)
from fisher_mi.attacks.priors.snresnet import (
    from_old_spectral_norm,
    to_old_spectral_norm,
    uses_old_spectral_norm,
)
from fisher_mi.errors import ArchitectureMismatchError, CheckpointError, ConfigError
from fisher_mi.io import load_checkpoint, save_checkpoint

# The classifier reader's helpers: GAN and classifier files are read, and their mismatches
# described, in the same words.
from fisher_mi.models.checkpoint import (
    describe_difference,
    find_state_dict,
    is_own_format,
    is_state_dict,
    key_difference,
    plain_values,
    shown,
    strip_prefixes,
)
from fisher_mi.rundir import check_listed

GAN_FORMAT = "fisher_mi-gan/1"
FILE_NAMES = {"generator": "generator.pt", "discriminator": "discriminator.pt"}
REQUIRED_FIELDS = ("kind", "role", "state_dict", "meta")
RESAVE = "re-save it with fisher_mi.attacks.save_gan"
RESERVED_META = (*ARCHITECTURE_FIELDS, "preset_note")


def save_gan(
    gan: GAN, folder: str | os.PathLike[str], *, meta: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Write the GAN's networks into ``folder`` as ``generator.pt`` and ``discriminator.pt``.

    Each file is written atomically and is self-contained: both carry the kind and the same
    meta (``gan.meta``, then ``meta``'s entries, then the architecture), so either one
    rebuilds its network. A GAN without a discriminator writes the generator only.

    Args:
        gan: the GAN prior.
        folder: the folder to write (created if needed).
        meta: plain values to record besides ``gan.meta``; they may not contradict the
            architecture.

    Returns:
        ``{"generator": path, "discriminator": path}`` (the roles written).
    """
    record = plain_values(_merged_meta(gan, meta or {}))
    networks = {"generator": gan.generator, "discriminator": gan.discriminator}
    return {
        role: save_checkpoint(
            Path(folder) / FILE_NAMES[role],
            {
                "format": GAN_FORMAT,
                "kind": gan.kind,
                "role": role,
                "state_dict": {key: v.detach().cpu() for key, v in network.state_dict().items()},
                "meta": record,
            },
        )
        for role, network in networks.items()
        if network is not None
    }


def _merged_meta(gan: GAN, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``gan.meta`` updated by ``meta``, refusing entries that would misdescribe the networks."""
    fixed = gan_meta(PRIORS.get(gan.kind), gan.architecture)
    for key in RESERVED_META:
        if key in meta and meta[key] != fixed[key]:
            raise ConfigError(
                f"meta sets {key}={shown(meta[key])}, but the GAN's networks have "
                f"{key}={shown(fixed[key])}; drop {key} from meta"
            )
    return {**gan.meta, **meta, **fixed}


@dataclass(frozen=True)
class NetworkFile:
    """One network's file as read, before anything is built.

    Attributes:
        path: where it was read from.
        role: ``generator`` or ``discriminator`` (the argument it was given as).
        kind: the kind our format names; None for a published file.
        meta: our format's meta; None for a published file.
        state: the state dict in the file's own names (``module.`` prefixes dropped).
    """

    path: Path
    role: str
    kind: str | None
    meta: Mapping[str, Any] | None
    state: Mapping[str, Tensor]

    @property
    def loadable(self) -> dict[str, Tensor]:
        """The state dict in our networks' names (old spectral-norm names renamed)."""
        return from_old_spectral_norm(self.state)


def read_network_file(path: str | os.PathLike[str], role: str) -> NetworkFile:
    """Read one GAN network file (ours or a published one); refuse a classifier's.

    A file of a run folder with a manifest is read only when the manifest vouches for it
    (``check_listed``).
    """
    source = Path(path)
    payload = load_checkpoint(check_listed(source))
    if is_own_format(payload):
        return _read_own(source, role, payload)
    state = strip_prefixes(find_state_dict(source, payload))
    return NetworkFile(source, role, None, None, state)


def _read_own(source: Path, role: str, payload: Mapping[str, Any]) -> NetworkFile:
    """A file in our GAN format, its structure checked; another fisher_mi format refused."""
    found = payload.get("format")
    if found != GAN_FORMAT:
        if str(found).startswith("fisher_mi-gan"):
            raise CheckpointError(
                f"checkpoint {source} has GAN format {shown(found)}, which this fisher_mi "
                f"does not read (it reads {GAN_FORMAT}); use the fisher_mi version that wrote it"
            )
        raise CheckpointError(
            f"checkpoint {source} is a fisher_mi classifier checkpoint (format "
            f"{shown(found)}), not a GAN; load it with fisher_mi.load_model"
        )
    problem = _own_problem(payload, role)
    if problem:
        raise CheckpointError(f"checkpoint {source} {problem}")
    return NetworkFile(source, role, payload["kind"], payload["meta"], payload["state_dict"])


def _own_problem(payload: Mapping[str, Any], role: str) -> str | None:
    """The first structural defect of one of our GAN files, completing "checkpoint X ..."."""
    missing = [key for key in REQUIRED_FIELDS if key not in payload]
    if missing:
        return f"lacks {', '.join(missing)}; {RESAVE}"
    if payload["role"] != role:
        return (
            f"holds a GAN's {shown(payload['role'])}, but was given as its {role}; pass "
            "generator.pt as generator_path and discriminator.pt as discriminator_path "
            "(or the folder)"
        )
    if payload["kind"] not in PRIORS:
        return (
            f"names GAN prior kind {shown(payload['kind'])}, which this fisher_mi does not "
            f"know (known: {', '.join(PRIORS.names())})"
        )
    if not is_state_dict(payload["state_dict"]):
        return f"has a malformed state_dict (expected a dict of tensors by name); {RESAVE}"
    if not isinstance(payload["meta"], Mapping):
        return f"has a malformed meta ({shown(payload['meta'])}); {RESAVE}"
    return None


def load_gan(
    generator_path: str | os.PathLike[str],
    discriminator_path: str | os.PathLike[str] | None = None,
    *,
    kind: str | None = None,
) -> GAN:
    """Load a GAN prior, both networks in eval mode.

    Args:
        generator_path: a generator file (ours or a published one), or a folder holding our
            ``generator.pt`` and ``discriminator.pt`` (both are loaded).
        discriminator_path: the discriminator file, when ``generator_path`` is a file.
        kind: the prior kind; by default the one our files name, else the one the files'
            keys and shapes fit (a gmi or kedmi generator alone needs it).

    Returns:
        The GAN (``discriminator`` None when only a generator file is given).

    Raises:
        CheckpointError: a missing, unsafe or malformed file, a classifier's file, files of
            different GANs, or a kind that cannot be told.
        ArchitectureMismatchError: a file that does not fit its kind's network strictly.
    """
    paths = _paths(generator_path, discriminator_path)
    files = {role: read_network_file(path, role) for role, path in paths.items()}
    entry = _kind(files, kind)
    architecture = _architecture(entry, files)
    for file in files.values():  # every file checked before anything is built
        _require_fit(entry, architecture, file)
    networks = {role: _load_network(entry, architecture, file) for role, file in files.items()}
    own = next((file.meta for file in files.values() if file.meta is not None), None)
    foreign = {"foreign_files": {role: str(file.path) for role, file in files.items()}}
    return GAN(
        entry.name,
        networks["generator"],
        networks.get("discriminator"),
        architecture,
        gan_meta(entry, architecture, foreign if own is None else own),
    )


def _paths(
    generator_path: str | os.PathLike[str], discriminator_path: str | os.PathLike[str] | None
) -> dict[str, Path]:
    """Role -> file: the two files of a folder, or the files given."""
    first = Path(generator_path)
    if not first.is_dir():
        paths = {"generator": first}
        if discriminator_path is not None:
            paths["discriminator"] = Path(discriminator_path)
        return paths
    if discriminator_path is not None:
        raise ConfigError(
            f"{first} is a folder, whose generator.pt and discriminator.pt are both read; "
            "pass discriminator_path only with a generator file"
        )
    paths = {role: first / name for role, name in FILE_NAMES.items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise CheckpointError(
            f"GAN folder {first} lacks {', '.join(missing)}; give a folder written by "
            "save_gan (fisher-mi train-gan) or the files themselves"
        )
    return paths


def _kind(files: Mapping[str, NetworkFile], kind: str | None) -> type[PriorKind]:
    """The prior kind: ``kind``, else the one our files name, else the one the files fit."""
    named = {file.kind: file.path for file in files.values() if file.kind is not None}
    if kind is not None:
        entry = PRIORS.get(kind)
        for other, path in named.items():
            if other != entry.name:
                raise ConfigError(
                    f"{path} holds a {other} GAN, not {entry.name}; pass kind={other!r} "
                    "or drop kind"
                )
        return entry
    if len(named) > 1:
        shown = " and ".join(f"{path} a {other} one" for other, path in named.items())
        raise CheckpointError(f"the files are of different GANs ({shown}); pass one GAN's files")
    if named:
        return PRIORS.get(next(iter(named)))
    return _recognise(files)


def _architecture(entry: type[PriorKind], files: Mapping[str, NetworkFile]) -> GANArchitecture:
    """The architecture our files' meta records, else the one the shapes imply."""
    recorded = [(file.path, file.meta) for file in files.values() if file.meta is not None]
    if not recorded:
        return _recognised_architecture(entry, files)
    first, *others = [_from_meta(entry, path, meta) for path, meta in recorded]
    if any(other != first for other in others):
        raise CheckpointError(
            f"{' and '.join(str(path) for path, _ in recorded)} record different "
            "architectures, so they are of different GANs; pass one GAN's files"
        )
    return first


def _from_meta(entry: type[PriorKind], path: Path, meta: Mapping[str, Any]) -> GANArchitecture:
    """The architecture in one of our files' meta, each field checked."""
    missing = [name for name in ARCHITECTURE_FIELDS if name not in meta]
    if missing:
        raise CheckpointError(f"checkpoint {path} has meta without {', '.join(missing)}; {RESAVE}")
    architecture = GANArchitecture(**{name: meta[name] for name in ARCHITECTURE_FIELDS})
    problem = entry.problem(architecture)
    if problem is None and not isinstance(architecture.preset, str):
        problem = f"preset is {shown(architecture.preset)}, not a name"
    if problem:
        raise CheckpointError(f"checkpoint {path} has a meta that builds no network: {problem}")
    return architecture


class SizeConflict(CheckpointError):
    """The generator's and discriminator's files imply different sizes."""


def _recognised_architecture(
    entry: type[PriorKind], files: Mapping[str, NetworkFile]
) -> GANArchitecture:
    """The architecture that ``entry``'s networks need to take these files' shapes.

    A size that no file fixes (its key is absent) takes the reference's value, so that the
    strict check then names the absent key instead of failing on the size.
    """
    sizes: dict[str, int] = {}
    origins: dict[str, Path] = {}
    for role, file in files.items():
        for name, value in entry.network(role).sizes(file.loadable).items():
            if sizes.setdefault(name, value) != value:
                raise SizeConflict(
                    f"{origins[name]} implies {name}={sizes[name]} but {file.path} "
                    f"{name}={value}, so they are of different GANs; pass one GAN's files"
                )
            origins.setdefault(name, file.path)
    reference = entry.presets["reference"]
    has_head = entry.conditional or (entry.class_head and "discriminator" in files)
    has_discriminator = "discriminator" in files
    generator_width = sizes.get("generator_width", reference.generator_width)
    discriminator_width = (
        sizes.get("discriminator_width", reference.discriminator_width)
        if has_discriminator
        else None
    )
    return GANArchitecture(
        channels=sizes.get("channels", 3),
        image_size=sizes.get("image_size", 64),
        latent_dim=sizes.get("latent_dim", entry.latent_dim),
        generator_width=generator_width,
        discriminator_width=discriminator_width,
        num_classes=sizes.get("num_classes", 1) if has_head else None,
        preset=entry.preset_of(generator_width, discriminator_width),
    )


@functools.lru_cache(maxsize=32)
def _network_shapes(
    kind: str, role: str, architecture: GANArchitecture
) -> Mapping[str, torch.Size]:
    """Names and shapes of a kind's network, built on the meta device (no memory).

    Memoised (a pure function of its arguments): applying spectral norm runs 15 power
    iterations, which on the meta device take about a second for PLG-MI's discriminator
    (every operation dispatched in Python), and a load asks for the same network twice
    (recognising the kind, then the strict check).
    """
    with torch.device("meta"):
        network = PRIORS.get(kind).network(role).build(architecture)
    return MappingProxyType({key: value.shape for key, value in network.state_dict().items()})


def _difference_for(
    entry: type[PriorKind], architecture: GANArchitecture, file: NetworkFile
) -> dict[str, list[str]]:
    """Missing, unexpected and misshapen keys of ``file`` against ``entry``'s network of
    ``architecture``, in the names the file uses (old spectral-norm names if it has them);
    an architecture that builds no network is one "impossible size"."""
    problem = entry.problem(architecture)
    if problem is not None:
        return {"impossible size": [problem]}
    shapes = _network_shapes(entry.name, file.role, architecture)
    expected = to_old_spectral_norm(shapes) if uses_old_spectral_norm(file.state) else shapes
    return key_difference(expected, file.state)


def _describe_architecture(architecture: GANArchitecture) -> str:
    """The architecture in a few words for messages: ``1x32x32, latent 100, widths 64/64``."""
    channels, height, width = architecture.image_shape
    widths = [f"generator width {architecture.generator_width}"]
    if architecture.discriminator_width is not None:
        widths.append(f"discriminator width {architecture.discriminator_width}")
    if architecture.num_classes is not None:
        widths.append(f"{architecture.num_classes} classes")
    return f"{channels}x{height}x{width}, latent {architecture.latent_dim}, {', '.join(widths)}"


def _require_fit(entry: type[PriorKind], architecture: GANArchitecture, file: NetworkFile) -> None:
    """Refuse ``file`` unless it fits its network name for name and shape for shape."""
    difference = _difference_for(entry, architecture, file)
    if any(difference.values()):
        raise ArchitectureMismatchError(
            f"checkpoint {file.path} does not fit the {entry.name} {file.role} "
            f"({entry.network(file.role).name}, {_describe_architecture(architecture)}): "
            f"{describe_difference(difference)}; pass the {file.role} file of a {entry.name} "
            f"GAN, or the right kind (known: {', '.join(PRIORS.names())})"
        )


def _load_network(
    entry: type[PriorKind], architecture: GANArchitecture, file: NetworkFile
) -> nn.Module:
    """Build ``file.role``'s network (the file fits it) and load the file strictly, in eval."""
    network = entry.network(file.role).build(architecture)
    network.load_state_dict(file.loadable, strict=True)
    return network.eval()


@dataclass(frozen=True)
class Fit:
    """How the files fit one prior kind.

    Attributes:
        entry: the kind.
        mismatches: missing, unexpected and misshapen keys in all (0: it fits).
        description: the mismatches in words.
        recognisable: whether some file holds keys of the kind's network at all.
    """

    entry: type[PriorKind]
    mismatches: int
    description: str
    recognisable: bool


def _fit(entry: type[PriorKind], files: Mapping[str, NetworkFile]) -> Fit:
    """Fit of the files to ``entry``'s networks, sized from the files' shapes.

    A file from which ``entry``'s network reads no size at all holds none of its keys: it
    counts as not fitting at all, without building the network.
    """
    try:
        architecture = _recognised_architecture(entry, files)
    except SizeConflict as err:
        return Fit(entry, sum(len(file.state) for file in files.values()), str(err), True)
    count, parts, recognisable = 0, [], False
    for role, file in files.items():
        network = entry.network(role)
        if not network.sizes(file.loadable):
            count += len(file.state)
            parts.append(f"{role}: none of the keys of {network.name}")
            continue
        recognisable = True
        difference = _difference_for(entry, architecture, file)
        count += sum(map(len, difference.values()))
        if any(difference.values()):
            parts.append(f"{role}: {describe_difference(difference)}")
    return Fit(entry, count, "; ".join(parts), recognisable)


def _recognise(files: Mapping[str, NetworkFile]) -> type[PriorKind]:
    """The one kind whose networks the (published) files fit exactly."""
    fits = sorted((_fit(entry, files) for _, entry in PRIORS.items()), key=lambda f: f.mismatches)
    exact = [fit.entry.name for fit in fits if fit.mismatches == 0]
    given = " and ".join(str(file.path) for file in files.values())
    given += " fit" if len(files) > 1 else " fits"
    if len(exact) == 1:
        return PRIORS.get(exact[0])
    if exact:
        raise CheckpointError(
            f"{given} the generator of {', '.join(exact)} (they share one generator), so the "
            f"kind cannot be told from a generator alone; pass kind= one of "
            f"{', '.join(exact)}, or the discriminator file too"
        )
    known = ", ".join(PRIORS.names())
    recognisable = [fit for fit in fits if fit.recognisable]
    if not recognisable:
        raise ArchitectureMismatchError(
            f"{given} no GAN prior: none of its keys belong to the networks of {known}; "
            "a classifier loads with fisher_mi.load_model"
        )
    closest = recognisable[0]
    raise ArchitectureMismatchError(
        f"{given} no GAN prior kind; closest is {closest.entry.name} "
        f"({closest.description}); pass the GAN's files, or kind= (known: {known})"
    )
