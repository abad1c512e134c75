"""Datasets and input pipelines: every source the book trains on, as uint8 arrays.

- `toy_faces`: procedural anime-style faces with five known factors, the offline
  default; `decode_toy_faces` reads the factors back, which is how mode collapse
  is measured later.
- `load_image_folder`: any folder of images, decoded in parallel and cached.
- `load_cifar10` and `anime_faces`: the two real data sets of the book.
- `image_dataset`: a uint8 array as a shuffled, batched, scaled `tf.data.Dataset`.
- `load_source`: the SOURCE strings of the command line (`python -m ganlib data`).

Every loader returns uint8 RGB arrays of shape (n, size, size, 3); scaling to a
model's value range happens only in `image_dataset`. TensorFlow is imported
inside `image_dataset` only, so the rest of this module loads fast.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import pickle
import re
import sys
import tarfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps


class DataNotFoundError(FileNotFoundError, ValueError):
    """A data set or folder is not where it was looked for.

    Both a FileNotFoundError and a ValueError, so either kind of handler catches it.
    """


# ---------------------------------------------------------------------------
# Toy faces: palettes and factors
# ---------------------------------------------------------------------------

FACTOR_NAMES = ("hair_colour", "eye_colour", "hair_style", "skin_tone", "background")
FACTOR_SIZES = (8, 6, 4, 3, 4)

# The palettes are chosen so that every colour is far from the others of its
# factor (at least 58 apart in RGB), every hair colour is far from every
# background and skin tone, and none is black, white or mid grey: that is what
# lets `decode_toy_faces` read them back and refuse blank images.
HAIR_COLOURS = {
    "black": (45, 40, 55),
    "brown": (125, 78, 45),
    "blonde": (250, 220, 95),
    "red": (205, 45, 50),
    "pink": (250, 160, 200),
    "blue": (65, 110, 220),
    "purple": (145, 85, 190),
    "green": (70, 170, 110),
}
EYE_COLOURS = {
    "blue": (45, 125, 235),
    "green": (40, 170, 90),
    "red": (215, 35, 45),
    "purple": (150, 70, 210),
    "amber": (235, 170, 30),
    "brown": (135, 80, 40),
}
HAIR_STYLES = ("short", "long", "twin-tails", "spiky")
SKIN_TONES = {
    "light": (255, 231, 214),
    "medium": (235, 185, 145),
    "tan": (185, 125, 90),
}
BACKGROUNDS = {
    "sky": (150, 200, 245),
    "mint": (165, 225, 185),
    "lavender": (205, 185, 235),
    "navy": (50, 70, 130),
}
# Names of each factor's levels, in index order, e.g. for labelling plots.
FACTOR_LEVELS = {
    "hair_colour": tuple(HAIR_COLOURS),
    "eye_colour": tuple(EYE_COLOURS),
    "hair_style": HAIR_STYLES,
    "skin_tone": tuple(SKIN_TONES),
    "background": tuple(BACKGROUNDS),
}

_HAIR = np.array(list(HAIR_COLOURS.values()), np.float32)
_EYE = np.array(list(EYE_COLOURS.values()), np.float32)
_SKIN = np.array(list(SKIN_TONES.values()), np.float32)
_BG = np.array(list(BACKGROUNDS.values()), np.float32)

# Layers painted back to front over the background; each has one colour per image.
# fmt: off
_LAYERS = (
    "back_hair", "body", "collar", "ribbon", "neck", "face", "blush", "eye_white", "iris",
    "pupil", "highlight", "lash", "mouth", "front_hair", "shine", "strands", "ties",
)
# fmt: on
_ALPHA = {"blush": 0.45}  # blush is translucent; everything else is opaque
_CENTRE = (0.5, 0.56)  # where the face centre sits, as a fraction of the image
_SCALES = (0.94, 0.97, 1.0, 1.03, 1.06)  # face size jitter
_SUPERSAMPLING = 4  # layers are drawn at 4x and box-filtered down: antialiasing


def _shift_range(image_size: int) -> int:
    """Largest position jitter in pixels: 2 at 64 px, 1 at 32 px."""
    return max(1, round(image_size / 32))


class _Pen:
    """Draws one layer's mask in face units: (0, 0) is the face centre, 1 is the image size."""

    def __init__(self, canvas: int, image_size: int, scale: float, margin: int):
        self.image = Image.new("L", (canvas, canvas), 0)
        self.draw = ImageDraw.Draw(self.image)
        self.unit = image_size * scale * _SUPERSAMPLING
        self.ox = (margin + _CENTRE[0] * image_size) * _SUPERSAMPLING
        self.oy = (margin + _CENTRE[1] * image_size) * _SUPERSAMPLING

    def xy(self, points):
        return [(self.ox + x * self.unit, self.oy + y * self.unit) for x, y in points]

    def box(self, cx, cy, rx, ry):
        return self.xy([(cx - rx, cy - ry), (cx + rx, cy + ry)])

    def ellipse(self, cx, cy, rx, ry, fill=255):
        self.draw.ellipse(self.box(cx, cy, rx, ry), fill=fill)

    def polygon(self, points, fill=255):
        self.draw.polygon(self.xy(points), fill=fill)

    def chord(self, cx, cy, rx, ry, start, end):
        self.draw.chord(self.box(cx, cy, rx, ry), start, end, fill=255)

    def pieslice(self, cx, cy, rx, ry, start, end):
        self.draw.pieslice(self.box(cx, cy, rx, ry), start, end, fill=255)

    def arc(self, cx, cy, rx, ry, start, end, width):
        self.draw.arc(
            self.box(cx, cy, rx, ry), start, end, fill=255, width=max(1, round(width * self.unit))
        )

    def line(self, points, width):
        self.draw.line(self.xy(points), fill=255, width=max(1, round(width * self.unit)))


