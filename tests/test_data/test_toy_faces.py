"""Tests for ganlib/data/toy_faces.py."""

import numpy as np
import pytest
from scipy import stats

from ganlib.data import (
    FACTOR_LEVELS,
    FACTOR_NAMES,
    FACTOR_SIZES,
    toy_faces,
)

# ---------------------------------------------------------------------------
# Toy faces
# ---------------------------------------------------------------------------


def test_toy_faces_shapes_dtypes_and_ranges():
    for size in (32, 64):
        images, factors = toy_faces(30, image_size=size, seed=1)
        assert images.shape == (30, size, size, 3) and images.dtype == np.uint8
        assert factors.shape == (30, 5) and factors.dtype == np.int64
        assert (factors >= 0).all() and (factors < np.array(FACTOR_SIZES)).all()
    assert len(FACTOR_NAMES) == len(FACTOR_SIZES) == 5
    assert np.prod(FACTOR_SIZES) == 2304
    assert [len(FACTOR_LEVELS[name]) for name in FACTOR_NAMES] == list(FACTOR_SIZES)
    empty, no_factors = toy_faces(0)
    assert empty.shape == (0, 64, 64, 3) and no_factors.shape == (0, 5)


def test_toy_faces_are_deterministic():
    a, fa = toy_faces(40, 32, seed=7)
    b, fb = toy_faces(40, 32, seed=7)
    c, fc = toy_faces(40, 32, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(fa, fc) and not np.array_equal(a, c)
    # The factors of a seed do not depend on the image size.
    _, f64 = toy_faces(40, 64, seed=7)
    np.testing.assert_array_equal(fa, f64)


def test_toy_faces_jitter_moves_identical_factors():
    # Many faces with the same five factors: the jitter must still make them differ.
    images, factors = toy_faces(3000, 32, seed=0)
    _, index, counts = np.unique(factors, axis=0, return_index=True, return_counts=True)
    repeated = factors[index[counts.argmax()]]
    same = images[(factors == repeated).all(axis=1)]
    assert len(same) >= 3
    assert len({im.tobytes() for im in same}) > 1


def test_toy_faces_factors_are_uniform_and_independent():
    _, factors = toy_faces(4000, 32, seed=0)
    for k, levels in enumerate(FACTOR_SIZES):
        counts = np.bincount(factors[:, k], minlength=levels)
        assert stats.chisquare(counts).pvalue > 0.001, FACTOR_NAMES[k]
    for i in range(5):
        for j in range(i + 1, 5):
            table = np.zeros((FACTOR_SIZES[i], FACTOR_SIZES[j]))
            np.add.at(table, (factors[:, i], factors[:, j]), 1)
            assert stats.chi2_contingency(table).pvalue > 0.001, (FACTOR_NAMES[i], FACTOR_NAMES[j])


def test_toy_faces_other_sizes_and_bad_arguments():
    images, _ = toy_faces(3, image_size=48)
    assert images.shape == (3, 48, 48, 3)
    for bad in (8, 0, 32.0, "64"):
        with pytest.raises(ValueError, match="image_size"):
            toy_faces(3, image_size=bad)
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="n must"):
            toy_faces(bad)


def test_toy_faces_are_antialiased():
    # Drawn at 4x and box-filtered: edges hold blended colours, not only palette colours.
    images, factors = toy_faces(1, 64, seed=0)
    colours = {tuple(p) for p in images[0].reshape(-1, 3)}
    assert len(colours) > 100
