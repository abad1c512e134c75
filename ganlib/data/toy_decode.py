"""Reading the five factors back from toy-face images (chapter 6): the basis of mode coverage."""

from __future__ import annotations

import functools

import numpy as np

from ganlib.common import (
    check_image_size,
    to_float255,
)
from ganlib.data.toy_faces import (
    BACKGROUND_RGB,
    EYE_RGB,
    FACE_SCALES,
    FACTOR_NAMES,
    HAIR_RGB,
    HAIR_STYLES,
    LAYERS,
    SKIN_RGB,
    layer_weights,
    max_shift,
)

# Regions, as fractions of the image (x0, x1, y0, y1), that show one part of
# the face whatever the jitter; the decoder reads robust statistics from them.
_BACKGROUND_REGIONS = ((0.0, 0.1, 0.0, 0.1), (0.9, 1.0, 0.0, 0.1))  # top corners
_SKIN_REGION = (0.46, 0.54, 0.65, 0.695)  # between the eyes and above the mouth
_HAIR_REGION = (0.4, 0.6, 0.34, 0.42)  # fringe, below the shine

# A colour is recognised when a region's median is within _MATCH_DISTANCE of a
# palette colour, clearly nearer to it than to the next one, and most of the
# region agrees with the median. Generated images may be blurry and shifted in
# colour, so these are loose; noise and blank images still fail them.
_MATCH_DISTANCE = 45.0
_NEXT_RATIO = 0.7
# Irises are small and blur into the pupil and the eye white: a looser distance;
# the eye palette is far apart (at least 92), so the ratio test still decides.
_EYE_DISTANCE = 70.0
_AGREEMENT_DISTANCE = 60.0
_AGREEMENT = 0.5
# Colours a face has where hair can be, besides skin and background: the white
# of the shirt and eyes, the collar, the ribbon.
_NOT_HAIR = np.float32([(245, 245, 250), (30, 60, 120), (255, 140, 40)])
_STYLE_ERROR = 0.1  # mean squared error (0..1 per pixel) of the best-fitting hair outline
_STYLE_MARGIN = 0.65  # ... which must be below this fraction of the best other style's


