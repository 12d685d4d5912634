"""The model-inversion metrics, as plain functions of tensors: top-k hits, KNN distance and the
Frechet distance, each computed in the evaluation classifier's outputs.

The literature scores an attack by classifying its reconstructions with an evaluation model
(another architecture trained on the same private identities): attack accuracy is the top-1 and
top-5 hit rate, the KNN distance is the squared feature distance from each reconstruction to the
nearest private training image of its identity (KEDMI ``utils.py`` ``calc_knn``;
Re-thinking_MI ``metrics/KNN_dist.py``), and the Frechet distance compares Gaussians fitted to
the features of reconstructions and private images (Re-thinking_MI ``metrics/fid.py``, which
fits them in Inception features; here they are the evaluator's, hence the label
``FRECHET_LABEL``). Everything here is batched, runs where its inputs are, and accumulates in
float64.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from fisher_mi.errors import ConfigError, DataError, NonFiniteError

# Pairwise squared distances are built a block of reconstructions at a time, so that a block
# holds at most this many float64 entries (2**23 x 8 bytes = 64 MiB; the matrix product, the
# masked copy and the identity mask of one block together stay under 200 MiB).
KNN_BLOCK_ELEMENTS = 2**23

FRECHET_LABEL = "Frechet distance in evaluator features"


class FewSamplesWarning(UserWarning):
    """A Frechet distance fitted to fewer samples than its feature dimension allows.

    The covariance of n samples has rank at most n - 1, so with n <= dim it is singular: the
    distance is still defined, but it is biased and not comparable across sample sizes.
    """


def _require_features(name: str, features: Tensor) -> None:
    """Refuse anything but a finite samples x dimensions floating-point matrix."""
    if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[1] == 0:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ConfigError(f"{name} must be a 2-D (samples x dimensions) tensor, got {shape}")
    if not features.is_floating_point():
        raise ConfigError(
            f"{name} must be floating point, got {features.dtype}; cast with .float()"
        )
    if not bool(torch.isfinite(features).all()):
        raise NonFiniteError(f"{name} hold NaN or infinite values; check the model that made them")


def _require_labels(name: str, labels: Tensor, n: int) -> None:
    """Refuse anything but one integer label per sample."""
    if not isinstance(labels, Tensor) or labels.shape != (n,):
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ConfigError(f"{name} must be a 1-D tensor of {n} labels, one per row, got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ConfigError(f"{name} must be integer class indices, got {labels.dtype}")


def topk_hits(logits: Tensor, labels: Tensor, k: int) -> Tensor:
    """Per row, whether the label is among the ``k`` largest logits (true top-k accuracy).

    ``hit_n = #{c != y_n : z_{n,c} >= z_{n,y_n}} < k``: fewer than k other classes score at
    least as high as the label. A tie at the k-th place counts against the label, so the result
    never depends on how a sort orders ties, and a constant (saturated) evaluator hits nothing
    for k < C instead of everything. This is the top-k of one reconstruction, not GMI's
    historical "Acc5" (whether any of five seeds hit at top-1).

    Args:
        logits: N x C raw scores (or probabilities: the order is all that counts).
        labels: N integer classes in [0, C).
        k: how many of the largest scores count, 1 <= k <= C.

    Returns:
        N booleans on the logits' device.
    """
    _require_features("logits", logits)
    _require_labels("labels", labels, len(logits))
    classes = logits.shape[1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= classes:
        raise ConfigError(f"top-k needs an integer k from 1 to the {classes} classes, got {k!r}")
    labels = labels.to(logits.device)
    outside = (labels < 0) | (labels >= classes)
    if bool(outside.any()):
        raise DataError(
            f"label {int(labels[outside][0])} is not one of the logits' classes 0 to "
            f"{classes - 1}; score the reconstructions with a model of the target's classes"
        )
    label_score = logits.gather(1, labels.long()[:, None])
    return (logits >= label_score).sum(dim=1) - 1 < k


def _require_identities(labels: Tensor, private_labels: Tensor) -> None:
    """Refuse a reconstruction whose identity has no private image to be near."""
    present = torch.isin(labels, private_labels)
    if not bool(present.all()):
        missing = int(labels[~present][0])
        raise DataError(
            f"identity {missing} has no private image to measure the KNN distance to; "
            "pass the private training images of every attacked identity"
        )


def knn_distance(
    features: Tensor, labels: Tensor, private_features: Tensor, private_labels: Tensor
) -> Tensor:
    """Per reconstruction, the squared L2 distance to the nearest private image of its identity.

    ``d_n = min_{m : y'_m = y_n} ||f_n - f'_m||^2`` in the evaluator's feature space (KEDMI
    ``utils.py`` ``calc_knn``, Re-thinking_MI ``metrics/KNN_dist.py``: squared, not the
    distance itself). Small means the reconstruction looks like a real training image of the
    attacked identity. Computed a block of reconstructions at a time (``KNN_BLOCK_ELEMENTS``)
    as ``||f||^2 + ||f'||^2 - 2 f . f'`` in float64, clamped at 0 against rounding, with the
    other identities' columns masked to +inf.

    Args:
        features: N x D features of the reconstructions.
        labels: N identities they were made for.
        private_features: P x D features of the private training images.
        private_labels: P identities of those images.

    Returns:
        N float64 squared distances on the features' device.
    """
    _require_features("features", features)
    _require_features("private features", private_features)
    _require_labels("labels", labels, len(features))
    _require_labels("private labels", private_labels, len(private_features))
    if features.shape[1] != private_features.shape[1]:
        raise ConfigError(
            f"features have {features.shape[1]} dimensions but private features "
            f"{private_features.shape[1]}; compute both with the same evaluator"
        )
    queries = features.to(torch.float64)
    bank = private_features.to(queries.device, torch.float64)
    labels = labels.to(queries.device)
    bank_labels = private_labels.to(queries.device)
    _require_identities(labels, bank_labels)
    bank_norms = bank.pow(2).sum(dim=1)
    rows = max(1, KNN_BLOCK_ELEMENTS // max(1, len(bank)))
    nearest = [
        _nearest_same_identity(
            queries[start : start + rows],
            labels[start : start + rows],
            bank,
            bank_norms,
            bank_labels,
        )
        for start in range(0, len(queries), rows)
    ]
    return torch.cat(nearest) if nearest else queries.new_zeros(0)


def _nearest_same_identity(
    queries: Tensor, labels: Tensor, bank: Tensor, bank_norms: Tensor, bank_labels: Tensor
) -> Tensor:
    """One block of ``knn_distance``: min over same-identity columns of the squared distances."""
    squared = queries.pow(2).sum(dim=1, keepdim=True) + bank_norms - 2 * queries @ bank.T
    other = labels[:, None] != bank_labels[None, :]
    return squared.masked_fill(other, float("inf")).amin(dim=1).clamp_min(0)


def _moments(name: str, features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance ``S = (X - mu)^T (X - mu) / (n - 1)`` in float64.

    ``n - 1`` as ``numpy.cov`` (Re-thinking_MI ``metrics/fid.py``, pytorch-fid).
    """
    _require_features(name, features)
    if len(features) < 2:
        raise DataError(f"{name}: a covariance needs at least 2 samples, got {len(features)}")
    x = features.to(torch.float64)
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / (len(x) - 1)


