"""The freeze planner: every cutoff rule on synthetic Fisher tables with a known answer, the
edge cases (all layers equal, one layer, zero Fisher, a missing split), the guards, plans as
JSON, ``apply_plan`` on a real model (``requires_grad`` and frozen BatchNorm statistics), the
figure, and the ``fisher-mi plan`` subcommand.

Synthetic tables use the real column layout of ``fisher_mi.profile``; a rule's answer is
worked out by hand in each case's comment.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import fisher_mi
from fisher_mi.cli import main
from fisher_mi.errors import ConfigError, RegistryError
from fisher_mi.fisher.profile import COLUMNS
from fisher_mi.io import write_table
from fisher_mi.plan import (
    FreezePlan,
    PlanWarning,
    apply_plan,
    frozen_norm_modules,
    parse_params,
    plan_freeze,
)
from fisher_mi.report import plot_freeze_plan
from tests.error_cases import one_line

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_PARAMS = 100


def fisher_table(
    private: list[float] | None,
    public: list[float] | None = None,
    *,
    n_params: list[int] | None = None,
    kinds: list[str] | None = None,
    names: list[str] | None = None,
) -> pd.DataFrame:
    """A long Fisher table: ``fisher_trace`` per layer for each given split."""
    given = {split: v for split, v in (("private", private), ("public", public)) if v is not None}
    n = len(next(iter(given.values())))
    names = names or [f"l{i}" for i in range(n)]
    n_params = n_params or [N_PARAMS] * n
    kinds = kinds or ["Linear"] * n
    rows = [
        {
            "layer": names[depth],
            "depth": depth,
            "kind": kinds[depth],
            "n_params": n_params[depth],
            "split": split,
            "n_samples": 16,
            "fisher_trace": float(trace),
            "fisher_per_param": float(trace) / n_params[depth],
            "fisher": "empirical",
            "backend": "loop",
        }
        for split, traces in given.items()
        for depth, trace in enumerate(traces)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def norms(*values: float) -> dict[str, float]:
    return {f"l{i}": value for i, value in enumerate(values)}


# ---------------------------------------------------------------------------- known answers


@dataclass(frozen=True)
class Case:
    id: str
    rule: str
    private: list[float] | None
    cutoff: int
    public: list[float] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    kinds: list[str] | None = None


SKEWED = [1, 1, 1, 1, 6]  # total 10; suffix shares from depth 0: 1, .9, .8, .7, .6
RATIOS = [1, 1, 1, 4, 8]  # over public 1: scores r / max r = .125, .125, .125, .5, 1
RGN_TRACE = [4, 4, 16, 64]  # sqrt = 2, 2, 4, 8; over norms 4, 4, 2, 2: RGN .5, .5, 2, 4
RGN_NORMS = norms(4, 4, 2, 2)

KNOWN = [
    Case("fixed-depth", "fixed", [1] * 5, 2, params={"depth": 2}),
    Case("fixed-depth-0-trains-all", "fixed", [1] * 5, 0, params={"depth": 0}),
    Case("fixed-last-1", "fixed", [1] * 5, 4, params={"last": 1}),
    Case("fixed-last-all", "fixed", [1] * 5, 0, params={"last": 5}),
    Case("mass-p0.6-last-layer", "mass", SKEWED, 4, params={"p": 0.6}),
    Case("mass-p0.7-exact-share", "mass", SKEWED, 3, params={"p": 0.7}),
    Case("mass-p0.65-rounds-up", "mass", SKEWED, 3, params={"p": 0.65}),
    Case("mass-p1-skips-zero-prefix", "mass", [0, 0, 2, 2], 2, params={"p": 1.0}),
    Case("auto-is-mass-p0.9", "auto", SKEWED, 1),
    # last k layers' share minus k/8: .65-.125 at k=1 is the largest
    Case("knee-one-dominant-layer", "knee", [1] * 7 + [13], 7),
    # k=1: .5-.25, k=2: .9-.5 (largest), k=3: .95-.75
    Case("knee-two-heavy-layers", "knee", [1, 1, 8, 10], 2),
    Case("knee-mass-at-input-no-knee", "knee", [10, 1, 1, 1], 0),
    Case("ratio-default", "ratio", RATIOS, 3, public=[1] * 5),
    Case("ratio-threshold-0.9", "ratio", RATIOS, 4, public=[1] * 5, params={"threshold": 0.9}),
    Case("ratio-model-wide-factor-cancels", "ratio", [3, 3, 3, 24], 3, public=[1] * 4),
    Case("ratio-early-layer-specific", "ratio", [8, 1, 1, 1], 0, public=[1] * 4),
    # scores .125, .125, .5, 1
    Case("rgn-default", "rgn", RGN_TRACE, 2, params={"param_norms": RGN_NORMS}),
    Case(
        "rgn-threshold-0.75",
        "rgn",
        RGN_TRACE,
        3,
        params={"param_norms": RGN_NORMS, "threshold": 0.75},
    ),
    # the BatchNorm layer's RGN (sqrt(400)/1 = 20) is the largest but ignored by default
    Case(
        "rgn-skips-norm-layers",
        "rgn",
        [4, 400, 16, 64],
        2,
        params={"param_norms": norms(4, 1, 2, 2)},
        kinds=["Conv2d", "BatchNorm2d", "Conv2d", "Linear"],
    ),
    Case(
        "rgn-norm-layers-included",
        "rgn",
        [4, 400, 16, 64],
        1,
        params={"param_norms": norms(4, 1, 2, 2), "norm_layers": True},
        kinds=["Conv2d", "BatchNorm2d", "Conv2d", "Linear"],
    ),
]

EQUAL = [2.0] * 10
EDGES = [
    # all layers equal: 9 of 10 layers hold 90% of the mass; nothing else stands out
    Case("equal-mass", "mass", EQUAL, 1, public=EQUAL),
    Case("equal-knee", "knee", EQUAL, 0, public=EQUAL),
    Case("equal-ratio", "ratio", EQUAL, 0, public=EQUAL),
    Case("equal-rgn", "rgn", EQUAL, 0, public=EQUAL, params={"param_norms": norms(*[3] * 10)}),
    Case("equal-fixed", "fixed", EQUAL, 3, public=EQUAL, params={"depth": 3}),
    # one layer: it is always trained
    Case("one-layer-mass", "mass", [5.0], 0, public=[1.0]),
    Case("one-layer-knee", "knee", [5.0], 0, public=[1.0]),
    Case("one-layer-ratio", "ratio", [5.0], 0, public=[1.0]),
    Case("one-layer-rgn", "rgn", [5.0], 0, public=[1.0], params={"param_norms": norms(2)}),
    Case("one-layer-fixed", "fixed", [5.0], 0, public=[1.0], params={"last": 1}),
    # zero Fisher: only the hand-made rule applies; fixed needs no private split either
    Case("zero-fixed", "fixed", [0.0] * 4, 1, public=[0.0] * 4, params={"depth": 1}),
    Case("no-private-fixed", "fixed", None, 1, public=[1.0] * 4, params={"last": 3}),
]


CASES = {case.id: case for case in KNOWN + EDGES}


def plan_of(case: Case, **extra: Any) -> FreezePlan:
    table = fisher_table(case.private, case.public, kinds=case.kinds)
    return plan_freeze(table, rule=case.rule, **case.params, **extra)


@pytest.mark.parametrize("case", KNOWN + EDGES, ids=lambda case: case.id)
def test_rule_finds_the_known_cutoff(case: Case) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = plan_of(case)
    assert plan.cutoff == plan.rule_cutoff == case.cutoff
    assert not plan.override
    # a rule (not fixed) that freezes nothing of a model it could freeze a layer of warns
    defends_nothing = case.cutoff == 0 and case.rule != "fixed" and len(plan.layers) > 1
    warned = [w for w in caught if issubclass(w.category, PlanWarning)]
    assert len(warned) == int(defends_nothing)


@pytest.mark.parametrize(
    ("case", "scores"),
    [
        ("mass-p0.6-last-layer", [1.0, 0.9, 0.8, 0.7, 0.6]),
        ("knee-two-heavy-layers", [1 - 1, 0.95 - 0.75, 0.9 - 0.5, 0.5 - 0.25]),
        ("ratio-default", [0.125, 0.125, 0.125, 0.5, 1.0]),
        ("rgn-default", [0.125, 0.125, 0.5, 1.0]),
    ],
    ids=["mass", "knee", "ratio", "rgn"],
)
def test_rule_records_its_scores(case: str, scores: list[float]) -> None:
    plan = plan_of(CASES[case])
    assert list(plan.scores) == list(plan.layers)
    assert np.allclose(list(plan.scores.values()), scores)


def test_auto_is_mass_with_p_0_9() -> None:
    plan = plan_of(CASES["auto-is-mass-p0.9"])
    assert plan.rule == "mass" and plan.params == {"p": 0.9}


def test_fixed_records_no_scores() -> None:
    assert plan_of(CASES["fixed-depth"]).scores == {}


def test_plan_splits_layers_at_the_cutoff() -> None:
    plan = plan_of(CASES["fixed-depth"])
    assert plan.frozen == ("l0", "l1") and plan.trained == ("l2", "l3", "l4")


def test_plan_records_trainable_fractions() -> None:
    table = fisher_table([2, 2, 2, 2, 2], n_params=[10, 20, 30, 40, 100])
    plan = plan_freeze(table, rule="fixed", depth=3)
    assert plan.trainable_param_fraction == pytest.approx(140 / 200)
    assert plan.trainable_private_fisher_fraction == pytest.approx(0.4)


@pytest.mark.parametrize(
    "case", [CASES["zero-fixed"], CASES["no-private-fixed"]], ids=["zero-fisher", "no-private"]
)
def test_private_fraction_is_none_without_private_mass(case: Case) -> None:
    assert plan_of(case).trainable_private_fisher_fraction is None


def test_hand_override_keeps_the_rule_answer_and_scores() -> None:
    case = CASES["mass-p0.7-exact-share"]
    plan = plan_of(case, cutoff=1)
    assert (plan.cutoff, plan.rule_cutoff, plan.override) == (1, 3, True)
    assert plan.scores == plan_of(case).scores
    assert plan.frozen == ("l0",)


# ---------------------------------------------------------------------------- guards


def _table_without(column: str) -> pd.DataFrame:
    return fisher_table(SKEWED).drop(columns=column)


def _table_with(column: str, value: float) -> pd.DataFrame:
    table = fisher_table(SKEWED)
    table.loc[2, column] = value
    return table


def _table_with_gap() -> pd.DataFrame:
    table = fisher_table(SKEWED)
    return table[table["depth"] != 2]


def _splits_disagree() -> pd.DataFrame:
    table = fisher_table(SKEWED, SKEWED)
    table.loc[table.index[-1], "layer"] = "other"
    return table


def _duplicated_rows() -> pd.DataFrame:
    table = fisher_table(SKEWED)
    return pd.concat([table, table.iloc[:1]], ignore_index=True)


def _plan(rule: str, **params: Any) -> Callable[[pd.DataFrame], FreezePlan]:
    return lambda table: plan_freeze(table, rule=rule, **params)


ZERO = fisher_table([0.0] * 4, [0.0] * 4)
ONLY_PUBLIC = fisher_table(None, [1.0] * 4)
ONLY_PRIVATE = fisher_table([1.0] * 4)
GUARDS: list[tuple[str, Callable[[], pd.DataFrame], Callable, str]] = [
    ("missing-column", lambda: _table_without("fisher_trace"), _plan("mass"), "fisher_trace"),
    ("empty-table", lambda: fisher_table(SKEWED).iloc[:0], _plan("mass"), "no rows"),
    ("negative-fisher", lambda: _table_with("fisher_trace", -1.0), _plan("mass"), "non-negative"),
    ("nan-fisher", lambda: _table_with("fisher_per_param", np.nan), _plan("mass"), "'l2'"),
    ("zero-n-params", lambda: _table_with("n_params", 0), _plan("mass"), "n_params"),
    ("depth-gap", _table_with_gap, _plan("mass"), "--trainable-only"),
    ("splits-disagree", _splits_disagree, _plan("mass"), "different layers"),
    ("duplicated-rows", _duplicated_rows, _plan("mass"), "several rows"),
    ("zero-mass", lambda: ZERO, _plan("mass"), "zero in every layer"),
    ("zero-knee", lambda: ZERO, _plan("knee"), "zero in every layer"),
    ("zero-ratio", lambda: ZERO, _plan("ratio"), "zero in every layer"),
    ("zero-rgn", lambda: ZERO, _plan("rgn", param_norms=norms(1, 1, 1, 1)), "zero"),
    ("no-private-mass", lambda: ONLY_PUBLIC, _plan("mass"), "needs the 'private' split"),
    ("no-private-knee", lambda: ONLY_PUBLIC, _plan("knee"), "needs the 'private' split"),
    ("no-public-ratio", lambda: ONLY_PRIVATE, _plan("ratio"), "needs the 'public' split"),
    (
        "no-private-rgn",
        lambda: ONLY_PUBLIC,
        _plan("rgn", param_norms=norms(1, 1, 1, 1)),
        "needs the 'private' split",
    ),
    (
        "zero-public-layer",
        lambda: fisher_table([1, 1, 1], [1, 0, 1]),
        _plan("ratio"),
        "public Fisher information is zero in layers l1",
    ),
    ("p-above-1", lambda: ONLY_PRIVATE, _plan("mass", p=1.5), "p must be a number in (0, 1]"),
    ("p-not-a-number", lambda: ONLY_PRIVATE, _plan("mass", p="high"), "p must be a number"),
    ("threshold-zero", lambda: ONLY_PRIVATE, _plan("ratio", threshold=0), "threshold"),
    ("fixed-no-choice", lambda: ONLY_PRIVATE, _plan("fixed"), "exactly one of depth"),
    ("fixed-both", lambda: ONLY_PRIVATE, _plan("fixed", depth=1, last=1), "exactly one"),
    ("fixed-freezes-all", lambda: ONLY_PRIVATE, _plan("fixed", depth=4), "train at least one"),
    ("fixed-last-0", lambda: ONLY_PRIVATE, _plan("fixed", last=0), "last must be"),
    ("unknown-param", lambda: ONLY_PRIVATE, _plan("mass", q=1), "its parameters: p"),
    ("rgn-without-norms", lambda: ONLY_PRIVATE, _plan("rgn"), "pass the profiled model"),
    (
        "rgn-missing-norm",
        lambda: ONLY_PRIVATE,
        _plan("rgn", param_norms=norms(1, 1, 1)),
        "no parameter norm for layers l3",
    ),
    (
        "rgn-zero-norm",
        lambda: ONLY_PRIVATE,
        _plan("rgn", param_norms=norms(1, 0, 1, 1)),
        "parameter norm 0",
    ),
    ("override-freezes-all", lambda: ONLY_PRIVATE, _plan("mass", cutoff=4), "from 0 (train all)"),
    ("override-negative", lambda: ONLY_PRIVATE, _plan("mass", cutoff=-1), "got -1"),
    ("bad-bn-stats", lambda: ONLY_PRIVATE, _plan("mass", bn_stats="x"), "bn_stats"),
]


@pytest.mark.parametrize(
    ("make", "plan", "fragment"),
    [guard[1:] for guard in GUARDS],
    ids=[guard[0] for guard in GUARDS],
)
def test_guard_refuses_with_one_line(make: Callable, plan: Callable, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        plan(make())
    assert fragment in one_line(caught.value)


def test_unknown_rule_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError) as caught:
        plan_freeze(fisher_table(SKEWED), rule="nope")
    assert one_line(caught.value) == (
        "unknown cutoff rule 'nope'; known: auto, fixed, mass, knee, ratio, rgn"
    )


@pytest.mark.parametrize(
    ("pairs", "params"),
    [
        (["p=0.8"], {"p": 0.8}),
        (["last=2", "norm_layers=true"], {"last": 2, "norm_layers": True}),
        (["name=abc"], {"name": "abc"}),
    ],
    ids=["float", "int-and-bool", "text"],
)
def test_parse_params_reads_json_scalars(pairs: list[str], params: dict) -> None:
    assert parse_params(pairs) == params


@pytest.mark.parametrize("pairs", [["p"], ["=1"], ["p=1", "p=2"]], ids=["no-eq", "no-key", "twice"])
def test_parse_params_refuses_malformed_pairs(pairs: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_params(pairs)
    one_line(caught.value)


# ---------------------------------------------------------------------------- JSON


ROUND_TRIPS = {
    "mass": lambda: plan_of(CASES["mass-p0.6-last-layer"]),
    "rgn": lambda: plan_of(CASES["rgn-default"]),
    "override": lambda: plan_of(CASES["mass-p0.7-exact-share"], cutoff=1, bn_stats="update"),
    "zero-fisher-fixed": lambda: plan_of(CASES["zero-fixed"]),
}


@pytest.mark.parametrize("make", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_json_round_trip_gives_an_equal_plan(make: Callable[[], FreezePlan]) -> None:
    plan = make()
    assert FreezePlan.from_json(plan.to_json()) == plan


def test_save_and_load_give_an_equal_plan(tmp_path: Path) -> None:
    plan = plan_of(CASES["rgn-default"])
    assert FreezePlan.load(plan.save(tmp_path / "plan.json")) == plan


def _edited(key: str, value: Any) -> str:
    data = plan_of(CASES["mass-p0.6-last-layer"]).to_dict()
    data[key] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not a fisher_mi freeze plan"),
        (_edited("frozen", ["l0"]), "'frozen' list disagrees"),
        (_edited("cutoff", 5), "cutoff must be"),
    ],
    ids=["invalid-json", "other-format", "edited-frozen-list", "freezes-everything"],
)
def test_from_json_refuses_a_bad_plan(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        FreezePlan.from_json(text)
    assert fragment in one_line(caught.value)


# ---------------------------------------------------------------------------- apply_plan


def table_for(model: nn.Module) -> pd.DataFrame:
    """A synthetic Fisher table with ``model``'s layers (all equal Fisher)."""
    layers = fisher_mi.named_layers(model)
    return fisher_table(
        [1.0] * len(layers),
        [1.0] * len(layers),
        names=[layer.name for layer in layers],
        n_params=[layer.n_params for layer in layers],
        kinds=[layer.kind for layer in layers],
    )


