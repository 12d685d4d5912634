"""``fisher-mi demo``: train a small target on bundled data, save it, and profile it."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.common import history_text, load_for, profile_sources, write_run
from fisher_mi.cli.options import (
    FISHER_OPTIONS,
    RUN_OPTIONS,
    add_arch_option,
    add_group,
    add_out_option,
    positive_int,
    values,
)
from fisher_mi.data import DATASETS, load_dataset
from fisher_mi.distributed import init_from_environment
from fisher_mi.errors import ConfigError
from fisher_mi.evaluate import accuracy
from fisher_mi.models import build_model, load_model, save_model
from fisher_mi.training import TrainConfig, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bundled data, the architecture, the epochs, and the shared Fisher and run options."""
    bundled = [name for name, entry in DATASETS.items() if not entry.needs_root]
    parser.add_argument(
        "--data", default="mnist", help=f"bundled dataset (known: {', '.join(bundled)})"
    )
    add_arch_option(parser, help="architecture", default="mcnn")
    parser.add_argument("--epochs", type=positive_int, default=4)
    add_out_option(parser, default=Path("runs/demo"), help="folder for model.pt and fisher.*")
    add_group(parser, FISHER_OPTIONS)
    add_group(parser, RUN_OPTIONS)


def _check_bundled(spec: str) -> None:
    """The demo runs offline on the data that ship with the package."""
    name, _, root = spec.partition(":")
    bundled = [key for key, entry in DATASETS.items() if not entry.needs_root]
    if root or name not in bundled:
        raise ConfigError(
            f"the demo runs on bundled data ({', '.join(bundled)}), not {spec!r}; for your own "
            "data use `fisher-mi train` and `fisher-mi profile`"
        )


def run(args: argparse.Namespace) -> list[Path]:
    """Train on the private digits, save ``model.pt``, profile private against public."""
    _check_bundled(args.data)
    device = init_from_environment(args.device)
    classes = load_dataset(args.data, "private").num_classes
    torch.manual_seed(args.seed)
    model = build_model(args.arch, num_classes=classes)
    private, test = (load_for(model, args.data, split) for split in ("private", "private-test"))
    print(
        f"training {args.arch} on {args.data} private "
        f"({len(private)} images, {private.num_classes} classes)"
    )
    config = TrainConfig(
        epochs=args.epochs,
        optimizer="adam",
        lr=1e-3,
        schedule="none",
        seed=args.seed,
        device=device,
        validation_fraction=0.0,
        num_workers=args.num_workers,
    )
    history = train(model, private, config=config, test=test, progress=True).history
    test_accuracy = accuracy(model, test, device=device)
    print(history_text(history))
    model_path = args.out / "model.pt"
    meta = {"data": args.data, "epochs": args.epochs, "seed": args.seed}
    save_model(model, model_path, meta={**meta, "private_test_accuracy": test_accuracy})
    print(f"saved {model_path}; private-test accuracy {test_accuracy:.3f}")
    options = {**values(args, FISHER_OPTIONS), **values(args, RUN_OPTIONS), "device": device}
    saved = load_model(model_path)
    profiled = profile_sources(saved, {"private": args.data, "public": args.data}, options)
    record = {"command": "demo", "model": str(model_path), "data": args.data}
    return [model_path, *write_run(profiled, args.out, record)]


register_command(
    Command(
        name="demo",
        help="train a small target on bundled data and profile it",
        add_arguments=add_arguments,
        run=run,
    )
)
