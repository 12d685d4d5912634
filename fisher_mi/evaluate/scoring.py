"""Scoring an attack run: its reconstructions through the evaluator into ``metrics.json``.

``score_run`` turns the tensors of an attack (the dict of ``inversions.pt``: ``images``,
``identities``, ``draws``, ``seeds``, ...) into the literature's numbers, all judged by the
evaluation classifier: attack accuracy top-1 and top-5 per draw with their mean and std over
draws, the KNN distance to the private training images, the Frechet distance in evaluator
features; next to them what is needed to read those numbers: the target's natural accuracy,
the evaluator's own accuracy, chance, the same metrics on unoptimised samples of the same prior,
the significance against chance and the protocol with its hash. ``per_image_scores`` gives the
per-reconstruction columns of ``attack.csv``; ``score_run`` summarises the very same tensors, so
the table and the summary cannot disagree.

Two tests decide what a number means, both one-sided and exact, because runs here are small
(the bundled digits give 25 reconstructions, where a normal approximation is poor):

- significance against chance: ``P(X >= hits)`` for ``X ~ Binomial(n, 1 / classes)`` over all
  n reconstructions (with 5 classes and 100 reconstructions, 31 hits give p = 0.006);
- the verdict against the prior: Fisher's exact test of the 2 x 2 table (attack hits, misses;
  prior-only hits, misses), alternative "the attack's hit rate is greater", at
  ``VERDICT_ALPHA``. Unlike a binomial test against the prior's observed rate it counts the
  prior's own sampling noise (a prior rate of 0 of 25 does not make one attack hit
  significant), and unlike the two-proportion z-test it needs no large counts.

Each draw holds every identity once (the run is a complete identities x draws grid), so the mean
over draws of the per-draw rates is the pooled rate the tests use.

The private training images are put through the evaluator once per evaluator
(``private_reference``); pass the ``PrivateReference`` instead of the dataset to reuse it, e.g.
for ``per_image_scores`` and ``score_run`` of the same run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from fisher_mi.errors import ConfigError, DataError
from fisher_mi.evaluate.accuracy import accuracy
from fisher_mi.evaluate.evaluator import (
    RESIZE_METHOD,
    check_evaluator,
    features_and_logits,
    resize_for,
)
from fisher_mi.evaluate.metrics import FRECHET_LABEL, frechet_report, knn_distance, topk_hits
from fisher_mi.models import arch_of

TOP5 = 5
# The verdict's significance level: the level the significance statement uses
# ("31 or more correct of 100 with 5 classes is p < 0.01").
VERDICT_ALPHA = 0.01
VERDICT_TEST = (
    "one-sided Fisher exact test of top-1 hits, attack vs prior-only samples "
    "(alternative: the attack's rate is greater)"
)
BEATS_PRIOR = "attack beats its prior"
INCONCLUSIVE = "inconclusive: the attack does not beat its own prior"
SIGNIFICANCE_TEST = "binomial tail P(X >= hits), X ~ Binomial(n, 1 / classes), top-1 hits"
RUN_KEYS = ("images", "identities", "draws")
PAIRED_KEYS = ("identities", "draws", "seeds")


def protocol_hash(protocol: Mapping[str, Any]) -> str:
    """sha256 of the protocol's canonical JSON (sorted keys; other objects by ``str``).

    The attack runner keys its batch checkpoints with it and ``metrics.json`` records it, so
    later stages never mix the runs of two protocols.

    Args:
        protocol: what determines a run (method, options, identities, draws, seeds, ...).

    Returns:
        64 hexadecimal digits.
    """
    text = json.dumps(protocol, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PrivateReference:
    """The evaluator's view of the private training images, computed once per evaluator.

    Attributes:
        features: P x D evaluator features of the private training images.
        labels: their P identities.
        accuracy: the evaluator's top-1 accuracy on them.
    """

    features: Tensor
    labels: Tensor
    accuracy: float


class _ResizedFor(Dataset):
    """``data`` as ``model`` takes it: each image through ``resize_for`` (a no-op at its size)."""

    def __init__(self, model: nn.Module, data: Dataset) -> None:
        self.model, self.data = model, data

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        image, label = self.data[index]
        return resize_for(self.model, image[None])[0], label


def _dataset_outputs(
    model: nn.Module, data: Dataset, batch_size: int, device: str | torch.device | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Features, logits and labels of a labelled dataset, a loader batch at a time."""
    if len(data) == 0:  # type: ignore[arg-type]
        raise DataError("cannot score the evaluator on an empty dataset; check the split")
    parts = [
        (*features_and_logits(model, images, batch_size=batch_size, device=device), labels)
        for images, labels in DataLoader(data, batch_size=batch_size)
    ]
    features, logits, labels = (torch.cat(column) for column in zip(*parts, strict=True))
    return features, logits, labels