@pytest.fixture
def mcnn() -> nn.Module:
    torch.manual_seed(0)
    return fisher_mi.build_model("mcnn", num_classes=5)


def planned(model: nn.Module, depth: int = 3, **options: Any) -> nn.Module:
    """``model`` under a plan freezing feature.0, feature.1 (BatchNorm), feature.4 (depth 3)."""
    return apply_plan(model, plan_freeze(table_for(model), rule="fixed", depth=depth, **options))


def batch_norm_state(module: nn.Module) -> list[torch.Tensor]:
    return [
        t.clone() for t in (module.running_mean, module.running_var, module.num_batches_tracked)
    ]


def test_apply_plan_returns_the_model(mcnn: nn.Module) -> None:
    assert planned(mcnn) is mcnn


def test_apply_plan_sets_requires_grad_by_layer(mcnn: nn.Module) -> None:
    planned(mcnn)
    for layer in fisher_mi.named_layers(mcnn):
        flags = {p.requires_grad for p in layer.module.parameters(recurse=False)}
        assert flags == {layer.depth >= 3}, layer.name


def test_apply_plan_again_unfreezes(mcnn: nn.Module) -> None:
    planned(planned(mcnn, depth=5), depth=0)
    assert all(p.requires_grad for p in mcnn.parameters())
    assert frozen_norm_modules(mcnn) == []


