"""Tests for fisher_mi.models: the architecture registry, ``named_layers``, and checkpoints.

Every registered architecture is picked up automatically (``ARCHITECTURES.names()``): each is
built once per module (the ``ref`` fixture) and saved in our format and in every foreign
layout of ``LAYOUTS``. Error messages are checked to be one line holding their key fragments.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from fisher_mi.errors import (
    ArchitectureMismatchError,
    CheckpointError,
    ConfigError,
    RegistryError,
    UnsafeCheckpointError,
)
from fisher_mi.models import (
    ARCHITECTURES,
    ArchSpec,
    arch_of,
    build_model,
    load_model,
    named_layers,
    save_model,
)
from fisher_mi.models.registry import register_architecture, require_arch
from tests.error_cases import one_line

ARCHS = ARCHITECTURES.names()
CLASSES = 7  # unlike every builder's default (5, 1000): must be read from the file
SMALL_MODEL = 5_000_000  # parameters; larger architectures get fewer slow load/build cases


def make_model(arch: str, **kwargs: Any) -> nn.Module:
    """A seeded model whose BatchNorm statistics are not the defaults, so buffers matter."""
    torch.manual_seed(0)
    model = build_model(arch, **kwargs)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(11)
    return model.eval()


def outputs(model: nn.Module) -> tuple[Tensor, ...]:
    """The model's outputs (eval mode) on a fixed input of its own input shape."""
    x = torch.rand(2, *model.input_shape, generator=torch.Generator().manual_seed(3))
    x[1] = 1.0 - x[1]  # two different inputs: outputs must not depend on the batch
    with torch.no_grad():
        result = model.eval()(x)
    return result if isinstance(result, tuple) else (result,)


