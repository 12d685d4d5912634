"""The option groups: every library option has its flag, and commands share them."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import fields

from fisher_mi.cli import build_parser
from fisher_mi.cli.options import (
    FISHER_OPTIONS,
    NOT_FISHER_OPTIONS,
    RUN_OPTIONS,
    TRAIN_OPTIONS,
    train_config,
)
from fisher_mi.fisher import profile
from fisher_mi.training import TrainConfig


def _subparser(name: str) -> argparse.ArgumentParser:
    actions = build_parser()._actions
    return next(a for a in actions if a.dest == "command").choices[name]


def _dests(name: str) -> set[str]:
    return {action.dest for action in _subparser(name)._actions}


def test_every_profile_keyword_is_a_fisher_or_run_option() -> None:
    keywords = {
        name
        for name, p in inspect.signature(profile).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    grouped = {o.dest for o in FISHER_OPTIONS} | set(NOT_FISHER_OPTIONS)
    assert keywords == grouped


def test_every_train_config_field_has_a_flag() -> None:
    flagged = {o.dest for o in (*TRAIN_OPTIONS, *RUN_OPTIONS)}
    assert {f.name for f in fields(TrainConfig)} == flagged
    assert {f.name for f in fields(TrainConfig)} <= _dests("train")


def test_commands_that_profile_take_the_same_fisher_options() -> None:
    fisher = {o.dest for o in FISHER_OPTIONS}
    assert fisher <= _dests("profile")
    # train --rule profiles at the training batch size and plans every layer
    assert fisher - {"batch_size", "trainable_only"} <= _dests("train")


def test_train_config_is_built_from_the_flags_by_field_name() -> None:
    args = build_parser().parse_args(
        [
            "train",
            "--data",
            "digits",
            "--arch",
            "mcnn",
            "--out",
            "x",
            "--epochs",
            "3",
            "--weight-decay",
            "0.5",
            "--workers",
            "2",
            "--seed",
            "7",
            "--amp",
            "--device",
            "cuda",
        ]
    )
    config = train_config(args)
    assert (config.epochs, config.weight_decay, config.num_workers, config.seed) == (3, 0.5, 2, 7)
    assert config.amp and config.device == "cuda"
    assert train_config(args, epochs=1).epochs == 1


def test_defaults_come_from_the_library() -> None:
    args = build_parser().parse_args(["profile", "m.pt", "--data", "digits"])
    signature = inspect.signature(profile).parameters
    for option in FISHER_OPTIONS:
        assert getattr(args, option.dest) == signature[option.dest].default, option.dest
