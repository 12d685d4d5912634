"""The ``hooks`` backend's samplers, one module type at a time, against autograd (float64).

For a module m, an input a and an "output gradient" b shaped like m(a), sample n's parameter
gradient is the gradient of ``(m(a[n:n+1]) * b[n:n+1]).sum()``: a brute-force loop of
``torch.autograd.grad`` is the oracle for ``per_sample_grads``, ``squared_norms`` (the sum of
squares of each sample's gradient) and ``diagonal`` (the sum over samples of its square).
Fixed cases are data; hypothesis then fuzzes each module type's hyperparameters and shapes,
and small drawn models go through ``profile``/``fisher_diagonal`` against the ``loop``
reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from fisher_mi.errors import RegistryError
from fisher_mi.fisher import fisher_diagonal, make_backend, profile
from fisher_mi.fisher.samplers import SAMPLERS, ParameterSampler, register_sampler, sampler_for
from fisher_mi.fisher.samplers import conv as conv_samplers
from fisher_mi.fisher.samplers import linear as linear_samplers
from fisher_mi.models import named_layers
from tests.cases import CASES, Case

DTYPE = torch.float64
SAMPLER_TOLERANCE = 1e-10  # one layer's closed form vs autograd, float64: only rounding differs
BACKEND_TOLERANCE = 1e-8  # whole models, hooks vs loop (as in test_fisher_backends.py)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL_FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUANTITIES = ["per_sample_grads", "squared_norms", "diagonal"]

# torch's note that padding="same" with an even kernel copies the input: not a failure
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tensors here are tiny: intra-op threads only contend (3x slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- helpers


def _prepared(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` in float64 and eval mode with random parameters and, where it keeps them,
    non-trivial running statistics (eval-mode BatchNorm then differs from batch statistics)."""
    generator = torch.Generator().manual_seed(seed)
    module = module.to(DTYPE).eval()
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=DTYPE))
        for sub in module.modules():
            if getattr(sub, "running_mean", None) is not None:
                sub.running_mean.copy_(
                    torch.rand(sub.running_mean.shape, generator=generator) - 0.5
                )
                sub.running_var.copy_(torch.rand(sub.running_var.shape, generator=generator) + 0.5)
    return module


def _input(shape: tuple[int, ...], vocabulary: int, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    if vocabulary:
        return torch.randint(0, vocabulary, shape, generator=generator)
    return torch.randn(shape, generator=generator, dtype=DTYPE)


def _output_gradient(module: nn.Module, a: Tensor, seed: int) -> Tensor:
    with torch.no_grad():
        shape = module(a).shape
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1), dtype=DTYPE)


def _autograd_per_sample(module: nn.Module, a: Tensor, b: Tensor) -> dict[str, Tensor]:
    """The oracle: sample n's gradient of (m(a_n) * b_n).sum(), one backward per sample."""
    params = dict(module.named_parameters())
    rows: dict[str, list[Tensor]] = {name: [] for name in params}
    for n in range(a.shape[0]):
        out = (module(a[n : n + 1]) * b[n : n + 1]).sum()
        grads = torch.autograd.grad(out, list(params.values()), allow_unused=True)
        for (name, param), grad in zip(params.items(), grads, strict=True):
            rows[name].append(torch.zeros_like(param) if grad is None else grad)
    return {name: torch.stack(values) for name, values in rows.items()}


def _relative_error(got: Tensor, want: Tensor) -> float:
    """||got - want|| / ||want||, the norm floored at 1e-2: below it the error is absolute
    (x 1e2). Inputs are O(1), and a value that is zero in exact arithmetic (the weight of a
    LayerNorm over one element, whose x_hat is 0) comes out of autograd as ~1e-14 noise."""
    return float((got - want).norm() / want.norm().clamp_min(1e-2))


def _worst_sample_error(got: Tensor, want: Tensor) -> float:
    """The largest per-sample (dim 0) relative error."""
    if want.shape[0] == 0:
        return 0.0
    return max(_relative_error(g, w) for g, w in zip(got, want, strict=True))