def _psd_eigh(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues and eigenvectors of a symmetric positive semi-definite matrix.

    The matrix is symmetrised, ``(M + M^T) / 2``, and eigenvalues below
    ``dim * eps * max |lambda|`` (rounding noise of a zero eigenvalue, numpy's rank tolerance)
    or negative are set to 0: a square root would otherwise turn a noise of 1e-16 into 1e-8.
    """
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    tolerance = len(values) * torch.finfo(values.dtype).eps * values.abs().max()
    return torch.where(values > tolerance, values, torch.zeros_like(values)), vectors


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})`` with unbiased
    covariances (``n - 1``). ``Tr (S_a S_b)^{1/2}`` of the usual formula is written through the
    symmetric ``S_a^{1/2} S_b S_a^{1/2}`` (same eigenvalues), so both square roots come from
    float64 symmetric eigendecompositions with eigenvalues clamped at 0, exact for singular
    covariances; scipy's ``sqrtm`` of the non-symmetric product goes complex there. The result
    is clamped at 0 against rounding.

    Args:
        features_a: N_a x D features (e.g. of the reconstructions), N_a >= 2.
        features_b: N_b x D features (e.g. of the private images), N_b >= 2.

    Returns:
        The distance, a Python float.
    """
    mean_a, cov_a = _moments("features_a", features_a)
    mean_b, cov_b = _moments("features_b", features_b)
    if mean_a.shape != mean_b.shape:
        raise ConfigError(
            f"feature sets have {len(mean_a)} and {len(mean_b)} dimensions; "
            "compute both with the same evaluator"
        )
    cov_b = cov_b.to(cov_a.device)
    values, vectors = _psd_eigh(cov_a)
    root_a = (vectors * values.sqrt()) @ vectors.T
    cross, _ = _psd_eigh(root_a @ cov_b @ root_a)
    value = (mean_a - mean_b.to(mean_a.device)).pow(2).sum() + cov_a.trace() + cov_b.trace()
    return max(float(value - 2 * cross.sqrt().sum()), 0.0)


def frechet_report(features_a: Tensor, features_b: Tensor) -> dict[str, float | int]:
    """The Frechet distance as ``metrics.json`` records it: ``{"value", "n", "dim"}``.

    ``n`` is the smaller of the two sample counts (the one that limits the rank of the
    covariances, hence the reliability of the value) and ``dim`` the feature dimension. With
    ``n <= dim`` a covariance is necessarily singular (rank <= n - 1 < dim) and a
    ``FewSamplesWarning`` says so; the value is still reported. It is a distance in the
    evaluator's features (``FRECHET_LABEL``), not the FID of Inception features.

    Args:
        features_a: N_a x D features (e.g. of the reconstructions).
        features_b: N_b x D features (e.g. of the private images).

    Returns:
        ``{"value": float, "n": int, "dim": int}``.
    """
    value = frechet_distance(features_a, features_b)
    n, dim = min(len(features_a), len(features_b)), features_a.shape[1]
    if n <= dim:
        warnings.warn(
            f"{FRECHET_LABEL} from {n} samples in {dim} dimensions: the covariances are "
            f"singular (rank <= n - 1), so the value is biased; use more than {dim} samples",
            FewSamplesWarning,
            stacklevel=2,
        )
    return {"value": value, "n": n, "dim": dim}
