"""Tests for ganlib/metrics/blank.py."""

import numpy as np
import pytest

from ganlib.data import toy_faces
from ganlib.metrics import blank_share
from ganlib.metrics.blank import BLANK_THRESHOLD


def flat_images(colours, size=16):
    """One flat image per RGB colour (uint8), each a plain colour with no picture."""
    return np.stack([np.full((size, size, 3), colour, np.uint8) for colour in colours])


def test_counts_flat_images_of_any_colour_among_faces_and_noise():
    flats = flat_images([(0, 0, 0), (255, 255, 255), (200, 30, 90), (128, 128, 128)])
    faces, _ = toy_faces(4, 16, seed=0)
    noise = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    images = np.concatenate([flats, faces, noise])
    assert blank_share(images) == pytest.approx(4 / 10)
    assert blank_share(faces) == 0.0
    assert blank_share(flats) == 1.0


def test_a_trace_of_noise_on_a_flat_image_is_still_blank_but_a_face_never_is():
    rng = np.random.default_rng(1)
    # tanh-like output: a flat grey with noise of spread 0.005 on the [0, 1] scale (0.01 in [-1, 1])
    nearly_flat = 0.2 + rng.normal(0.0, 0.01, (3, 32, 32, 3)).astype(np.float32)
    assert blank_share(nearly_flat, value_range=(-1, 1)) == 1.0
    faces, _ = toy_faces(50, 32, seed=2)
    spread = (faces / 255.0).reshape(50, -1).std(axis=1)
    assert spread.min() > 5 * BLANK_THRESHOLD  # the threshold sits far below any face
    assert blank_share(faces.astype(np.float32) / 127.5 - 1.0, value_range=(-1, 1)) == 0.0


def test_value_range_decides_the_scale():
    # Values in [0, 0.1]: on the [0, 1] scale a spread of about 0.05, not blank; read as
    # 0..255 the same numbers are all but black, and blank.
    rng = np.random.default_rng(3)
    images = rng.uniform(0.0, 0.1, (2, 8, 8, 3)).astype(np.float32)
    assert blank_share(images, value_range=(0, 1)) == 0.0
    assert blank_share(images, value_range=(0, 255)) == 1.0


def test_threshold_and_one_image():
    image = flat_images([(10, 10, 10)])[0]
    image[0, 0] = 30  # a spread of about 0.005
    assert blank_share(image) == 1.0
    assert blank_share(image, threshold=0.001) == 0.0


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5])
def test_bad_threshold_says_the_scale(threshold):
    with pytest.raises(ValueError, match="between 0 and 1"):
        blank_share(flat_images([(0, 0, 0)]), threshold=threshold)


def test_empty_or_misshapen_images_are_refused():
    with pytest.raises(ValueError, match="at least one image"):
        blank_share(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(n, h, w, c\)"):
        blank_share(np.zeros((8, 8), np.uint8))
