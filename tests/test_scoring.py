"""Tests for fisher_mi.evaluate.scoring: metrics.json and the attack.csv columns of a run,
every number against hand values.

The evaluator is a probe whose features are the pixels of a 1 x 1 x C image and whose logits are
``W @ features`` with W set by hand (the identity unless a test says otherwise), so hits, KNN
distances and Frechet distances can be written down from the images.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from fractions import Fraction

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from fisher_mi.errors import ConfigError, DataError
from fisher_mi.evaluate import (
    FRECHET_LABEL,
    RESIZE_METHOD,
    EvaluatorWarning,
    FewSamplesWarning,
    PrivateReference,
    per_image_scores,
    private_reference,
    protocol_hash,
    score_run,
)
from fisher_mi.evaluate.scoring import BEATS_PRIOR, INCONCLUSIVE
from tests.error_cases import one_line

F64 = torch.float64


class Probe(nn.Module):
    """features = the C pixels of a 1 x 1 x C image; logits = weight @ features."""

    def __init__(self, weight: Tensor, width: int | None = None) -> None:
        super().__init__()
        classes, pixels = weight.shape
        self.input_shape = (1, 1, width or pixels)
        self.fc = nn.Linear(pixels, classes, bias=False).double()
        with torch.no_grad():
            self.fc.weight.copy_(weight)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = x.flatten(1)
        return features, self.fc(features)


def probe(classes: int) -> Probe:
    return Probe(torch.eye(classes, dtype=F64))


def images(rows: list[list[float]]) -> Tensor:
    return torch.tensor(rows, dtype=F64)[:, None, None, :]


def dataset(rows: list[list[float]], labels: list[int]) -> TensorDataset:
    return TensorDataset(images(rows), torch.tensor(labels))


def run(rows: list[list[float]], identities: list[int], draws: list[int]) -> dict[str, Tensor]:
    n = len(rows)
    return {
        "images": images(rows),
        "identities": torch.tensor(identities),
        "draws": torch.tensor(draws),
        "seeds": torch.zeros(n, dtype=torch.long),
        "latents": torch.zeros(n, 3),
        "target_confidence": torch.ones(n),
    }


# 5 classes. Private images: identity 0 at e0 and (1, .5, 0, 0, 0) (both top-1 hits), identity 1
# at e1 (hit) and (0, .5, 1, 0, 0) (top-1 class 2: a miss): evaluator accuracy 3/4.
PRIVATE = dataset(
    [[1, 0, 0, 0, 0], [1, 0.5, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0.5, 1, 0, 0]], [0, 0, 1, 1]
)
# Private test: the first a hit, the second (top-1 class 2 for the evaluator) a miss: 1/2.
PRIVATE_TEST = dataset([[0.2, 0.9, 0, 0, 0], [0, 0, 0.3, 0.1, 0]], [1, 3])
# Reconstructions, (identity, draw): top-1 hit?, nearest squared distance to its identity.
#   (0, 0) e0                hit   0
#   (1, 0) e1                hit   0
#   (0, 1) e2                miss  min(1 + 1, 1 + .25 + 1) = 2
#   (1, 1) (0, 1, 0, .5, 0)  hit   min(.25, .25 + 1 + .25) = .25
#   (0, 2) (.5, 0, 0, 0, 1)  miss  min(.25 + 1, .25 + .25 + 1) = 1.25
#   (1, 2) e4                miss  min(1 + 1, .25 + 1 + 1) = 2
ATTACK = run(
    [
        [1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 1, 0, 0.5, 0],
        [0.5, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
    ],
    identities=[0, 1, 0, 1, 0, 1],
    draws=[0, 0, 1, 1, 2, 2],
)
KNN = [0, 0, 2, 0.25, 1.25, 2]
# Every class's one-hot image, twice.
ONE_HOT_PRIVATE = TensorDataset(
    torch.eye(5, dtype=F64)[:, None, None, :].repeat(2, 1, 1, 1), torch.arange(10) % 5
)


def score(inversions: dict[str, Tensor] = ATTACK, **options) -> dict:
    options = {"evaluator": probe(5), "private": PRIVATE, "private_test": PRIVATE_TEST, **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewSamplesWarning)  # 4 private images in 5 dimensions
        return score_run(inversions, **options)


def test_per_image_scores_are_the_hand_values():
    scores = per_image_scores(ATTACK, evaluator=probe(5), private=PRIVATE)
    assert scores["top1"].tolist() == [True, True, False, True, False, False]
    assert scores["top5"] is None  # 5 classes: 5 < 5 / 2 fails
    assert scores["knn_sq"].dtype == F64
    assert scores["knn_sq"].tolist() == pytest.approx(KNN, abs=1e-12)


def test_top1_per_draw_mean_and_std_with_ddof_1():
    top1 = score()["top1"]
    assert top1["per_draw"] == [1.0, 0.5, 0.0]
    assert top1["mean"] == pytest.approx(0.5)
    # ddof 1: sqrt((.5^2 + 0 + .5^2) / 2) = .5 (ddof 0 would give sqrt(1/6) = .408).
    assert top1["std"] == pytest.approx(0.5)


def test_std_is_null_for_one_draw():
    one_draw = run([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]], identities=[0, 1], draws=[0, 0])
    top1 = score(one_draw)["top1"]
    assert top1 == {"per_draw": [0.5], "mean": 0.5, "std": None}


def test_knn_mean_is_the_mean_of_the_hand_distances():
    assert score()["knn_sq_mean"] == pytest.approx(5.5 / 6, abs=1e-12)


def test_top5_is_null_below_the_class_limit_and_says_why():
    metrics = score()
    assert metrics["top5"] is None
    assert "5 < classes / 2" in metrics["top5_note"] and "5 classes" in metrics["top5_note"]
    assert metrics["baselines"]["chance"] == {"top1": 0.2, "top5": None}


def test_top5_is_null_at_exactly_ten_classes():
    private = TensorDataset(torch.eye(10, dtype=F64)[:, None, None, :], torch.arange(10))
    inversions = run([[1] + [0] * 9, [0, 1] + [0] * 8], identities=[0, 1], draws=[0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewSamplesWarning)
        metrics = score_run(inversions, evaluator=probe(10), private=private, private_test=private)
    assert metrics["top5"] is None and metrics["baselines"]["chance"]["top5"] is None


def test_top5_with_twelve_classes_is_true_top5_averaged_over_draws():
    # (identity, draw): classes scoring above the identity -> top-1, top-5 hit
    #   (0, 0): none -> hit, hit;  (1, 0): six -> miss, miss
    #   (0, 1): two  -> miss, hit; (1, 1): four -> miss, hit
    rows = [[0.0] * 12 for _ in range(4)]
    rows[0][0] = 1
    rows[1][1], rows[1][2:8] = 0.1, [0.5] * 6
    rows[2][0], rows[2][5], rows[2][6] = 0.5, 0.9, 0.9
    rows[3][1], rows[3][2:6] = 0.5, [0.9] * 4
    inversions = run(rows, identities=[0, 1, 0, 1], draws=[0, 0, 1, 1])
    private = TensorDataset(torch.eye(12, dtype=F64)[:2, None, None, :], torch.arange(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewSamplesWarning)
        metrics = score_run(inversions, evaluator=probe(12), private=private, private_test=private)
    spread = math.sqrt(2) / 4  # std (ddof 1) of two rates .5 apart
    assert metrics["top1"]["per_draw"] == [0.5, 0.0]
    assert metrics["top1"]["std"] == pytest.approx(spread)
    assert metrics["top5"]["per_draw"] == [0.5, 1.0]
    assert metrics["top5"]["mean"] == pytest.approx(0.75)
    assert metrics["top5"]["std"] == pytest.approx(spread)
    assert metrics["top5_note"] is None
    assert metrics["baselines"]["chance"] == {"top1": 1 / 12, "top5": 5 / 12}


def test_frechet_of_a_shifted_copy_is_the_squared_shift():
    # Same covariance, means .5 apart along the last axis: distance .25.
    private_rows = (torch.rand(6, 5, generator=torch.Generator().manual_seed(0)) / 2).tolist()
    labels = [0, 0, 1, 1, 2, 2]
    shifted = [[*row[:4], row[4] + 0.5] for row in private_rows]
    inversions = run(shifted, identities=labels, draws=[0, 1, 0, 1, 0, 1])
    private = dataset(private_rows, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewSamplesWarning)  # 6 samples in 5 dimensions: none
        frechet = score_run(inversions, evaluator=probe(5), private=private, private_test=private)[
            "frechet"
        ]
    assert frechet["value"] == pytest.approx(0.25, abs=1e-9)
    assert (frechet["n"], frechet["dim"], frechet["label"]) == (6, 5, FRECHET_LABEL)


def test_frechet_warns_with_fewer_samples_than_dimensions():
    with pytest.warns(FewSamplesWarning):
        frechet = score_run(ATTACK, evaluator=probe(5), private=PRIVATE, private_test=PRIVATE_TEST)[
            "frechet"
        ]
    assert (frechet["n"], frechet["dim"]) == (4, 5)


def test_evaluator_record_and_natural_accuracy():
    # The target scores class 3 five times higher: it also gets the second test image right.
    weight = torch.eye(5, dtype=F64)
    weight[3, 3] = 5
    metrics = score(target=Probe(weight))
    assert metrics["natural_accuracy"] == 1.0
    assert metrics["evaluator"] == {
        "arch": "Probe",
        "accuracy_private_test": 0.5,
        "accuracy_private_train": 0.75,
    }


def test_natural_accuracy_is_null_without_a_target():
    assert score()["natural_accuracy"] is None


def test_target_of_another_input_size_reads_the_test_images_resized():
    # Width 10: bilinear x2 makes pixels 2c and 2c + 1 of class c sum to 1.5 x_c + .25 (x_{c-1}
    # + x_{c+1}) (edges clamped): the top-1 classes stay 1 (hit) and 2 (miss).
    weight = torch.zeros(5, 10, dtype=F64)
    weight[torch.arange(10) // 2, torch.arange(10)] = 1
    assert score(target=Probe(weight))["natural_accuracy"] == 0.5


def test_the_target_as_its_own_judge_warns():
    evaluator = probe(5)
    with pytest.warns(EvaluatorWarning):
        score(evaluator=evaluator, target=evaluator)


def test_an_evaluator_of_other_classes_is_refused():
    with pytest.raises(ConfigError) as error:
        score(target=Probe(torch.eye(4, 5, dtype=F64)))
    one_line(error, "4", "5")


def hits_run(hits: int, classes: int = 5, per_class: int = 20) -> dict[str, Tensor]:
    """classes x per_class one-hot reconstructions, the first ``hits`` at their identity."""
    n = classes * per_class
    identities = torch.arange(n) % classes
    predicted = torch.where(torch.arange(n) < hits, identities, (identities + 1) % classes)
    rows = torch.eye(classes, dtype=F64)[predicted].tolist()
    return run(rows, identities.tolist(), (torch.arange(n) // classes).tolist())


def binomial_tail(hits: int, n: int, p: Fraction) -> float:
    return float(sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(hits, n + 1)))


@pytest.mark.parametrize(("hits", "significant"), [(31, True), (30, False)])
def test_significance_31_of_100_with_5_classes_is_below_one_percent(hits, significant):
    metrics = score(hits_run(hits), private=ONE_HOT_PRIVATE)
    significance = metrics["significance"]
    assert (significance["n"], significance["hits"], significance["chance"]) == (100, hits, 0.2)
    assert significance["p_value"] == pytest.approx(binomial_tail(hits, 100, Fraction(1, 5)))
    assert (significance["p_value"] < 0.01) is significant
    assert metrics["top1"]["mean"] == pytest.approx(hits / 100)


def test_significance_of_the_hand_run():
    # 3 hits of 6 at p = 1/5: P(X >= 3) = 1 - (4^6 + 6 * 4^5 + 15 * 4^4) / 5^6 = 1545 / 15625.
    significance = score()["significance"]
    assert (significance["n"], significance["hits"]) == (6, 3)
    assert significance["p_value"] == pytest.approx(1545 / 15625)


def prior_of(inversions: dict[str, Tensor], predicted: list[int]) -> dict[str, Tensor]:
    rows = torch.eye(5, dtype=F64)[predicted].tolist()
    return {**inversions, "images": images(rows)}


FIVE = run(torch.eye(5, dtype=F64).tolist(), identities=[0, 1, 2, 3, 4], draws=[0] * 5)


def test_verdict_attack_beats_its_prior():
    # 5 of 5 against 0 of 5: Fisher's exact one-sided p = 1 / C(10, 5) = 1/252 < .01.
    metrics = score(FIVE, private=ONE_HOT_PRIVATE, prior_only=prior_of(FIVE, [1, 2, 3, 4, 0]))
    baselines = metrics["baselines"]
    assert baselines["verdict"] == BEATS_PRIOR
    assert baselines["verdict_test"]["p_value"] == pytest.approx(1 / 252)
    assert baselines["verdict_test"]["alpha"] == 0.01
    assert "Fisher exact" in baselines["verdict_test"]["test"]
    assert baselines["prior_only"]["top1"] == {"per_draw": [0.0], "mean": 0.0, "std": None}
    assert baselines["prior_only"]["top5"] is None
    # each prior sample is one-hot at another class: squared distance 2 to its identity's e_i
    assert baselines["prior_only"]["knn_sq_mean"] == pytest.approx(2.0)


def test_verdict_inconclusive_when_the_attack_is_within_its_priors_noise():
    # 4 of 5 against 0 of 5: p = C(4, 4) C(6, 1) / C(10, 5) = 6/252 = .024 > .01.
    attack = prior_of(FIVE, [0, 1, 2, 3, 0])
    metrics = score(attack, private=ONE_HOT_PRIVATE, prior_only=prior_of(FIVE, [1, 2, 3, 4, 0]))
    assert metrics["baselines"]["verdict"] == INCONCLUSIVE
    assert metrics["baselines"]["verdict_test"]["p_value"] == pytest.approx(6 / 252)


def test_no_prior_no_verdict():
    baselines = score()["baselines"]
    assert baselines["prior_only"] is None and baselines["verdict"] is None


def test_prior_with_other_seeds_is_refused():
    prior = {**prior_of(FIVE, [0, 1, 2, 3, 4]), "seeds": torch.ones(5, dtype=torch.long)}
    with pytest.raises(ConfigError) as error:
        score(FIVE, private=ONE_HOT_PRIVATE, prior_only=prior)
    one_line(error, "seeds")


def test_protocol_records_the_resize_and_its_hash():
    protocol = {"method": "gmi", "identities": [0, 1], "batch_size": 64, "options": (1, 2)}
    metrics = score(protocol=protocol)
    recorded = {**protocol, "options": [1, 2], "resize": RESIZE_METHOD}
    assert metrics["protocol"] == recorded
    text = json.dumps(recorded, sort_keys=True)
    assert metrics["protocol_hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert metrics["protocol_hash"] == protocol_hash(recorded)


def test_protocol_from_the_runner_keeps_its_checked_hash_out():
    protocol = {"method": "gmi", "iterations": 10}
    metrics = score(protocol={**protocol, "protocol_hash": protocol_hash(protocol)})
    assert metrics["protocol"] == {**protocol, "resize": RESIZE_METHOD}
    with pytest.raises(ConfigError) as error:
        score(protocol={**protocol, "protocol_hash": "0" * 64})
    one_line(error, "protocol_hash")


def test_metrics_survive_a_json_round_trip():
    prior = {**ATTACK, "images": images([[0, 0, 0, 1, 0]] * 6)}
    weight = torch.eye(5, dtype=F64)
    metrics = score(target=Probe(2 * weight), prior_only=prior, protocol={"method": "gmi"})
    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics
    assert set(metrics) == {
        "top1",
        "top5",
        "top5_note",
        "knn_sq_mean",
        "frechet",
        "natural_accuracy",
        "baselines",
        "significance",
        "evaluator",
        "protocol",
        "protocol_hash",
    }


def test_a_reference_reused_gives_the_same_metrics():
    reference = private_reference(probe(5), PRIVATE)
    assert isinstance(reference, PrivateReference) and reference.accuracy == 0.75
    assert score(private=reference) == score()


@pytest.mark.parametrize(
    ("change", "error_type", "fragment"),
    [
        (lambda r: {k: v for k, v in r.items() if k != "draws"}, ConfigError, "draws"),
        (lambda r: {**r, "draws": torch.tensor([0, 0, 1, 1, 2, 1])}, DataError, "grid"),
        (lambda r: {**r, "draws": r["draws"][:3]}, ConfigError, "one draw per image"),
    ],
    ids=["missing-key", "duplicate-pair", "short-draws"],
)
def test_malformed_runs_are_refused(change, error_type, fragment):
    with pytest.raises(error_type) as error:
        score(change(ATTACK))
    one_line(error, fragment)


def test_an_empty_private_split_is_refused():
    empty = TensorDataset(torch.zeros(0, 1, 1, 5, dtype=F64), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError) as error:
        score(private=empty)
    one_line(error, "empty")
