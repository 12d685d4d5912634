"""``fisher-mi attack``: reconstruct private identities from a target with a GAN prior.

Writes ``images/<identity>/<draw>.png``, ``inversions.pt``, ``attack.csv``, ``grid.png``,
``metrics.json`` (with ``--evaluator``) and the per-batch checkpoints ``batches/`` into
``--out``; ``--resume`` continues an interrupted run to the same images.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torch.utils.data import Dataset

from fisher_mi.attacks import GAN, load_gan
from fisher_mi.attacks.folder import (
    Scoring,
    prior_only_of,
    public_feature_mean,
    scores,
    write_attack,
)
from fisher_mi.attacks.inversion import ATTACKS, LOMMA, AttackSettings, InversionAttack
from fisher_mi.attacks.runner import run_attack
from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.common import load_for, say
from fisher_mi.cli.options import (
    Option,
    add_data_option,
    add_group,
    add_out_option,
    flag_of,
    non_negative_int,
    positive_int,
    real_number,
    seed_value,
)
from fisher_mi.data.overlap import check_disjoint
from fisher_mi.distributed import init_from_environment, is_main_process
from fisher_mi.errors import ConfigError
from fisher_mi.models import load_model
from fisher_mi.rundir import check_listed, sha256

# AttackSettings fields as flags (DESIGN.md's names); None keeps the method's default.
ATTACK_OPTIONS = (
    Option(
        "iterations",
        "--iters",
        {
            "type": non_negative_int,
            "default": None,
            "help": "optimiser steps (default: the method's)",
        },
    ),
    Option(
        "per_identity",
        "--per-id",
        {"type": positive_int, "default": 5, "help": "reconstructions per identity"},
    ),
    Option(
        "batch_size",
        "--batch-size",
        {"type": positive_int, "default": 64, "help": "latents optimised at once"},
    ),
    Option("seed", "--seed", {"type": seed_value, "default": 0, "help": "every random draw"}),
    Option("lr", "--lr", {"type": real_number, "default": None, "help": "latent learning rate"}),
    Option(
        "identity_weight",
        flag_of("identity_weight"),
        {"type": real_number, "default": None, "help": "lambda of the identity loss"},
    ),
    Option(
        "logit_loss",
        "--logit-loss",
        {"action": "store_true", "default": None, "help": "LOMMA's -logit[y] identity loss"},
    ),
    Option(
        "feature_reg",
        "--feature-reg",
        {"type": real_number, "default": None, "help": "LOMMA's feature regulariser weight"},
    ),
    Option(
        "clip_latent",
        "--clip-latent",
        {"action": argparse.BooleanOptionalAction, "default": None, "help": "clamp z to [-1, 1]"},
    ),
    Option(
        "sample_head",
        "--sample-head",
        {
            "action": "store_true",
            "default": None,
            "help": "query a MID target's VIB head by sampling, as the literature attacks MID "
            "(default: its mean mu, the adaptive attacker)",
        },
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Target, prior, method and its options, data for checks and scoring, outputs."""
    parser.add_argument("--target", type=Path, required=True, help="the attacked model.pt")
    parser.add_argument("--gan", type=Path, required=True, help="train-gan folder or G file")
    parser.add_argument("--discriminator", type=Path, default=None, help="D file beside --gan")
    parser.add_argument("--kind", default=None, help="prior kind of a generator file alone")
    parser.add_argument("--method", default="gmi", choices=ATTACKS.names())
    parser.add_argument("--lomma", action="store_true", help="logit loss + feature reg 1")
    parser.add_argument(
        "--surrogate",
        type=Path,
        action="append",
        default=[],
        help="a classifier distilled from the target (repeatable)",
    )
    parser.add_argument("--ids", default="all", help="identities: all, A-B or a,b,c")
    add_group(parser, ATTACK_OPTIONS)
    add_data_option(
        parser,
        required=False,
        help="the target's data (overlap check, LOMMA's public mean, grids, scores)",
    )
    parser.add_argument(
        "--public",
        default=None,
        metavar="SPEC",
        help="the attacker's public data (default: the public split of --data)",
    )
    parser.add_argument("--evaluator", type=Path, default=None, help="evaluation classifier")
    parser.add_argument(
        "--no-private-images",
        action="store_true",
        help="keep real private images out of grid.png (they are personal data)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    add_out_option(parser, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")


def parse_ids(text: str, classes: int) -> list[int]:
    """``all``, ``A-B`` (inclusive) or ``a,b,c`` as identity indices."""
    text = text.strip()
    if text == "all":
        return list(range(classes))
    try:
        if "-" in text and "," not in text:
            low, high = (int(part) for part in text.split("-", 1))
            return list(range(low, high + 1))
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--ids {text!r} is not all, A-B or a,b,c (whole numbers)") from None


