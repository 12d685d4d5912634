"""``fisher="true"``: Monte-Carlo labels converge to the exact true Fisher."""

from __future__ import annotations

import pytest
import torch

from fisher_mi.fisher import profile
from fisher_mi.models import named_layers
from fisher_mi.models.outputs import logits_of
from tests.cases import CASES

MLP = CASES[0]


def exact_true_fisher(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_n sum_c p(c|x_n) ||grad_{theta_l} -log p(c|x_n)||^2 per layer, by brute force."""
    layers = named_layers(model)
    parameters = dict(model.named_parameters())
    total = torch.zeros(len(layers), dtype=torch.float64)
    for sample in x:
        log_p = torch.log_softmax(logits_of(model(sample.unsqueeze(0))), dim=1)[0]
        for c in range(log_p.shape[0]):
            grads = torch.autograd.grad(-log_p[c], list(parameters.values()), retain_graph=True)
            by_name = dict(zip(parameters, grads, strict=True))
            norms = torch.stack(
                [sum(by_name[n].pow(2).sum() for n in layer.param_names) for layer in layers]
            )
            total += log_p[c].exp().detach() * norms.detach()
    return total / x.shape[0]


def test_monte_carlo_converges_to_exact_true_fisher() -> None:
    model, data = MLP.model(), MLP.data()
    exact = exact_true_fisher(model, data.tensors[0])
    estimate = profile(model, data, fisher="true", mc_samples=3000, backend="vmap", chunk_size=3000)
    relative = (torch.tensor(estimate["fisher_trace"].values) - exact).abs() / exact
    # 7 inputs x 3000 draws: the estimate's relative standard deviation is about 1%;
    # 5% is a >4-sigma bound, so a wrong weighting (e.g. uniform over classes) fails it.
    assert float(relative.max()) < 0.05, relative.tolist()


def test_true_fisher_differs_from_empirical_and_is_seeded() -> None:
    model, data = MLP.model(), MLP.data()
    first = profile(model, data, fisher="true", mc_samples=2, seed=3)
    again = profile(model, data, fisher="true", mc_samples=2, seed=3)
    other_seed = profile(model, data, fisher="true", mc_samples=2, seed=4)
    empirical = profile(model, data)
    assert first["fisher_trace"].tolist() == again["fisher_trace"].tolist()
    assert first["fisher_trace"].tolist() != other_seed["fisher_trace"].tolist()
    assert first["fisher_trace"].tolist() != empirical["fisher_trace"].tolist()
    assert set(first["fisher"]) == {"true"} and set(empirical["fisher"]) == {"empirical"}


@pytest.mark.parametrize("mc_samples", [1, 4])
def test_true_fisher_counts_inputs_not_draws(mc_samples: int) -> None:
    model, data = MLP.model(), MLP.data()
    table = profile(model, data, fisher="true", mc_samples=mc_samples)
    assert set(table["n_samples"]) == {len(data)}
