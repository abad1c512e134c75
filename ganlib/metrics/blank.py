"""Blank outputs: the share of generated images that are flat, one colour with no picture (chapter 3). NumPy only."""

from __future__ import annotations

import numpy as np

from ganlib.common import to_float255

# A pixel spread of 0.02 on the [0, 1] scale is about 5 of 255 grey levels: a generator
# that has stopped drawing gives a single colour (spread 0, or a trace of noise), while
# a face, even a blurred one, spreads its pixels by 0.1 or more.
BLANK_THRESHOLD = 0.02


def blank_share(images, value_range=None, threshold=BLANK_THRESHOLD) -> float:
    """Share of images whose pixel spread is below `threshold`: the "no output" images (chapter 3).

    images: (n, h, w, c) or one image (h, w, c), uint8 or float (value_range as in
    ganlib.common.to_uint8). The spread of an image is the largest, over its
    channels, standard deviation of a channel's pixels on the [0, 1] scale: a flat
    image of any colour has spread 0 (over channels together, a flat red would not). threshold: 0.02 by default, about 5 grey levels: below it an image shows
    nothing a viewer could tell from a plain colour. Returns a float in [0, 1].
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be an array (n, h, w, c) with at least one image, got shape {images.shape}"
        )
    threshold = float(threshold)
    if not 0 < threshold < 1:
        raise ValueError(
            f"threshold is a pixel spread on the [0, 1] scale, between 0 and 1 (e.g. 0.02), got {threshold}"
        )
    pixels = (to_float255(images, value_range) / 255.0).reshape(len(images), -1, images.shape[-1])
    spread = pixels.std(axis=1).max(axis=1)  # per channel: a flat red is as blank as a flat grey
    return float(np.mean(spread < threshold))