def _load_prior(args: argparse.Namespace) -> GAN:
    files = (
        [args.gan / "generator.pt", args.gan / "discriminator.pt"]
        if args.gan.is_dir()
        else [args.gan, *([args.discriminator] if args.discriminator else [])]
    )
    for path in files:
        check_listed(path)
    return load_gan(args.gan, args.discriminator, kind=args.kind)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    given = {o.dest: getattr(args, o.dest) for o in ATTACK_OPTIONS}
    chosen = {**(LOMMA if args.lomma else {}), **{k: v for k, v in given.items() if v is not None}}
    known = set(AttackSettings.__dataclass_fields__)
    return {key: value for key, value in chosen.items() if key in known}


def _public(args: argparse.Namespace, target: nn.Module) -> Dataset | None:
    """The attacker's public data at the target's input shape, checked against the private."""
    if args.data is None:
        return None
    public = load_for(target, args.public or args.data, "public")
    check_disjoint(
        load_for(target, args.data, "private"),
        public,
        what=f"{args.data} private and {args.public or args.data} public",
    )
    return public


def _public_mean(
    target: nn.Module, public: Dataset | None, settings: dict[str, Any]
) -> Tensor | None:
    """LOMMA's public feature mean, when the feature regulariser is on."""
    return public_feature_mean(target, public) if settings.get("feature_reg") else None


def _private_examples(args: argparse.Namespace, target: nn.Module) -> dict[int, Tensor] | None:
    """One real private image per identity for the grid, unless kept out."""
    if args.no_private_images or args.data is None:
        return None
    private = load_for(target, args.data, "private")
    first = {int(y): i for i, y in reversed(list(enumerate(private.labels.tolist())))}
    return {identity: private[index][0] for identity, index in first.items()}


def _attack(args: argparse.Namespace, device: str | None) -> InversionAttack:
    target = load_model(check_listed(args.target)).to(device or "cpu")
    gan = _load_prior(args)
    gan.generator.to(device or "cpu")
    if gan.discriminator is not None:
        gan.discriminator.to(device or "cpu")
    surrogates = [load_model(check_listed(p)).to(device or "cpu") for p in args.surrogate]
    settings = _settings(args)
    public = _public(args, target)
    return ATTACKS.get(args.method)(
        target,
        gan,
        surrogates=surrogates,
        public_mean=_public_mean(target, public, settings),
        **settings,
    )


def run(args: argparse.Namespace) -> list[Path]:
    """Attack, then write the images, tensors, table, grid and metrics."""
    if args.evaluator is not None and args.data is None:
        raise ConfigError("--evaluator scores against the private data: give --data too")
    device = init_from_environment(args.device)
    attack = _attack(args, device)
    ids = parse_ids(args.ids, attack.classes)
    inversion, protocol = run_attack(attack, ids, out=args.out, resume=args.resume, progress=True)
    if not is_main_process():
        return []
    protocol = {**protocol, **_sources(args)}
    prior_only = prior_only_of(attack, ids)
    written = write_attack(
        args.out,
        attack.target,
        inversion,
        prior_only,
        protocol,
        scoring=_scoring(args, attack.target),
        private_examples=_private_examples(args, attack.target),
    )
    say(
        f"{len(inversion.images)} reconstructions of {len(ids)} identities; mean target "
        f"confidence {inversion.target_confidence.mean():.3f} (prior alone "
        f"{prior_only.target_confidence.mean():.3f}); wrote {args.out}"
    )
    return written + sorted((args.out / "batches").glob("*.pt"))


def _sources(args: argparse.Namespace) -> dict[str, Any]:
    """The files the images came from, by path and sha256 (the protocol names them)."""
    gan_files = [args.gan] if not args.gan.is_dir() else [args.gan / "generator.pt"]
    return {
        "target": {"path": str(args.target), "sha256": sha256(args.target)},
        "gan": {"path": str(args.gan), "sha256": sha256(gan_files[0])},
        "surrogates": [{"path": str(p), "sha256": sha256(p)} for p in args.surrogate],
        "data": args.data,
        "public": args.public or args.data,
    }


def _scoring(args: argparse.Namespace, target: nn.Module) -> Scoring | None:
    """The evaluator and data of ``--evaluator`` and ``--data`` (None without an evaluator)."""
    if args.evaluator is None:
        return None
    evaluator = load_model(check_listed(args.evaluator)).to(args.device or "cpu")
    return Scoring(
        evaluator,
        load_for(evaluator, args.data, "private"),
        load_for(target, args.data, "private-test"),
    )


def scores_of(
    args: argparse.Namespace,
    target: nn.Module,
    inversion: dict[str, Tensor],
    prior_only: dict[str, Tensor],
    protocol: dict[str, Any],
) -> tuple[dict[str, Tensor | None] | None, dict[str, Any]]:
    """``folder.scores`` with the evaluator and data of the command line."""
    return scores(target, inversion, prior_only, protocol, _scoring(args, target))


register_command(
    Command(
        name="attack",
        help="reconstruct private identities from a target with a GAN prior",
        add_arguments=add_arguments,
        run=run,
    )
)
