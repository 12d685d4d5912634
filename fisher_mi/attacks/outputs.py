"""What an attack writes: one PNG per reconstruction, the tensors, the table and a grid.

``images/<identity>/<draw>.png`` is the layout the ``folder:`` dataset reads (integer folder
names are the labels), so ``fisher-mi profile target.pt --also inverted=folder:DIR/images``
profiles the "MI task" with no conversion. PNGs hold the [0, 1] images rounded to 8 bits;
``inversions.pt`` keeps the exact float tensors (a dict of tensors: readable with
``weights_only=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import Tensor

from fisher_mi.attacks.inversion import Inversion
from fisher_mi.io import save_checkpoint, write_atomic, write_table

IMAGES = "images"
INVERSIONS = "inversions.pt"
TABLE = "attack.csv"
GRID = "grid.png"
TABLE_COLUMNS = ("identity", "draw", "seed", "target_confidence", "top1", "top5", "knn_sq")
GRID_CELL_GAP = 2  # pixels between grid cells
MAX_GRID_IDENTITIES = 20  # rows of the grid (the first identities), so it stays viewable


def to_pil(image: Tensor) -> Image.Image:
    """A C x H x W tensor in [0, 1] as an 8-bit Pillow image (grey or RGB), rounded."""
    pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0], "L")
    return Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), "RGB")


def write_png(image: Image.Image, path: Path) -> Path:
    """Save ``image`` as PNG atomically."""
    return write_atomic(path, lambda stream: image.save(stream, format="PNG"), binary=True)


def write_images(inversion: Inversion, folder: Path) -> list[Path]:
    """``folder/images/<identity>/<draw>.png`` for every reconstruction."""
    paths = []
    for image, identity, draw in zip(
        inversion.images, inversion.identities.tolist(), inversion.draws.tolist(), strict=True
    ):
        paths.append(write_png(to_pil(image), folder / IMAGES / str(identity) / f"{draw}.png"))
    return paths


def write_inversions(inversion: Inversion, folder: Path) -> Path:
    """``inversions.pt``: the dict of tensors of DESIGN.md (images, identities, draws, seeds,
    latents, target_confidence)."""
    return save_checkpoint(folder / INVERSIONS, inversion.tensors())


def attack_table(inversion: Inversion, scores: Mapping[str, Tensor] | None = None) -> pd.DataFrame:
    """One row per reconstruction; ``top1``, ``top5``, ``knn_sq`` from the evaluator's
    ``scores`` when there is one (empty otherwise: no evaluator, no literature metric)."""
    scores = scores or {}
    columns = {
        "identity": inversion.identities.numpy(),
        "draw": inversion.draws.numpy(),
        "seed": inversion.seeds.numpy(),
        "target_confidence": inversion.target_confidence.double().numpy(),
    }
    for name in ("top1", "top5", "knn_sq"):
        value = scores.get(name)
        columns[name] = (
            value.numpy() if value is not None else np.full(len(inversion.images), np.nan)
        )
    return pd.DataFrame(columns)[list(TABLE_COLUMNS)]


def write_table_of(inversion: Inversion, folder: Path, scores: Mapping[str, Tensor] | None) -> Path:
    """``attack.csv``."""
    return write_table(folder / TABLE, attack_table(inversion, scores))


def grid_image(inversion: Inversion, private: Mapping[int, Tensor] | None = None) -> Image.Image:
    """A row per identity (the first ``MAX_GRID_IDENTITIES``): a real private image of the
    identity first when ``private`` gives one, then its reconstructions in draw order."""
    identities = list(dict.fromkeys(inversion.identities.tolist()))[:MAX_GRID_IDENTITIES]
    owners = inversion.identities.tolist()
    rows = [
        ([private[i]] if private and i in private else [])
        + [image for image, who in zip(inversion.images, owners, strict=True) if who == i]
        for i in identities
    ]
    _, height, width = inversion.images.shape[1:]
    step_x, step_y = width + GRID_CELL_GAP, height + GRID_CELL_GAP
    columns = max(len(row) for row in rows)
    mode = "L" if inversion.images.shape[1] == 1 else "RGB"
    canvas = Image.new(
        mode, (columns * step_x, len(rows) * step_y), color=255 if mode == "L" else (255,) * 3
    )
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            canvas.paste(to_pil(image.to(inversion.images.dtype)), (x * step_x, y * step_y))
    return canvas


def write_grid(inversion: Inversion, folder: Path, private: Mapping[int, Tensor] | None) -> Path:
    """``grid.png`` (``private`` None: no real private images in it)."""
    return write_png(grid_image(inversion, private), folder / GRID)
