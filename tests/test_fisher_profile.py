"""``profile``: the table, its scaling, subsets, and what it leaves untouched."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from fisher_mi.fisher import BACKENDS, COLUMNS, FISHER_KINDS, make_backend, profile
from fisher_mi.models import named_layers
from tests.cases import CASES

MLP, CNN, _, _, FROZEN = CASES[:5]


def test_table_has_the_design_columns_and_one_row_per_layer() -> None:
    model, data = CNN.model(), CNN.data()
    table = profile(model, data, split="public")
    layers = named_layers(model)
    assert list(table.columns) == COLUMNS
    assert table["layer"].tolist() == [layer.name for layer in layers]
    assert table["depth"].tolist() == list(range(len(layers)))
    assert table["kind"].tolist() == [layer.kind for layer in layers]
    assert table["n_params"].tolist() == [layer.n_params for layer in layers]
    assert set(table["split"]) == {"public"} and set(table["n_samples"]) == {len(data)}
    assert set(table["backend"]) == {BACKENDS.resolve("auto")}  # the resolved name is recorded
    pd.testing.assert_series_equal(
        table["fisher_per_param"], table["fisher_trace"] / table["n_params"], check_names=False
    )
    assert (table["fisher_trace"] > 0).all()


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_result_does_not_depend_on_batch_size(batch_size: int) -> None:
    model, data = MLP.model(), MLP.data()
    reference = profile(model, data, batch_size=7)["fisher_trace"]
    got = profile(model, data, batch_size=batch_size)["fisher_trace"]
    torch.testing.assert_close(
        torch.tensor(got.values), torch.tensor(reference.values), rtol=1e-12, atol=0
    )


def test_dataloader_and_dataset_give_the_same_table() -> None:
    model, data = CNN.model(), CNN.data()
    from_dataset = profile(model, data)
    from_loader = profile(model, DataLoader(data, batch_size=2))
    pd.testing.assert_frame_equal(from_dataset, from_loader)


def test_a_plain_iterable_of_batches_is_accepted() -> None:
    model, data = MLP.model(), MLP.data()
    x, y = data.tensors
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    pd.testing.assert_frame_equal(profile(model, batches), profile(model, data))


def test_max_samples_takes_a_seeded_subset() -> None:
    model, data = MLP.model(), MLP.data()
    first = profile(model, data, max_samples=3, seed=1)
    again = profile(model, data, max_samples=3, seed=1)
    other = profile(model, data, max_samples=3, seed=2)
    assert set(first["n_samples"]) == {3}
    pd.testing.assert_frame_equal(first, again)
    assert first["fisher_trace"].tolist() != other["fisher_trace"].tolist()


def test_max_samples_truncates_a_loader() -> None:
    model, data = MLP.model(), MLP.data()
    x, y = data.tensors
    table = profile(model, DataLoader(data, batch_size=2), max_samples=3)
    direct = profile(model, [(x[:3], y[:3])])
    pd.testing.assert_frame_equal(table, direct)


def test_frozen_parameters_are_profiled_unless_trainable_only() -> None:
    model, data = FROZEN.model(), FROZEN.data()
    full = profile(model, data).set_index("layer")
    trainable = profile(model, data, trainable_only=True).set_index("layer")
    assert full.loc["1", "fisher_trace"] > 0  # the frozen first layer still has Fisher information
    assert "1" not in trainable.index  # wholly frozen: dropped
    assert trainable.loc["3", "n_params"] == full.loc["3", "n_params"] - 6  # frozen bias left out
    assert trainable.loc["5", "fisher_trace"] == pytest.approx(
        full.loc["5", "fisher_trace"], rel=1e-12
    )


def test_model_state_is_restored() -> None:
    model, data = CNN.model(), CNN.data()
    model.train()
    model[1].eval()  # a mixed train/eval state must come back exactly
    model[0].weight.requires_grad_(False)
    modes = [module.training for module in model.modules()]
    flags = [param.requires_grad for param in model.parameters()]
    state = {key: value.clone() for key, value in model.state_dict().items()}
    profile(model, data)
    assert [module.training for module in model.modules()] == modes
    assert [param.requires_grad for param in model.parameters()] == flags
    assert all(param.grad is None for param in model.parameters())  # .grad never written
    for key, value in model.state_dict().items():  # BatchNorm statistics untouched (eval mode)
        assert torch.equal(value, state[key]), key


def test_profile_runs_in_eval_mode_even_for_a_training_model() -> None:
    model, data = CNN.model(), CNN.data()
    in_eval = profile(model, data)
    model.train()
    assert profile(model, data)["fisher_trace"].tolist() == in_eval["fisher_trace"].tolist()


def test_explicit_cpu_device_and_float32_inputs_cast_to_the_model_dtype() -> None:
    model = MLP.model(torch.float64)
    float32_data = MLP.data(torch.float32)
    table = profile(model, float32_data, device="cpu")
    assert (table["fisher_trace"] > 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    model, data = CNN.model(), CNN.data()
    on_cpu = profile(model, data)
    on_cuda = profile(model, data, device="cuda")
    assert next(model.parameters()).device.type == "cpu"  # moved back afterwards
    torch.testing.assert_close(
        torch.tensor(on_cuda["fisher_trace"].values),
        torch.tensor(on_cpu["fisher_trace"].values),
        rtol=1e-9,
        atol=0,
    )


def test_tuple_output_uses_the_last_element_as_logits() -> None:
    class Wrapped(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            logits = self.inner(x)
            return x.flatten(1), logits.softmax(1), logits

    model, data = MLP.model(), MLP.data()
    plain = profile(model, data)["fisher_trace"].tolist()
    assert profile(Wrapped(model), data)["fisher_trace"].tolist() == plain


@pytest.mark.parametrize("backend", ["loop", "vmap", "hooks"])
def test_shared_parameters_stay_parameters(backend: str) -> None:
    """A module used twice, and a weight tied across two modules, keep their Parameters."""
    first, second = nn.Linear(12, 12), nn.Linear(12, 3)
    tied = nn.Linear(12, 12)
    tied.weight = first.weight
    model = nn.Sequential(nn.Flatten(), first, nn.Tanh(), first, tied, nn.Tanh(), second).double()
    before = [(name, param) for name, param in model.named_parameters(remove_duplicate=False)]
    reference = profile(model, MLP.data(), backend="loop")
    table = profile(model, MLP.data(), backend=backend)
    after = list(model.named_parameters(remove_duplicate=False))
    assert [(n, id(p)) for n, p in after] == [(n, id(p)) for n, p in before]
    assert all(isinstance(p, nn.Parameter) for _, p in after)
    torch.testing.assert_close(
        torch.tensor(table["fisher_trace"].values),
        torch.tensor(reference["fisher_trace"].values),
        rtol=1e-10,
        atol=0,
    )


def _rows_per_forward(model: nn.Module, run: Callable[[], object]) -> list[int]:
    """The leading size of the input of every forward of ``model`` while ``run()`` runs."""
    rows: list[int] = []
    handle = model.register_forward_hook(lambda _m, inputs, _o: rows.append(inputs[0].shape[0]))
    try:
        run()
    finally:
        handle.remove()
    return rows


@pytest.mark.parametrize("fisher", FISHER_KINDS)
@pytest.mark.parametrize("backend", ["loop", "vmap", "hooks"])
def test_profile_runs_the_model_only_as_its_backend_does(backend: str, fisher: str) -> None:
    """``profile`` adds no forward of its own: labels are checked against (empirical), or
    drawn from (true Fisher), the logits of the backend's own forward."""
    model, data = MLP.model(), MLP.data()
    x, y = data.tensors
    engine = make_backend(backend)
    direct = _rows_per_forward(
        model, lambda: engine.squared_norms(model, named_layers(model), x, y)
    )
    through_profile = _rows_per_forward(
        model, lambda: profile(model, data, backend=backend, fisher=fisher, batch_size=len(data))
    )
    assert through_profile == direct