def _expected(
    module: nn.Module, a: Tensor, b: Tensor, quantity: str, grads: dict[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """The oracle's ``quantity`` (from ``grads``, the oracle's per-sample gradients, if given)."""
    if not list(module.parameters()):  # e.g. LayerNorm(elementwise_affine=False)
        return {}
    grads = _autograd_per_sample(module, a, b) if grads is None else grads
    if quantity == "per_sample_grads":
        return grads
    if quantity == "squared_norms":
        return {name: g.flatten(1).pow(2).sum(1) for name, g in grads.items()}
    return {name: g.pow(2).sum(0) for name, g in grads.items()}


def _check_quantity(
    module: nn.Module, a: Tensor, b: Tensor, quantity: str, grads: dict[str, Tensor] | None = None
) -> None:
    """One sampler quantity against autograd: same keys, shapes and values."""
    sampler = sampler_for(module)
    assert sampler is not None, type(module).__name__
    got = getattr(sampler, quantity)(module, a, b)
    want = _expected(module, a, b, quantity, grads)
    assert set(got) == set(want)
    for name, value in got.items():
        assert value.shape == want[name].shape, (name, quantity)
        assert value.dtype == DTYPE, (name, quantity)
        if quantity == "diagonal":
            error = _relative_error(value, want[name])
        else:
            error = _worst_sample_error(value, want[name])
        assert error <= SAMPLER_TOLERANCE, (name, quantity, error)


def _check_all_quantities(module: nn.Module, a: Tensor, b: Tensor) -> dict[str, Tensor]:
    """Every quantity against one run of the oracle, which is returned."""
    grads = _autograd_per_sample(module, a, b) if list(module.parameters()) else {}
    for quantity in QUANTITIES:
        _check_quantity(module, a, b, quantity, grads)
    return grads


# ------------------------------------------------------------- 1. each sampler in isolation


@dataclass(frozen=True)
class SamplerCase:
    """A module factory and the per-sample input shape it takes."""

    id: str
    make: Callable[[], nn.Module]
    sample_shape: tuple[int, ...]
    vocabulary: int = 0  # > 0: the input is indices below this
    batch: int = 4

    def module(self) -> nn.Module:
        torch.manual_seed(0)
        return _prepared(self.make())

    def inputs(self, batch: int | None = None) -> tuple[nn.Module, Tensor, Tensor]:
        module = self.module()
        batch = self.batch if batch is None else batch
        a = _input((batch, *self.sample_shape), self.vocabulary, seed=3)
        if batch == 0:  # the output shape of one sample, with a batch of none
            one = _input((1, *self.sample_shape), self.vocabulary, seed=3)
            b = _output_gradient(module, one, seed=3)[:0]
        else:
            b = _output_gradient(module, a, seed=3)
        return module, a, b


SAMPLER_CASES = [
    SamplerCase("linear", lambda: nn.Linear(5, 3), (5,)),
    SamplerCase("linear-no-bias", lambda: nn.Linear(5, 3, bias=False), (5,)),
    SamplerCase("linear-batch-of-one", lambda: nn.Linear(4, 2), (4,), batch=1),
    SamplerCase("linear-3d-gram-branch", lambda: nn.Linear(8, 7), (2, 8)),
    SamplerCase("linear-3d-direct-branch", lambda: nn.Linear(3, 2), (6, 3)),
    SamplerCase("linear-4d", lambda: nn.Linear(4, 3), (2, 3, 4)),
    SamplerCase("conv1d", lambda: nn.Conv1d(2, 3, 3), (2, 7)),
    SamplerCase(
        "conv1d-same-reflect-dilation",
        lambda: nn.Conv1d(2, 4, 4, padding="same", dilation=2, padding_mode="reflect"),
        (2, 9),
    ),
    SamplerCase(
        "conv2d-stride-padding-dilation-groups",
        lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2),
        (4, 9, 10),
    ),
    SamplerCase(
        "conv2d-nonsquare-circular-no-bias",
        lambda: nn.Conv2d(3, 3, (3, 2), padding=(1, 2), padding_mode="circular", bias=False),
        (3, 5, 6),
    ),
    SamplerCase(
        "conv2d-replicate-stride",
        lambda: nn.Conv2d(2, 4, 2, stride=(2, 1), padding=2, padding_mode="replicate", groups=2),
        (2, 5, 4),
    ),
    SamplerCase("conv2d-valid", lambda: nn.Conv2d(2, 2, 3, padding="valid"), (2, 4, 5)),
    SamplerCase("conv2d-gram-branch", lambda: nn.Conv2d(8, 8, 3), (8, 3, 3)),
    SamplerCase("batchnorm1d-2d-input", lambda: nn.BatchNorm1d(5), (5,)),
    SamplerCase("batchnorm1d-3d-input", lambda: nn.BatchNorm1d(3), (3, 4)),
    SamplerCase("batchnorm2d", lambda: nn.BatchNorm2d(3, eps=1e-3), (3, 4, 5)),
    SamplerCase("batchnorm3d", lambda: nn.BatchNorm3d(2), (2, 3, 2, 2)),
    SamplerCase("groupnorm", lambda: nn.GroupNorm(2, 4), (4, 3, 3)),
    SamplerCase("groupnorm-2d-input", lambda: nn.GroupNorm(3, 6), (6,)),
    SamplerCase("layernorm-last-dim", lambda: nn.LayerNorm(4), (3, 4)),
    SamplerCase("layernorm-last-two-dims", lambda: nn.LayerNorm((3, 4)), (2, 3, 4)),
    SamplerCase("layernorm-2d-input-no-bias", lambda: nn.LayerNorm(5, bias=False), (5,)),
    SamplerCase("instancenorm1d", lambda: nn.InstanceNorm1d(3, affine=True), (3, 5)),
    SamplerCase("instancenorm2d", lambda: nn.InstanceNorm2d(2, affine=True), (2, 3, 4)),
    SamplerCase(
        "instancenorm2d-running-stats",
        lambda: nn.InstanceNorm2d(2, affine=True, track_running_stats=True),
        (2, 3, 3),
    ),
    SamplerCase("instancenorm3d", lambda: nn.InstanceNorm3d(2, affine=True), (2, 2, 2, 3)),
    SamplerCase("prelu-single", lambda: nn.PReLU(), (3, 4, 4)),
    SamplerCase("prelu-single-2d-input", lambda: nn.PReLU(), (6,)),
    SamplerCase("prelu-per-channel-4d", lambda: nn.PReLU(3), (3, 2, 2)),
    SamplerCase("prelu-per-channel-3d", lambda: nn.PReLU(4), (4, 5)),
    # PReLU on (batch, C) input (right after a Linear) and on (batch,) input: IndexError from
    # flatten(2) / flatten(1) before commit e09a78b
    SamplerCase("prelu-per-channel-2d-input", lambda: nn.PReLU(4), (4,)),
    SamplerCase("prelu-single-1d-input", lambda: nn.PReLU(), ()),
    SamplerCase("embedding", lambda: nn.Embedding(7, 3), (5,), vocabulary=7),
    SamplerCase("embedding-repeats", lambda: nn.Embedding(3, 2), (6,), vocabulary=3),
    SamplerCase("embedding-padding-idx", lambda: nn.Embedding(4, 3, padding_idx=1), (5,), 4),
    SamplerCase("embedding-2d-indices", lambda: nn.Embedding(5, 2, padding_idx=-1), (2, 3), 5),
    SamplerCase("embedding-one-index", lambda: nn.Embedding(6, 4), (), vocabulary=6),
]


@pytest.mark.parametrize("quantity", QUANTITIES)
@pytest.mark.parametrize("case", SAMPLER_CASES, ids=lambda c: c.id)
def test_sampler_matches_autograd(case: SamplerCase, quantity: str) -> None:
    module, a, b = case.inputs()
    _check_quantity(module, a, b, quantity)


@pytest.mark.parametrize("case", SAMPLER_CASES, ids=lambda c: c.id)
def test_default_squared_norms_and_diagonal_agree_with_overrides(case: SamplerCase) -> None:
    """A sampler's own closed forms equal the base class's defaults built on its
    ``per_sample_grads`` (so an override cannot drift from the universal fallback)."""
    module, a, b = case.inputs()
    sampler = sampler_for(module)
    assert sampler is not None
    for quantity in ("squared_norms", "diagonal"):
        got = getattr(sampler, quantity)(module, a, b)
        default = getattr(ParameterSampler, quantity)(sampler, module, a, b)
        assert set(got) == set(default)
        for name in got:
            assert _relative_error(got[name], default[name]) <= SAMPLER_TOLERANCE, name


# -------------------------------------------------------------- both cost branches, forced


LINEAR_BRANCH_SHAPES = [  # (sample shape, in, out, gram_is_cheaper picks Gram)
    ((2, 8), 8, 7, True),  # 2 * 15 < 56
    ((6, 3), 3, 2, False),  # 6 * 5 > 6
    ((2, 3, 8), 8, 8, False),  # 6 * 16 > 64
    ((1, 1, 6), 6, 6, True),  # length 1: the rank-one shortcut is taken before either
]


@pytest.mark.parametrize(
    ("shape", "fan_in", "fan_out", "gram"),
    LINEAR_BRANCH_SHAPES,
    ids=["gram-cheaper", "direct-cheaper", "direct-cheaper-4d", "length-one"],
)
def test_linear_branch_choice_and_both_branches_match_autograd(
    shape: tuple[int, ...], fan_in: int, fan_out: int, gram: bool
) -> None:
    length = math.prod(shape[:-1])
    assert linear_samplers.gram_is_cheaper(length, fan_in, fan_out) is gram
    module = _prepared(nn.Linear(fan_in, fan_out))
    a = _input((3, *shape), 0, seed=5)
    b = _output_gradient(module, a, seed=5)
    want = _expected(module, a, b, "squared_norms")
    for forced in (True, False):
        with mock.patch.object(linear_samplers, "gram_is_cheaper", return_value=forced):
            got = sampler_for(module).squared_norms(module, a, b)
        for name in want:
            assert _worst_sample_error(got[name], want[name]) <= SAMPLER_TOLERANCE, (forced, name)


def test_conv_branch_choice_follows_the_cost_model() -> None:
    assert conv_samplers.gram_is_cheaper(1, 72, 8)  # late layer: one position, many channels
    assert not conv_samplers.gram_is_cheaper(49, 9, 4)  # early layer: many positions


# ------------------------------------------------------------------ 2. hypothesis fuzzing


def _check_both_gram_branches(
    module: nn.Module, a: Tensor, b: Tensor, samplers_module, grads: dict[str, Tensor]
) -> None:
    """squared_norms with the Gram and the direct form forced in turn, both vs autograd."""
    want = _expected(module, a, b, "squared_norms", grads)
    for forced in (True, False):
        with mock.patch.object(samplers_module, "gram_is_cheaper", return_value=forced):
            got = sampler_for(module).squared_norms(module, a, b)
        for name in want:
            error = _worst_sample_error(got[name], want[name])
            assert error <= SAMPLER_TOLERANCE, (forced, name, error)


@FUZZ
@given(
    batch=st.integers(1, 5),
    leading=st.lists(st.integers(1, 6), min_size=0, max_size=2),
    fan_in=st.integers(1, 8),
    fan_out=st.integers(1, 8),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_fuzzed(
    batch: int, leading: list[int], fan_in: int, fan_out: int, bias: bool, seed: int
) -> None:
    module = _prepared(nn.Linear(fan_in, fan_out, bias=bias), seed)
    a = _input((batch, *leading, fan_in), 0, seed)
    b = _output_gradient(module, a, seed)
    length = math.prod(leading)
    picked = linear_samplers.gram_is_cheaper(length, fan_in, fan_out)
    event(f"linear squared_norms: {'rank-one' if length == 1 else 'gram' if picked else 'direct'}")
    grads = _check_all_quantities(module, a, b)
    _check_both_gram_branches(module, a, b, linear_samplers, grads)


PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


@st.composite
def conv_setups(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, ...]]:
    """A Conv1d/Conv2d with drawn geometry and an input shape it accepts."""
    dims = draw(st.sampled_from([1, 2]))
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding_kind = draw(st.sampled_from(["int", "same", "valid"]))
    if padding_kind == "same":
        stride: tuple[int, ...] | int = 1
        padding: tuple[int, ...] | str = "same"
        pads = tuple(d * (k - 1) - d * (k - 1) // 2 for d, k in zip(dilation, kernel, strict=True))
    else:
        stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
        pads = tuple(draw(st.integers(0, 2)) for _ in range(dims))
        padding = pads if padding_kind == "int" else "valid"
        if padding_kind == "valid":
            pads = (0,) * dims
    padding_mode = draw(st.sampled_from(PADDING_MODES))
    reach = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    sizes = tuple(
        draw(st.integers(max(1, r - 2 * p), r + 3)) for r, p in zip(reach, pads, strict=True)
    )
    if padding_mode == "reflect":
        assume(all(p < s for p, s in zip(pads, sizes, strict=True)))
    if padding_mode == "circular":
        assume(all(p <= s for p, s in zip(pads, sizes, strict=True)))
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    module = conv(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        padding_mode=padding_mode,
    )
    event(f"conv{dims}d padding={padding_kind} mode={padding_mode}")
    return module, (in_channels, *sizes)


@FUZZ
@given(setup=conv_setups(), batch=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_conv_fuzzed(setup: tuple[nn.Module, tuple[int, ...]], batch: int, seed: int) -> None:
    module, sample_shape = setup
    module = _prepared(module, seed)
    a = _input((batch, *sample_shape), 0, seed)
    b = _output_gradient(module, a, seed)
    grads = _check_all_quantities(module, a, b)
    _check_both_gram_branches(module, a, b, conv_samplers, grads)
    _check_both_weight_grad_kernels(module, a, b, grads)


def _check_both_weight_grad_kernels(
    module: nn.Module, a: Tensor, b: Tensor, grads: dict[str, Tensor]
) -> None:
    """Every quantity with the grouped and the blocked kernel forced in turn, the blocked one
    with blocks of one sample or one output channel so that the block seams are crossed, and
    the diagonal by the expanded square with blocks of one sample."""
    for grouped in (True, False):
        with (
            mock.patch.object(conv_samplers, "grouped_kernel_is_fast", return_value=grouped),
            mock.patch.object(conv_samplers, "BLOCK_ELEMENTS", 1),
            mock.patch.object(conv_samplers, "GROUPED_ELEMENTS", 1),
            mock.patch.object(conv_samplers, "uses_expanded_square", return_value=False),
        ):
            for quantity in QUANTITIES:
                _check_quantity(module, a, b, quantity, grads)
    with (
        mock.patch.object(conv_samplers, "BLOCK_ELEMENTS", 1),
        mock.patch.object(conv_samplers, "uses_expanded_square", return_value=True),
    ):
        _check_quantity(module, a, b, "diagonal", grads)


def test_expanded_square_error_stays_within_its_stated_bound_under_cancellation() -> None:
    """Inputs constant over positions and output gradients summing to zero over them make
    every G_n exactly zero: the expanded square then returns pure rounding, which must stay
    below eps (sum_l |B_nol A_nil|)^2 summed over samples (the bound conv.py states)."""
    module = _prepared(nn.Conv2d(130, 512, 1, bias=False))
    generator = torch.Generator().manual_seed(5)
    a = torch.randn(4, 130, 1, 1, generator=generator, dtype=DTYPE).expand(4, 130, 2, 2)
    b = torch.randn(4, 512, 2, 2, generator=generator, dtype=DTYPE)
    b = b - b.mean((2, 3), keepdim=True)
    assert conv_samplers.uses_expanded_square(4, 130, 512)
    got = sampler_for(module).diagonal(module, a, b)["weight"].reshape(512, 130)
    magnitude = torch.einsum("nol,nil->noi", b.abs().flatten(2), a.abs().flatten(2))
    bound = torch.finfo(DTYPE).eps * magnitude.square().sum(0)
    assert bool((got.abs() <= 8 * bound).all())
    assert float(got.abs().max()) > 0  # rounding did show: the check is not vacuous


def test_weight_grad_kernel_choice_follows_the_measured_rule() -> None:
    assert conv_samplers.grouped_kernel_is_fast(64 * 64, 64 * 9)  # early layer, large maps
    assert not conv_samplers.grouped_kernel_is_fast(4 * 4, 512 * 9)  # late layer, 4x4 maps
    assert conv_samplers.uses_expanded_square(2 * 2, 512 * 9, 512)  # ResNet-18's last stage
    assert not conv_samplers.uses_expanded_square(2 * 2, 3, 1)  # small: exact route is cheap
    assert not conv_samplers.uses_expanded_square(4 * 4, 512 * 9, 512)


@FUZZ
@given(
    data=st.data(),
    batch=st.integers(1, 4),
    channels=st.integers(1, 5),
    kind=st.sampled_from(["1d-flat", "1d-sequence", "2d"]),
    seed=st.integers(0, 2**16),
)
def test_batchnorm_eval_fuzzed(
    data: st.DataObject, batch: int, channels: int, kind: str, seed: int
) -> None:
    spatial = {"1d-flat": 0, "1d-sequence": 1, "2d": 2}[kind]
    sizes = tuple(data.draw(st.integers(1, 4)) for _ in range(spatial))
    norm = nn.BatchNorm2d if kind == "2d" else nn.BatchNorm1d
    module = _prepared(norm(channels, eps=data.draw(st.sampled_from([1e-5, 0.1]))), seed)
    a = _input((batch, channels, *sizes), 0, seed)
    _check_all_quantities(module, a, _output_gradient(module, a, seed))


@FUZZ
@given(
    data=st.data(),
    batch=st.integers(1, 4),
    groups=st.integers(1, 3),
    per_group=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_groupnorm_fuzzed(
    data: st.DataObject, batch: int, groups: int, per_group: int, seed: int
) -> None:
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))
    assume(per_group * math.prod(sizes) > 1)  # torch refuses a group of one value
    module = _prepared(nn.GroupNorm(groups, groups * per_group), seed)
    a = _input((batch, groups * per_group, *sizes), 0, seed)
    _check_all_quantities(module, a, _output_gradient(module, a, seed))


@FUZZ
@given(
    batch=st.integers(1, 4),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    normalized_dims=st.integers(1, 2),
    elementwise_affine=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_layernorm_fuzzed(
    batch: int,
    sizes: list[int],
    normalized_dims: int,
    elementwise_affine: bool,
    bias: bool,
    seed: int,
) -> None:
    normalized_shape = tuple(sizes[-min(normalized_dims, len(sizes)) :])
    module = nn.LayerNorm(normalized_shape, elementwise_affine=elementwise_affine, bias=bias)
    module = _prepared(module, seed)
    a = _input((batch, *sizes), 0, seed)
    _check_all_quantities(module, a, _output_gradient(module, a, seed))


@FUZZ
@given(
    data=st.data(),
    batch=st.integers(1, 4),
    channels=st.integers(1, 4),
    dims=st.sampled_from([1, 2]),
    track_running_stats=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_instancenorm_fuzzed(
    data: st.DataObject,
    batch: int,
    channels: int,
    dims: int,
    track_running_stats: bool,
    seed: int,
) -> None:
    sizes = tuple(data.draw(st.integers(1, 4)) for _ in range(dims))
    assume(math.prod(sizes) > 1)  # instance statistics need more than one position
    norm = nn.InstanceNorm1d if dims == 1 else nn.InstanceNorm2d
    module = norm(channels, affine=True, track_running_stats=track_running_stats)
    module = _prepared(module, seed)
    a = _input((batch, channels, *sizes), 0, seed)
    _check_all_quantities(module, a, _output_gradient(module, a, seed))


@FUZZ
@given(
    data=st.data(),
    batch=st.integers(1, 4),
    channels=st.integers(1, 4),
    per_channel=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_prelu_fuzzed(
    data: st.DataObject, batch: int, channels: int, per_channel: bool, seed: int
) -> None:
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))
    # one weight for all: the input may also have no channel dim at all, (batch,)
    flat = not per_channel and data.draw(st.booleans())
    module = _prepared(nn.PReLU(channels if per_channel else 1), seed)
    a = _input((batch,) if flat else (batch, channels, *sizes), 0, seed)
    _check_all_quantities(module, a, _output_gradient(module, a, seed))


@FUZZ
@given(
    data=st.data(),
    batch=st.integers(1, 4),
    vocabulary=st.integers(2, 12),
    dim=st.integers(1, 4),
    sequence=st.lists(st.integers(1, 6), min_size=0, max_size=2),
    seed=st.integers(0, 2**16),
)
def test_embedding_fuzzed(
    data: st.DataObject, batch: int, vocabulary: int, dim: int, sequence: list[int], seed: int
) -> None:
    padding_idx = data.draw(st.none() | st.integers(-vocabulary, vocabulary - 1))
    module = _prepared(nn.Embedding(vocabulary, dim, padding_idx=padding_idx), seed)
    a = _input((batch, *sequence), vocabulary, seed)
    _check_all_quantities(module, a, _output_gradient(module, a, seed))


# ------------------------------------------------------------------------ 3. empty batch


@pytest.mark.parametrize("case", SAMPLER_CASES, ids=lambda c: c.id)
def test_empty_batch_gives_empty_norms_and_zero_diagonal(case: SamplerCase) -> None:
    # Fixed bug: Linear, Conv1d/Conv2d, PReLU and Embedding raise on a batch of 0: they reshape
    # with (batch, ..., -1), which torch refuses for a tensor of 0 elements: linear.py:24
    # (_as_sequences), conv.py:73 (unfold_patches, reached from squared_norms because
    # gram_is_cheaper(0, ...) is True for positions = 0), activation.py:20-21, embedding.py:19
    # (_rows). Unreachable through HooksBackend (_chunked makes no chunk of an empty batch),
    # but the sampler API promises shape (batch,) for any batch.
    module, a, b = case.inputs(batch=0)
    sampler = sampler_for(module)
    assert sampler is not None
    params = dict(module.named_parameters())
    grads = sampler.per_sample_grads(module, a, b)
    norms = sampler.squared_norms(module, a, b)
    diagonal = sampler.diagonal(module, a, b)
    assert set(grads) == set(norms) == set(diagonal) == set(params)
    for name, param in params.items():
        assert grads[name].shape == (0, *param.shape)
        assert norms[name].shape == (0,)
        assert diagonal[name].shape == param.shape
        assert not diagonal[name].any()


# ----------------------------------------------------------------------- 4. sampler_for


def _eval(module: nn.Module) -> nn.Module:
    return module.eval()


REGISTERED_MODULES = [
    nn.Linear(3, 2),
    nn.Conv1d(2, 2, 3),
    nn.Conv2d(2, 2, 3),
    _eval(nn.BatchNorm1d(3)),
    _eval(nn.BatchNorm2d(3)),
    _eval(nn.BatchNorm3d(3)),
    nn.GroupNorm(1, 3),
    nn.LayerNorm(3),
    nn.InstanceNorm1d(3, affine=True),
    nn.InstanceNorm2d(3, affine=True),
    nn.InstanceNorm3d(3, affine=True),
    nn.PReLU(),
    nn.Embedding(5, 2),
]


@pytest.mark.parametrize("module", REGISTERED_MODULES, ids=lambda m: type(m).__name__)
def test_sampler_for_finds_every_registered_type(module: nn.Module) -> None:
    assert isinstance(sampler_for(module), ParameterSampler)


class ScaledLinear(nn.Linear):
    """A subclass whose forward differs: the Linear closed form would be wrong for it."""

    def forward(self, x: Tensor) -> Tensor:
        return 2.0 * super().forward(x)


class PlainLinearSubclass(nn.Linear):
    """Same forward, still a different type: exact types only."""


Linear = type("Linear", (nn.Module,), {})  # a user's class named like torch's, elsewhere


UNSUPPORTED_MODULES = [
    ("linear-subclass-changing-forward", ScaledLinear(3, 2)),
    ("linear-subclass-same-forward", PlainLinearSubclass(3, 2)),
    ("user-class-named-Linear", Linear()),
    ("batchnorm-train-mode", nn.BatchNorm2d(3).train()),
    ("batchnorm-eval-without-running-stats", _eval(nn.BatchNorm2d(3, track_running_stats=False))),
    ("batchnorm1d-train-mode", nn.BatchNorm1d(3).train()),
    ("embedding-max-norm", nn.Embedding(5, 2, max_norm=1.0)),
    ("conv3d-unregistered", nn.Conv3d(1, 1, 2)),
    ("conv-transpose-unregistered", nn.ConvTranspose2d(1, 1, 2)),
]


@pytest.mark.parametrize(
    "module", [pytest.param(module, id=module_id) for module_id, module in UNSUPPORTED_MODULES]
)
def test_sampler_for_refuses_what_its_math_does_not_cover(module: nn.Module) -> None:
    assert sampler_for(module) is None


def test_registering_a_module_type_twice_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SAMPLERS, "_entries", dict(SAMPLERS._entries))  # undo new entries

    class Custom(nn.Module):
        pass

    class CustomSampler(ParameterSampler):
        def per_sample_grads(self, module: nn.Module, a: Tensor, b: Tensor) -> dict[str, Tensor]:
            return {}

    with pytest.raises(RegistryError, match="registered twice"):
        register_sampler(nn.Linear)(CustomSampler)
    register_sampler(Custom)(CustomSampler)
    assert isinstance(sampler_for(Custom()), CustomSampler)
    with pytest.raises(RegistryError, match="registered twice"):
        register_sampler(Custom)(CustomSampler)


# ------------------------------------------------------------------ 5. through the backend


class Transpose(nn.Module):
    """(batch, T, C) <-> (batch, C, T), parameter-free."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


def _assert_hooks_match_loop(model: nn.Module, data: TensorDataset, **options: int) -> None:
    """Traces and diagonals, hooks vs loop. A parameter whose gradient is zero in exact
    arithmetic (a bias feeding a normalisation) has a reference of pure rounding noise, so
    errors are relative to each value plus 1e-14 of the model's largest value."""
    reference = profile(model, data, backend="loop")
    fast = profile(model, data, backend="hooks", **options)
    assert list(fast["layer"]) == list(reference["layer"])
    got = torch.tensor(fast["fisher_trace"].values)
    want = torch.tensor(reference["fisher_trace"].values)
    scale = want.abs() + 1e-14 * want.abs().max() + 1e-300
    error = (got - want).abs() / scale
    assert float(error.max()) <= BACKEND_TOLERANCE, dict(
        zip(fast["layer"], error.tolist(), strict=True)
    )
    reference_diagonal = fisher_diagonal(model, data, backend="loop")
    diagonal = fisher_diagonal(model, data, backend="hooks", **options)
    assert set(diagonal) == set(reference_diagonal)
    largest = max(float(value.norm()) for value in reference_diagonal.values())
    for name, value in diagonal.items():
        want_value = reference_diagonal[name]
        assert value.shape == want_value.shape
        error = float((value - want_value).norm()) / (
            float(want_value.norm()) + 1e-14 * largest + 1e-300
        )
        assert error <= BACKEND_TOLERANCE, (name, error)


@st.composite
def image_models(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, ...]]:
    """Conv2d -> norm -> activation -> Flatten -> Linear -> norm -> Tanh -> Linear."""
    channels, size = draw(st.integers(1, 3)), draw(st.integers(3, 6))
    groups = draw(st.sampled_from([1, channels]))
    out_channels = groups * draw(st.integers(1, 2))
    kernel, stride, pad = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
    padding_mode = draw(st.sampled_from(PADDING_MODES))
    side = (size + 2 * pad - kernel) // stride + 1
    assume(side >= 2)
    norm = draw(st.sampled_from(["none", "batchnorm", "groupnorm", "instancenorm"]))
    activation = draw(st.sampled_from(["tanh", "prelu", "prelu-per-channel"]))
    hidden = draw(st.integers(3, 5))  # a LayerNorm over 2 values outputs +-1: degenerate
    head_norm = draw(st.sampled_from(["none", "layernorm", "batchnorm"]))
    layers: list[nn.Module] = [
        nn.Conv2d(
            channels,
            out_channels,
            kernel,
            stride=stride,
            padding=pad,
            padding_mode=padding_mode,
            groups=groups,
            bias=draw(st.booleans()),
        )
    ]
    layers += {
        "none": [],
        "batchnorm": [nn.BatchNorm2d(out_channels)],
        "groupnorm": [nn.GroupNorm(groups, out_channels)],
        "instancenorm": [nn.InstanceNorm2d(out_channels, affine=True)],
    }[norm]
    layers += {
        "tanh": [nn.Tanh()],
        "prelu": [nn.PReLU()],
        "prelu-per-channel": [nn.PReLU(out_channels)],
    }[activation]
    layers += [nn.Flatten(), nn.Linear(out_channels * side * side, hidden)]
    layers += {
        "none": [],
        "layernorm": [nn.LayerNorm(hidden)],
        "batchnorm": [nn.BatchNorm1d(hidden)],
    }[head_norm]
    layers += [nn.Tanh(), nn.Linear(hidden, 3)]
    event(f"image model: {norm}, {activation}, head {head_norm}")
    return nn.Sequential(*layers), (channels, size, size)


@st.composite
def sequence_models(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, ...], int]:
    """Embedding -> Linear (3-D) -> LayerNorm -> Conv1d -> GroupNorm/PReLU -> Linear."""
    vocabulary, length = draw(st.integers(2, 8)), draw(st.integers(2, 5))
    dim = draw(st.integers(2, 4))  # 1: LayerNorm of an affine function of a scalar, ill-posed
    padding_idx = draw(st.none() | st.integers(0, vocabulary - 1))
    # A LayerNorm or GroupNorm over one or two values outputs 0 or +-1 whatever its input, so
    # every gradient flowing through it is eps-small and ill-conditioned (the reference is
    # rounding noise): at least three values each here (one value: see the sampler cases).
    width, channels = draw(st.integers(3, 5)), draw(st.integers(1, 4))
    kernel = draw(st.integers(1, length))
    padding_mode = draw(st.sampled_from(PADDING_MODES))
    same = draw(st.booleans())
    positions = length if same else length - kernel + 1
    after = draw(st.sampled_from(["groupnorm", "prelu-per-channel", "prelu"]))
    assume(after != "groupnorm" or channels * positions > 2)
    model = nn.Sequential(
        nn.Embedding(vocabulary, dim, padding_idx=padding_idx),
        nn.Linear(dim, width),
        nn.LayerNorm(width, bias=draw(st.booleans())),
        Transpose(),
        nn.Conv1d(
            width, channels, kernel, padding="same" if same else 0, padding_mode=padding_mode
        ),
        {
            "groupnorm": nn.GroupNorm(1, channels),
            "prelu-per-channel": nn.PReLU(channels),
            "prelu": nn.PReLU(),
        }[after],
        nn.Flatten(),
        nn.Linear(channels * positions, 3),
    )
    event(f"sequence model: {after}, padding_idx={padding_idx is not None}")
    return model, (length,), vocabulary


