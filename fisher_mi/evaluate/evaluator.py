"""The evaluation classifier: images into its input format, its features and logits, and the
check that it is a fair judge of an attack.

The MI literature scores reconstructions with a classifier of another architecture than the
target, trained on the same private identities: on CelebA ``facenet`` (IR-50 at 112 x 112;
GMI ``Celeba/attack.py``, KEDMI ``recovery.py``, which resize 64 px reconstructions to 112 px
with ``utils.low2high``), on MNIST GMI's ``SCNN`` (``scnn`` here, 32 x 32), at 64 px a
``resnet18``. Any registered architecture can serve; ``check_evaluator`` refuses one with other
classes and warns about one that is the target itself.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional

from fisher_mi.errors import ConfigError, DataError
from fisher_mi.models.outputs import logits_of

# The one resampling of the protocol record (metrics.json "protocol" "resize"): bilinear with
# an antialiasing filter on float tensors, pixel centres aligned as PIL's resize aligns them.
RESIZE_METHOD = (
    "torch interpolate bilinear, antialias=True, align_corners=False, on float images; "
    "grey to RGB by repetition, RGB to grey by ITU-R 601 luma"
)
# ITU-R BT.601 luma, the weights of Pillow's convert("L"): Y = 0.299 R + 0.587 G + 0.114 B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class EvaluatorWarning(UserWarning):
    """An evaluator that is the target itself (or its exact copy): that is not the literature's
    metric, which judges reconstructions with an independently trained classifier."""


def _input_shape(model: nn.Module) -> tuple[int, int, int]:
    """The model's ``input_shape`` (C, H, W), which every fisher_mi architecture declares."""
    shape = getattr(model, "input_shape", None)
    if not (isinstance(shape, tuple) and len(shape) == 3):
        raise ConfigError(
            f"{type(model).__name__} declares no input_shape (C, H, W); build it with "
            "fisher_mi.build_model or set model.input_shape"
        )
    return shape


def _convert_channels(images: Tensor, channels: int) -> Tensor:
    """Grey -> RGB by repeating the channel; RGB -> grey by ``LUMA_WEIGHTS``."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device)
        return torch.einsum("nchw,c->nhw", images, weights)[:, None]
    raise ConfigError(
        f"cannot convert {have}-channel images to the model's {channels} channels; "
        "only grey (1) and RGB (3) images convert"
    )


def _require_images(images: Tensor) -> None:
    """Refuse anything but an N x C x H x W floating-point tensor (uint8 would pass as 0-255)."""
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        kind = f" {images.dtype}" if isinstance(images, Tensor) else ""
        raise ConfigError(
            f"images must be N x C x H x W float tensors in [0, 1], got {shape}{kind}"
        )


def resize_for(model: nn.Module, images: Tensor) -> Tensor:
    """Images in the model's input format: its ``input_shape`` channels and size.

    One method for every evaluator (``RESIZE_METHOD``): ``interpolate(mode="bilinear",
    antialias=True, align_corners=False)`` on float images, which for downscaling averages over
    the footprint of each output pixel (like PIL) instead of sampling 4 pixels and aliasing. It
    keeps [0, 1] images in [0, 1] (convex weights). Channels are converted where fewer pixels
    are (before an enlargement, after a reduction); both steps are linear, so the order does
    not change the result.

    Args:
        model: a classifier with ``input_shape`` (C, H, W).
        images: N x C' x H' x W' float images in [0, 1], C' = 1 or 3.

    Returns:
        N x C x H x W images, the input itself when it already has that shape.
    """
    channels, height, width = _input_shape(model)
    _require_images(images)
    if images.shape[-2:] == (height, width):
        return _convert_channels(images, channels)
    grow = images.shape[-2] * images.shape[-1] < height * width
    if not grow:
        images = _convert_channels(images, channels)
    resized = functional.interpolate(
        images, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return _convert_channels(resized, channels) if grow else resized


def _features_of(model: nn.Module, output: object) -> Tensor:
    """The features in a ``(features, ..., logits)`` output: its first element, flattened."""
    if not isinstance(output, (tuple, list)) or len(output) < 2:
        raise ConfigError(
            f"{type(model).__name__} returns only logits; the KNN and Frechet metrics need a "
            "model whose forward returns (features, logits)"
        )
    return torch.flatten(output[0], 1)


def _placement(model: nn.Module, images: Tensor) -> tuple[torch.device, torch.dtype]:
    """Device and float type of the model's parameters; the images' for a model without any."""
    parameter = next(model.parameters(), None)
    reference = parameter if parameter is not None else images
    return reference.device, reference.dtype


@torch.no_grad()
def _forward(
    model: nn.Module, images: Tensor, batch_size: int, device: str | torch.device | None
) -> list[object]:
    """The model's outputs on ``images``, one per batch, in eval mode (mode restored)."""
    _require_images(images)
    if len(images) == 0:
        raise DataError("no images to evaluate; pass an N x C x H x W tensor with N >= 1")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    default_device, dtype = _placement(model, images)
    target = torch.device(device) if device is not None else default_device
    was_training = model.training
    model.eval()
    try:
        return [
            model(resize_for(model, batch.to(target, dtype))) for batch in images.split(batch_size)
        ]
    finally:
        model.train(was_training)


