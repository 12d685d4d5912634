"""An attack run's folder, from the attack to ``metrics.json``: what ``fisher-mi attack`` and the
demo do alike.

After ``runner.run_attack``: the prior-only baseline (the same attack at zero iterations, so
the same identities, draws and seeds: ``score_run`` pairs them), then the images, the tensors,
the table, the grid and, with an evaluator, ``metrics.json``. ``scores`` is also what
``fisher-mi evaluate`` re-scores a saved run with, so a run and its re-scoring cannot differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from fisher_mi.attacks.inversion import ATTACKS, Inversion, InversionAttack
from fisher_mi.attacks.outputs import write_grid, write_images, write_inversions, write_table_of
from fisher_mi.errors import ConfigError
from fisher_mi.evaluate import (
    PrivateReference,
    features_and_logits,
    per_image_scores,
    private_reference,
    protocol_hash,
    score_run,
)
from fisher_mi.io import save_checkpoint, write_json

PRIOR_ONLY = "prior_only.pt"
METRICS = "metrics.json"
PUBLIC_MEAN_SAMPLES = 5000  # Re-thinking_MI attack.py get_act_reg: Nsample=5000


@dataclass(frozen=True)
class Scoring:
    """What an evaluator needs to score a run.

    Attributes:
        evaluator: the evaluation classifier (another architecture than the target's).
        private: the private training split, or its ``PrivateReference`` (computed once).
        private_test: the private-test split (the target's natural accuracy, the evaluator's).
    """

    evaluator: nn.Module
    private: Dataset | PrivateReference
    private_test: Dataset

    def reference(self) -> Scoring:
        """The same scoring with the private images put through the evaluator once."""
        return Scoring(
            self.evaluator, private_reference(self.evaluator, self.private), self.private_test
        )


def public_feature_mean(target: nn.Module, public: Dataset | None) -> Tensor:
    """The target's mean penultimate feature on (at most 5000) public images: LOMMA's mu."""
    if public is None:
        raise ConfigError("--lomma / --feature-reg need --data (its public split gives the mean)")
    count = min(len(public), PUBLIC_MEAN_SAMPLES)  # type: ignore[arg-type]
    images = torch.stack([public[i][0] for i in range(count)])
    return features_and_logits(target, images)[0].mean(dim=0)


def prior_only_of(attack: InversionAttack, identities: Sequence[int]) -> Inversion:
    """The attack at zero iterations: the unoptimised samples of its prior, same seeds."""
    settings = {**vars(attack.settings), "iterations": 0}
    baseline = ATTACKS.get(attack.name)(
        attack.target,
        attack.gan,
        surrogates=attack.surrogates,
        public_mean=attack.public_mean,
        **settings,
    )
    return baseline.run(identities)


def scores(
    target: nn.Module,
    inversion: Mapping[str, Tensor],
    prior_only: Mapping[str, Tensor],
    protocol: Mapping[str, Any],
    scoring: Scoring | None,
) -> tuple[dict[str, Tensor | None] | None, dict[str, Any]]:
    """Per-image scores and ``metrics.json`` with an evaluator; without one, the protocol and
    the target's own confidence (no literature metric is claimed)."""
    recorded = {key: value for key, value in protocol.items() if key != "protocol_hash"}
    if scoring is None:
        confidence = float(inversion["target_confidence"].double().mean())
        return None, {
            "protocol": recorded,
            "protocol_hash": protocol_hash(recorded),
            "target_confidence_mean": confidence,
            "evaluator": None,
        }
    scoring = scoring.reference()
    per_image = per_image_scores(inversion, evaluator=scoring.evaluator, private=scoring.private)
    metrics = score_run(
        inversion,
        evaluator=scoring.evaluator,
        private=scoring.private,
        private_test=scoring.private_test,
        target=target,
        prior_only=prior_only,
        protocol=recorded,
    )
    return per_image, metrics


def write_attack(
    out: Path,
    target: nn.Module,
    inversion: Inversion,
    prior_only: Inversion,
    protocol: Mapping[str, Any],
    *,
    scoring: Scoring | None,
    private_examples: Mapping[int, Tensor] | None = None,
) -> list[Path]:
    """Every output of a finished attack, into ``out``.

    Args:
        out: the attack's folder (``runner.run_attack`` wrote ``batches/`` there).
        target: the attacked model.
        inversion: its reconstructions.
        prior_only: the prior-only baseline of the same units (``prior_only_of``).
        protocol: what made them (the runner's protocol, plus the sources it names).
        scoring: the evaluator and data for ``metrics.json``; None: no literature metric.
        private_examples: one real private image per identity for the grid (None: none).

    Returns:
        The files written: ``prior_only.pt``, the images, ``inversions.pt``, ``attack.csv``,
        ``grid.png``, ``metrics.json``.
    """
    per_image, metrics = scores(
        target, inversion.tensors(), prior_only.tensors(), protocol, scoring
    )
    return [
        save_checkpoint(out / PRIOR_ONLY, prior_only.tensors()),
        *write_images(inversion, out),
        write_inversions(inversion, out),
        write_table_of(inversion, out, per_image),
        write_grid(inversion, out, private_examples),
        write_json(out / METRICS, metrics),
    ]