def test_frozen_batch_norm_stays_in_eval_under_train(mcnn: nn.Module) -> None:
    planned(mcnn).train()
    assert not mcnn.feature[1].training  # frozen BatchNorm
    assert mcnn.feature[5].training and mcnn.feature[0].training  # trained BatchNorm, a conv
    assert frozen_norm_modules(mcnn) == ["feature.1"]


def test_frozen_batch_norm_statistics_do_not_move(mcnn: nn.Module) -> None:
    planned(mcnn).train()
    frozen, trained = batch_norm_state(mcnn.feature[1]), batch_norm_state(mcnn.feature[5])
    mcnn(torch.rand(6, 1, 32, 32))
    assert all(
        torch.equal(a, b) for a, b in zip(frozen, batch_norm_state(mcnn.feature[1]), strict=True)
    )
    assert not torch.equal(trained[0], mcnn.feature[5].running_mean)  # the forward did train


def test_deep_copy_keeps_batch_norm_frozen(mcnn: nn.Module) -> None:
    twin = copy.deepcopy(planned(mcnn)).train()
    assert not twin.feature[1].training and twin.feature[5].training
    assert frozen_norm_modules(twin) == ["feature.1"]


def test_bn_stats_update_lets_statistics_move(mcnn: nn.Module) -> None:
    planned(planned(mcnn), bn_stats="update").train()
    assert mcnn.feature[1].training and frozen_norm_modules(mcnn) == []


