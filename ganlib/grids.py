"""Image grids: many samples as one picture, on screen or as a PNG (chapter 1).

NumPy and Pillow only, so training callbacks can save grids without matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ganlib.common import to_uint8

__all__ = ["image_grid", "save_grid"]


def image_grid(
    images, rows=None, cols=None, value_range=None, padding=2, pad_value=255
) -> np.ndarray:
    """Tile images into one uint8 RGB picture of rows x cols cells (chapter 1).

    images: array (n, h, w, c) with c in {1, 3}. With neither rows nor cols, the
    grid is as square as n allows. Empty cells are filled with pad_value.
    """
    images = to_uint8(images, value_range)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (n, h, w, 1 or 3), got {images.shape}")
    n, h, w, _ = images.shape
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if rows is None and cols is None:
        cols = math.ceil(math.sqrt(n))
    if cols is None:
        cols = math.ceil(n / rows)
    if rows is None:
        rows = math.ceil(n / cols)
    grid = np.full(
        (rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding, 3), pad_value, np.uint8
    )
    for i, image in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top : top + h, left : left + w] = image
    return grid


def save_grid(path, images, rows=None, cols=None, value_range=None, scale=1) -> Path:
    """Write image_grid(...) as a PNG, enlarged `scale` times (nearest) so small faces stay visible.

    Explained in chapter 5.
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image_grid(images, rows, cols, value_range))
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
    return path