def _symmetric(half):
    """A left-half outline (top to bottom) closed by its mirror image."""
    return half + [(-x, y) for x, y in reversed(half)]


def _both_sides(points):
    """The right-side shape and its mirror image, as two separate polygons."""
    return [[(x, y) for x, y in points], [(-x, y) for x, y in points]]


# fmt: off
def _draw_layer(name: str, pen: _Pen, style: int) -> None:
    """One layer of a face in hair style `style`. Face units: the face spans about
    x in [-0.25, 0.25] and y in [-0.25 (hairline), 0.255 (chin)]."""
    if name == "back_hair":
        pen.ellipse(0, -0.07, 0.285, 0.265)
        if style == 0:  # short bob ending at the jaw
            pen.polygon(_symmetric([(-0.285, -0.07), (-0.29, 0.09), (-0.25, 0.14), (-0.16, 0.12)]))
        elif style == 1:  # long and straight, past the shoulders
            pen.polygon(_symmetric([(-0.285, -0.07), (-0.31, 0.2), (-0.34, 0.5), (-0.12, 0.5)]))
        elif style == 2:  # twin tails tied high on both sides
            pen.polygon(_symmetric([(-0.285, -0.07), (-0.28, 0.06), (-0.2, 0.1)]))
            tail = [(0.22, -0.24), (0.34, -0.2), (0.44, -0.02), (0.47, 0.2), (0.43, 0.4),
                    (0.38, 0.3), (0.34, 0.1), (0.27, -0.04)]
            for polygon in _both_sides(tail):
                pen.polygon(polygon)
        else:  # spiky: a crown of spikes, swept a little to one side
            pen.polygon(_symmetric([(-0.285, -0.07), (-0.3, 0.06), (-0.22, 0.1)]))
            points = [(0.0, 0.0)]
            angles = np.linspace(np.pi * 0.98, np.pi * 2.02, 7)
            for i, angle in enumerate(angles):
                points.append((0.27 * np.cos(angle), -0.07 + 0.25 * np.sin(angle)))
                if i < len(angles) - 1:
                    tip, reach = angle + 0.34, (0.47 if 1 <= i <= 4 else 0.43)
                    points.append((reach * np.cos(tip), -0.07 + 0.95 * reach * np.sin(tip)))
            pen.polygon(points)
    elif name == "body":
        pen.polygon(_symmetric([(-0.5, 0.6), (-0.44, 0.38), (-0.3, 0.31), (-0.1, 0.3)]))
    elif name == "collar":  # a sailor collar: a V with its inner part cut out
        pen.polygon(_symmetric([(-0.3, 0.31), (-0.16, 0.29), (0.0, 0.44)]))
        pen.polygon(_symmetric([(-0.12, 0.29), (0.0, 0.4)]), fill=0)
    elif name == "ribbon":
        pen.polygon([(0.0, 0.42), (-0.07, 0.38), (-0.08, 0.47), (0.0, 0.43), (0.08, 0.47), (0.07, 0.38)])
    elif name == "neck":
        pen.polygon(_symmetric([(-0.065, 0.1), (-0.07, 0.34)]))
    elif name == "face":  # round cheeks, pointed chin
        pen.ellipse(0, -0.03, 0.245, 0.22)
        pen.polygon(_symmetric([(-0.245, -0.03), (-0.23, 0.08), (-0.16, 0.18), (-0.05, 0.245), (0.0, 0.255)]))
    elif name == "blush":
        for side in (-1, 1):
            pen.ellipse(side * 0.155, 0.115, 0.045, 0.02)
    elif name == "eye_white":  # big eyes, the anime look
        for side in (-1, 1):
            pen.ellipse(side * 0.11, 0.025, 0.07, 0.08)
    elif name == "iris":  # nearly as tall as the eye, so its lower half reads at 32 px
        for side in (-1, 1):
            pen.ellipse(side * 0.1, 0.035, 0.056, 0.075)
    elif name == "pupil":
        for side in (-1, 1):
            pen.ellipse(side * 0.1, 0.005, 0.024, 0.034)
    elif name == "highlight":
        for side in (-1, 1):
            pen.ellipse(side * 0.1 - 0.024, -0.006, 0.018, 0.02)
            pen.ellipse(side * 0.1 + 0.024, 0.03, 0.008, 0.008)
    elif name == "lash":  # a thick upper lid with a flick at the outer corner
        for side in (-1, 1):
            pen.chord(side * 0.11, 0.03, 0.078, 0.09, 190, 350)
            pen.ellipse(side * 0.11, 0.045, 0.075, 0.087, fill=0)
            outer = side * 0.18
            pen.polygon([(outer, -0.01), (outer + side * 0.035, -0.03), (outer - side * 0.01, -0.04)])
    elif name == "mouth":
        pen.pieslice(0, 0.16, 0.03, 0.025, 0, 180)
    elif name == "front_hair":  # the crown and a jagged fringe with side locks
        pen.chord(0, -0.07, 0.29, 0.27, 180, 360)
        fringe = [(-0.29, -0.07), (-0.27, 0.16), (-0.215, -0.02), (-0.19, 0.05), (-0.15, -0.07),
                  (-0.1, -0.03), (-0.06, -0.1), (-0.02, -0.05)]
        pen.polygon(fringe + [(0.0, -0.1)] + [(-x, y) for x, y in reversed(fringe)])
        if style == 1:  # long locks falling in front of the shoulders
            lock = [(0.29, -0.05), (0.3, 0.25), (0.27, 0.5), (0.2, 0.5), (0.22, 0.2), (0.24, 0.02)]
            for polygon in _both_sides(lock):
                pen.polygon(polygon)
        elif style == 3:  # spikes at the temples too
            for polygon in _both_sides([(0.27, -0.12), (0.34, 0.08), (0.22, 0.0)]):
                pen.polygon(polygon)
    elif name == "shine":  # the light ring on the crown, broken into strands
        pen.arc(0, -0.07, 0.225, 0.2, 215, 325, 0.02)
        for x in np.linspace(-0.15, 0.15, 6):
            pen.polygon([(x - 0.012, -0.31), (x + 0.012, -0.31), (x, -0.22)], fill=0)
    elif name == "strands":
        for side in (-1, 1):
            pen.line([(side * 0.04, -0.24), (side * 0.06, -0.1)], 0.008)
            pen.line([(side * 0.14, -0.22), (side * 0.15, -0.07)], 0.008)
    elif name == "ties" and style == 2:
        for side in (-1, 1):
            pen.ellipse(side * 0.25, -0.22, 0.04, 0.03)
