"""Tests for ``fisher_mi.defenses``: each loss and measure against a hand computation, the
registry and ``build_defense``, and BiDO's hidden layers under a plan.

Training runs with defenses (history, checkpoints, profiling, the command line) are in
``test_defense_training.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from fisher_mi.defenses import (
    DEFENSES,
    MEASURES,
    BiDO,
    NegativeLabelSmoothing,
    build_defense,
    coco,
    gaussian_kernel,
    hidden_layers,
    linear_kernel,
    normalised_hsic,
    parse_defense_params,
    plain_hsic,
    scheduled_alpha,
    smoothed_cross_entropy,
)
from fisher_mi.errors import ConfigError, RegistryError
from fisher_mi.models import ARCHITECTURES, build_model
from fisher_mi.plan import apply_plan, prefix_plan
from fisher_mi.training.objective import CrossEntropy, measuring

# ----------------------------------------------------------------------------- NLS


def test_smoothed_cross_entropy_is_the_formula_by_hand() -> None:
    logits = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]
    labels = [0, 2]
    alpha = -0.05
    expected = 0.0
    for row, label in zip(logits, labels, strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        nll = [log_z - v for v in row]  # -log p_c
        expected += (1 - alpha) * nll[label] + alpha * sum(nll) / len(nll)
    expected /= len(logits)
    found = smoothed_cross_entropy(torch.tensor(logits), torch.tensor(labels), alpha)
    assert found.item() == pytest.approx(expected, rel=1e-6)  # float32 against float64


def test_positive_smoothing_is_torchs_label_smoothing() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.randint(0, 4, (6,))
    ours = smoothed_cross_entropy(logits, labels, 0.1)
    torch.testing.assert_close(ours, F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_negative_smoothing_raises_the_loss_of_a_confident_wrong_class() -> None:
    """alpha < 0 rewards low probabilities of the other classes: a flatter wrong-class
    distribution costs more than CE says (so the loss is not CE with the sign dropped)."""
    logits, labels = torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([0])
    plain = F.cross_entropy(logits, labels)
    assert smoothed_cross_entropy(logits, labels, -0.05) < plain
    assert smoothed_cross_entropy(logits, labels, 0.05) > plain


@pytest.mark.parametrize(
    ("epochs", "expected"),
    [
        (8, [0, 0, 0, 0, 0.5, 1, 1, 1]),  # 0 to E/2 = 4, linear to 3E/4 = 6
        (4, [0, 0, 1, 1]),
        (1, [1]),  # a one-epoch run smooths from its only epoch
    ],
)
def test_the_schedule_is_zero_for_half_the_run_then_linear_to_alpha(
    epochs: int, expected: list[float]
) -> None:
    found = [scheduled_alpha(-0.05, epoch, epochs) for epoch in range(1, epochs + 1)]
    assert found == pytest.approx([-0.05 * share for share in expected])


def test_nls_start_epoch_sets_and_reports_the_factor() -> None:
    nls = NegativeLabelSmoothing()
    assert nls.start_epoch(1, 4) == {"alpha": 0.0}
    assert nls.start_epoch(3, 4) == {"alpha": pytest.approx(-0.05)}
    logits, labels = torch.tensor([[1.0, 0.0]]), torch.tensor([1])
    expected = smoothed_cross_entropy(logits, labels, -0.05)
    torch.testing.assert_close(nls(logits, torch.zeros(1, 2), labels).loss, expected)


def test_nls_measures_held_out_data_at_its_final_factor_in_every_epoch() -> None:
    """Epochs compare on one validation loss: early in the schedule (factor 0) the measured
    loss is still the one at alpha, and the training factor is left as scheduled."""
    nls = NegativeLabelSmoothing(alpha=-0.2)
    nls.start_epoch(1, 4)
    logits, labels = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    measured = measuring(nls)(logits, torch.zeros(1, 3), labels).loss
    torch.testing.assert_close(measured, smoothed_cross_entropy(logits, labels, -0.2))
    assert nls.current == 0.0
    plain = CrossEntropy()
    assert measuring(plain) is plain


# ----------------------------------------------------------------------------- kernels


def _centred_by_loops(k: list[list[float]]) -> list[list[float]]:
    m = len(k)
    rows = [sum(k[i]) / m for i in range(m)]
    cols = [sum(k[i][j] for i in range(m)) / m for j in range(m)]
    grand = sum(rows) / m
    return [[k[i][j] - rows[i] - cols[j] + grand for j in range(m)] for i in range(m)]


@pytest.fixture
def kernels() -> tuple[Tensor, Tensor]:
    """Gaussian kernels of two random float64 views of a batch of 7."""
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    b = a[:, :3] ** 2 + 0.3 * torch.randn(7, 3, generator=generator, dtype=torch.float64)
    return gaussian_kernel(a, 1.0), gaussian_kernel(b, 1.0)


def test_gaussian_kernel_is_the_formula_by_hand() -> None:
    a = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], dtype=torch.float64)
    sigma = 0.7
    for i in range(3):
        for j in range(3):
            squared = sum((a[i, d] - a[j, d]).item() ** 2 for d in range(2))
            expected = math.exp(-squared / (2 * sigma**2 * 2))
            assert gaussian_kernel(a, sigma)[i, j].item() == pytest.approx(expected, abs=1e-14)
    torch.testing.assert_close(linear_kernel(a), a @ a.T)


def test_plain_hsic_is_its_double_sum(kernels: tuple[Tensor, Tensor]) -> None:
    k, l = kernels  # noqa: E741
    kc, lc = _centred_by_loops(k.tolist()), _centred_by_loops(l.tolist())
    m = len(kc)
    double_sum = sum(kc[i][j] * lc[i][j] for i in range(m) for j in range(m)) / (m - 1) ** 2
    assert plain_hsic(k, l).item() == pytest.approx(double_sum, abs=1e-14)


def test_normalised_hsic_equals_an_explicit_inverse_in_float64(
    kernels: tuple[Tensor, Tensor],
) -> None:
    k, l = kernels  # noqa: E741
    m = k.shape[0]
    h = torch.eye(m, dtype=torch.float64) - torch.ones(m, m, dtype=torch.float64) / m
    ridge = 1e-5 * m * torch.eye(m, dtype=torch.float64)

    def ratio(kernel: Tensor) -> Tensor:
        centred = h @ kernel @ h
        return centred @ torch.linalg.inv(centred + ridge)

    expected = torch.sum(ratio(k) * ratio(l).T)
    assert abs(normalised_hsic(k, l).item() - expected.item()) < 1e-10


def test_coco_is_the_root_of_the_frobenius_norm(kernels: tuple[Tensor, Tensor]) -> None:
    k, l = kernels  # noqa: E741
    m = k.shape[0]
    kc, lc = _centred_by_loops(k.tolist()), _centred_by_loops(l.tolist())
    product = [[sum(kc[i][t] * lc[t][j] for t in range(m)) for j in range(m)] for i in range(m)]
    frobenius = math.sqrt(sum(v * v for row in product for v in row))
    assert coco(k, l).item() == pytest.approx(math.sqrt(frobenius) / m, rel=1e-12)


def test_measures_grow_with_dependence() -> None:
    """Each measure ranks a view that determines the other above an independent one."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(16, 4, generator=generator, dtype=torch.float64)
    noise = torch.randn(16, 4, generator=generator, dtype=torch.float64)
    k, dependent, independent = (gaussian_kernel(v, 1.0) for v in (a, 2 * a, noise))
    for name, measure in MEASURES.items():
        assert measure(k, dependent) > measure(k, independent), name