def features_and_logits(
    model: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """The model's features and logits on images, a batch at a time, in eval mode, no grad.

    Each batch is moved to ``device`` (default: the model's), cast to the model's float type
    and resized with ``resize_for`` there, so a whole set of 112 px copies never exists at
    once. The model's train/eval mode is restored afterwards. It must return
    ``(features, ..., logits)``: features first, logits last (``logits_of``).

    Args:
        model: the evaluator (or any classifier of the MI literature's output convention).
        images: N x C x H x W float images in [0, 1], N >= 1, any size and 1 or 3 channels.
        batch_size: images per forward pass.
        device: where to compute.

    Returns:
        ``(features, logits)``: N x D features (flattened) and N x classes logits, on the
        compute device.
    """
    outputs = _forward(model, images, batch_size, device)
    features = torch.cat([_features_of(model, output) for output in outputs])
    return features, torch.cat([logits_of(output) for output in outputs])


def _class_count(model: nn.Module) -> int:
    """How many classes the model scores: the logits' width on one blank input."""
    blank = torch.zeros(1, *_input_shape(model))
    return logits_of(_forward(model, blank, 1, None)[0]).shape[1]


def _same_weights(first: nn.Module, second: nn.Module) -> bool:
    """Same class, same state-dict keys and every tensor equal: one model twice."""
    if type(first) is not type(second):
        return False
    a, b = first.state_dict(), second.state_dict()
    return list(a) == list(b) and all(
        a[key].shape == b[key].shape and torch.equal(a[key], b[key].to(a[key].device)) for key in a
    )


def check_evaluator(evaluator: nn.Module, target: nn.Module) -> None:
    """Refuse an evaluator that cannot judge the target's reconstructions; warn about one that
    judges them unfairly.

    The evaluator must score the target's classes (the same private identities, in the same
    order): another class count is an error. Each model's class count is the width of its
    logits on one blank image of its own ``input_shape``, so no head layout is assumed.

    An evaluator that is the target, or has its class and every weight and buffer, is
    accepted with an ``EvaluatorWarning``: a reconstruction optimised against the target is
    classified as its identity by the target by construction, so its "attack accuracy"
    measures the optimiser, not the leak; the literature uses another architecture trained
    independently.

    Args:
        evaluator: the evaluation classifier.
        target: the attacked model.
    """
    classes, target_classes = _class_count(evaluator), _class_count(target)
    if classes != target_classes:
        raise ConfigError(
            f"the evaluator scores {classes} classes but the target {target_classes}; "
            "train the evaluator on the target's private identities"
        )
    if evaluator is target or _same_weights(evaluator, target):
        warnings.warn(
            "the evaluator is the target itself (same architecture and weights): that is not "
            "the literature's metric; evaluate with an independently trained classifier",
            EvaluatorWarning,
            stacklevel=2,
        )
