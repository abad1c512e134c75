"""Tests for ganlib/data/ring.py."""

import numpy as np
import pytest

from ganlib.data.ring import ring_centres, ring_density, sample_ring


def test_centres_lie_on_the_circle_evenly_spaced():
    centres = ring_centres(8, radius=2.0)
    assert centres.shape == (8, 2) and centres.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 2.0, rtol=1e-6)
    np.testing.assert_allclose(centres[0], [2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(centres[2], [0.0, 2.0], atol=1e-6)
    # neighbours are 2 r sin(pi / 8) apart
    gaps = np.linalg.norm(centres - np.roll(centres, 1, axis=0), axis=1)
    np.testing.assert_allclose(gaps, 2 * 2.0 * np.sin(np.pi / 8), rtol=1e-5)


def test_samples_are_seeded_balanced_and_as_wide_as_std():
    points = sample_ring(40_000, modes=8, radius=2.0, std=0.05, seed=3)
    assert points.shape == (40_000, 2) and points.dtype == np.float32
    np.testing.assert_array_equal(points, sample_ring(40_000, std=0.05, seed=3))
    assert not np.array_equal(points, sample_ring(40_000, std=0.05, seed=4))
    centres = ring_centres()
    which = np.linalg.norm(points[:, None] - centres[None], axis=-1).argmin(axis=1)
    shares = np.bincount(which, minlength=8) / len(points)
    np.testing.assert_allclose(shares, 1 / 8, atol=0.01)
    offsets = points - centres[which]
    np.testing.assert_allclose(offsets.std(axis=0), 0.05, rtol=0.03)


def test_sample_ring_draws_the_centres_then_the_noise_from_one_generator():
    # Chapter 1's runs depend on this order of draws.
    rng = np.random.default_rng(0)
    which = rng.integers(0, 8, size=5)
    noise = 0.02 * rng.standard_normal((5, 2))
    expected = (ring_centres()[which] + noise).astype(np.float32)
    np.testing.assert_array_equal(sample_ring(5, seed=0), expected)


def test_density_matches_a_one_mode_gaussian_and_integrates_to_one():
    # One mode: the bivariate normal density, written out.
    x = np.array([[1.0, 0.0], [1.1, 0.05], [0.0, 0.0]])
    std = 0.1
    expected = np.exp(-((x[:, 0] - 1.0) ** 2 + x[:, 1] ** 2) / (2 * std**2)) / (2 * np.pi * std**2)
    np.testing.assert_allclose(ring_density(x, modes=1, radius=1.0, std=std), expected)
    # Eight modes: a Riemann sum over the plane gives 1.
    axis = np.linspace(-3, 3, 601)
    gx, gy = np.meshgrid(axis, axis)
    density = ring_density(np.stack([gx.ravel(), gy.ravel()], 1), std=0.1)
    assert density.sum() * (axis[1] - axis[0]) ** 2 == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ring_centres(0), "modes"),
        (lambda: ring_centres(8, radius=-1.0), "radius"),
        (lambda: sample_ring(10, std=0.0), "std"),
        (lambda: sample_ring(-1), "n must"),
        (lambda: ring_density(np.zeros((3, 3))), r"\(n, 2\)"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
