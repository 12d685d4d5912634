"""Image decoding and the one image -> tensor transform (Pillow only, no torchvision).

Every image fisher_mi reads goes through :func:`open_image` and :func:`image_to_tensor`, so
crops, colour conversion and resizing are done the same way for every dataset: colour mode
first, then an optional resize of the whole image (FaceScrub's 64 x 64 base), then the crop
(a fixed box such as the MI literature's CelebA box ``(35, 55, 143, 163)``, or a
:class:`CentreCrop` sized from the image), then Pillow's bilinear resize, then ``/ 255`` into
float32 ``C x H x W`` in [0, 1] (no mean/std normalisation).

Grey images wider than 8 bits (16-bit PNG, TIFF and PGM, float TIFF) are not converted to
``"L"``: Pillow's conversion clips integers to 255 and truncates floats, so a 16-bit image
would read as all white and a float one as all black. They are divided by their white level
(:data:`WHITE_LEVELS`) into a float image (mode ``"F"``, resized without quantisation) and
values outside ``[0, white]`` are refused rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fisher_mi.errors import ConfigError, DataError

CHANNEL_MODES = {1: "L", 3: "RGB"}
EIGHT_BIT_WHITE = 255

WHITE_LEVELS = {
    "I;16": 65535,
    "I;16L": 65535,
    "I;16B": 65535,
    "I;16N": 65535,
    "I": 65535,
    "F": 1,
}
"""The value of white in each grey mode wider than 8 bits; pixels are divided by it.

The ``I;16`` modes are 16-bit files (PNG, TIFF). Mode ``I`` (32-bit signed) is what Pillow
makes of 16-bit PGM/PPM files, already scaled from their maxval to 0..65535, so 65535 is its
white too; a true 32-bit image (values beyond 65535, or negative) has no known white level,
and dividing by the type's 2^31 - 1 would make it black, so it is refused. Mode ``F`` is taken
as already in [0, 1], the convention of float image files; other ranges (0..255 floats, HDR,
depth maps) are refused instead of being rescaled by their own extremes, which would make each
image's brightness depend on its content.
"""

Box = tuple[int, int, int, int]
"""A crop box ``(left, upper, right, lower)`` in Pillow's convention."""


@dataclass(frozen=True)
class CentreCrop:
    """The centred square whose side is ``fraction`` of the image's shorter side.

    Sized from each image rather than fixed, so a dataset's crop fits every size it comes in:
    FFHQ's literature crop, 88 of the 128-pixel thumbnails, is ``CentreCrop(Fraction(88, 128))``
    and takes the same face region (704 pixels) of the 1024 x 1024 images. The side is
    ``round(fraction * min(width, height))``; the offsets are floored,
    ``left = (width - side) // 2``, as in the MI literature's ``(128 - 88) // 2`` (torchvision's
    ``CenterCrop`` rounds instead; the two differ only for an odd margin).
    """

    fraction: Fraction = Fraction(1)

    def box(self, width: int, height: int) -> Box:
        """The crop box for a ``width x height`` image."""
        side = max(1, round(self.fraction * min(width, height)))
        left, upper = (width - side) // 2, (height - side) // 2
        return left, upper, left + side, upper + side


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode the image at ``path``, recognised by its content, not its name.

    Decoding eagerly (``load()``) closes the file at once and makes a truncated or corrupt
    file fail here, with its path, rather than somewhere inside a DataLoader worker.

    A file whose header claims more than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (a
    decompression bomb: a few bytes that would decode to gigabytes) is refused like any other
    unreadable file.

    Raises:
        DataError: the file is missing, Pillow cannot identify or decode it, or it is a
            decompression bomb.
    """
    try:
        with Image.open(path) as image:
            image.load()
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist; check the path") from None
    except Image.DecompressionBombError as err:
        raise DataError(
            f"image {path} is too large to decode safely ({first_line(err)}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file, else remove it"
        ) from None
    except UnidentifiedImageError:
        raise DataError(
            f"{path} is not an image format Pillow recognises; replace or remove the file"
        ) from None
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read image {path} ({first_line(err)}); replace or remove the file"
        ) from err
    return image


def first_line(err: Exception) -> str:
    """The first line of an exception's message, or its class name if it has none."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


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


