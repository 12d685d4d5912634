"""``fisher-mi train-gan``: train a GAN prior (gmi, kedmi, plgmi) on public data.

Writes ``generator.pt``, ``discriminator.pt``, ``checkpoint.pt``, ``history.csv`` and
``samples/step_<n>.png`` into ``--out`` (``manifest.json`` last, by ``execute``); ``--resume``
continues an interrupted run to the same weights. With ``--target`` the data are loaded at
the target's input shape (kedmi and plgmi need it: one prior per target); without, at the
dataset's own shape (1 x 32 x 32 for the bundled digits).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from fisher_mi.attacks.gan_training import TRAINERS, GANTrainConfig, train_gan_run
from fisher_mi.attacks.priors import PRESETS, PRIORS
from fisher_mi.attacks.priors.base import IMAGE_SIZES
from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.common import history_text, load_for, say
from fisher_mi.cli.options import (
    RUN_OPTIONS,
    add_data_option,
    add_group,
    add_out_option,
    positive_int,
    real_number,
)
from fisher_mi.data import load_dataset
from fisher_mi.data.images import CHANNEL_MODES
from fisher_mi.errors import ConfigError
from fisher_mi.models import load_model
from fisher_mi.rundir import check_listed, sha256

DEFAULTS = {f.name: f.default for f in fields(GANTrainConfig)}
DESCRIPTION = (
    "Train a GAN prior on public data: gmi (WGAN-GP, shared by every target), kedmi or plgmi "
    "(against --target: one prior per target). Writes generator.pt, discriminator.pt, "
    "checkpoint.pt, history.csv and samples/step_<n>.png into --out; --resume continues."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, kind, target, length and sizes, run options, outputs."""
    add_data_option(parser, help="the public data spec")
    parser.add_argument("--split", default="public", help="the split to train on (public)")
    parser.add_argument("--kind", required=True, choices=PRIORS.names(), help="prior kind")
    parser.add_argument(
        "--target",
        type=Path,
        default=None,
        help="the attacked model.pt: kedmi and plgmi train against it; it sets the image shape",
    )
    parser.add_argument("--epochs", type=positive_int, default=None, help="passes over the data")
    parser.add_argument(
        "--steps", type=positive_int, default=None, help="generator steps (not with --epochs)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULTS["batch_size"],
        help=f"images per update (default: {DEFAULTS['batch_size']})",
    )
    parser.add_argument(
        "--preset",
        default=DEFAULTS["preset"],
        choices=list(PRESETS),
        help="network widths and default length (cpu: not the reference)",
    )
    parser.add_argument(
        "--top-n",
        type=positive_int,
        default=DEFAULTS["top_n"],
        help=f"plgmi: public images per class as pseudo-labels (default: {DEFAULTS['top_n']})",
    )
    parser.add_argument(
        "--inversion-weight",
        type=real_number,
        default=DEFAULTS["inversion_weight"],
        help=f"plgmi: weight of the max-margin loss (default: {DEFAULTS['inversion_weight']})",
    )
    add_group(parser, RUN_OPTIONS)
    add_out_option(parser, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")


def _config(args: argparse.Namespace) -> GANTrainConfig:
    """The options, checked (both --epochs and --steps, a kind without its --target)."""
    config = GANTrainConfig(
        kind=args.kind,
        preset=args.preset,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        num_workers=args.num_workers,
        top_n=args.top_n,
        inversion_weight=args.inversion_weight,
    )
    if TRAINERS.get(args.kind).needs_target and args.target is None:
        raise ConfigError(
            f"--kind {args.kind} trains against the target (one prior per target); pass "
            "--target model.pt"
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("train-gan runs in one process; run it without torchrun")
    return config


def _public(args: argparse.Namespace, target: nn.Module | None) -> Dataset:
    """The split at the target's input shape (refused if no prior can be built at it), or
    at the dataset's own shape."""
    if target is None:
        return load_dataset(args.data, args.split)
    shape = tuple(getattr(target, "input_shape", ()) or ())
    fits = len(shape) == 3 and shape[0] in CHANNEL_MODES and shape[1] == shape[2]
    if shape and not (fits and shape[1] in IMAGE_SIZES):
        sizes = " or ".join(str(size) for size in IMAGE_SIZES)
        channels = " or ".join(str(count) for count in CHANNEL_MODES)
        raise ConfigError(
            f"the target {args.target} takes {' x '.join(map(str, shape))} images, but the data "
            f"load as {channels} channels and GAN priors are {sizes} px squares; give a target "
            "of such an input shape"
        )
    return load_for(target, args.data, args.split)


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    meta: dict[str, Any] = {"data": args.data, "split": args.split}
    if args.target is not None:
        meta.update(target=str(args.target), target_sha256=sha256(args.target))
    return meta


def run(args: argparse.Namespace) -> list[Path]:
    """Train the prior; return the files written."""
    config = _config(args)
    target = load_model(check_listed(args.target)) if args.target is not None else None
    public = _public(args, target)
    say(f"training a {args.kind} prior ({args.preset} preset) on {args.data} {args.split}")
    result = train_gan_run(
        public,
        config=config,
        target=target,
        out=args.out,
        resume=args.resume,
        progress=True,
        meta=_meta(args),
    )
    say(history_text(result.history.tail(5)))
    meta = result.gan.meta
    say(
        f"{meta['steps']} generator steps in {meta['epochs']} epochs "
        f"({result.history['seconds'].sum():.1f} s); {meta['preset_note']}; wrote {args.out}"
    )
    return result.files


register_command(
    Command(
        name="train-gan",
        help="train a GAN prior (gmi, kedmi, plgmi) on public data",
        add_arguments=add_arguments,
        run=run,
        description=DESCRIPTION,
    )
)
