"""Every fast backend against the float64 per-sample loop, and the loop against autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fisher_mi.fisher import BACKENDS, fisher_diagonal, profile
from fisher_mi.models import named_layers
from fisher_mi.models.outputs import logits_of
from tests.cases import CASES, Case

BACKENDS_WITH_LOOP = [name for name, _ in BACKENDS.items()]
FAST_BACKENDS = [name for name in BACKENDS_WITH_LOOP if name != "loop"]
RELATIVE_TOLERANCE = 1e-8  # float64 throughout: disagreement beyond this is a bug, not rounding


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    return (got - want).abs() / want.abs().clamp_min(1e-300)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_backend_matches_loop_in_float64(case: Case, backend: str) -> None:
    model, data = case.model(), case.data()
    reference = profile(model, data, backend="loop", batch_size=3)
    fast = profile(model, data, backend=backend, batch_size=3, chunk_size=2)
    assert list(fast["layer"]) == list(reference["layer"])
    error = _relative_error(
        torch.tensor(fast["fisher_trace"].values), torch.tensor(reference["fisher_trace"].values)
    )
    assert float(error.max()) <= RELATIVE_TOLERANCE, dict(
        zip(fast["layer"], error.tolist(), strict=True)
    )


TRUE_FISHER_CASES = [CASES[1], CASES[8], CASES[10]]  # batchnorm; tokens; vmap fallback


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("case", TRUE_FISHER_CASES, ids=lambda c: c.id)
def test_backend_matches_loop_for_true_fisher_with_same_seed(case: Case, backend: str) -> None:
    """Every backend draws the same labels for a seed, from the logits of its own forward
    (the hooks backend hands its labels to the vmap fallback)."""
    model, data = case.model(), case.data()
    reference = profile(model, data, backend="loop", fisher="true", mc_samples=3, seed=5)
    fast = profile(model, data, backend=backend, fisher="true", mc_samples=3, seed=5)
    error = _relative_error(
        torch.tensor(fast["fisher_trace"].values), torch.tensor(reference["fisher_trace"].values)
    )
    assert float(error.max()) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("case", CASES[:5], ids=lambda c: c.id)
def test_loop_equals_mean_of_squared_backward_gradients(case: Case) -> None:
    """The oracle itself, checked with plain ``loss.backward()`` and the 1/N scaling."""
    model, data = case.model(), case.data()
    layers = named_layers(model)
    parameters = dict(model.named_parameters())
    expected = torch.zeros(len(layers), dtype=torch.float64)
    for x, y in data:
        for param in parameters.values():
            param.requires_grad_(True)
            param.grad = None
        F.cross_entropy(logits_of(model(x.unsqueeze(0))), y.view(1)).backward()
        for index, layer in enumerate(layers):
            expected[index] += sum(
                parameters[name].grad.pow(2).sum()
                for name in layer.param_names
                if parameters[name].grad is not None
            )
    expected /= len(data)
    got = torch.tensor(profile(case.model(), data, backend="loop")["fisher_trace"].values)
    assert float(_relative_error(got, expected).max()) <= 1e-12  # same arithmetic, same dtype


@pytest.mark.parametrize("backend", BACKENDS_WITH_LOOP)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_diagonal_matches_per_sample_gradients_and_sums_to_the_trace(
    case: Case, backend: str
) -> None:
    """The diagonal against squares of ``loss.backward()`` gradients (float64), and its
    per-layer sums against ``profile``'s trace."""
    model, data = case.model(), case.data()
    parameters = dict(model.named_parameters())
    expected = {name: torch.zeros_like(p) for name, p in parameters.items()}
    for param in parameters.values():
        param.requires_grad_(True)  # frozen parameters are profiled too
    for x, y in data:
        for param in parameters.values():
            param.grad = None
        F.cross_entropy(logits_of(model(x.unsqueeze(0))), y.view(1)).backward()
        for name, param in parameters.items():
            if param.grad is not None:
                expected[name] += param.grad.pow(2) / len(data)
    model = case.model()
    diagonal = fisher_diagonal(model, data, backend=backend, batch_size=3, chunk_size=2)
    assert set(diagonal) == set(expected)
    for name, value in diagonal.items():
        assert value.shape == expected[name].shape
        torch.testing.assert_close(value, expected[name], rtol=RELATIVE_TOLERANCE, atol=1e-14)
    trace = profile(model, data, backend="loop")
    for layer, row in zip(named_layers(model), trace.itertuples(), strict=True):
        total = sum(float(diagonal[name].sum()) for name in layer.param_names)
        assert total == pytest.approx(row.fisher_trace, rel=RELATIVE_TOLERANCE)
