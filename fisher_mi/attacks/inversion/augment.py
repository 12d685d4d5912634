"""PLG-MI's random augmentations, in torch, one draw per image from given uniforms.

The reference (PLG-MI-Attack reconstruct.py) passes each generated batch twice through kornia's
RandomResizedCrop(scale 0.8-1, ratio 1), ColorJitter(brightness 0.2, contrast 0.2),
RandomHorizontalFlip and RandomRotation(5 degrees) before the target. Here the geometric part is
one affine warp per image (crop, flip and rotation composed into a 2 x 3 matrix, one
``grid_sample`` for the batch) and the colour part two per-image affine maps, all vectorised. The
parameters come from uniforms the caller draws per (identity, draw, step), so an image's
augmentations do not depend on its batch. Colour jitter follows torchvision's definitions
(brightness multiplies, contrast blends with the image's mean grey), in that fixed order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

UNIFORMS_PER_IMAGE = 7  # crop area, crop x, crop y, angle, flip, brightness, contrast
CROP_AREA = (0.8, 1.0)
MAX_ANGLE_DEGREES = 5.0
BRIGHTNESS = 0.2
CONTRAST = 0.2
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as torchvision's adjust_contrast


def _spread(u: Tensor, low: float, high: float) -> Tensor:
    return low + (high - low) * u


def _affine(u: Tensor) -> Tensor:
    """(N, 2, 3) maps from output to input coordinates (``affine_grid``'s [-1, 1] square).

    side s = sqrt(area) keeps a square crop (ratio 1); its centre moves by up to 1 - s; the
    flip negates x; the rotation turns by an angle in [-5, 5] degrees.
    """
    side = torch.sqrt(_spread(u[:, 0], *CROP_AREA))
    shift_x = _spread(u[:, 1], -1.0, 1.0) * (1 - side)
    shift_y = _spread(u[:, 2], -1.0, 1.0) * (1 - side)
    angle = _spread(u[:, 3], -MAX_ANGLE_DEGREES, MAX_ANGLE_DEGREES) * math.pi / 180
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * side, torch.sin(angle) * side
    return torch.stack(
        [
            torch.stack([cos * flip, -sin, shift_x], dim=1),
            torch.stack([sin * flip, cos, shift_y], dim=1),
        ],
        dim=1,
    )


def _colour(images: Tensor, u: Tensor) -> Tensor:
    """Brightness x b, then contrast (x - m) c + m with m the image's mean grey; clamped."""
    brightness = _spread(u[:, 5], 1 - BRIGHTNESS, 1 + BRIGHTNESS)[:, None, None, None]
    contrast = _spread(u[:, 6], 1 - CONTRAST, 1 + CONTRAST)[:, None, None, None]
    out = (images * brightness).clamp(0, 1)
    if out.shape[1] == 3:
        weights = torch.tensor(LUMA, device=out.device, dtype=out.dtype)[None, :, None, None]
        grey = (out * weights).sum(dim=1, keepdim=True)
    else:
        grey = out
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean).clamp(0, 1)


def augment(images: Tensor, uniforms: Tensor) -> Tensor:
    """One random augmentation per image; ``uniforms`` is (N, ``UNIFORMS_PER_IMAGE``) in (0, 1).

    Differentiable in the images (the attack's gradient flows through the warp).
    """
    theta = _affine(uniforms.to(images.dtype))
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _colour(warped, uniforms.to(images.dtype))
