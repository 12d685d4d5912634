"""Evaluation: natural accuracy, the model-inversion metrics and the evaluation classifier.

``accuracy`` scores a classifier on labelled data; ``metrics`` holds the attack metrics as
functions of tensors (top-k hits, KNN distance, Frechet distance; ``fisher_mi.metrics`` is their
public face).
"""

from fisher_mi.evaluate.accuracy import accuracy
from fisher_mi.evaluate.metrics import (
    FRECHET_LABEL,
    FewSamplesWarning,
    frechet_distance,
    frechet_report,
    knn_distance,
    topk_hits,
)

__all__ = [
    "FRECHET_LABEL",
    "FewSamplesWarning",
    "accuracy",
    "frechet_distance",
    "frechet_report",
    "knn_distance",
    "topk_hits",
]