# fmt: on


@functools.lru_cache(maxsize=128)
def _layer_weights(image_size: int, style: int, scale_index: int) -> np.ndarray:
    """How much each layer shows in each pixel: float32 (c, c, 1 + layers), c = size + 2 * jitter.

    Channel 0 is the background. The weights of a pixel sum to 1, so an image is
    a matrix product of these weights with one colour per layer. The canvas has
    a margin of the largest jitter on every side; a face is cut out of it.
    """
    margin = _shift_range(image_size)
    side = image_size + 2 * margin
    canvas = side * _SUPERSAMPLING
    weights = np.zeros((len(_LAYERS) + 1, canvas, canvas), np.float32)
    uncovered = np.ones((canvas, canvas), np.float32)
    # Front to back: each layer takes its alpha share of what is still uncovered
    # (computed only inside the layer's bounding box; elsewhere it is empty).
    for k in range(len(_LAYERS) - 1, -1, -1):
        pen = _Pen(canvas, image_size, _SCALES[scale_index], margin)
        _draw_layer(_LAYERS[k], pen, style)
        box = pen.image.getbbox()
        if box is None:
            continue
        x0, y0, x1, y1 = box
        alpha = np.asarray(pen.image.crop(box), np.float32) * (_ALPHA.get(_LAYERS[k], 1.0) / 255.0)
        weights[k + 1, y0:y1, x0:x1] = alpha * uncovered[y0:y1, x0:x1]
        uncovered[y0:y1, x0:x1] *= 1.0 - alpha
    weights[0] = uncovered
    # Box filter over each 4x4 block: the average coverage, i.e. antialiasing.
    # (Strided sums: much faster than a mean over a reshaped array.)
    s = _SUPERSAMPLING
    rows = sum(weights[:, i::s] for i in range(s))
    pooled = sum(rows[:, :, i::s] for i in range(s)) / (s * s)
    return np.ascontiguousarray(pooled.transpose(1, 2, 0))


def _layer_colours(hair, eye, skin, background) -> np.ndarray:
    """Colours of all layers for n faces: float32 (n, 1 + layers, 3), from (n, 3) arrays."""
    n = len(hair)
    fixed = lambda rgb: np.broadcast_to(np.asarray(rgb, np.float32), (n, 3))  # noqa: E731
    colours = {
        "back_hair": hair * 0.78,  # the hair behind the head is in shadow
        "body": fixed((245, 245, 250)),
        "collar": fixed((30, 60, 120)),
        "ribbon": fixed((255, 140, 40)),
        "neck": skin * 0.86,
        "face": skin,
        "blush": fixed((245, 120, 130)),
        "eye_white": fixed((252, 252, 255)),
        "iris": eye,
        "pupil": eye * 0.25 + np.float32([12, 7, 18]),
        "highlight": fixed((255, 255, 255)),
        "lash": fixed((40, 28, 40)),
        "mouth": fixed((170, 55, 70)),
        "front_hair": hair,
        "shine": hair * 0.55 + 0.45 * 255,
        "strands": hair * 0.72,
        "ties": fixed((255, 140, 40)),
    }
    return np.stack([background] + [colours[name] for name in _LAYERS], axis=1).astype(np.float32)


