"""The model-inversion metrics, the public face of ``fisher_mi.evaluate.metrics``.

``import fisher_mi.metrics`` then ``fisher_mi.metrics.topk_hits(logits, labels, k)``,
``knn_distance(features, labels, private_features, private_labels)`` (squared L2),
``frechet_distance(features_a, features_b)`` and ``frechet_report`` (``{"value", "n", "dim"}``).
"""

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
    "frechet_distance",
    "frechet_report",
    "knn_distance",
    "topk_hits",
]
