"""Every fast backend against the float64 per-sample loop, and the loop against autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fisher_mi.fisher import BACKENDS, profile
from fisher_mi.fisher.targets import logits_of
from fisher_mi.models import named_layers
from tests.cases import CASES, Case

FAST_BACKENDS = [name for name, _ in BACKENDS.items() if name != "loop"]
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


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_backend_matches_loop_for_true_fisher_with_same_seed(backend: str) -> None:
    case = CASES[1]
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