def test_parameter_free_batch_norm_follows_its_position() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.BatchNorm2d(2, affine=False),
        nn.Conv2d(2, 2, 3),
        nn.BatchNorm2d(2, affine=False),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    planned(model, depth=1).train()  # freezes conv "0" only; BatchNorm "1" comes before "2"
    assert frozen_norm_modules(model) == ["1"]


def _renamed(plan: FreezePlan) -> FreezePlan:
    return FreezePlan((*plan.layers[:-1], "head.extra"), plan.cutoff, plan.rule)


def _shortened(plan: FreezePlan) -> FreezePlan:
    return FreezePlan(plan.layers[:-1], plan.cutoff, plan.rule)


def _reordered(plan: FreezePlan) -> FreezePlan:
    layers = list(plan.layers)
    layers[0], layers[2] = layers[2], layers[0]
    return FreezePlan(tuple(layers), plan.cutoff, plan.rule)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_renamed, "does not have: head.extra"),
        (_shortened, "does not mention: fc_layer"),
        (_reordered, "orders the layers differently"),
    ],
    ids=["unknown-layer", "missing-layer", "reordered"],
)
def test_apply_plan_refuses_a_plan_for_another_model(
    mcnn: nn.Module, edit: Callable, fragment: str
) -> None:
    plan = edit(plan_freeze(table_for(mcnn), rule="fixed", depth=2))
    with pytest.raises(ConfigError) as caught:
        apply_plan(mcnn, plan)
    assert fragment in one_line(caught.value)
    assert all(p.requires_grad for p in mcnn.parameters())  # refused before changing anything


