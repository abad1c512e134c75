"""Tests for ganlib/data/toy_decode.py."""

import functools

import numpy as np
import pytest

from ganlib.data import (
    FACTOR_NAMES,
    decode_toy_faces,
    toy_faces,
)

# ---------------------------------------------------------------------------
# Toy faces
# ---------------------------------------------------------------------------


@functools.cache
def _faces_to_decode(size):
    return toy_faces(1500, size, seed=123)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("value_range", ["uint8", "-1..1", "0..1"])
def test_decode_recovers_factors(size, value_range):
    images, factors = _faces_to_decode(size)
    if value_range == "-1..1":
        images = images.astype(np.float32) / 127.5 - 1.0
    elif value_range == "0..1":
        images = images.astype(np.float32) / 255.0
    decoded = decode_toy_faces(images)
    assert decoded.shape == (1500, 5)
    accuracy = (decoded == factors).mean(axis=0)
    assert (accuracy >= 0.99).all(), dict(zip(FACTOR_NAMES, accuracy, strict=True))


@pytest.mark.parametrize("size", [32, 64])
def test_decode_refuses_noise_and_blank_images(size):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (100, size, size, 3), dtype=np.uint8)
    float_noise = rng.uniform(-1, 1, (50, size, size, 3)).astype(np.float32)
    unit_noise = rng.uniform(0, 1, (50, size, size, 3))
    blanks = np.stack(
        [np.full((size, size, 3), value, np.uint8) for value in (0, 64, 128, 192, 255)]
        + [
            np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), (size, size, 3))
            for _ in range(20)
        ]
    )
    for images in (noise, float_noise, unit_noise, blanks, blanks.astype(np.float32) / 255.0):
        assert (decode_toy_faces(images) == -1).all()
    # Blank float images in [-1, 1] too, e.g. a collapsed generator's output.
    assert (decode_toy_faces(np.full((3, size, size, 3), -1.0)) == -1).all()
    assert (decode_toy_faces(np.zeros((3, size, size, 3), np.float32)) == -1).all()


def test_decode_bad_shapes():
    for bad in (
        np.zeros((32, 32, 3), np.uint8),
        np.zeros((2, 32, 32), np.uint8),
        np.zeros((2, 32, 40, 3), np.uint8),
    ):
        with pytest.raises(ValueError, match="shape"):
            decode_toy_faces(bad)