def test_coco_has_a_finite_gradient_on_one_label() -> None:
    z = torch.randn(5, 3, requires_grad=True)
    labels = linear_kernel(F.one_hot(torch.zeros(5, dtype=torch.long), 3).float())
    coco(gaussian_kernel(z, 5.0), labels).backward()
    assert torch.isfinite(z.grad).all()


# ----------------------------------------------------------------------------- registry


def test_the_registry_holds_the_defenses_and_builds_from_text() -> None:
    assert {"nls", "bido"} <= set(DEFENSES.names())
    params = parse_defense_params(["a1=0.1", "measure=coco"])
    bido = build_defense("bido", params)
    assert isinstance(bido, BiDO)
    assert (bido.a1, bido.a2, bido.measure) == (0.1, 0.5, "coco")
    record = bido.record()
    assert build_defense(record["name"], record["params"]).record() == record


BUILD_ERRORS = [
    ("unknown-defense", "dp", {}, RegistryError, "known: "),
    ("unknown-param", "nls", {"beta": "1"}, ConfigError, "its parameters: alpha"),
    ("not-a-number", "nls", {"alpha": "low"}, ConfigError, "alpha must be a float"),
    ("alpha-one", "nls", {"alpha": 1.0}, ConfigError, "below 1"),
    (
        "negative-weight",
        "bido",
        {"a1": -1},
        ConfigError,
        "a1 must be a finite number of at least 0",
    ),
    ("zero-sigma", "bido", {"sigma": 0}, ConfigError, "sigma must be positive"),
    ("unknown-measure", "bido", {"measure": "mmd"}, RegistryError, "known: hsic, coco"),
]


