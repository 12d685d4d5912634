"""Kernel dependence measures between two views of one batch (BiDO's d(X, Z) and d(Z, Y)).

Everything is a matrix operation on the m x m kernel matrices of a batch of m samples, so a
batch costs a few m x m products and one m x m solve per measure, on whatever device the
features are. The measures are computed in the dtype they are given (BiDO passes float32:
kernels of float16 activations lose too much to the exponential and the solve).

- Gaussian kernel on rows a_i of dimension D: ``K_ij = exp(-||a_i - a_j||^2 / (2 sigma^2 D))``
  (BiDO scales the bandwidth by the dimension, so inputs, feature maps and embeddings of very
  different sizes share one sigma); linear kernel ``K = A A^T`` (on one-hot labels).
- Centring: ``K~ = H K H`` with ``H = I - 11^T / m``.
- Plain HSIC: ``(1 / (m - 1)^2) sum_ij K~_ij L~_ij`` (Gretton et al.'s biased estimator).
- Normalised HSIC (BiDO-HSIC, after Ma et al.'s HSIC bottleneck): ``R_K = K~ (K~ + eps m I)^-1``
  with ``eps = 1e-5``, ``d = sum_ij (R_K)_ij (R_L)_ji``. ``K~`` commutes with
  ``K~ + eps m I``, so ``R_K`` is the solve ``(K~ + eps m I)^-1 K~``; no inverse is formed.
  BiDO's reference right-centres (``K H``); we centre on both sides, which keeps ``K~``
  symmetric positive semi-definite, the solve well posed.
- COCO (BiDO-COCO, the kernel constrained covariance): ``sqrt(||K~ L~||_F) / m``, with the
  Frobenius norm as in BiDO's reference (Gretton et al.'s COCO takes the spectral norm).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fisher_mi.registry import Registry

RIDGE = 1e-5  # eps of the normalised HSIC: (K~ + eps m I), BiDO's and the HSIC bottleneck's
COCO_FLOOR = 1e-12  # ||K~ L~||_F^2 is clamped here: its fourth root has no gradient at 0


def gaussian_kernel(a: Tensor, sigma: float) -> Tensor:
    """``exp(-||a_i - a_j||^2 / (2 sigma^2 D))`` for the rows of ``a`` (m x D).

    Squared distances as ``|a_i|^2 + |a_j|^2 - 2 a_i . a_j`` (one matrix product), clamped
    at 0 against rounding; unlike ``cdist`` its gradient is finite where a_i = a_j.
    """
    squares = (a * a).sum(dim=1)
    distances = (squares[:, None] + squares[None, :] - 2 * a @ a.T).clamp_min(0)
    return torch.exp(-distances / (2 * sigma**2 * a.shape[1]))


def linear_kernel(a: Tensor) -> Tensor:
    """``A A^T`` for the rows of ``a``."""
    return a @ a.T


def centred(k: Tensor) -> Tensor:
    """``H K H``: the row and column means removed, the grand mean added back."""
    return k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()


def plain_hsic(k: Tensor, l: Tensor) -> Tensor:  # noqa: E741 (L is the standard name)
    """``(1 / (m - 1)^2) sum_ij K~_ij L~_ij``; 0 for a batch of one."""
    m = k.shape[0]
    return (centred(k) * centred(l)).sum() / max(m - 1, 1) ** 2


def _ratio(k: Tensor) -> Tensor:
    """``R = K~ (K~ + eps m I)^-1``, as the solve ``(K~ + eps m I)^-1 K~``."""
    m = k.shape[0]
    kc = centred(k)
    ridge = RIDGE * m * torch.eye(m, dtype=k.dtype, device=k.device)
    return torch.linalg.solve(kc + ridge, kc)


def normalised_hsic(k: Tensor, l: Tensor) -> Tensor:  # noqa: E741
    """``sum_ij (R_K)_ij (R_L)_ji`` = ``tr(R_K R_L)`` (the module docstring)."""
    return (_ratio(k) * _ratio(l).T).sum()


def coco(k: Tensor, l: Tensor) -> Tensor:  # noqa: E741
    """``sqrt(||K~ L~||_F) / m``, as ``(sum (K~ L~)^2)^(1/4) / m`` with the sum clamped at
    ``COCO_FLOOR`` (a batch of one label has ``L~ = 0``, where the root's gradient is NaN)."""
    product = centred(k) @ centred(l)
    return product.square().sum().clamp_min(COCO_FLOOR) ** 0.25 / k.shape[0]


Measure = Callable[[Tensor, Tensor], Tensor]
MEASURES: Registry[Measure] = Registry("dependence measure")
MEASURES.add("hsic", normalised_hsic)
MEASURES.add("coco", coco)
MEASURES.add("plain_hsic", plain_hsic)