def _dataset(shape: tuple[int, ...], vocabulary: int, n_samples: int, seed: int) -> TensorDataset:
    x = _input((n_samples, *shape), vocabulary, seed)
    y = torch.randint(0, 3, (n_samples,), generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, y)


@MODEL_FUZZ
@given(
    drawn=image_models(),
    n_samples=st.integers(1, 5),
    batch_size=st.integers(1, 3),
    chunk_size=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_hooks_matches_loop_on_drawn_image_models(
    drawn: tuple[nn.Module, tuple[int, ...]],
    n_samples: int,
    batch_size: int,
    chunk_size: int,
    seed: int,
) -> None:
    model, shape = drawn
    data = _dataset(shape, 0, n_samples, seed)
    _assert_hooks_match_loop(
        _prepared(model, seed), data, batch_size=batch_size, chunk_size=chunk_size
    )


@MODEL_FUZZ
@given(
    drawn=sequence_models(),
    n_samples=st.integers(1, 5),
    batch_size=st.integers(1, 3),
    chunk_size=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_hooks_matches_loop_on_drawn_sequence_models(
    drawn: tuple[nn.Module, tuple[int, ...], int],
    n_samples: int,
    batch_size: int,
    chunk_size: int,
    seed: int,
) -> None:
    model, shape, vocabulary = drawn
    data = _dataset(shape, vocabulary, n_samples, seed)
    _assert_hooks_match_loop(
        _prepared(model, seed), data, batch_size=batch_size, chunk_size=chunk_size
    )


class UnusedBranch(nn.Module):
    """One Linear whose output never reaches the logits, one never called at all."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 3)
        self.dead_end = nn.Linear(4, 2)
        self.never_called = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        self.dead_end(x)
        return self.used(x)


class EmbeddingScaledByFrequency(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 3, scale_grad_by_freq=True)
        self.head = nn.Linear(4 * 3, 3)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.embed(tokens).flatten(1))


class SequenceFirstLinear(nn.Module):
    """Applies a Linear to (T, batch, C): the batch is not on dim 0 of the layer's input."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.mix = nn.Linear(3, 3)
        self.head = nn.Linear(length * 3, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.mix(x.transpose(0, 1)).transpose(0, 1).flatten(1))


@dataclass(frozen=True)
class ModelCase:
    id: str
    make: Callable[[], nn.Module]
    shape: tuple[int, ...]
    vocabulary: int = 0
    n_samples: int = 5


MODEL_CASES = [
    ModelCase(
        "inplace-relu-after-linear",
        lambda: nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 3)),
        (4,),
    ),
    ModelCase(
        "batchnorm-then-inplace-relu",
        lambda: nn.Sequential(
            nn.Conv2d(2, 3, 2),
            nn.BatchNorm2d(3),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(12, 3),
        ),
        (2, 3, 3),
    ),
    ModelCase("output-unused-and-never-called-layers", UnusedBranch, (4,)),
    # PReLU(C) on (batch, C) input (fixed in e09a78b, see the PReLU sampler cases)
    ModelCase(
        "linear-then-prelu-per-channel",
        lambda: nn.Sequential(nn.Linear(4, 5), nn.PReLU(5), nn.Linear(5, 3)),
        (4,),
    ),
    # Fixed bug: Embedding(scale_grad_by_freq=True) scales each row's gradient by 1 / (its count in
    # the mini-batch); EmbeddingSampler ignores that and EmbeddingSampler.supports accepts the
    # module (embedding.py:27-28), so hooks returns a silently wrong trace for it.
    ModelCase("embedding-scale-grad-by-freq", EmbeddingScaledByFrequency, (4,), vocabulary=5),
    # Fixed bug: a layer whose input has the batch off dim 0 (sequence-first code). The samplers
    # and HooksBackend._chunked (hooks.py:135) take dim 0 of a and b as the batch: with
    # T != batch squared_norms crashes in torch.stack (hooks.py:100), with T == batch (next
    # case) it silently returns per-position instead of per-sample norms.
    ModelCase("sequence-first-linear-length-differs", lambda: SequenceFirstLinear(2), (2, 3)),
    ModelCase("sequence-first-linear-length-equals-batch", lambda: SequenceFirstLinear(5), (5, 3)),
]


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_hooks_matches_loop_on_edge_case_models(case: ModelCase) -> None:
    torch.manual_seed(0)
    model = _prepared(case.make())
    data = _dataset(case.shape, case.vocabulary, case.n_samples, seed=2)
    _assert_hooks_match_loop(model, data, batch_size=5, chunk_size=2)