def assert_same_state(first: nn.Module, second: nn.Module) -> None:
    a, b = first.state_dict(), second.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def files_in(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden ones included (temporary files start with a dot)."""
    return sorted(os.listdir(folder))


def build_on_meta(arch: str, **kwargs: Any) -> nn.Module:
    """The architecture without memory or compute (for checks of structure only)."""
    with torch.device("meta"):
        return build_model(arch, **kwargs)


# ---------------------------------------------------------------------------- references

LAYOUTS: dict[str, Callable[[Mapping[str, Tensor]], Any]] = {
    "raw-state-dict": lambda state: dict(state),
    "dataparallel-state_dict": lambda state: {
        "state_dict": {f"module.{key}": value for key, value in state.items()}
    },
    "model-key": lambda state: {"model": dict(state), "epoch": 7},
}
META = {"epochs": 3, "accuracy": 0.75, "data": "digits", "history": [0.5, 0.75], "note": None}


class Reference:
    """One architecture's seeded model (``CLASSES`` classes), its outputs, its files.

    Built once per architecture for the whole module (large architectures are slow to build
    and run on a CPU); files are written on first use.
    """

    def __init__(self, arch: str, folder: Path) -> None:
        self.arch = arch
        self.model = make_model(arch, num_classes=CLASSES)
        self.outputs = outputs(self.model)
        self.folder = folder
        self._files: dict[str, Path] = {}
        self._own: nn.Module | None = None

    def file(self, layout: str) -> Path:
        """The model saved by ``save_model`` (``"own"``) or as a foreign ``layout``."""
        if layout not in self._files:
            path = self.folder / f"{layout}.pt"
            if layout == "own":
                save_model(self.model, path, meta=META)
            else:
                torch.save(LAYOUTS[layout](self.model.state_dict()), path)
            self._files[layout] = path
        return self._files[layout]

    def own_loaded(self) -> nn.Module:
        """``load_model`` of the ``save_model`` file, loaded once."""
        if self._own is None:
            self._own = load_model(self.file("own"))
        return self._own

    def assert_same_model(self, loaded: nn.Module) -> None:
        assert_same_state(self.model, loaded)
        for a, b in zip(self.outputs, outputs(loaded), strict=True):
            assert torch.equal(a, b)


class References:
    """Each architecture's :class:`Reference`, built on first use and kept for the module."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._built: dict[str, Reference] = {}

    def __call__(self, arch: str) -> Reference:
        if arch not in self._built:
            (self.folder / arch).mkdir()
            self._built[arch] = Reference(arch, self.folder / arch)
        return self._built[arch]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> References:
    return References(tmp_path_factory.mktemp("references"))


@pytest.fixture
def ref(references: References, arch: str) -> Reference:
    """The reference of the test's ``arch`` parameter."""
    return references(arch)


def n_params(arch: str) -> int:
    return sum(p.numel() for p in build_on_meta(arch).parameters())


SMALL_ARCHS = [arch for arch in ARCHS if n_params(arch) <= SMALL_MODEL]


def per_arch(*cases: str, small_only: tuple[str, ...] = ()) -> list[Any]:
    """``(arch, case)`` params: every case on every architecture, ``small_only`` cases on the
    small ones only (the code they exercise does not depend on the architecture, and building
    and running a large one takes seconds on a CPU)."""
    return [
        pytest.param(arch, case, id=f"{arch}-{case}")
        for arch in ARCHS
        for case in (*cases, *small_only)
        if case in cases or arch in SMALL_ARCHS
    ]


# ---------------------------------------------------------------------------- registry


@pytest.mark.parametrize("arch", ARCHS)
def test_architecture_returns_features_and_logits(ref: Reference) -> None:
    assert len(ref.outputs) == 2  # (features, logits) on two inputs of model.input_shape
    features, logits = ref.outputs
    assert features.dim() == 2 and features.shape[0] == 2
    assert logits.shape == (2, CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_built_model_remembers_its_spec(arch: str) -> None:
    spec = ArchSpec(arch, {"num_classes": CLASSES})
    assert arch_of(build_on_meta(arch, num_classes=CLASSES)) == spec


def test_model_built_elsewhere_has_no_spec() -> None:
    assert arch_of(nn.Linear(2, 2)) is None


def test_require_arch_returns_the_spec_of_a_built_model() -> None:
    model = build_on_meta("mcnn", num_classes=CLASSES)
    assert require_arch(model, "it cannot be saved") == ArchSpec("mcnn", {"num_classes": 7})


def test_require_arch_refuses_a_model_built_elsewhere_saying_why() -> None:
    with pytest.raises(ConfigError) as caught:
        require_arch(nn.Linear(2, 2), "it cannot be rebuilt with a new head")
    one_line(
        caught.value,
        "Linear was not built by fisher_mi, so it cannot be rebuilt with a new head;",
        "fisher_mi.build_model",
    )


def test_unknown_architecture_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError) as caught:
        build_model("resnet9000")
    one_line(caught.value, "'resnet9000'", "mcnn", "vgg_small")


def test_unknown_architecture_keyword_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build_model("mcnn", width=3)
    one_line(caught.value, "'mcnn'", "width")


@pytest.mark.parametrize("arch", ARCHS)
def test_registering_an_architecture_twice_is_an_error(arch: str) -> None:
    with pytest.raises(RegistryError) as caught:
        register_architecture(arch)(nn.Linear)
    one_line(caught.value, f"{arch!r} is registered twice")
    assert ARCHITECTURES.get(arch).build is not nn.Linear


# ---------------------------------------------------------------------------- named_layers


class RootOwner(nn.Module):
    """Owns a parameter directly, besides a child layer."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.head = nn.Linear(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(x * self.scale)


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.feature = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        self.block = nn.Sequential(nn.Sequential(nn.Linear(4, 3, bias=False)))
        self.fc_layer = nn.Linear(3, 2)


def _frozen() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    model[2].bias.requires_grad_(False)
    return model


def _tied() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3))
    model[2].weight = model[0].weight  # shared: belongs to its first owner, "0"
    return model


def _all_shared() -> nn.Module:
    first = nn.Linear(2, 2)
    return nn.ModuleDict({"a": first, "b": nn.Sequential(first)})  # one module, two names


@dataclass(frozen=True)
class LayersCase:
    """A model and its expected layers: (name, kind, param_names, n_params) in depth order."""

    make: Callable[[], nn.Module]
    expected: list[tuple[str, str, tuple[str, ...], int]]


LAYERS_CASES = [
    pytest.param(
        LayersCase(
            lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
            [
                ("0", "Linear", ("0.weight", "0.bias"), 16),
                ("2", "Linear", ("2.weight", "2.bias"), 10),
            ],
        ),
        id="sequential",
    ),
    pytest.param(
        LayersCase(
            Nested,
            [
                ("feature.0", "Conv2d", ("feature.0.weight", "feature.0.bias"), 20),
                ("feature.1", "BatchNorm2d", ("feature.1.weight", "feature.1.bias"), 4),
                ("block.0.0", "Linear", ("block.0.0.weight",), 12),
                ("fc_layer", "Linear", ("fc_layer.weight", "fc_layer.bias"), 8),
            ],
        ),
        id="nested-qualified-names",
    ),
    pytest.param(
        LayersCase(
            _frozen,
            [
                ("0", "Linear", ("0.weight", "0.bias"), 16),
                ("2", "Linear", ("2.weight", "2.bias"), 10),
            ],
        ),
        id="frozen-still-listed",
    ),
    pytest.param(
        LayersCase(
            _tied,
            [
                ("0", "Linear", ("0.weight", "0.bias"), 12),
                ("2", "Linear", ("2.bias",), 3),
            ],
        ),
        id="shared-parameter-counted-once",
    ),
    pytest.param(
        LayersCase(_all_shared, [("a", "Linear", ("a.weight", "a.bias"), 6)]),
        id="shared-module-listed-once",
    ),
    pytest.param(
        LayersCase(
            RootOwner,
            [
                ("(root)", "RootOwner", ("scale",), 3),
                ("head", "Linear", ("head.weight", "head.bias"), 8),
            ],
        ),
        id="parameter-at-root",
    ),
    pytest.param(
        LayersCase(
            lambda: nn.Sequential(nn.ReLU(), nn.Flatten(), nn.MaxPool2d(2)),
            [],
        ),
        id="no-parameters",
    ),
]


@pytest.mark.parametrize("case", LAYERS_CASES)
def test_named_layers_lists_expected_layers(case: LayersCase) -> None:
    layers = named_layers(case.make())
    assert [(la.name, la.kind, la.param_names, la.n_params) for la in layers] == case.expected


@pytest.mark.parametrize("case", LAYERS_CASES)
def test_named_layers_depth_is_the_index(case: LayersCase) -> None:
    assert [layer.depth for layer in named_layers(case.make())] == list(range(len(case.expected)))


def _layer_models() -> list[Any]:
    cases = [pytest.param(p.values[0].make, id=p.id) for p in LAYERS_CASES]
    archs = [pytest.param(lambda arch=arch: build_on_meta(arch), id=arch) for arch in ARCHS]
    return cases + archs


@pytest.mark.parametrize("make", _layer_models())
def test_named_layers_follow_named_modules_order(make: Callable[[], nn.Module]) -> None:
    model = make()
    modules = dict(model.named_modules())
    order = list(modules)
    names = [layer.name for layer in named_layers(model)]
    positions = [order.index("" if name == "(root)" else name) for name in names]
    assert positions == sorted(positions)
    for layer in named_layers(model):
        assert layer.module is modules["" if layer.name == "(root)" else layer.name]
        assert layer.kind == type(layer.module).__name__


@pytest.mark.parametrize("make", _layer_models())
def test_named_layers_partition_the_parameters(make: Callable[[], nn.Module]) -> None:
    model = make()
    parameters = dict(model.named_parameters())
    layers = named_layers(model)
    listed = [name for layer in layers for name in layer.param_names]
    assert sorted(listed) == sorted(parameters)  # every parameter once, qualified names
    for layer in layers:
        assert layer.n_params == sum(parameters[name].numel() for name in layer.param_names)
    assert sum(layer.n_params for layer in layers) == sum(p.numel() for p in parameters.values())


def test_named_layers_of_mcnn() -> None:
    names = [layer.name for layer in named_layers(build_on_meta("mcnn"))]
    expected = ["feature.0", "feature.1", "feature.4", "feature.5", "feature.8", "feature.9"]
    assert names == [*expected, "fc_layer"]


# ---------------------------------------------------------------------------- checkpoints


def other_arch(arch: str) -> str:
    """A small architecture different from ``arch``, to load a file with the wrong one."""
    return "vgg_small" if arch != "vgg_small" else "mcnn"


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_keeps_state(ref: Reference) -> None:
    assert_same_state(ref.model, ref.own_loaded())


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_keeps_outputs(ref: Reference) -> None:
    for a, b in zip(ref.outputs, outputs(ref.own_loaded()), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("arch", ARCHS)
def test_loaded_model_is_in_eval_mode(ref: Reference) -> None:
    assert not any(module.training for module in ref.own_loaded().modules())


@pytest.mark.parametrize("arch", ARCHS)
def test_loaded_model_knows_its_spec(ref: Reference) -> None:
    assert arch_of(ref.own_loaded()) == ArchSpec(ref.arch, {"num_classes": CLASSES})


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_file_is_self_describing(ref: Reference) -> None:
    payload = torch.load(ref.file("own"), weights_only=True)
    assert payload["format"] == "fisher_mi/1"
    assert payload["arch"] == ref.arch
    assert payload["arch_kwargs"] == {"num_classes": CLASSES}
    assert payload["meta"] == META
    assert list(payload["state_dict"]) == list(ref.model.state_dict())


@pytest.mark.parametrize(
    ("arch", "layout"),
    per_arch("raw-state-dict", small_only=("dataparallel-state_dict", "model-key")),
)
def test_foreign_checkpoint_is_recognised(ref: Reference, layout: str) -> None:
    loaded = load_model(ref.file(layout))
    spec = arch_of(loaded)
    assert spec is not None and spec.name == ref.arch
    assert spec.kwargs["num_classes"] == CLASSES
    ref.assert_same_model(loaded)


@pytest.mark.parametrize("arch", SMALL_ARCHS)  # every one is recognised without --arch above
def test_foreign_checkpoint_with_arch_given(ref: Reference) -> None:
    loaded = load_model(ref.file("dataparallel-state_dict"), arch=ref.arch)
    assert arch_of(loaded).name == ref.arch
    assert_same_state(ref.model, loaded)


@pytest.mark.parametrize(("arch", "layout"), per_arch("raw-state-dict", small_only=("own",)))
def test_num_classes_that_does_not_fit_is_a_mismatch(ref: Reference, layout: str) -> None:
    with pytest.raises(ArchitectureMismatchError) as caught:
        load_model(ref.file(layout), num_classes=4)
    one_line(caught.value, str(ref.file(layout)), "fc_layer.weight", f"({CLASSES}, ")


@pytest.mark.parametrize(("arch", "layout"), per_arch("raw-state-dict", small_only=("own",)))
def test_wrong_arch_is_a_mismatch(ref: Reference, layout: str) -> None:
    given = other_arch(ref.arch)
    with pytest.raises(ArchitectureMismatchError) as caught:
        load_model(ref.file(layout), arch=given)
    one_line(
        caught.value,
        f"does not fit architecture {given!r}",
        f"the file fits {ref.arch!r}",
        "--arch",
    )


def _unfit_key(arch: str, state: Mapping[str, Tensor]) -> str:
    """A key that no keyword argument is read from, so the rest of the file still fits."""
    read_from = {key for key, _ in ARCHITECTURES.get(arch).kwargs_from_state.values()}
    return next(key for key in state if key not in read_from)


def _remove(state: dict[str, Tensor], key: str) -> tuple[str, ...]:
    del state[key]
    return (f"1 missing ({key})",)


def _rename(state: dict[str, Tensor], key: str) -> tuple[str, ...]:
    state[f"{key}_renamed"] = state.pop(key)
    return f"1 missing ({key})", f"1 unexpected ({key}_renamed)"


EDITS = {"key-removed": _remove, "key-renamed": _rename}


@pytest.mark.parametrize(("arch", "edit"), per_arch("key-removed", small_only=("key-renamed",)))
def test_edited_state_dict_fits_nothing(tmp_path: Path, ref: Reference, edit: str) -> None:
    state = ref.model.state_dict()
    says = EDITS[edit](state, _unfit_key(ref.arch, state))
    torch.save(state, tmp_path / "foreign.pt")
    with pytest.raises(ArchitectureMismatchError) as caught:
        load_model(tmp_path / "foreign.pt")
    one_line(
        caught.value,
        str(tmp_path / "foreign.pt"),
        "fits no registered architecture",
        f"closest is {ref.arch!r}",
        *says,
        "--arch",
    )


def test_save_writes_atomically(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "folder"
    save_model(make_model("mcnn"), folder / "model.pt")
    save_model(make_model("mcnn"), folder / "model.pt")  # overwriting too
    assert files_in(folder) == ["model.pt"]


@pytest.mark.parametrize(
    ("meta", "plain"),
    [
        pytest.param({"accuracy": np.float64(0.5)}, {"accuracy": 0.5}, id="numpy-scalar"),
        pytest.param({"data": pathlib.Path("digits")}, {"data": "digits"}, id="path"),
    ],
)
def test_meta_that_save_accepts_can_be_loaded(
    tmp_path: Path, meta: dict[str, Any], plain: dict[str, Any]
) -> None:
    # Regression (was a bug in fisher_mi/models/checkpoint.py save_model): meta values were
    # torch.saved as given, but load_model reads with weights_only=True, which refuses numpy
    # scalars and Paths, so the file save_model had just written failed to load with
    # UnsafeCheckpointError. save_model must refuse such meta (ConfigError) or convert it.
    path = tmp_path / "model.pt"
    try:
        save_model(make_model("mcnn"), path, meta=meta)
    except ConfigError as err:
        one_line(err, "meta")
        return
    load_model(path)
    assert torch.load(path, weights_only=True)["meta"] == plain


def test_meta_that_cannot_be_stored_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        save_model(make_model("mcnn"), tmp_path / "model.pt", meta={"model": nn.Linear(2, 2)})
    one_line(caught.value, "meta")
    assert files_in(tmp_path) == []


def test_save_of_a_model_not_built_by_fisher_mi_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        save_model(nn.Linear(3, 2), tmp_path / "model.pt")
    one_line(caught.value, "Linear", "build_model")
    assert files_in(tmp_path) == []


# ---------------------------------------------------------------------------- unreadable files


class RunsCode:
    """Unpickling this calls ``marker.touch()``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.marker.touch, ()


class RunsShell:
    """Unpickling this runs a shell command through ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return os.system, (f"touch '{self.marker}'",)


UNSAFE = [
    pytest.param(RunsCode, "getattr", id="bound-method"),
    pytest.param(RunsShell, "system", id="os-system"),
]


def write_unsafe(path: Path, make: Callable[[Path], Any], marker: Path) -> Path:
    state = build_model("mcnn").state_dict()
    torch.save({"state_dict": state, "hook": make(marker)}, path)
    return path


@pytest.mark.parametrize(("make", "culprit"), UNSAFE)
def test_checkpoint_that_would_run_code_is_refused(
    tmp_path: Path, make: Callable[[Path], Any], culprit: str
) -> None:
    marker = tmp_path / "code-ran"
    path = write_unsafe(tmp_path / "unsafe.pt", make, marker)
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_model(path)
    one_line(caught.value, str(path), "refused", "state_dict()")
    assert not marker.exists()
    # The file really is dangerous: a plain unpickling runs its code (done last, on purpose).
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(("make", "culprit"), UNSAFE)
def test_refused_checkpoint_names_the_blocked_global(
    tmp_path: Path, make: Callable[[Path], Any], culprit: str
) -> None:
    # Regression (was a bug in fisher_mi/io.py load_checkpoint): the culprit was looked for
    # with r"unsupported GLOBAL (\S+)", case sensitive, but torch's usual message reads
    # "Unsupported global: GLOBAL getattr was not an allowed global", so it was left out.
    path = write_unsafe(tmp_path / "unsafe.pt", make, tmp_path / "code-ran")
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_model(path)
    one_line(caught.value, culprit)
    assert not (tmp_path / "code-ran").exists()


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _truncated(path: Path) -> None:
    save_model(make_model("mcnn"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _missing(path: Path) -> None:
    pass


def _folder(path: Path) -> None:
    path.mkdir()


def _no_tensors(path: Path) -> None:
    torch.save({"epoch": 3}, path)


def _list(path: Path) -> None:
    torch.save([1, 2, 3], path)


def _newer_format(path: Path) -> None:
    state = build_model("mcnn").state_dict()
    torch.save(
        {"format": "fisher_mi/9", "arch": "mcnn", "arch_kwargs": {}, "state_dict": state}, path
    )


def _own_format_incomplete(path: Path) -> None:
    torch.save({"format": "fisher_mi/1", "arch": "mcnn"}, path)


CHECKPOINT_ERRORS = [
    pytest.param(_random_bytes, ("not a readable torch file",), id="random-bytes"),
    pytest.param(_truncated, ("cannot be read as a torch file", "complete"), id="truncated"),
    pytest.param(_empty, ("cannot be read as a torch file",), id="empty-file"),
    pytest.param(_missing, ("does not exist",), id="missing"),
    pytest.param(_folder, ("is not a file",), id="a-folder"),
    pytest.param(_no_tensors, ("holds no state dict", "epoch"), id="no-tensors"),
    pytest.param(_list, ("holds no state dict", "list"), id="a-list"),
    pytest.param(_newer_format, ("'fisher_mi/9'", "reads fisher_mi/1"), id="newer-format"),
    pytest.param(_own_format_incomplete, ("arch_kwargs", "state_dict"), id="own-incomplete"),
]


@pytest.mark.parametrize(("write", "says"), CHECKPOINT_ERRORS)
def test_unreadable_checkpoint_is_a_checkpoint_error(
    tmp_path: Path, write: Callable[[Path], None], says: tuple[str, ...]
) -> None:
    path = tmp_path / "model.pt"
    write(path)
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    assert not isinstance(caught.value, UnsafeCheckpointError)
    one_line(caught.value, str(path), *says)
