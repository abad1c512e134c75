"""Mode coverage: which of the toy faces' factor combinations a generator draws (chapter 6). NumPy only."""

from __future__ import annotations

import functools
import math
import sys

import numpy as np

from ganlib.common import to_uint8, value_range_of
from ganlib.data.toy_decode import decode_toy_faces
from ganlib.data.toy_faces import FACTOR_NAMES, FACTOR_SIZES, NUM_COMBINATIONS


def mode_coverage(images, value_range=None, decoder="strict") -> dict:
    """How many of the toy faces' 2,304 factor combinations a set of images shows (chapter 6).

    images: toy-face-like images (n, h, w, 3), uint8 or float (value_range as in
    plotting.to_uint8). Float images must lie in their value range (given, or guessed:
    [-1, 1] with a negative value, else [0, 1]), up to 2% of its span: float images in
    [0, 255], or [-1, 1] images with value_range=(0, 1), are a ValueError, as are NaN
    values, rather than a coverage of 0. decoder: "strict" (ganlib.data.decode_toy_faces: exact on
    real faces, reads few generated ones), "calibrated" (a cached
    ganlib.metrics.CalibratedDecoder at 32 px: reads blurred, noisy generated faces
    and refuses non-faces; needs TensorFlow, trains on first use) or a
    CalibratedDecoder. Returns

    - coverage: share of the 2,304 combinations seen at least once among the
      recognised images;
    - kl_from_uniform: KL(p || uniform) = log(2304) - H(p) in nats, p the
      combinations' frequencies among the recognised images; 0 for a perfectly
      even spread, log(2304) = 7.74 for a single combination (nan if none is
      recognised);
    - unrecognised: share of images with at least one undecodable factor;
    - histograms: {factor name: counts per value} over the recognised images;
    - recognised: how many images were recognised;
    - variety: distinct combinations among the recognised images over what as many
      real faces reach on average (`expected_distinct(recognised)`; real faces draw
      the 2,304 combinations uniformly): about 1 for samples as varied as the data,
      whatever share of them is recognised; nan if none is. Coverage mixes "is it a
      face" with "how varied are the faces"; `1 - unrecognised` is the first and
      variety the second (chapter 3);
    - decoder: "strict" or "calibrated", whichever read the images.

    Even a perfect generator does not reach coverage 1 with few samples: n
    uniform draws cover 1 - (1 - 1/2304)^n of the cells on average, and their
    KL from uniform is positive from sampling noise alone. Reference values for
    real toy faces (expected: the formula, and the KL's mean over 200 simulated
    uniform draws; measured: toy_faces(n, 32 or 64, seed=0, 1, 2), all recognised):

    ======  =================  ===============  ============  ===============
    n       expected coverage  measured         expected KL   measured KL
    ======  =================  ===============  ============  ===============
    2,000   0.5803             0.574 .. 0.585   0.651         0.642 .. 0.661
    10,000  0.9870             0.987 .. 0.990   0.122         0.119 .. 0.122
    ======  =================  ===============  ============  ===============

    A generator that always draws the same face scores 1/2304 = 0.000434.
    """
    decoder_name, decode = resolve_decoder(decoder)
    images = to_uint8(images, _checked_range(images, value_range))
    if images.ndim == 3:
        images = images[None]
    codes = np.asarray(decode(images)).reshape(len(images), len(FACTOR_SIZES))
    recognised = codes[(codes >= 0).all(axis=1)]
    cells = np.ravel_multi_index(tuple(recognised.T), FACTOR_SIZES)
    counts = np.bincount(cells, minlength=NUM_COMBINATIONS)
    if len(recognised):
        p = counts[counts > 0] / len(recognised)
        kl = math.log(NUM_COMBINATIONS) + float(np.sum(p * np.log(p)))
    else:
        kl = float("nan")
    return {
        "coverage": float(np.count_nonzero(counts)) / NUM_COMBINATIONS,
        "kl_from_uniform": max(kl, 0.0) if kl == kl else kl,
        "unrecognised": float(1.0 - len(recognised) / len(codes)) if len(codes) else float("nan"),
        "histograms": {
            name: np.bincount(recognised[:, i], minlength=size)
            for i, (name, size) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))
        },
        "recognised": int(len(recognised)),
        "variety": (
            float(np.count_nonzero(counts)) / expected_distinct(len(recognised))
            if len(recognised)
            else float("nan")
        ),
        "decoder": decoder_name,
    }


# How far float pixels may stray outside their value range (a share of its span) before
# mode_coverage calls the range wrong: generators stay inside theirs, resampling
# overshoots a little.
_RANGE_SLACK = 0.02


def _checked_range(images, value_range):
    """The value range of float `images`, checked against their values; None for uint8."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return value_range
    low, high = value_range_of(images, value_range)
    if not images.size:
        return (low, high)
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        bad = int(np.count_nonzero(~np.isfinite(images)))
        raise ValueError(
            f"images hold {bad} NaN or infinite values; mode coverage needs finite pixels "
            f"(a generator whose loss became NaN draws such images)"
        )
    lowest, highest = float(images.min()), float(images.max())
    slack = _RANGE_SLACK * (high - low)
    if lowest < low - slack or highest > high + slack:
        said = "given" if value_range is not None else "guessed"
        hint = (
            "; uint8-scale floats: pass value_range=(0, 255) or the images as uint8"
            if highest > 2.0
            else "; pass the generator's value_range (gan.value_range)"
        )
        raise ValueError(
            f"images range from {lowest:g} to {highest:g}, outside the value_range "
            f"({low:g}, {high:g}) {said} for them{hint}"
        )
    return (low, high)


def expected_distinct(n) -> float:
    """Expected distinct combinations among n real toy faces: 2304 * (1 - (1 - 1/2304)^n) (chapter 3).

    Real toy faces draw each of the NUM_COMBINATIONS combinations with the same
    probability, so this is the mean number of occupied cells after n uniform draws;
    `mode_coverage`'s variety divides by it.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a whole number of images >= 0, got {n!r}")
    return NUM_COMBINATIONS * -math.expm1(n * math.log1p(-1.0 / NUM_COMBINATIONS))


def resolve_decoder(decoder):
    """(name, function uint8 images -> int64 codes (n, 5)) for mode_coverage's decoder argument.

    A ValueError for anything but "strict", "calibrated" or a CalibratedDecoder (chapter 6).
    """
    if isinstance(decoder, str) and decoder == "strict":
        return "strict", decode_toy_faces
    # Imported here: the calibrated decoder needs TensorFlow, the strict one only NumPy.
    if isinstance(decoder, str) and decoder == "calibrated":
        return "calibrated", _default_calibrated()
    # A CalibratedDecoder exists only once its module is loaded: no import needed to check.
    calibrated = sys.modules.get("ganlib.metrics.calibrated")
    if calibrated is not None and isinstance(decoder, calibrated.CalibratedDecoder):
        return "calibrated", decoder
    raise ValueError(
        f'decoder must be "strict", "calibrated" or a CalibratedDecoder, got {decoder!r}'
    )


@functools.lru_cache(maxsize=1)
def _default_calibrated():
    """One CalibratedDecoder per process: loading it takes a second, training it (once) about 30 s."""
    from ganlib.metrics.calibrated import CalibratedDecoder

    return CalibratedDecoder()