def _single_thread_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in row blocks small enough that OpenBLAS computes each on one thread
    (below about 2**18 multiply-adds). Waking its threads for hundreds of small
    products costs more than the products, up to 100x on a busy machine."""
    b = np.ascontiguousarray(b)
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    step = max(1, 2**18 // max(1, b.shape[0] * b.shape[1]))
    for start in range(0, a.shape[0], step):
        np.matmul(a[start : start + step], b, out=out[start : start + step])
    return out


def _check_image_size(image_size) -> int:
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, int | np.integer)
        or image_size < 16
    ):
        raise ValueError(
            f"image_size must be an integer of at least 16 (the book uses 32 or 64), got {image_size!r}"
        )
    return int(image_size)


def toy_faces(n: int, image_size: int = 64, seed: int = 0):
    """Procedural anime-style faces with five known, independent factors.

    Returns (images, factors): images uint8 (n, image_size, image_size, 3) in
    [0, 255]; factors int64 (n, 5) in the order of FACTOR_NAMES, with level names
    in FACTOR_LEVELS. Each factor is uniform over its levels (8 hair colours,
    6 eye colours, 4 hair styles, 3 skin tones, 4 backgrounds: 2,304 faces), and
    every face is moved by up to 1/32 of the image and scaled by up to 6%.
    Same arguments, same images; the factors of a seed do not depend on the size.
    Faces are drawn with Pillow at 4x and box-filtered down (antialiased);
    image_size may be any integer >= 16 (the book uses 32 and 64).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    image_size = _check_image_size(image_size)
    n = int(n)
    rng = np.random.default_rng(seed)
    factors = rng.integers(0, FACTOR_SIZES, size=(n, len(FACTOR_SIZES)), dtype=np.int64)
    scale_index = rng.integers(0, len(_SCALES), size=n)
    jitter = _shift_range(image_size)
    shifts = rng.integers(0, 2 * jitter + 1, size=(n, 2))  # crop offsets into the canvas
    colours = _layer_colours(
        _HAIR[factors[:, 0]], _EYE[factors[:, 1]], _SKIN[factors[:, 3]], _BG[factors[:, 4]]
    )
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    # Faces that share style, size and position share their layer weights: paint
    # each such group with one matrix product.
    side = 2 * jitter + 1
    geometry = factors[:, 2] * len(_SCALES) + scale_index
    group = (geometry * side + shifts[:, 0]) * side + shifts[:, 1]
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.diff(group[order], prepend=-1))
    for start, stop in zip(starts, np.append(starts[1:], n), strict=False):
        members = order[start:stop]
        first = members[0]
        weights = _layer_weights(image_size, int(factors[first, 2]), int(scale_index[first]))
        dy, dx = shifts[first]
        crop = weights[dy : dy + image_size, dx : dx + image_size].reshape(image_size**2, -1)
        # (m * 3, layers) @ (layers, pixels): one colour channel of one face per row.
        rows = colours[members].transpose(0, 2, 1).reshape(-1, crop.shape[1])
        painted = _single_thread_matmul(rows, crop.T)
        painted = painted.reshape(len(members), 3, image_size, image_size).transpose(0, 2, 3, 1)
        # Weights sum to 1 and colours lie in [0, 255], so +0.5 and truncation rounds.
        images[members] = (painted + 0.5).astype(np.uint8)
    return images, factors


# ---------------------------------------------------------------------------
# Reading the factors back
# ---------------------------------------------------------------------------

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
    side = 2 * _shift_range(image_size) + 1
    hair, iris, style = [], [], []
    hair_layers = [
        1 + _LAYERS.index(name) for name in ("back_hair", "front_hair", "strands", "shine")
    ]
    for hair_style in range(len(HAIR_STYLES)):
        for scale_index in range(len(_SCALES)):
            weights = _layer_weights(image_size, hair_style, scale_index)
            for dy in range(side):
                for dx in range(side):
                    crop = weights[dy : dy + image_size, dx : dx + image_size]
                    hair.append(crop[..., hair_layers].sum(axis=-1).ravel())
                    iris.append(crop[..., 1 + _LAYERS.index("iris")].ravel())
                    style.append(hair_style)
    hair, iris = np.array(hair, np.float32), np.array(iris, np.float32)
    region = np.flatnonzero((hair.max(axis=0) - hair.min(axis=0)) > 0.05)
    # The same number of iris pixels for every geometry: as many as the smallest
    # has nearly fully covered.
    k = max(1, int((iris > 0.9).sum(axis=1).min()))
    iris_pixels = np.argsort(-iris, axis=1, kind="stable")[:, :k]
    return hair[:, region], region, iris_pixels, np.array(style)


def _to_255(images: np.ndarray) -> np.ndarray:
    """float32 copy on the 0..255 scale. uint8 and other integers are taken as
    0..255, floats with a negative value as [-1, 1], other floats as [0, 1]."""
    if np.issubdtype(images.dtype, np.integer):
        return images.astype(np.float32)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float, got dtype {images.dtype}")
    images = images.astype(np.float32)
    if images.size and images.min() < 0:
        return np.clip((images + 1.0) * 127.5, 0, 255)
    return np.clip(images * 255.0, 0, 255)


