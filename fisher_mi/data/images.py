"""Image decoding and the one image -> tensor transform (Pillow only, no torchvision).

Every image fisher_mi reads goes through :func:`open_image` and :func:`image_to_tensor`, so
crops, colour conversion and resizing are done the same way for every dataset: crop box first
(the MI literature's CelebA box is ``(35, 55, 143, 163)``), then colour mode, then Pillow's
bilinear resize, then ``/ 255`` into float32 ``C x H x W`` in [0, 1] (no mean/std
normalisation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fisher_mi.errors import ConfigError, DataError

CHANNEL_MODES = {1: "L", 3: "RGB"}


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode the image at ``path``, recognised by its content, not its name.

    Decoding eagerly (``load()``) closes the file at once and makes a truncated or corrupt
    file fail here, with its path, rather than somewhere inside a DataLoader worker.

    Raises:
        DataError: the file is missing or Pillow cannot identify or decode it.
    """
    try:
        with Image.open(path) as image:
            image.load()
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist; check the path") from None
    except UnidentifiedImageError:
        raise DataError(
            f"{path} is not an image format Pillow recognises; replace or remove the file"
        ) from None
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot read image {path} ({reason}); replace or remove the file") from err
    return image


def check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``size`` as ``(height, width)``: an int means a square; None means keep the size.

    Raises:
        ConfigError: a size that is not one or two positive integers.
    """
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(n, int) and n > 0 for n in pair):
        raise ConfigError(f"image size {size!r} is invalid; use a positive int or (height, width)")
    return pair[0], pair[1]


def check_channels(channels: int | None) -> int | None:
    """``channels`` unchanged if it is None, 1 (grey) or 3 (RGB).

    Raises:
        ConfigError: any other value.
    """
    if channels is not None and channels not in CHANNEL_MODES:
        raise ConfigError(f"channels={channels!r} is not supported; use 1 (grey), 3 (RGB) or None")
    return channels


def check_crop(crop: tuple[int, int, int, int], width: int, height: int) -> None:
    """Refuse a crop box reaching outside the image: Pillow would pad it with black silently.

    Raises:
        DataError: the box is empty or does not fit in a ``width x height`` image.
    """
    left, upper, right, lower = crop
    if not (0 <= left < right <= width and 0 <= upper < lower <= height):
        raise DataError(
            f"crop box {tuple(crop)} does not fit the {width}x{height} image; "
            f"use a box (left, upper, right, lower) within (0, 0, {width}, {height})"
        )


def image_to_tensor(
    image: Image.Image,
    *,
    size: int | tuple[int, int] | None,
    channels: int | None,
    crop: tuple[int, int, int, int] | None = None,
) -> torch.Tensor:
    """Crop, convert and resize a Pillow image into a float32 ``C x H x W`` tensor in [0, 1].

    Args:
        image: any Pillow image.
        size: output ``(height, width)`` (the tensor's order, not Pillow's ``(width, height)``);
            an int means a square; None keeps the (cropped) size. Resizing is Pillow's
            ``Image.Resampling.BILINEAR``.
        channels: 1 converts to grey ``"L"``, 3 to ``"RGB"``; None keeps grey images (with or
            without alpha) grey and converts everything else, palette images included, to RGB.
        crop: optional box ``(left, upper, right, lower)`` in Pillow's convention, applied
            before resizing.

    Raises:
        ConfigError: an invalid ``size`` or ``channels``.
        DataError: a crop box outside the image.
    """
    hw = check_size(size)
    grey = Image.getmodebase(image.mode) == "L"  # L, LA, 1, I, F; palette counts as colour
    mode = CHANNEL_MODES[check_channels(channels) or (1 if grey else 3)]
    if crop is not None:
        check_crop(crop, *image.size)
        image = image.crop(crop)
    image = image.convert(mode)
    if hw is not None and image.size != (hw[1], hw[0]):
        image = image.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(pixels))


def resize_float(array: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of one 2-D float array to ``size x size`` with Pillow in mode ``"F"``.

    Float mode keeps the values unquantised (no round trip through uint8); the bilinear
    weights are non-negative and sum to one, so values stay within the input's range.
    """
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