def _pixels(images: np.ndarray, regions) -> np.ndarray:
    """Pixels of the regions of every image: float32 (n, pixels, 3)."""
    size = images.shape[1]
    parts = []
    for x0, x1, y0, y1 in regions:
        rows = slice(int(np.floor(y0 * size)), int(np.ceil(y1 * size)))
        cols = slice(int(np.floor(x0 * size)), int(np.ceil(x1 * size)))
        parts.append(images[:, rows, cols].reshape(len(images), -1, 3))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _distance(pixels: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Euclidean RGB distance of pixels (n, p, 3) to one colour per image (n, 3) or to one colour (3,)."""
    difference = pixels - (rgb[:, None] if rgb.ndim == 2 else rgb)
    return np.sqrt(np.einsum("npc,npc->np", difference, difference))


def _match_colour(pixels: np.ndarray, palette: np.ndarray, max_distance: float = _MATCH_DISTANCE):
    """Nearest palette colour to each image's median colour, or -1.

    pixels: float (n, p, 3). Returns (indices int64 (n,), medians float32 (n, 3)).
    """
    median = np.median(pixels, axis=1)
    agree = (_distance(pixels, median) < _AGREEMENT_DISTANCE).mean(axis=1)
    distance = np.linalg.norm(median[:, None] - palette[None], axis=-1)
    nearest = np.sort(distance, axis=1)
    ok = (
        (nearest[:, 0] < max_distance)
        & (nearest[:, 0] < _NEXT_RATIO * nearest[:, 1])
        & (agree >= _AGREEMENT)
    )
    return np.where(ok, distance.argmin(axis=1), -1), median


@functools.lru_cache(maxsize=8)
def _jitter_templates(image_size: int):
    """Every face geometry toy_faces can draw at this size (style, size, position).

    Returns (hair, region, iris, style): hair float32 (g, r), how much hair covers
    each pixel of `region` (the flat indices of the pixels where hair can be but
    not always is); iris int (g, k), the k pixels the irises cover most; style
    int (g,), the hair style of each geometry.
    """
    side = 2 * max_shift(image_size) + 1
    hair, iris, style = [], [], []
    hair_layers = [
        1 + LAYERS.index(name) for name in ("back_hair", "front_hair", "strands", "shine")
    ]
    for hair_style in range(len(HAIR_STYLES)):
        for scale_index in range(len(FACE_SCALES)):
            weights = layer_weights(image_size, hair_style, scale_index)
            for dy in range(side):
                for dx in range(side):
                    crop = weights[dy : dy + image_size, dx : dx + image_size]
                    hair.append(crop[..., hair_layers].sum(axis=-1).ravel())
                    iris.append(crop[..., 1 + LAYERS.index("iris")].ravel())
                    style.append(hair_style)
    hair, iris = np.array(hair, np.float32), np.array(iris, np.float32)
    region = np.flatnonzero((hair.max(axis=0) - hair.min(axis=0)) > 0.05)
    # The same number of iris pixels for every geometry: as many as the smallest
    # has nearly fully covered.
    k = max(1, int((iris > 0.9).sum(axis=1).min()))
    iris_pixels = np.argsort(-iris, axis=1, kind="stable")[:, :k]
    return hair[:, region], region, iris_pixels, np.array(style)


def decode_toy_faces(images, batch_size: int = 512) -> np.ndarray:
    """Read the five factors back from toy-face images (chapter 6).

    images: (n, s, s, 3), uint8 in [0, 255] or float in [-1, 1] (when any value
    is negative) or [0, 1]; reliable for s >= 32 (the book uses 32 and 64;
    smaller faces are mostly answered -1). Returns
    int64 (n, 5) in the order of FACTOR_NAMES, -1 where a factor can't be read.
    Background, skin and hair colours are read from regions the face always
    covers; the hair style, with the face's position and size, from the best
    match of the hair's outline against every outline toy_faces draws; the eye
    colour from the irises at that position. An image whose skin or background
    can't be read (noise, a blank image, no face) gets -1 for every factor.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must have shape (n, s, s, 3), got {images.shape}")
    check_image_size(images.shape[1])
    if images.dtype != np.uint8:
        images = to_float255(images)  # the value range is guessed once, for the whole array
    result = np.full((len(images), len(FACTOR_NAMES)), -1, np.int64)
    for start in range(0, len(images), batch_size):
        chunk = np.asarray(images[start : start + batch_size], np.float32)
        result[start : start + len(chunk)] = _decode_chunk(chunk)
    return result


def _decode_chunk(chunk: np.ndarray) -> np.ndarray:
    n, size = len(chunk), chunk.shape[1]
    background, bg_rgb = _match_colour(_pixels(chunk, _BACKGROUND_REGIONS), BACKGROUND_RGB)
    skin, skin_rgb = _match_colour(_pixels(chunk, [_SKIN_REGION]), SKIN_RGB)
    hair, hair_rgb = _match_colour(_pixels(chunk, [_HAIR_REGION]), HAIR_RGB)

    # Hair mask, on the pixels where hair can be: pixels nearer the measured
    # hair colour (lit or shaded) than to anything else a face has there.
    hair_templates, region, iris_pixels, styles = _jitter_templates(size)
    flat = chunk.reshape(n, -1, 3)
    where = flat[:, region]
    to_hair = np.minimum(_distance(where, hair_rgb), _distance(where, hair_rgb * 0.78))
    to_other = np.minimum(_distance(where, bg_rgb), _distance(where, skin_rgb))
    for rgb in _NOT_HAIR:
        to_other = np.minimum(to_other, _distance(where, rgb))
    # Blends of two other colours at edges can be nearest to the hair colour
    # without being close to it: only pixels close to it count.
    mask = np.clip(0.5 + (to_other - to_hair) / 40.0, 0.0, 1.0) * np.clip(
        (70.0 - to_hair) / 30.0, 0.0, 1.0
    )

    # Squared distance of the mask to every geometry; per style, its best fit.
    error = (
        (mask**2).sum(axis=1, keepdims=True)
        - 2 * mask @ hair_templates.T
        + (hair_templates**2).sum(axis=1)
    )
    error /= len(region)
    per_style = np.stack(
        [error[:, styles == k].min(axis=1) for k in range(len(HAIR_STYLES))], axis=1
    )
    ranked = np.sort(per_style, axis=1)
    style = np.where(
        (ranked[:, 0] < _STYLE_ERROR) & (ranked[:, 0] < _STYLE_MARGIN * ranked[:, 1]),
        per_style.argmin(axis=1),
        -1,
    )

    # Eye colour: the pixels the irises cover in the best geometry.
    iris = np.take_along_axis(flat, iris_pixels[error.argmin(axis=1)][..., None], axis=1)
    eye, _ = _match_colour(iris, EYE_RGB, _EYE_DISTANCE)

    # A face needs a recognisable skin and background that differ from each other.
    face = (skin >= 0) & (background >= 0) & (np.linalg.norm(skin_rgb - bg_rgb, axis=1) > 30)
    decoded = np.stack([hair, eye, style, skin, background], axis=1)
    decoded[~face] = -1
    return decoded