def decode_toy_faces(images, batch_size: int = 512) -> np.ndarray:
    """Read the five factors back from toy-face images.

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
    _check_image_size(images.shape[1])
    if images.dtype != np.uint8:
        images = _to_255(images)  # the value range is guessed once, for the whole array
    result = np.full((len(images), len(FACTOR_NAMES)), -1, np.int64)
    for start in range(0, len(images), batch_size):
        chunk = np.asarray(images[start : start + batch_size], np.float32)
        result[start : start + len(chunk)] = _decode_chunk(chunk)
    return result


def _decode_chunk(chunk: np.ndarray) -> np.ndarray:
    n, size = len(chunk), chunk.shape[1]
    background, bg_rgb = _match_colour(_pixels(chunk, _BACKGROUND_REGIONS), _BG)
    skin, skin_rgb = _match_colour(_pixels(chunk, [_SKIN_REGION]), _SKIN)
    hair, hair_rgb = _match_colour(_pixels(chunk, [_HAIR_REGION]), _HAIR)

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
    eye, _ = _match_colour(iris, _EYE, _EYE_DISTANCE)

    # A face needs a recognisable skin and background that differ from each other.
    face = (skin >= 0) & (background >= 0) & (np.linalg.norm(skin_rgb - bg_rgb, axis=1) > 30)
    decoded = np.stack([hair, eye, style, skin, background], axis=1)
    decoded[~face] = -1
    return decoded


# ---------------------------------------------------------------------------
# Folders of images
# ---------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_CACHE_VERSION = 1
_CACHE_FOLDER = ".ganlib-cache"
_MEMORY_CACHE: dict = {}  # (folder, size, crop, limit, file signature) -> (images, report)
_WARN_NAMES = 5  # how many skipped files a warning names


@dataclasses.dataclass(frozen=True)
class FolderReport:
    """What load_image_folder read: `files` (relative paths of the images, in
    array order), `skipped` ((relative path, reason) pairs), `source` ("decoded",
    "disk cache" or "memory") and `cache_file` (the .npy, or None)."""

    folder: Path
    image_size: int
    crop: str
    files: tuple
    skipped: tuple
    source: str
    cache_file: Path | None

    def summary(self, names: int = _WARN_NAMES) -> str:
        """One line naming the first `names` skipped files and why."""
        if not self.skipped:
            return "no files skipped"
        listed = ", ".join(f"{path} ({reason})" for path, reason in self.skipped[:names])
        more = f" and {len(self.skipped) - names} more" if len(self.skipped) > names else ""
        return f"skipped {len(self.skipped)} unreadable file(s): {listed}{more}"


def _natural_key(text: str):
    """Sort key that orders '2.jpg' before '10.jpg'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _scan(folder: Path) -> list[list]:
    """[relative path (POSIX), size, mtime in ns] of every file with an image
    extension under folder, recursively, in natural order of the paths. The
    sizes and times are what the cache is checked against."""
    rows, pending = [], [(str(folder), "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir():
                    if entry.name != _CACHE_FOLDER:
                        pending.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    stat = entry.stat()
                    rows.append([prefix + entry.name, stat.st_size, stat.st_mtime_ns])
    return sorted(rows, key=lambda row: _natural_key(row[0]))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: alpha composited on white, 16-bit scaled (not clipped) to 8 bits."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, np.float64)
        if image.mode == "F":
            high = 1.0 if values.size and values.max() <= 1.0 else 255.0
        elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
            high = 65535.0
        else:
            high = 255.0
        gray = np.clip(np.rint(values * (255.0 / high)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _read_image(path: Path, image_size: int, crop: str) -> np.ndarray:
    """One file as uint8 (image_size, image_size, 3); raises on anything unreadable.

    GIFs give their first frame; EXIF orientation is applied; "center" crops the
    largest centred square before resizing, "none" resizes the whole picture.
    Resizing uses Lanczos filtering.
    """
    with Image.open(path) as image:
        # JPEGs decode at a reduced scale (still at least twice the target): much faster.
        image.draft("RGB", (2 * image_size, 2 * image_size))
        image.load()  # truncated files fail here, not later
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    if crop == "center":
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(image, np.uint8)


def _try_read(path: Path, image_size: int, crop: str):
    """(array, None) or (None, reason): a bad file must never stop a run."""
    try:
        if path.stat().st_size == 0:
            return None, "empty file"
        return _read_image(path, image_size, crop), None
    except Exception as error:  # noqa: BLE001 - any decoder failure means "skip this file"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, reason[:120]


def _default_cache_dir(folder: Path) -> Path:
    """<folder>/.ganlib-cache when writable, else ~/.cache/ganlib/<hash of the folder path>."""
    local = folder / _CACHE_FOLDER
    try:
        local.mkdir(exist_ok=True)
        probe = local / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return local
    except OSError:
        digest = hashlib.sha1(str(folder).encode()).hexdigest()[:16]
        return Path.home() / ".cache" / "ganlib" / digest


def load_image_folder(
    path,
    image_size: int = 64,
    crop: str = "center",
    cache_dir=None,
    workers: int | None = None,
    *,
    limit: int | None = None,
    return_report: bool = False,
):
    """Every image under a folder, recursively, as uint8 (n, image_size, image_size, 3).

    Files ending in .jpg/.jpeg/.png/.bmp/.gif/.webp (any case) are read in
    natural name order ('2.jpg' before '10.jpg'); GIFs give their first frame;
    EXIF orientation is applied; grayscale, palette, RGBA (composited on white),
    CMYK and 16-bit images become 8-bit RGB. crop: "center" takes the largest
    centred square, "none" squeezes the whole picture; both resize with Lanczos.
    limit: read only the first `limit` files of that order.

    Files are decoded on `workers` threads (default: one per CPU) with a progress
    bar, and the result is cached as one .npy plus a JSON manifest in cache_dir
    (default `<folder>/.ganlib-cache/`, or `~/.cache/ganlib/<hash>/` when the
    folder is read-only), and in memory for this process. The cache is used only
    when no file was added, removed or modified since. The returned array is
    shared with the memory cache and read-only: copy it before changing it.

    Unreadable, truncated, empty and non-image files are skipped and named in
    one warning. With return_report=True returns (images, FolderReport).
    Raises DataNotFoundError (a FileNotFoundError and ValueError) for a missing
    folder and ValueError when no file could be read.
    """
    image_size = _check_image_size(image_size)
    if crop not in ("center", "none"):
        raise ValueError(f'crop must be "center" or "none", got {crop!r}')
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    folder = Path(path).expanduser().resolve()
    if not folder.exists():
        raise DataNotFoundError(f"image folder {folder} does not exist: check the path")
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder of images")
    signature = _scan(folder)[:limit]
    files = [name for name, _, _ in signature]
    if not files:
        raise ValueError(
            f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}, searched recursively"
        )
    key = (
        str(folder),
        image_size,
        crop,
        limit,
        hashlib.sha1(json.dumps(signature).encode()).hexdigest(),
    )
    if key in _MEMORY_CACHE:
        images, report = _MEMORY_CACHE[key]
        report = dataclasses.replace(report, source="memory")
    else:
        images, report = _load_or_decode(
            folder, files, signature, image_size, crop, cache_dir, workers, limit
        )
        images.flags.writeable = False
        _MEMORY_CACHE[key] = (images, report)
    if report.skipped:
        warnings.warn(f"load_image_folder({folder}): {report.summary()}", stacklevel=2)
    if not len(images):
        raise ValueError(
            f"none of the {len(files)} image files under {folder} could be read; {report.summary()}"
        )
    return (images, report) if return_report else images


def _load_or_decode(folder, files, signature, image_size, crop, cache_dir, workers, limit):
    cache_dir = (
        Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir(folder)
    )
    stem = f"images-{image_size}-{crop}" + (f"-first{limit}" if limit else "")
    array_file, manifest_file = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    manifest = {
        "version": _CACHE_VERSION,
        "image_size": image_size,
        "crop": crop,
        "files": signature,
    }
    cached = _read_cache(array_file, manifest_file, manifest)
    if cached is not None:
        images, kept, skipped = cached
        return images, FolderReport(
            folder, image_size, crop, kept, skipped, "disk cache", array_file
        )

    images, kept, skipped = _decode_all(folder, files, image_size, crop, workers)
    manifest["kept"] = list(kept)
    manifest["skipped"] = [list(item) for item in skipped]
    written = _write_cache(array_file, manifest_file, images, manifest)
    return images, FolderReport(
        folder, image_size, crop, kept, skipped, "decoded", array_file if written else None
    )


def _decode_all(folder, files, image_size, crop, workers):
    from tqdm.auto import tqdm

    workers = workers or os.cpu_count() or 1
    read = functools.partial(_try_read, image_size=image_size, crop=crop)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            tqdm(
                pool.map(read, [folder / name for name in files]),
                total=len(files),
                desc=f"decoding {folder.name}",
                unit="img",
                disable=len(files) < 500,
                file=sys.stderr,
            )
        )
    kept = tuple(name for name, (array, _) in zip(files, results, strict=True) if array is not None)
    skipped = tuple(
        (name, reason)
        for name, (array, reason) in zip(files, results, strict=True)
        if array is None
    )
    arrays = [array for array, _ in results if array is not None]
    images = np.stack(arrays) if arrays else np.zeros((0, image_size, image_size, 3), np.uint8)
    return images, kept, skipped


def _read_cache(array_file: Path, manifest_file: Path, expected: dict):
    """(images, kept, skipped) when the cache matches `expected`, else None."""
    try:
        manifest = json.loads(manifest_file.read_text())
        if any(manifest.get(k) != v for k, v in expected.items()):
            return None
        images = np.load(array_file, allow_pickle=False)
        kept = tuple(manifest["kept"])
        if images.dtype != np.uint8 or images.shape[0] != len(kept):
            return None
        return images, kept, tuple(tuple(item) for item in manifest["skipped"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(array_file: Path, manifest_file: Path, images: np.ndarray, manifest: dict) -> bool:
    """Write atomically (temporary file, then rename); a cache that can't be written is not an error."""
    try:
        array_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = array_file.with_name(array_file.name + ".tmp")
        with open(temporary, "wb") as handle:
            np.save(handle, images, allow_pickle=False)
        os.replace(temporary, array_file)
        temporary = manifest_file.with_name(manifest_file.name + ".tmp")
        temporary.write_text(json.dumps(manifest))
        os.replace(temporary, manifest_file)
        return True
    except OSError as error:
        warnings.warn(
            f"could not write the image cache in {array_file.parent}: {error}", stacklevel=3
        )
        return False


# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------

# fmt: off
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# fmt: on
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild NumPy arrays and nothing else.

    A pickle names the functions it calls to rebuild objects; an ordinary
    Unpickler calls whatever it is told (os.system included). This one looks up
    only the few names NumPy arrays (from NumPy 1 and 2) and bytes are pickled with.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocols 0-2
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch contains only NumPy arrays, lists and bytes"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core.") :]  # NumPy 2 renamed numpy.core
        return super().find_class(module, name)


def _parse_cifar_batch(data: bytes, name: str):
    """One pickled CIFAR-10 batch -> (images uint8 (n, 32, 32, 3), labels int64 (n,)).

    Refuses anything that is not a dict with a uint8 (n, 3072) `data` array and
    n integer `labels` in 0..9, with a ValueError naming the batch.
    """
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # noqa: BLE001 - every failure here means "not a CIFAR batch"
        raise ValueError(f"{name} is not a readable CIFAR-10 batch: {error}") from None
    if not isinstance(batch, dict):
        raise ValueError(
            f"{name} is not a CIFAR-10 batch: expected a dict, got {type(batch).__name__}"
        )
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    images, labels = batch.get("data"), batch.get("labels")
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3072
    ):
        raise ValueError(f"{name} is not a CIFAR-10 batch: 'data' must be a uint8 array (n, 3072)")
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(images):
        raise ValueError(
            f"{name} is not a CIFAR-10 batch: 'labels' must be a list of {len(images)} integers"
        )
    try:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise TypeError
        labels = labels.astype(np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a CIFAR-10 batch: 'labels' must be integers") from None
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{name} is not a CIFAR-10 batch: labels must lie in 0..9")
    # Stored channel-first, each row 1024 red, 1024 green, 1024 blue values.
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _cifar_class_index(class_name_or_index) -> int:
    if isinstance(class_name_or_index, str) and class_name_or_index.strip().isdigit():
        class_name_or_index = int(class_name_or_index)
    if isinstance(class_name_or_index, int | np.integer) and not isinstance(
        class_name_or_index, bool
    ):
        if 0 <= class_name_or_index < len(CIFAR10_CLASSES):
            return int(class_name_or_index)
    elif (
        isinstance(class_name_or_index, str)
        and class_name_or_index.strip().lower() in CIFAR10_CLASSES
    ):
        return CIFAR10_CLASSES.index(class_name_or_index.strip().lower())
    raise ValueError(
        f"unknown CIFAR-10 class {class_name_or_index!r}: use an index 0-9 or one of {', '.join(CIFAR10_CLASSES)}"
    )


def _read_cifar_batches(source: Path, names: tuple) -> list[tuple[str, bytes]]:
    """The raw bytes of the named batch files from a folder or a .tar.gz archive."""
    if source.is_dir():
        for folder in (source / "cifar-10-batches-py", source):
            if all((folder / name).is_file() for name in names):
                return [(str(folder / name), (folder / name).read_bytes()) for name in names]
        archive = source / "cifar-10-python.tar.gz"
        if archive.is_file():
            return _read_cifar_batches(archive, names)
        raise DataNotFoundError(
            f"{source} holds no CIFAR-10 copy: expected the files {', '.join(names)} in it or in "
            "its cifar-10-batches-py/ folder, or a cifar-10-python.tar.gz archive"
        )
    try:
        with tarfile.open(source, "r:*") as archive:
            # Read members into memory by base name: nothing is extracted to disk.
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [name for name in names if name not in members]
            if missing:
                raise ValueError(
                    f"{source} is not a CIFAR-10 archive: it lacks {', '.join(missing)}"
                )
            return [
                (f"{source}:{name}", archive.extractfile(members[name]).read()) for name in names
            ]
    except tarfile.TarError as error:
        raise ValueError(
            f"{source} is neither a folder nor a readable .tar.gz archive: {error}"
        ) from None


def load_cifar10(class_name_or_index, split: str = "train", path=None) -> np.ndarray:
    """All CIFAR-10 images of one class as uint8 (n, 32, 32, 3): 5,000 per class
    for split="train", 1,000 for split="test".

    class_name_or_index: a name from CIFAR10_CLASSES ("cat") or its index 0-9.
    A local copy is used when `path` or the GANLIB_CIFAR10 environment variable
    names one: a `cifar-10-batches-py` folder, a folder holding it, or the
    `cifar-10-python.tar.gz` archive. Otherwise `keras.datasets.cifar10` loads
    it (downloading once). The batch files are unpickled by an Unpickler that
    admits only NumPy arrays, so a crafted archive can't run code.
    """
    index = _cifar_class_index(class_name_or_index)
    if split not in ("train", "test"):
        raise ValueError(f'split must be "train" or "test", got {split!r}')
    source = path if path is not None else os.environ.get("GANLIB_CIFAR10")
    if source:
        source = Path(source).expanduser()
        if not source.exists():
            where = "path" if path is not None else "GANLIB_CIFAR10"
            raise DataNotFoundError(
                f"CIFAR-10 copy not found: {where} points to {source}, which does not exist"
            )
        names = _CIFAR_TRAIN if split == "train" else _CIFAR_TEST
        parsed = [
            _parse_cifar_batch(data, name) for name, data in _read_cifar_batches(source, names)
        ]
        images = np.concatenate([images for images, _ in parsed])
        labels = np.concatenate([labels for _, labels in parsed])
        return images[labels == index]
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # noqa: BLE001 - offline shows up as many different errors
        raise DataNotFoundError(
            "CIFAR-10 is not available: downloading it with keras.datasets.cifar10 failed "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Either connect "
            "to the internet once so Keras can download it, or pass path= (or set the GANLIB_CIFAR10 "
            "environment variable) to a cifar-10-batches-py folder or a cifar-10-python.tar.gz file"
        ) from None
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    return np.asarray(images, np.uint8)[np.asarray(labels).reshape(-1) == index]


# ---------------------------------------------------------------------------
# The Kaggle anime faces
# ---------------------------------------------------------------------------

ANIME_FACES_DATASET = "splcher/animefacedataset"
ANIME_SUBSET = 4992  # the number of files the anime design trained on


def anime_faces(
    path=None, subset: int | None = None, image_size: int = 64, return_report: bool = False
):
    """The Kaggle anime-face set (splcher/animefacedataset, 63,565 JPEGs) as uint8 (n, s, s, 3).

    path: the downloaded folder (its images are in an images/ subfolder, which
    is used when present), else the GANLIB_ANIME_FACES environment variable,
    else `kagglehub.dataset_download` when kagglehub is installed (optional:
    `pip install kagglehub` or `pip install "ganlib[kaggle]"`).
    subset: read only the first `subset` files in natural name order
    ("0_2000.jpg", "1_2000.jpg", ..., "10_2000.jpg", ...). subset=ANIME_SUBSET
    (4,992) is the size of the anime design's run, and always the same files.
    Loaded, cached and checked by load_image_folder (centre crop, Lanczos).
    """
    if subset is not None and (
        isinstance(subset, bool) or not isinstance(subset, int) or subset < 1
    ):
        raise ValueError(f"subset must be a positive integer or None, got {subset!r}")
    source = path if path is not None else os.environ.get("GANLIB_ANIME_FACES")
    if not source:
        source = _download_anime_faces()
    folder = Path(source).expanduser()
    if (folder / "images").is_dir():
        folder = folder / "images"
    return load_image_folder(folder, image_size, limit=subset, return_report=return_report)


def _download_anime_faces() -> str:
    local = (
        "pass path= (or set the GANLIB_ANIME_FACES environment variable) to a downloaded copy of "
        f"the Kaggle data set {ANIME_FACES_DATASET}"
    )
    try:
        import kagglehub
    except ImportError:
        raise DataNotFoundError(
            f"the anime faces are not available: {local}, or install kagglehub "
            '(pip install kagglehub, or pip install "ganlib[kaggle]") to download it'
        ) from None
    try:
        return kagglehub.dataset_download(ANIME_FACES_DATASET)
    except Exception as error:  # noqa: BLE001 - network and credential failures vary
        raise DataNotFoundError(
            f"downloading {ANIME_FACES_DATASET} with kagglehub failed ({type(error).__name__}: {error}); "
            f"check the connection and Kaggle credentials, or {local}"
        ) from None


# ---------------------------------------------------------------------------
# Input pipeline
# ---------------------------------------------------------------------------


def image_dataset(
    images, batch_size: int, value_range=(-1, 1), shuffle: bool = True, seed: int = 0
):
    """A tf.data.Dataset of float32 batches (batch_size, h, w, c) scaled to value_range.

    images: uint8 (n, h, w, c) in [0, 255], e.g. from any loader here. (-1, 1)
    suits a tanh generator (the anime design), (0, 1) a sigmoid one (the Keras
    baseline). With shuffle, the order is drawn from `seed` and changes every
    epoch; the last incomplete batch is dropped so every batch has the same size.
    Batches are gathered from one in-memory copy by index and scaled as whole
    batches, then prefetched, so the input keeps up with a GPU.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be a uint8 array (n, h, w, c) in [0, 255], got {images.dtype} {images.shape}"
        )
    n = len(images)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or not 1 <= batch_size <= n
    ):
        raise ValueError(
            f"batch_size must be an integer from 1 to the number of images ({n}), got {batch_size!r}"
        )
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be (low, high), got {value_range!r}") from None
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")

    import tensorflow as tf

    with tf.device("/CPU:0"):  # tf.data runs on the CPU: keep the array there, not on a GPU
        table = tf.constant(images)
    scale = (high - low) / 255.0

    def to_batch(indices):
        return tf.cast(tf.gather(table, indices), tf.float32) * scale + low

    dataset = tf.data.Dataset.range(n)
    if shuffle:
        dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(int(batch_size), drop_remainder=True)
    dataset = dataset.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# SOURCE strings
# ---------------------------------------------------------------------------

DEFAULT_TOY_FACES = 20000
SOURCES_HELP = "toy-faces[:N], cifar10:CLASS, anime-faces[:N] or a folder of images"


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (n, h, w, 3) -> uint8 (n, image_size, image_size, 3), Lanczos (no-op when already that size)."""
    image_size = _check_image_size(image_size)
    if images.shape[1:3] == (image_size, image_size):
        return images
    return np.stack(
        [
            np.asarray(
                Image.fromarray(im).resize((image_size, image_size), Image.Resampling.LANCZOS)
            )
            for im in images
        ]
    )


def load_source(spec: str, image_size: int = 64):
    """Images named by a SOURCE string: (uint8 (n, image_size, image_size, 3), description).

    spec: "toy-faces" (20,000 faces) or "toy-faces:N"; "cifar10:CLASS" (a class
    name or index, upsampled with Lanczos when image_size is not 32);
    "anime-faces" or "anime-faces:N" (the first N files, see anime_faces); or
    the path of a folder of images. A bad spec is a ValueError with one line.
    """
    images, description, _ = _load_source(spec, image_size)
    return images, description


def _parse_count(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"bad source {spec!r}: the count after ':' must be a positive integer")
    return int(text)


def _load_source(spec: str, image_size: int = 64):
    """load_source plus the FolderReport of folder sources (else None)."""
    image_size = _check_image_size(image_size)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty source: use {SOURCES_HELP}")
    spec = spec.strip()
    name, _, argument = spec.partition(":")
    if name == "toy-faces":
        n = _parse_count(argument, spec) if argument else DEFAULT_TOY_FACES
        images, _ = toy_faces(n, image_size)
        return images, f"toy faces ({n} procedural faces, seed 0)", None
    if name == "cifar10":
        if not argument:
            raise ValueError(
                f"bad source {spec!r}: name a class, e.g. cifar10:cat ({', '.join(CIFAR10_CLASSES)})"
            )
        index = _cifar_class_index(argument)
        images = load_cifar10(index)
        return (
            resize_images(images, image_size),
            f"CIFAR-10 class {CIFAR10_CLASSES[index]} (train split)",
            None,
        )
    if name == "anime-faces":
        subset = _parse_count(argument, spec) if argument else None
        images, report = anime_faces(subset=subset, image_size=image_size, return_report=True)
        return images, f"Kaggle anime faces ({report.folder})", report
    folder = Path(spec).expanduser()
    if folder.is_dir():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the report below carries the skipped files
            images, report = load_image_folder(folder, image_size, return_report=True)
        return images, f"image folder {report.folder}", report
    if folder.exists():
        raise ValueError(f"{spec} is a file; a source folder must be a directory of images")
    if os.sep in spec or "/" in spec or spec.startswith((".", "~")):
        raise DataNotFoundError(f"image folder {spec} does not exist")
    raise ValueError(f"unknown source {spec!r} (and no folder of that name): use {SOURCES_HELP}")