def _top1_rate(logits: Tensor, labels: Tensor) -> float:
    """Fraction of rows whose label is the top-1 class (``topk_hits``: ties count against)."""
    return float(topk_hits(logits, labels, 1).double().mean())


def private_reference(
    evaluator: nn.Module,
    private: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> PrivateReference:
    """The evaluator's features of, and top-1 accuracy on, the private training images.

    One pass gives both: the KNN and Frechet metrics need the features, the evaluator's
    "accuracy on real private training images" the logits. Images of any size are resized for
    the evaluator by ``resize_for``, as the reconstructions are.

    Args:
        evaluator: the evaluation classifier, returning ``(features, logits)``.
        private: the ``private`` split, yielding ``(image, identity)``.
        batch_size: images per forward pass.
        device: where to compute (the evaluator's device).

    Returns:
        The ``PrivateReference``; its tensors stay on the compute device.
    """
    features, logits, labels = _dataset_outputs(evaluator, private, batch_size, device)
    return PrivateReference(features, labels, _top1_rate(logits, labels))


def _reference_of(
    evaluator: nn.Module,
    private: Dataset | PrivateReference,
    batch_size: int,
    device: str | torch.device | None,
) -> PrivateReference:
    """``private`` itself when it is already a reference, else its reference."""
    if isinstance(private, PrivateReference):
        return private
    return private_reference(evaluator, private, batch_size=batch_size, device=device)


def _require_run(name: str, run: Mapping[str, Tensor]) -> None:
    """Refuse a run without its tensors or that is not one image per (identity, draw)."""
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise ConfigError(
            f"{name} lacks {', '.join(missing)}; pass Inversion.tensors() or the dict saved in "
            "inversions.pt"
        )
    identities, draws = run["identities"], run["draws"]
    n = len(run["images"])
    if identities.shape != (n,) or draws.shape != (n,):
        raise ConfigError(f"{name} needs one identity and one draw per image, {n} of each")
    pairs = torch.unique(torch.stack([identities, draws], dim=1), dim=0)
    grid = identities.unique().numel() * draws.unique().numel()
    if not len(pairs) == n == grid:
        raise DataError(
            f"{name} holds {n} images, not one per (identity, draw) of a complete "
            "identities x draws grid; score a finished run"
        )


def _require_paired(run: Mapping[str, Tensor], prior: Mapping[str, Tensor]) -> None:
    """Refuse prior-only samples that are not the attack's (identity, draw, seed) rows."""
    unpaired = [
        key
        for key in PAIRED_KEYS
        if key not in run or key not in prior or not torch.equal(run[key].cpu(), prior[key].cpu())
    ]
    if unpaired:
        raise ConfigError(
            f"the prior-only samples differ from the attack's in {', '.join(unpaired)}; make "
            "them from the same prior with the attack's identities, draws and seeds"
        )


def _top5_allowed(classes: int) -> bool:
    """``5 < classes / 2``: with fewer classes a top-5 hit is too likely to mean anything."""
    return classes / 2 > TOP5


def _scored(
    name: str,
    run: Mapping[str, Tensor],
    evaluator: nn.Module,
    reference: PrivateReference,
    batch_size: int,
    device: str | torch.device | None,
) -> tuple[Tensor, dict[str, Tensor | None], int]:
    """Evaluator features, per-image scores (on the CPU) and the class count of a run."""
    _require_run(name, run)
    features, logits = features_and_logits(
        evaluator, run["images"], batch_size=batch_size, device=device
    )
    identities, classes = run["identities"], logits.shape[1]
    top5 = topk_hits(logits, identities, TOP5).cpu() if _top5_allowed(classes) else None
    knn = knn_distance(features, identities, reference.features, reference.labels)
    scores = {"top1": topk_hits(logits, identities, 1).cpu(), "top5": top5, "knn_sq": knn.cpu()}
    return features, scores, classes


def per_image_scores(
    inversions: Mapping[str, Tensor],
    *,
    evaluator: nn.Module,
    private: Dataset | PrivateReference,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> dict[str, Tensor | None]:
    """The evaluator's verdict on each reconstruction: the ``attack.csv`` columns.

    ``top1`` and ``top5`` are true top-k hits of the identity in the evaluator's logits
    (``topk_hits``); ``top5`` is None unless ``5 < classes / 2``. ``knn_sq`` is the squared L2
    distance in evaluator features to the nearest private training image of the same identity
    (``knn_distance``).

    Args:
        inversions: the attack's tensors (``Inversion.tensors()``, ``inversions.pt``): at least
            ``images``, ``identities`` and ``draws``, one image per (identity, draw).
        evaluator: the evaluation classifier, returning ``(features, logits)``.
        private: the ``private`` split, or its ``PrivateReference`` to reuse one.
        batch_size: images per forward pass.
        device: where to compute (the evaluator's device).

    Returns:
        ``{"top1": bool tensor, "top5": bool tensor | None, "knn_sq": float64 tensor}``, one
        entry per reconstruction, on the CPU.
    """
    reference = _reference_of(evaluator, private, batch_size, device)
    return _scored("inversions", inversions, evaluator, reference, batch_size, device)[1]


def _rate_summary(hits: Tensor, draws: Tensor) -> dict[str, Any]:
    """Per draw d the hit rate ``r_d = mean_i hit_{i,d}``; their mean and std (ddof 1)."""
    _, index = torch.unique(draws.cpu(), return_inverse=True)
    rates = torch.bincount(index, weights=hits.double()) / torch.bincount(index)
    std = float(rates.std(correction=1)) if len(rates) > 1 else None
    return {"per_draw": rates.tolist(), "mean": float(rates.mean()), "std": std}


def _summary(scores: Mapping[str, Tensor | None], draws: Tensor) -> dict[str, Any]:
    """``top1``, ``top5`` (None where not reported) and ``knn_sq_mean`` of per-image scores."""
    top5 = scores["top5"]
    return {
        "top1": _rate_summary(scores["top1"], draws),
        "top5": _rate_summary(top5, draws) if top5 is not None else None,
        "knn_sq_mean": float(scores["knn_sq"].mean()),
    }


def _top5_note(classes: int) -> str | None:
    """Why ``top5`` is null, or None when it is reported."""
    if _top5_allowed(classes):
        return None
    return f"top-5 not reported: it needs 5 < classes / 2 and there are {classes} classes"


def _verdict(attack_hits: Tensor, prior_hits: Tensor) -> dict[str, Any]:
    """Whether the attack's top-1 rate exceeds its prior's by more than sampling noise."""
    from scipy.stats import fisher_exact  # scipy.stats costs a second: only when scoring

    attack, prior = int(attack_hits.sum()), int(prior_hits.sum())
    table = [[attack, len(attack_hits) - attack], [prior, len(prior_hits) - prior]]
    p_value = float(fisher_exact(table, alternative="greater").pvalue)
    return {
        "verdict": BEATS_PRIOR if p_value < VERDICT_ALPHA else INCONCLUSIVE,
        "verdict_test": {"test": VERDICT_TEST, "alpha": VERDICT_ALPHA, "p_value": p_value},
    }


def _baselines(
    classes: int,
    attack_scores: Mapping[str, Tensor | None],
    prior_scores: Mapping[str, Tensor | None] | None,
    draws: Tensor,
) -> dict[str, Any]:
    """Chance, the prior-only metrics and the verdict (None without prior-only samples)."""
    chance = {"top1": 1 / classes, "top5": TOP5 / classes if _top5_allowed(classes) else None}
    if prior_scores is None:
        return {"chance": chance, "prior_only": None, "verdict": None, "verdict_test": None}
    return {
        "chance": chance,
        "prior_only": _summary(prior_scores, draws),
        **_verdict(attack_scores["top1"], prior_scores["top1"]),
    }


def _significance(hits: Tensor, classes: int) -> dict[str, Any]:
    """``P(X >= hits)``, ``X ~ Binomial(n, 1 / classes)``: how unlikely the hits are by chance."""
    from scipy.stats import binom  # scipy.stats costs a second: only when scoring

    n, count, chance = len(hits), int(hits.sum()), 1 / classes
    p_value = float(binom.sf(count - 1, n, chance))
    return {"test": SIGNIFICANCE_TEST, "n": n, "hits": count, "chance": chance, "p_value": p_value}


def _recorded_protocol(protocol: Mapping[str, Any] | None) -> dict[str, Any]:
    """The protocol as ``metrics.json`` records it: JSON values, the resize method added.

    A ``protocol_hash`` inside it (the runner returns one) must be the hash of the rest.
    """
    given = dict(protocol or {})
    claimed = given.pop("protocol_hash", None)
    if claimed is not None and claimed != protocol_hash(given):
        raise ConfigError(
            "the protocol's protocol_hash is not the hash of its settings; pass the protocol "
            "the attack run returned, unchanged"
        )
    return json.loads(json.dumps({**given, "resize": RESIZE_METHOD}, default=str))


def _evaluator_record(
    evaluator: nn.Module,
    reference: PrivateReference,
    private_test: Dataset,
    batch_size: int,
    device: str | torch.device | None,
) -> dict[str, Any]:
    """The evaluator's architecture and its top-1 accuracy on private-test and private-train."""
    spec = arch_of(evaluator)
    _, logits, labels = _dataset_outputs(evaluator, private_test, batch_size, device)
    return {
        "arch": spec.name if spec is not None else type(evaluator).__name__,
        "accuracy_private_test": _top1_rate(logits, labels),
        "accuracy_private_train": reference.accuracy,
    }


def _natural_accuracy(
    target: nn.Module | None,
    private_test: Dataset,
    batch_size: int,
    device: str | torch.device | None,
) -> float | None:
    """The target's top-1 accuracy on private-test (``accuracy``), at its own input size."""
    if target is None:
        return None
    return accuracy(target, _ResizedFor(target, private_test), batch_size=batch_size, device=device)


def score_run(
    inversions: Mapping[str, Tensor],
    *,
    evaluator: nn.Module,
    private: Dataset | PrivateReference,
    private_test: Dataset,
    target: nn.Module | None = None,
    prior_only: Mapping[str, Tensor] | None = None,
    protocol: Mapping[str, Any] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` of an attack run (DESIGN.md, Outputs), every value JSON-ready.

    Keys:

    - ``top1``, ``top5``: ``{"per_draw", "mean", "std"}``, the evaluator's true top-k hit rate
      over the images of each draw (one per identity), their mean and std over draws with
      ddof 1 (null for one draw). ``top5`` is null, and ``top5_note`` says why, unless
      ``5 < classes / 2``. The LOMMA/TL-DMI code reports the last draw's top-5; this is the mean.
    - ``knn_sq_mean``: mean over reconstructions of the squared feature distance to the nearest
      private training image of the same identity.
    - ``frechet``: ``frechet_report`` of reconstructions vs private training images in
      evaluator features, with ``label`` ``FRECHET_LABEL``.
    - ``natural_accuracy``: the target's top-1 accuracy on ``private_test`` (null without one).
    - ``baselines``: ``chance`` (1 / C, 5 / C), ``prior_only`` (``top1``, ``top5``,
      ``knn_sq_mean`` of ``prior_only``), ``verdict`` and ``verdict_test`` (Fisher's exact test,
      module docstring); the last three null without ``prior_only``.
    - ``significance``: ``{"test", "n", "hits", "chance", "p_value"}`` of the top-1 hits against
      chance (binomial tail).
    - ``evaluator``: ``arch``, ``accuracy_private_test``, ``accuracy_private_train`` (top-1).
    - ``protocol`` (the given one with ``resize`` = ``RESIZE_METHOD``) and ``protocol_hash``,
      the ``protocol_hash`` of that recorded protocol (so it covers the resize too).

    Images of any size reach each model through ``resize_for``: the evaluator scores
    reconstructions and private images alike, the target reads ``private_test`` at its input.

    Args:
        inversions: the attack's tensors (``Inversion.tensors()``, ``inversions.pt``): at least
            ``images``, ``identities`` and ``draws``, one image per (identity, draw).
        evaluator: the evaluation classifier, returning ``(features, logits)``.
        private: the ``private`` split (training images), or its ``PrivateReference``.
        private_test: the ``private-test`` split.
        target: the attacked model; given, ``check_evaluator`` vets the evaluator against it.
        prior_only: unoptimised samples of the same prior, in the same layout, with the
            attack's identities, draws and seeds.
        protocol: what made the run (method, options, identities, draws, seeds, iterations,
            batch size), as the attack runner returns it.
        batch_size: images per forward pass.
        device: where to compute (the models' device).

    Returns:
        The ``metrics.json`` content: floats, ints, strings, lists, dicts and None only.
    """
    recorded = _recorded_protocol(protocol)
    if target is not None:
        check_evaluator(evaluator, target)
    reference = _reference_of(evaluator, private, batch_size, device)
    features, scores, classes = _scored(
        "inversions", inversions, evaluator, reference, batch_size, device
    )
    prior_scores = None
    if prior_only is not None:
        _require_paired(inversions, prior_only)
        _, prior_scores, _ = _scored(
            "prior_only", prior_only, evaluator, reference, batch_size, device
        )
    return {
        **_summary(scores, inversions["draws"]),
        "top5_note": _top5_note(classes),
        "frechet": {**frechet_report(features, reference.features), "label": FRECHET_LABEL},
        "natural_accuracy": _natural_accuracy(target, private_test, batch_size, device),
        "baselines": _baselines(classes, scores, prior_scores, inversions["draws"]),
        "significance": _significance(scores["top1"], classes),
        "evaluator": _evaluator_record(evaluator, reference, private_test, batch_size, device),
        "protocol": recorded,
        "protocol_hash": protocol_hash(recorded),
    }