@pytest.mark.parametrize(
    ("name", "params", "error", "message"),
    [case[1:] for case in BUILD_ERRORS],
    ids=[case[0] for case in BUILD_ERRORS],
)
def test_build_defense_guards(name: str, params: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build_defense(name, params)


@pytest.mark.parametrize("pairs", [["a1"], ["=1"], ["a1="], ["a1=1", "a1=2"]])
def test_defense_params_are_key_value_pairs(pairs: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"KEY=VALUE|given twice"):
        parse_defense_params(pairs)


# ----------------------------------------------------------------------------- BiDO layers


@pytest.mark.parametrize("arch", [name for name, _ in ARCHITECTURES.items()])
def test_every_architecture_names_hidden_layers_it_has(arch: str) -> None:
    with torch.device("meta"):
        model = build_model(arch)
    assert hidden_layers(model) == ARCHITECTURES.get(arch).hidden_layers


def test_under_a_plan_only_outputs_of_trained_blocks_are_regularised() -> None:
    model = build_model("mcnn", num_classes=5)  # blocks end at feature.3, .7, .10
    apply_plan(model, prefix_plan(model, 2))  # feature.0 and .1 (the first block) frozen
    assert hidden_layers(model) == ("feature.7", "feature.10")
    apply_plan(model, prefix_plan(model, 6))  # every conv block frozen: only fc_layer trains
    with pytest.raises(ConfigError, match="lower the cutoff"):
        hidden_layers(model)


def test_bido_is_ce_plus_the_dependence_terms_of_the_hooked_features() -> None:
    torch.manual_seed(0)
    model = build_model("mcnn", num_classes=5).eval()
    bido = BiDO(a1=0.3, a2=0.7, measure="plain_hsic")
    x, y = torch.rand(6, 1, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0])
    bido.prepare(model, torch.device("cpu"))
    loss = bido(model(x), x, y).loss
    bido.release()
    assert not any(m._forward_hooks for m in model.modules())  # released
    z = [model.feature[:4](x), model.feature[:8](x), model.feature(x)]
    k_x, k_y = gaussian_kernel(x.flatten(1), 5.0), linear_kernel(F.one_hot(y, 5).float())
    expected = F.cross_entropy(model(x)[1], y)
    for hidden in z:
        k_z = gaussian_kernel(hidden.flatten(1), 5.0)
        expected = expected + 0.3 * plain_hsic(k_x, k_z) - 0.7 * plain_hsic(k_z, k_y)
    torch.testing.assert_close(loss, expected)


def test_coco_and_hsic_give_different_gradients_in_one_step() -> None:
    x, y = torch.rand(8, 1, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    gradients = {}
    for measure in ("hsic", "coco"):
        torch.manual_seed(0)
        model = build_model("mcnn", num_classes=5)
        bido = BiDO(measure=measure)
        bido.prepare(model, torch.device("cpu"))
        bido(model(x), x, y).loss.backward()
        bido.release()
        gradients[measure] = model.feature[0].weight.grad.clone()
    assert not torch.allclose(gradients["hsic"], gradients["coco"], rtol=1e-3, atol=0)
