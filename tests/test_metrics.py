"""Tests for the model-inversion metrics (fisher_mi.metrics): top-k hits on hand tables, the
KNN distance on a hand-made 2-D example and against brute force, and the Frechet distance
against closed forms on samples whose empirical mean and covariance are exactly the given ones.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import Tensor

import fisher_mi.metrics
from fisher_mi.errors import ConfigError, DataError, NonFiniteError
from fisher_mi.evaluate import metrics as metrics_module
from fisher_mi.metrics import (
    FewSamplesWarning,
    frechet_distance,
    frechet_report,
    knn_distance,
    topk_hits,
)
from tests.error_cases import one_line

F64 = torch.float64


def test_public_face_is_the_evaluate_module() -> None:
    assert fisher_mi.metrics.topk_hits is metrics_module.topk_hits
    assert fisher_mi.metrics.knn_distance is metrics_module.knn_distance
    assert fisher_mi.metrics.frechet_distance is metrics_module.frechet_distance


# ---------------------------------------------------------------------------------------------
# topk_hits. Rule: hit iff fewer than k OTHER classes score >= the label's score, so a tie at
# the k-th place counts against the label. Rows: (logits, label, hits at k = 1, 2, 3).
TOPK_ROWS = [
    pytest.param([3.0, 1.0, 2.0], 0, (True, True, True), id="label-largest"),
    pytest.param([3.0, 1.0, 2.0], 2, (False, True, True), id="label-second"),
    pytest.param([3.0, 1.0, 2.0], 1, (False, False, True), id="label-smallest"),
    pytest.param([0.0, 5.0, 5.0], 1, (False, True, True), id="tie-at-the-top-counts-against"),
    pytest.param([1.0, 1.0, 1.0], 0, (False, False, True), id="all-tied-hits-only-at-k=C"),
    pytest.param([4.0, 2.0, 2.0], 0, (True, True, True), id="tie-below-the-label-is-harmless"),
    pytest.param([-1.0, -7.0, -1.0], 2, (False, True, True), id="negative-scores-tied"),
]


@pytest.mark.parametrize(("row", "label", "expected"), TOPK_ROWS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_topk_hits_on_a_hand_table(row: list, label: int, expected: tuple, k: int) -> None:
    hits = topk_hits(torch.tensor([row]), torch.tensor([label]), k)
    assert hits.dtype == torch.bool and hits.tolist() == [expected[k - 1]]


def test_topk_hits_of_a_whole_table_at_once() -> None:
    logits = torch.tensor([param.values[0] for param in TOPK_ROWS])
    labels = torch.tensor([param.values[1] for param in TOPK_ROWS])
    for k in (1, 2, 3):
        expected = [param.values[2][k - 1] for param in TOPK_ROWS]
        assert topk_hits(logits, labels, k).tolist() == expected


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_topk_hits_equal_topk_membership_without_ties(k: int) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 10, generator=generator, dtype=F64)  # continuous: no ties
    labels = torch.randint(0, 10, (200,), generator=generator)
    expected = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    assert torch.equal(topk_hits(logits, labels, k), expected)


def test_topk_hits_of_no_rows() -> None:
    assert topk_hits(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 2).shape == (0,)


@pytest.mark.parametrize("k", [0, 4, -1, 1.0, True, None], ids=repr)
def test_topk_hits_refuses_k_outside_one_to_classes(k: object) -> None:
    with pytest.raises(ConfigError) as caught:
        topk_hits(torch.zeros(2, 3), torch.tensor([0, 1]), k)  # type: ignore[arg-type]
    one_line(caught.value, "from 1 to the 3 classes", repr(k))


BAD_TOPK = [
    pytest.param(torch.zeros(2, 3), torch.tensor([0, 3]), DataError, "label 3", id="label-high"),
    pytest.param(torch.zeros(2, 3), torch.tensor([-1, 0]), DataError, "label -1", id="label-neg"),
    pytest.param(torch.zeros(2, 3), torch.tensor([0.0, 1.0]), ConfigError, "integer", id="float"),
    pytest.param(torch.zeros(2, 3), torch.tensor([0]), ConfigError, "2 labels", id="too-few"),
    pytest.param(torch.zeros(3), torch.tensor([0]), ConfigError, "2-D", id="logits-1d"),
    pytest.param(
        torch.tensor([[0.0, math.nan]]), torch.tensor([0]), NonFiniteError, "NaN", id="nan"
    ),
]


@pytest.mark.parametrize(("logits", "labels", "error", "says"), BAD_TOPK)
def test_topk_hits_refuses_bad_input(logits: Tensor, labels: Tensor, error: type, says: str):
    with pytest.raises(error) as caught:
        topk_hits(logits, labels, 1)
    one_line(caught.value, says)


# ---------------------------------------------------------------------------------------------
# knn_distance. Hand-made 2-D example: identity 0 at (0,0) and (2,0), identity 1 at (0,3) and
# (10,10). Squared distances to the nearest image OF THE SAME identity:
#   (1,1) id 0: 1+1 = 2 to both;          (0,1) id 1: 0+4 = 4 to (0,3)  [(0,0) of id 0 is 1];
#   (2,0) id 0: 0, a private image itself; (9,10) id 1: 1+0 = 1 to (10,10).
PRIVATE = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [10.0, 10.0]])
PRIVATE_LABELS = torch.tensor([0, 0, 1, 1])
QUERIES = torch.tensor([[1.0, 1.0], [0.0, 1.0], [2.0, 0.0], [9.0, 10.0]])
QUERY_LABELS = torch.tensor([0, 1, 0, 1])
HAND_KNN = [2.0, 4.0, 0.0, 1.0]


def test_knn_distance_on_the_hand_example() -> None:
    got = knn_distance(QUERIES, QUERY_LABELS, PRIVATE, PRIVATE_LABELS)
    assert got.dtype == F64
    # exact: integer coordinates, so every term of ||f||^2 + ||f'||^2 - 2 f.f' is exact
    torch.testing.assert_close(got, torch.tensor(HAND_KNN, dtype=F64), rtol=0, atol=0)


def _brute_force_knn(queries: Tensor, labels: Tensor, bank: Tensor, bank_labels: Tensor):
    """The definition, one pair at a time, with explicit differences (no expansion)."""
    out = []
    for f, y in zip(queries.double(), labels.tolist(), strict=True):
        same = bank[bank_labels == y].double()
        out.append(min(float(((f - g) ** 2).sum()) for g in same))
    return torch.tensor(out, dtype=F64)


# rows per block: 1; 7 (23 = 3 x 7 + 2, a ragged last block); all 23 at once (the default)
@pytest.mark.parametrize("rows", [1, 7, None], ids=["one-row", "ragged", "one-block"])
def test_knn_distance_matches_brute_force_in_any_block_size(
    rows: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = torch.Generator().manual_seed(1)
    bank = torch.randn(40, 5, generator=generator)
    bank_labels = torch.arange(40) % 6
    queries = torch.randn(23, 5, generator=generator)
    labels = torch.randint(0, 6, (23,), generator=generator)
    if rows is not None:  # KNN_BLOCK_ELEMENTS // 40 bank rows = rows per block
        monkeypatch.setattr(metrics_module, "KNN_BLOCK_ELEMENTS", rows * 40)
    got = knn_distance(queries, labels, bank, bank_labels)
    expected = _brute_force_knn(queries, labels, bank, bank_labels)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)  # float64 both ways


def test_knn_distance_of_no_reconstructions() -> None:
    got = knn_distance(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), PRIVATE, PRIVATE_LABELS)
    assert got.shape == (0,) and got.dtype == F64


BAD_KNN = [
    pytest.param(
        dict(labels=torch.tensor([0, 1, 0, 5])),
        DataError,
        "identity 5 has no private image",
        id="identity-without-private-images",
    ),
    pytest.param(
        dict(private_features=PRIVATE[:, :1]),
        ConfigError,
        "2 dimensions but private features 1",
        id="dimensions-differ",
    ),
    pytest.param(
        dict(private_labels=torch.tensor([0, 1])), ConfigError, "4 labels", id="labels-short"
    ),
    pytest.param(
        dict(features=QUERIES.long()), ConfigError, "floating point", id="integer-features"
    ),
    pytest.param(
        dict(features=QUERIES.clone().fill_(math.inf)),
        NonFiniteError,
        "NaN or infinite",
        id="infinite-features",
    ),
]


@pytest.mark.parametrize(("change", "error", "says"), BAD_KNN)
def test_knn_distance_refuses_bad_input(change: dict, error: type, says: str) -> None:
    arguments = dict(
        features=QUERIES,
        labels=QUERY_LABELS,
        private_features=PRIVATE,
        private_labels=PRIVATE_LABELS,
    )
    with pytest.raises(error) as caught:
        knn_distance(**(arguments | change))
    one_line(caught.value, says)


# ---------------------------------------------------------------------------------------------
# Frechet distance. Samples are built so that their empirical mean and unbiased covariance are
# exactly (to rounding) the given mean and factor @ factor.T: the closed forms then apply.
def exact_samples(mean: list, factor: Tensor, n: int, seed: int = 0) -> Tensor:
    """n samples with empirical mean ``mean`` and covariance (ddof 1) ``factor @ factor.T``."""
    rank = factor.shape[1]
    z = torch.randn(n, rank, generator=torch.Generator().manual_seed(seed), dtype=F64)
    z = z - z.mean(dim=0)
    whitener = torch.linalg.cholesky(z.T @ z / (n - 1))  # z.T z / (n-1) = W W^T
    white = torch.linalg.solve_triangular(whitener, z.T, upper=False).T  # covariance I, mean 0
    return white @ factor.T.to(F64) + torch.tensor(mean, dtype=F64)


def _cov(x: Tensor) -> Tensor:
    centred = x - x.mean(dim=0)
    return centred.T @ centred / (len(x) - 1)


@pytest.mark.parametrize("factor", [torch.eye(3) * 2, torch.tensor([[1.0], [2.0], [0.0]])])
def test_exact_samples_have_the_given_moments(factor: Tensor) -> None:
    x = exact_samples([1.0, -2.0, 0.5], factor, n=9)
    torch.testing.assert_close(
        x.mean(dim=0), torch.tensor([1.0, -2.0, 0.5], dtype=F64), rtol=0, atol=1e-13
    )
    torch.testing.assert_close(_cov(x), (factor @ factor.T).to(F64), rtol=0, atol=1e-13)


def _sqrt_factor(cov: list) -> Tensor:
    """A factor L with L L^T = cov (symmetric square root of a PSD matrix)."""
    values, vectors = torch.linalg.eigh(torch.tensor(cov, dtype=F64))
    return vectors * values.clamp_min(0).sqrt() @ vectors.T


# (mean_a, cov_a, mean_b, cov_b, closed-form distance), all hand-computed:
CLOSED_FORMS = [
    # commuting diagonal: sum (sqrt a_i - sqrt b_i)^2 + ||mu_a - mu_b||^2
    # = (2-1)^2 + (3-1)^2 + (1-4)^2 + (1^2 + 2^2 + 2^2) = 1 + 4 + 9 + 9 = 23
    pytest.param(
        [1, 0, 2],
        [[4, 0, 0], [0, 9, 0], [0, 0, 1]],
        [0, 2, 0],
        [[1, 0, 0], [0, 1, 0], [0, 0, 16]],
        23.0,
        id="diagonal-commuting",
    ),
    # non-commuting 2x2: Tr sqrt(A^1/2 B A^1/2) = sqrt(tr AB + 2 sqrt(det A det B)) for 2x2 PSD;
    # A = [[2,1],[1,2]], B = diag(1,3): tr AB = 8, det A det B = 9, so sqrt(14); ||dmu||^2 = 5:
    # 5 + 4 + 4 - 2 sqrt(14)
    pytest.param(
        [1, -1],
        [[2, 1], [1, 2]],
        [0, 1],
        [[1, 0], [0, 3]],
        13 - 2 * math.sqrt(14),
        id="non-commuting-2x2",
    ),
    # singular diagonal: (2-1)^2 + (0-3)^2 = 10
    pytest.param([0, 0], [[4, 0], [0, 0]], [0, 0], [[1, 0], [0, 9]], 10.0, id="singular-diagonal"),
    # two rank-1, non-commuting: A = v v^T, B = w w^T, v = (3,4), w = (1,2): the middle matrix
    # is (v.w)^2 v v^T / |v|^2, Tr sqrt = |v.w| = 11: 25 + 5 - 22 = 8
    pytest.param([0, 0], [[9, 12], [12, 16]], [0, 0], [[1, 2], [2, 4]], 8.0, id="rank-one-both"),
    # equal singular Gaussians: 0
    pytest.param(
        [1, 2, 3],
        [[1, 1, 0], [1, 1, 0], [0, 0, 0]],
        [1, 2, 3],
        [[1, 1, 0], [1, 1, 0], [0, 0, 0]],
        0.0,
        id="identical-singular",
    ),
]


@pytest.mark.parametrize(("mean_a", "cov_a", "mean_b", "cov_b", "expected"), CLOSED_FORMS)
def test_frechet_distance_equals_the_closed_form(
    mean_a: list, cov_a: list, mean_b: list, cov_b: list, expected: float
) -> None:
    a = exact_samples(mean_a, _sqrt_factor(cov_a), n=12, seed=1)
    b = exact_samples(mean_b, _sqrt_factor(cov_b), n=17, seed=2)
    got = frechet_distance(a, b)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)  # float64 throughout
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9, abs=1e-9)  # symmetric


def _numpy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Independent float64 route: Tr (S_a S_b)^{1/2} from the eigenvalues of the
    non-symmetric product (real and positive for full-rank covariances)."""
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eigenvalues = np.linalg.eigvals(s_a @ s_b)
    assert np.abs(eigenvalues.imag).max() < 1e-9 and eigenvalues.real.min() > 0
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(eigenvalues.real).sum())


