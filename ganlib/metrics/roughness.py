"""Roughness inside a region of the image against outside it: where a generator scribbles (chapter 3). NumPy only."""

from __future__ import annotations

import numpy as np

from ganlib.common import to_float255


def roughness_ratio(images, region, value_range=None) -> float:
    """Mean local roughness of `images` inside `region` over the mean outside it (chapter 3).

    images: (n, s, s, c), uint8 or float (value_range as in ganlib.common.to_uint8).
    region: bool (s, s), e.g. the pixels a discriminator cannot see
    (`~ganlib.models.visible_pixels(d)`). A pixel's roughness is
    `abs(x[i, j] - x[i, j + 1]) + abs(x[i, j] - x[i + 1, j])`, averaged over channels and
    images, for every pixel but the last row and column (which have no right or lower
    neighbour). 1 when the region is as rough as the rest; above 1 where the generator
    draws noisier pictures there. ValueError when the region holds none, or all, of
    the pixels that have both neighbours.
    """
    images = np.asarray(images)
    region = np.asarray(region, dtype=bool)
    if images.ndim != 4 or images.shape[1:3] != region.shape:
        raise ValueError(
            f"images (n, s, s, c) and region (s, s) must match, got {images.shape} and "
            f"{region.shape}"
        )
    pixels = to_float255(images, value_range).astype(np.float64)
    across = np.abs(pixels[:, :-1, :-1] - pixels[:, :-1, 1:])
    down = np.abs(pixels[:, :-1, :-1] - pixels[:, 1:, :-1])
    per_pixel = (across + down).mean(axis=(0, 3))  # (s - 1, s - 1)
    inside = region[:-1, :-1]
    if not inside.any() or inside.all():
        raise ValueError(
            "region must hold some, but not all, of the pixels before the last row and column"
        )
    outside = per_pixel[~inside].mean()
    return float(per_pixel[inside].mean() / outside) if outside > 0 else float("nan")