def test_rgn_reads_parameter_norms_from_the_model(mcnn: nn.Module) -> None:
    table = table_for(mcnn)
    from_model = plan_freeze(table, rule="rgn", model=mcnn)
    norms = fisher_mi.plan.layer_norms(mcnn)
    assert from_model.scores == plan_freeze(table, rule="rgn", param_norms=norms).scores


def _headless() -> nn.Module:
    model = fisher_mi.build_model("mcnn", num_classes=5)
    model.fc_layer = nn.Identity()
    return model


# Layer sizes by hand: mcnn's feature.0 is Conv2d(1, 64, 7), 64 * 1 * 49 + 64 = 3200 (3 input
# channels: 64 * 3 * 49 + 64 = 9472); its fc_layer Linear(256, 5), 256 * 5 + 5 = 1285 (10
# classes: 2570); vgg_small's feature.0 is Conv2d(3, 32, 3), 32 * 27 + 32 = 896, and vgg_small
# has every layer name of mcnn (and more), so names alone cannot tell them apart.
OTHER_MODELS = [
    pytest.param(
        lambda: fisher_mi.build_model("mcnn", num_classes=10),
        "depth 6: layer 'fc_layer' with 2570 parameters in the model, layer 'fc_layer' with 1285",
        id="more-classes",
    ),
    pytest.param(
        lambda: fisher_mi.build_model("mcnn", in_channels=3),
        "depth 0: layer 'feature.0' with 9472 parameters in the model, layer 'feature.0' with 3200",
        id="more-input-channels",
    ),
    pytest.param(
        lambda: fisher_mi.build_model("vgg_small", num_classes=5),
        "depth 0: layer 'feature.0' with 896 parameters in the model, layer 'feature.0' with 3200",
        id="other-architecture",
    ),
    pytest.param(
        _headless, "depth 6: no layer in the model, layer 'fc_layer' with 1285", id="fewer-layers"
    ),
]