def _nuclear_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Independent route valid for singular covariances: with S = F^T F (F the centred samples
    over sqrt(n - 1)), Tr (S_a^1/2 S_b S_a^1/2)^1/2 is the nuclear norm of F_a F_b^T."""
    f_a = (a - a.mean(axis=0)) / np.sqrt(len(a) - 1)
    f_b = (b - b.mean(axis=0)) / np.sqrt(len(b) - 1)
    diff = a.mean(axis=0) - b.mean(axis=0)
    cross = np.linalg.svd(f_a @ f_b.T, compute_uv=False).sum()
    return float(diff @ diff + (f_a**2).sum() + (f_b**2).sum() - 2 * cross)


def test_frechet_distance_of_random_full_rank_sets_matches_numpy() -> None:
    generator = torch.Generator().manual_seed(3)
    mixing = torch.randn(6, 6, generator=generator, dtype=F64)
    a = torch.randn(80, 6, generator=generator, dtype=F64) @ mixing
    b = torch.randn(60, 6, generator=generator, dtype=F64) * 0.5 + 1.0
    expected = _numpy_frechet(a.numpy(), b.numpy())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)  # both float64
    assert _nuclear_frechet(a.numpy(), b.numpy()) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("n_a", "n_b", "dim"), [(4, 6, 10), (3, 30, 5), (9, 9, 8)])
def test_frechet_distance_with_fewer_samples_than_dimensions(n_a: int, n_b: int, dim: int):
    generator = torch.Generator().manual_seed(n_a)
    a = torch.randn(n_a, dim, generator=generator, dtype=F64)
    b = torch.randn(n_b, dim, generator=generator, dtype=F64) + 0.3
    expected = _nuclear_frechet(a.numpy(), b.numpy())
    # singular covariances: the clamped eigenvalues still give the exact value
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_accepts_float32_and_accumulates_in_float64() -> None:
    a = exact_samples([0, 0], _sqrt_factor([[4, 0], [0, 0]]), n=12, seed=1)
    b = exact_samples([0, 0], _sqrt_factor([[1, 0], [0, 9]]), n=17, seed=2)
    # the float32 rounding of the samples (rel 6e-8) is the only error left
    assert frechet_distance(a.float(), b.float()) == pytest.approx(10.0, rel=1e-6)


def test_frechet_report_names_value_smaller_count_and_dimension() -> None:
    a = torch.randn(7, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    b = torch.randn(5, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 5 samples > 3 dimensions: no warning
        report = frechet_report(a, b)
    assert report == {"value": frechet_distance(a, b), "n": 5, "dim": 3}


@pytest.mark.parametrize(("n", "dim"), [(3, 3), (2, 5)])
def test_frechet_report_warns_when_samples_do_not_exceed_dimensions(n: int, dim: int) -> None:
    a = torch.randn(n, dim, generator=torch.Generator().manual_seed(6), dtype=F64)
    b = torch.randn(50, dim, generator=torch.Generator().manual_seed(7), dtype=F64)
    with pytest.warns(FewSamplesWarning, match=f"from {n} samples in {dim} dimensions") as caught:
        report = frechet_report(b, a)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert report["n"] == n and report["dim"] == dim


BAD_FRECHET = [
    pytest.param(
        torch.zeros(1, 3), torch.zeros(4, 3), DataError, "at least 2 samples", id="one-sample"
    ),
    pytest.param(
        torch.zeros(4, 3),
        torch.zeros(4, 2),
        ConfigError,
        "3 and 2 dimensions",
        id="dimensions-differ",
    ),
    pytest.param(torch.zeros(4), torch.zeros(4, 2), ConfigError, "2-D", id="not-a-matrix"),
    pytest.param(torch.full((4, 2), math.nan), torch.zeros(4, 2), NonFiniteError, "NaN", id="nan"),
]


@pytest.mark.parametrize(("a", "b", "error", "says"), BAD_FRECHET)
def test_frechet_distance_refuses_bad_input(a: Tensor, b: Tensor, error: type, says: str):
    with pytest.raises(error) as caught:
        frechet_distance(a, b)
    one_line(caught.value, says)