# --------------------------------------------------- 6. no .grad written, no hooks left


HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def _all_hooks(model: nn.Module) -> dict[str, int]:
    """Non-empty hook registries, as {"module:registry": count}."""
    return {
        f"{name or '(root)'}:{kind}": len(getattr(module, kind))
        for name, module in model.named_modules()
        for kind in HOOK_DICTS
        if getattr(module, kind, None)
    }


STATE_CASES = [case for case in CASES if case.id not in ("mcnn", "vgg_small")]


@pytest.mark.parametrize("case", STATE_CASES, ids=lambda c: c.id)
def test_hooks_backend_writes_no_grad_and_leaves_no_hooks(case: Case) -> None:
    model, data = case.model(), case.data()
    parameters = dict(model.named_parameters())
    sentinel = next(iter(parameters))
    before = torch.full_like(parameters[sentinel], 7.0)
    parameters[sentinel].grad = before.clone()  # an existing .grad is left as it was
    profile(model, data, backend="hooks", batch_size=3, chunk_size=2)
    fisher_diagonal(model, data, backend="hooks", batch_size=3, chunk_size=2)
    for name, param in parameters.items():
        if name == sentinel:
            assert torch.equal(param.grad, before)
        else:
            assert param.grad is None, name
    assert _all_hooks(model) == {}


class Explodes(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError("boom inside the forward")


@pytest.mark.parametrize("quantity", ["squared_norms", "diagonal"])
def test_hooks_are_removed_after_an_exception_in_the_forward(quantity: str) -> None:
    """Hooks fired before the failure (the first Linear) and a user's own hook survive as
    they were: only the backend's hooks are removed."""
    model = _prepared(nn.Sequential(nn.Linear(4, 3), Explodes(), nn.Linear(3, 2)))
    user_handle = model[2].register_forward_hook(lambda module, inputs, output: None)
    engine = make_backend("hooks")
    x, y = _input((3, 4), 0, seed=1), torch.tensor([0, 1, 0])
    with pytest.raises(RuntimeError, match="boom"):
        getattr(engine, quantity)(model, named_layers(model), x, y)
    assert _all_hooks(model) == {"2:_forward_hooks": 1}
    user_handle.remove()
    assert _all_hooks(model) == {}
    assert all(param.grad is None for param in model.parameters())
