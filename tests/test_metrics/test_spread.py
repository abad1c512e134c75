"""Tests for ganlib/metrics/spread.py."""

import numpy as np
import pytest

from ganlib.data import toy_faces
from ganlib.metrics import sample_spread


def test_copies_of_one_image_have_no_spread_however_detailed_it_is():
    face, _ = toy_faces(1, 16, seed=0)
    assert sample_spread(np.repeat(face, 8, axis=0)) == pytest.approx(0.0, abs=1e-9)


def test_black_and_white_half_and_half_spread_by_half_on_every_pixel():
    # each pixel is 0 in half the images and 1 in the other half: its std is 0.5
    images = np.concatenate([np.zeros((3, 4, 4, 3)), np.ones((3, 4, 4, 3))]).astype(np.float32)
    assert sample_spread(images, value_range=(0, 1)) == pytest.approx(0.5)
    # the same images as tanh output: the scale is [0, 1] whatever the value range
    assert sample_spread(images * 2 - 1, value_range=(-1, 1)) == pytest.approx(0.5)


def test_matches_a_direct_computation_on_real_faces():
    faces, _ = toy_faces(64, 32, seed=3)
    expected = np.mean(np.std(faces.astype(np.float64) / 255.0, axis=0))
    assert sample_spread(faces) == pytest.approx(expected, rel=1e-5)
    assert sample_spread(faces) > 0.1


@pytest.mark.parametrize("shape", [(1, 8, 8, 3), (8, 8, 3), (0, 8, 8, 3)])
def test_refuses_fewer_than_two_images_or_a_wrong_shape(shape):
    with pytest.raises(ValueError, match="at least 2 images"):
        sample_spread(np.zeros(shape, np.uint8))