def check_crop(crop: Box, width: int, height: int) -> None:
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
    crop: Box | CentreCrop | None = None,
    base_size: int | tuple[int, int] | None = None,
) -> torch.Tensor:
    """Convert, crop and resize a Pillow image into a float32 ``C x H x W`` tensor in [0, 1].

    Pixels are ``value / white``: ``white`` is 255 for 8-bit images and the mode's entry in
    :data:`WHITE_LEVELS` for wider grey ones (16-bit: 65535; float: 1).

    Args:
        image: any Pillow image.
        size: output ``(height, width)`` (the tensor's order, not Pillow's ``(width, height)``);
            an int means a square; None keeps the (cropped) size. Resizing is Pillow's
            ``Image.Resampling.BILINEAR``.
        channels: 1 converts to grey ``"L"``, 3 to ``"RGB"`` (a wide grey image repeats its
            grey); None keeps grey images (with or without alpha, any depth) grey and converts
            everything else, palette images included, to RGB.
        crop: optional box ``(left, upper, right, lower)`` in Pillow's convention, or a
            :class:`CentreCrop` sized from the image, applied before the final resize.
        base_size: optional ``(height, width)`` (or int square) the whole image is resized to
            (bilinear) before cropping, for crops defined on a fixed base size.

    Raises:
        ConfigError: an invalid ``size``, ``base_size`` or ``channels``.
        DataError: a crop box outside the image, or a wide grey image with values outside
            ``[0, white]``.
    """
    hw = check_size(size)
    base = check_size(base_size)
    grey = Image.getmodebase(image.mode) == "L"  # L, LA, 1, I, I;16, F; palette is colour
    out_channels = check_channels(channels) or (1 if grey else 3)
    image, white = _unit_mode(image, out_channels)
    image = _resize(image, base)
    if crop is not None:
        box = crop.box(*image.size) if isinstance(crop, CentreCrop) else crop
        check_crop(box, *image.size)
        image = image.crop(box)
    image = _resize(image, hw)
    pixels = np.asarray(image, dtype=np.float32) / white
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if pixels.shape[0] != out_channels:  # a wide grey image asked for as RGB
        pixels = np.repeat(pixels, out_channels, axis=0)
    return torch.from_numpy(np.ascontiguousarray(pixels))


def _unit_mode(image: Image.Image, channels: int) -> tuple[Image.Image, float]:
    """The image in the mode it is cropped and resized in, and the value of white there.

    8-bit images (and colour of any depth, which Pillow decodes to 8 bits) are converted to
    ``"L"``/``"RGB"`` first (Pillow resizes palette images with NEAREST only), white 255. Wide
    grey images become mode ``"F"`` scaled to [0, 1] by :func:`unit_float_pixels`, white 1.
    """
    if image.mode not in WHITE_LEVELS:
        return image.convert(CHANNEL_MODES[channels]), EIGHT_BIT_WHITE
    return Image.fromarray(unit_float_pixels(image)), 1.0


def unit_float_pixels(image: Image.Image) -> np.ndarray:
    """A wide grey image's pixels divided by its mode's white level: float32 in [0, 1].

    The quotient is taken in float64 and rounded to float32: the same float32 as a correctly
    rounded float32 division (rounding twice is harmless for a quotient, 53 >= 2 * 24 + 2
    bits), so a stored 32768 comes back as exactly ``float32(32768 / 65535)``.

    Raises:
        DataError: a value outside ``[0, white]`` (or NaN): the image's scale is unknown.
    """
    white = WHITE_LEVELS[image.mode]
    values = np.asarray(image, dtype=np.float64)
    if not np.all((values >= 0) & (values <= white)):  # NaN fails both comparisons
        found = (
            "NaN values"
            if np.isnan(values).any()
            else f"values from {values.min():g} to {values.max():g}"
        )
        raise DataError(
            f"mode {image.mode} image has {found}, outside [0, {white}]; "
            "save it as 8- or 16-bit integers, or floats in [0, 1]"
        )
    return (values / white).astype(np.float32)


def _resize(image: Image.Image, hw: tuple[int, int] | None) -> Image.Image:
    """Bilinear resize to ``(height, width)``; None or the same size leaves the image as is."""
    if hw is None or image.size == (hw[1], hw[0]):
        return image
    return image.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)


def resize_float(array: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of one 2-D float array to ``size x size`` with Pillow in mode ``"F"``.

    Float mode keeps the values unquantised (no round trip through uint8); the bilinear
    weights are non-negative and sum to one, so values stay within the input's range.
    """
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
