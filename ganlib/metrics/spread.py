"""Sample spread: how much a set of images differs from image to image, a collapse alarm (chapter 4). NumPy only."""

from __future__ import annotations

import numpy as np

from ganlib.common import to_float255


def sample_spread(images, value_range=None) -> float:
    """Mean over pixels and channels of the standard deviation across `images`, on the [0, 1] scale (chapter 4).

    images: (n, h, w, c) with n >= 2, uint8 or float (value_range as in
    ganlib.common.to_uint8). A generator that draws one image whatever its noise scores
    0, however good that image; real toy faces score about 0.2. Unlike `blank_share`,
    which looks inside each image, this compares the images with each other.
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(
            f"images must be an array (n, h, w, c) of at least 2 images, got shape {images.shape}"
        )
    pixels = to_float255(images, value_range).astype(np.float64) / 255.0
    return float(pixels.std(axis=0).mean())
