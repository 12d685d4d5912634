"""Evaluation: natural accuracy, the model-inversion metrics and the evaluation classifier.

``accuracy`` scores a classifier on labelled data; ``metrics`` holds the attack metrics as
functions of tensors (top-k hits, KNN distance, Frechet distance; ``fisher_mi.metrics`` is their
public face); ``evaluator`` puts images into an evaluation classifier and checks that it is a
fair judge of the target; ``scoring`` turns an attack's reconstructions into ``metrics.json``
(``score_run``) and the ``attack.csv`` columns (``per_image_scores``).
"""

from fisher_mi.evaluate.accuracy import accuracy
from fisher_mi.evaluate.evaluator import (
    LUMA_WEIGHTS,
    RESIZE_METHOD,
    EvaluatorWarning,
    check_evaluator,
    features_and_logits,
    resize_for,
)
from fisher_mi.evaluate.metrics import (
    FRECHET_LABEL,
    FewSamplesWarning,
    frechet_distance,
    frechet_report,
    knn_distance,
    topk_hits,
)
from fisher_mi.evaluate.scoring import (
    PrivateReference,
    per_image_scores,
    private_reference,
    protocol_hash,
    score_run,
)

__all__ = [
    "FRECHET_LABEL",
    "LUMA_WEIGHTS",
    "RESIZE_METHOD",
    "EvaluatorWarning",
    "FewSamplesWarning",
    "PrivateReference",
    "accuracy",
    "check_evaluator",
    "features_and_logits",
    "frechet_distance",
    "frechet_report",
    "knn_distance",
    "per_image_scores",
    "private_reference",
    "protocol_hash",
    "resize_for",
    "score_run",
    "topk_hits",
]
