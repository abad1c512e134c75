"""Toy faces: procedural anime-style faces with five known factors, the offline default (chapter 1).

The factors are what lets chapter 6 measure mode collapse exactly: `toy_decode`
reads them back from images.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from ganlib.common import (
    check_image_size,
)

FACTOR_NAMES = ("hair_colour", "eye_colour", "hair_style", "skin_tone", "background")
FACTOR_SIZES = (8, 6, 4, 3, 4)
# 8 hair colours x 6 eye colours x 4 hair styles x 3 skin tones x 4 backgrounds
NUM_COMBINATIONS = math.prod(FACTOR_SIZES)

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

# The palettes as float32 arrays (levels, 3), row i the RGB colour of level i: what toy_faces
# paints with and `decode_toy_faces` matches against.
HAIR_RGB = np.array(list(HAIR_COLOURS.values()), np.float32)
EYE_RGB = np.array(list(EYE_COLOURS.values()), np.float32)
SKIN_RGB = np.array(list(SKIN_TONES.values()), np.float32)
BACKGROUND_RGB = np.array(list(BACKGROUNDS.values()), np.float32)

# Layers painted back to front over the background; each has one colour per image.
# fmt: off
LAYERS = (
    "back_hair", "body", "collar", "ribbon", "neck", "face", "blush", "eye_white", "iris",
    "pupil", "highlight", "lash", "mouth", "front_hair", "shine", "strands", "ties",
)
# fmt: on
_ALPHA = {"blush": 0.45}  # blush is translucent; everything else is opaque
_CENTRE = (0.5, 0.56)  # where the face centre sits, as a fraction of the image
FACE_SCALES = (0.94, 0.97, 1.0, 1.03, 1.06)  # face size jitter
_SUPERSAMPLING = 4  # layers are drawn at 4x and box-filtered down: antialiasing


def max_shift(image_size: int) -> int:
    """Largest position jitter in pixels: 2 at 64 px, 1 at 32 px (chapter 1)."""
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
def layer_weights(image_size: int, style: int, scale_index: int) -> np.ndarray:
    """How much each layer shows in each pixel: float32 (c, c, 1 + layers), c = size + 2 * jitter.

    Explained with toy_faces in chapter 1. Channel 0 is the background, channel 1 + k the
    layer LAYERS[k]; scale_index picks the face size in FACE_SCALES. The weights of a pixel
    sum to 1, so an image is a matrix product of these weights with one colour per layer.
    The canvas has a margin of the largest jitter on every side; a face is cut out of it.
    """
    margin = max_shift(image_size)
    side = image_size + 2 * margin
    canvas = side * _SUPERSAMPLING
    weights = np.zeros((len(LAYERS) + 1, canvas, canvas), np.float32)
    uncovered = np.ones((canvas, canvas), np.float32)
    # Front to back: each layer takes its alpha share of what is still uncovered
    # (computed only inside the layer's bounding box; elsewhere it is empty).
    for k in range(len(LAYERS) - 1, -1, -1):
        pen = _Pen(canvas, image_size, FACE_SCALES[scale_index], margin)
        _draw_layer(LAYERS[k], pen, style)
        box = pen.image.getbbox()
        if box is None:
            continue
        x0, y0, x1, y1 = box
        alpha = np.asarray(pen.image.crop(box), np.float32) * (_ALPHA.get(LAYERS[k], 1.0) / 255.0)
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
    return np.stack([background] + [colours[name] for name in LAYERS], axis=1).astype(np.float32)


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


def toy_faces(n: int, image_size: int = 64, seed: int = 0):
    """Procedural anime-style faces with five known, independent factors (chapter 1).

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
    image_size = check_image_size(image_size)
    n = int(n)
    rng = np.random.default_rng(seed)
    factors = rng.integers(0, FACTOR_SIZES, size=(n, len(FACTOR_SIZES)), dtype=np.int64)
    scale_index = rng.integers(0, len(FACE_SCALES), size=n)
    jitter = max_shift(image_size)
    shifts = rng.integers(0, 2 * jitter + 1, size=(n, 2))  # crop offsets into the canvas
    colours = _layer_colours(
        HAIR_RGB[factors[:, 0]],
        EYE_RGB[factors[:, 1]],
        SKIN_RGB[factors[:, 3]],
        BACKGROUND_RGB[factors[:, 4]],
    )
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    # Faces that share style, size and position share their layer weights: paint
    # each such group with one matrix product.
    side = 2 * jitter + 1
    geometry = factors[:, 2] * len(FACE_SCALES) + scale_index
    group = (geometry * side + shifts[:, 0]) * side + shifts[:, 1]
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.diff(group[order], prepend=-1))
    for start, stop in zip(starts, np.append(starts[1:], n), strict=False):
        members = order[start:stop]
        first = members[0]
        weights = layer_weights(image_size, int(factors[first, 2]), int(scale_index[first]))
        dy, dx = shifts[first]
        crop = weights[dy : dy + image_size, dx : dx + image_size].reshape(image_size**2, -1)
        # (m * 3, layers) @ (layers, pixels): one colour channel of one face per row.
        rows = colours[members].transpose(0, 2, 1).reshape(-1, crop.shape[1])
        painted = _single_thread_matmul(rows, crop.T)
        painted = painted.reshape(len(members), 3, image_size, image_size).transpose(0, 2, 3, 1)
        # Weights sum to 1 and colours lie in [0, 255], so +0.5 and truncation rounds.
        images[members] = (painted + 0.5).astype(np.uint8)
    return images, factors