@pytest.mark.parametrize(("make", "says"), OTHER_MODELS)
def test_rgn_refuses_a_model_the_table_was_not_profiled_from(
    mcnn: nn.Module, make: Callable[[], nn.Module], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_freeze(table_for(mcnn), rule="rgn", model=make())
    assert says in one_line(caught.value)


# ---------------------------------------------------------------------------- figure


@pytest.mark.parametrize("case", ["ratio-default", "zero-fixed", "one-layer-mass"])
def test_plot_freeze_plan_writes_a_png(tmp_path: Path, case: str) -> None:
    table = fisher_table(CASES[case].private, CASES[case].public)
    path = plot_freeze_plan(table, plan_of(CASES[case]), tmp_path / "plan.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


# ---------------------------------------------------------------------------- CLI


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def run_main(*argv: object) -> Run:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in argv])
    return Run(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fisher.csv and model.pt of a tiny mcnn profiled by ``fisher_mi.profile``."""
    root = tmp_path_factory.mktemp("plan")
    torch.manual_seed(0)
    model = fisher_mi.build_model("mcnn", num_classes=5)
    x, y = torch.rand(8, 1, 32, 32), torch.arange(8) % 5
    tables = [
        fisher_mi.profile(model, TensorDataset(x, y), split="private"),
        fisher_mi.profile(model, TensorDataset(x.flip(0), y), split="public"),
    ]
    write_table(root / "fisher.csv", pd.concat(tables, ignore_index=True))
    fisher_mi.save_model(model, root / "model.pt")
    return root


def test_cli_plan_writes_plan_and_figure(profiled: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    run = run_main(
        "plan", profiled / "fisher.csv", "--rule", "mass", "--param", "p=0.8", "--out", out
    )
    assert run.code == 0, run.stderr
    plan = FreezePlan.load(out)
    assert plan.rule == "mass" and plan.params == {"p": 0.8}
    assert (tmp_path / "plan.png").read_bytes().startswith(PNG_MAGIC)
    assert f"cutoff {plan.cutoff} of 7 layers" in run.stdout


def test_cli_plan_writes_beside_the_table_by_default(profiled: Path) -> None:
    run = run_main("plan", profiled / "fisher.csv", "--cutoff", "2")
    assert run.code == 0, run.stderr
    plan = FreezePlan.load(profiled / "plan.json")
    assert plan.override and plan.cutoff == 2 and plan.rule == "mass"
    assert (profiled / "plan.png").is_file()


def test_cli_plan_rgn_reads_the_model(profiled: Path, tmp_path: Path) -> None:
    out = tmp_path / "rgn.json"
    argv = ["plan", profiled / "fisher.csv", "--rule", "rgn", "--model", profiled / "model.pt"]
    run = run_main(*argv, "--out", out)
    assert run.code == 0, run.stderr
    assert FreezePlan.load(out).params["param_norms"] == "model"


def test_cli_plan_rgn_refuses_a_model_of_another_class_count(
    profiled: Path, tmp_path: Path
) -> None:
    fisher_mi.save_model(fisher_mi.build_model("mcnn", num_classes=10), tmp_path / "other.pt")
    argv = ["plan", profiled / "fisher.csv", "--rule", "rgn", "--model", tmp_path / "other.pt"]
    run = run_main(*argv, "--out", tmp_path / "rgn.json")
    assert run.code == 2 and run.stderr.count("\n") == 1
    assert "layer 'fc_layer' with 2570 parameters in the model" in run.stderr
    assert not (tmp_path / "rgn.json").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--rule", "nope"], "known: auto, fixed, mass, knee, ratio, rgn"),
        (["--rule", "rgn"], "pass the profiled model"),
        (["--param", "p"], "KEY=VALUE"),
        (["--rule", "fixed", "--param", "depth=7"], "train at least one"),
    ],
    ids=["unknown-rule", "rgn-without-model", "bad-param", "freezes-everything"],
)
def test_cli_plan_error_is_one_line_exit_2(
    profiled: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    run = run_main("plan", profiled / "fisher.csv", *args, "--out", tmp_path / "plan.json")
    assert run.code == 2
    assert run.stderr.count("\n") == 1 and fragment in run.stderr
    assert not (tmp_path / "plan.json").exists()


def test_cli_plan_missing_table_exit_2(tmp_path: Path) -> None:
    run = run_main("plan", tmp_path / "fisher.csv")
    assert run.code == 2 and "does not exist" in run.stderr
