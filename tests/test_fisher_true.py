"""``fisher="true"``: Monte-Carlo labels converge to the exact true Fisher."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from fisher_mi.fisher import fisher_diagonal, profile
from fisher_mi.fisher.profile import MAX_MC_SAMPLES
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
    model, inputs = MLP.model(), MLP.data().tensors[0]
    repeated = inputs.repeat(3, 1, 1, 1)  # the same true Fisher, three times the draws
    data = TensorDataset(repeated, torch.zeros(len(repeated), dtype=torch.long))
    exact = exact_true_fisher(model, inputs)
    estimate = profile(model, data, fisher="true", mc_samples=MAX_MC_SAMPLES, batch_size=21)
    relative = (torch.tensor(estimate["fisher_trace"].values) - exact).abs() / exact
    # 21 inputs x 1000 draws: the estimate's relative standard deviation is about 1%;
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


def test_monte_carlo_draws_never_give_a_backend_more_rows_than_the_batch() -> None:
    """mc_samples draws of a batch of B inputs reach the backend B rows at a time, so memory
    is bounded by the batch size, not by B x mc_samples."""
    model, data = MLP.model(), MLP.data()
    rows: list[int] = []
    handle = model.register_forward_hook(lambda _m, inputs, _o: rows.append(inputs[0].shape[0]))
    try:
        profile(model, data, fisher="true", mc_samples=5, batch_size=3)
    finally:
        handle.remove()
    assert max(rows) <= 3, rows
    assert sum(rows) == len(data) * 5 + 1  # every draw once; the hooks backend's 1-row probe


@pytest.mark.parametrize("quantity", ["trace", "diagonal"])
def test_true_fisher_does_not_depend_on_the_batch_size(quantity: str) -> None:
    """Draw m of input n uses the (n * mc_samples + m)-th number of the seeded stream,
    however the inputs are batched: same seed, same table (up to summation order)."""
    model, data = MLP.model(), MLP.data()
    run = profile if quantity == "trace" else fisher_diagonal

    def values(batch_size: int) -> torch.Tensor:
        result = run(model, data, fisher="true", mc_samples=3, seed=2, batch_size=batch_size)
        if quantity == "trace":
            return torch.tensor(result["fisher_trace"].values)
        return torch.cat([value.flatten() for value in result.values()])

    torch.testing.assert_close(values(2), values(7), rtol=1e-12, atol=1e-300)


def test_true_fisher_ignores_labels_outside_the_model_classes() -> None:
    """Public identities are not the model's classes: the true Fisher does not use the
    labels, so it must not refuse them."""
    model, data = MLP.model(), MLP.data()
    x, y = data.tensors
    foreign = TensorDataset(x, y + 1000)
    got = profile(model, foreign, fisher="true", seed=1)["fisher_trace"].tolist()
    assert got == profile(model, data, fisher="true", seed=1)["fisher_trace"].tolist()
