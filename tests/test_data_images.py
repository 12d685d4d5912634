"""Tests for fisher_mi.data.images and listing: wide pixel modes and decompression bombs.

Fixtures are real files written with Pillow (16-bit PNG, float and 32-bit TIFF), by hand (a
16-bit binary PGM) or byte by byte (a PNG header claiming a huge size) into ``tmp_path``;
expected pixels are the stored integers divided by hand.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fisher_mi.data import ImageFileDataset, image_to_tensor, load_dataset, open_image
from fisher_mi.errors import DataError

# Corners of the 16-bit range and a few values between: 8-bit conversion clips all but 0.
WIDE_VALUES = np.array([[0, 1, 255, 256], [1000, 32768, 65534, 65535]], dtype=np.uint16)
FLOAT_VALUES = np.array([[0.0, 0.125, 1 / 3], [0.5, 0.999, 1.0]], dtype=np.float32)


def png16(path: Path) -> np.ndarray:
    """A 16-bit grey PNG of :data:`WIDE_VALUES` (opens as mode ``I;16``); its pixel values."""
    Image.fromarray(WIDE_VALUES).save(path, format="PNG")
    return WIDE_VALUES


def pgm16(path: Path) -> np.ndarray:
    """A binary PGM with maxval 65535 (big-endian samples; opens as mode ``I``)."""
    height, width = WIDE_VALUES.shape
    header = f"P5\n{width} {height}\n65535\n".encode()
    path.write_bytes(header + WIDE_VALUES.astype(">u2").tobytes())
    return WIDE_VALUES


def tiff16(path: Path) -> np.ndarray:
    """A 16-bit grey TIFF of :data:`WIDE_VALUES` (opens as mode ``I;16``)."""
    Image.fromarray(WIDE_VALUES).save(path, format="TIFF")
    return WIDE_VALUES


def float_tiff(path: Path) -> np.ndarray:
    """A 32-bit float TIFF of :data:`FLOAT_VALUES` (opens as mode ``F``)."""
    Image.fromarray(FLOAT_VALUES).save(path, format="TIFF")
    return FLOAT_VALUES


WIDE_FILES = [
    pytest.param(png16, "I;16", 65535, id="png-16bit"),
    pytest.param(pgm16, "I", 65535, id="pgm-16bit"),
    pytest.param(tiff16, "I;16", 65535, id="tiff-16bit"),
    pytest.param(float_tiff, "F", 1, id="tiff-float"),
]


@pytest.mark.parametrize(("write", "mode", "white"), WIDE_FILES)
def test_wide_modes_are_scaled_by_their_range(
    tmp_path: Path, write: Callable[[Path], np.ndarray], mode: str, white: int
) -> None:
    path = tmp_path / "image.file"
    stored = write(path)
    image = open_image(path)
    assert image.mode == mode
    x = image_to_tensor(image, size=None, channels=None)
    expected = (stored.astype(np.float64) / white).astype(np.float32)
    assert x.dtype == torch.float32
    np.testing.assert_array_equal(x.numpy(), expected[None])


@pytest.mark.parametrize(("write", "mode", "white"), WIDE_FILES)
def test_wide_modes_as_rgb_repeat_the_scaled_grey(
    tmp_path: Path, write: Callable[[Path], np.ndarray], mode: str, white: int
) -> None:
    path = tmp_path / "image.file"
    stored = write(path)
    x = image_to_tensor(open_image(path), size=None, channels=3)
    expected = (stored.astype(np.float64) / white).astype(np.float32)
    np.testing.assert_array_equal(x.numpy(), np.stack([expected] * 3))


def test_16bit_png_resized_keeps_its_grey_levels(tmp_path: Path) -> None:
    """A 16-bit ramp resized: values stay within 1e-6 of the scaled ramp resized in float."""
    ramp = np.tile(np.linspace(0, 65535, 32).round().astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    data = ImageFileDataset([(tmp_path / "ramp.png", 0)], class_names=["a"], size=8, channels=1)
    scaled = Image.fromarray((ramp / 65535).astype(np.float32))
    expected = np.asarray(scaled.resize((8, 8), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(data[0][0][0].numpy(), expected, atol=1e-6)
    assert data[0][0].min() < 0.1 and data[0][0].max() > 0.9


@pytest.mark.parametrize(
    ("pixels", "says"),
    [
        pytest.param(np.array([[0.0, 255.0]], dtype=np.float32), "from 0 to 255", id="float-0-255"),
        pytest.param(np.array([[-0.5, 0.5]], dtype=np.float32), "from -0.5", id="float-negative"),
        pytest.param(np.array([[np.nan, 0.5]], dtype=np.float32), "NaN values", id="float-nan"),
        pytest.param(np.array([[0, 70000]], dtype=np.int32), "to 70000", id="int32-over-16bit"),
        pytest.param(np.array([[-5, 100]], dtype=np.int32), "from -5", id="int32-negative"),
    ],
)
def test_wide_values_outside_the_range_are_refused(
    tmp_path: Path, pixels: np.ndarray, says: str
) -> None:
    path = tmp_path / "image.tif"
    Image.fromarray(pixels).save(path, format="TIFF")
    data = ImageFileDataset([(path, 0)], class_names=["a"], size=None, channels=None)
    with pytest.raises(DataError) as caught:
        data[0]
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert says in message


# ---------------------------------------------------------------------------- decompression bombs


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR claims ``width x height`` 8-bit grey, then an empty IDAT: 45 bytes.

    Pillow reads the chunks up to the first IDAT when it opens a file, so the size check runs
    on the claimed size without any pixels.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def huge_header(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A header claiming 10^10 pixels: over Pillow's default limit (2 x 89,478,485)."""
    png_header_claiming(path, 100_000, 100_000)


def low_limit(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real 20 x 24 PNG under a limit lowered to 100 pixels (bombs start at twice that)."""
    Image.new("L", (20, 24), 128).save(path, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)


BOMBS = [pytest.param(huge_header, id="huge-header"), pytest.param(low_limit, id="low-limit")]


@pytest.mark.parametrize("make_bomb", BOMBS)
def test_decompression_bomb_is_a_one_line_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_bomb: Callable
) -> None:
    path = tmp_path / "bomb.png"
    make_bomb(path, monkeypatch)
    with pytest.raises(DataError) as caught:
        open_image(path)
    message = str(caught.value)
    assert str(path) in message and "MAX_IMAGE_PIXELS" in message and "\n" not in message


@pytest.mark.parametrize("make_bomb", BOMBS)
def test_folder_skips_a_decompression_bomb_with_a_warning(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    make_bomb: Callable,
) -> None:
    (tmp_path / "alice").mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "alice" / "face.png")
    make_bomb(tmp_path / "alice" / "bomb.png", monkeypatch)
    with caplog.at_level(logging.WARNING, logger="fisher_mi.data.folder"):
        data = load_dataset(f"folder:{tmp_path}", "private")
    assert [path.name for path, _ in data.samples] == ["face.png"]
    assert len(caplog.records) == 1 and "bomb.png" in caplog.text
