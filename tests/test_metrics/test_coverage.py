"""Tests for ganlib/metrics/coverage.py."""

import math

import numpy as np
import pytest

from ganlib.data import FACTOR_NAMES, toy_faces
from ganlib.metrics import expected_distinct, mode_coverage

# --------------------------------------------------------------------------- KID


def test_mode_coverage_of_real_toy_faces_matches_the_expected_value():
    images, _ = toy_faces(2000, 64, seed=0)
    result = mode_coverage(images)
    expected = 1 - (1 - 1 / 2304) ** 2000  # 0.5803 on average over draws of 2,000 faces
    assert result["unrecognised"] < 0.02
    assert result["coverage"] == pytest.approx(expected, abs=0.03)
    # KL of 2,000 uniform draws from uniform: about 0.65 (sampling noise alone).
    assert result["kl_from_uniform"] == pytest.approx(0.65, abs=0.08)
    assert sum(result["histograms"]["hair_colour"]) == result["recognised"]
    assert len(result["histograms"]["eye_colour"]) == 6


def test_mode_coverage_of_a_generator_that_always_draws_the_same_face():
    face, factors = toy_faces(1, 64, seed=1)
    result = mode_coverage(np.repeat(face, 500, axis=0))
    assert result["coverage"] == 1 / 2304
    assert result["kl_from_uniform"] == pytest.approx(math.log(2304))
    assert result["unrecognised"] == 0.0
    for i, name in enumerate(FACTOR_NAMES):
        assert result["histograms"][name][factors[0, i]] == 500


def test_mode_coverage_of_noise_is_unrecognised():
    noise = np.random.default_rng(0).uniform(-1, 1, (50, 32, 32, 3)).astype(np.float32)
    result = mode_coverage(noise, value_range=(-1, 1))
    assert result["unrecognised"] == 1.0 and result["coverage"] == 0.0
    assert math.isnan(result["kl_from_uniform"])


def test_mode_coverage_takes_any_value_range():
    images, _ = toy_faces(200, 32, seed=2)
    as_uint8 = mode_coverage(images)
    as_float = mode_coverage(images.astype(np.float32) / 255.0, value_range=(0, 1))
    assert as_float["coverage"] == as_uint8["coverage"]


def test_mode_coverage_names_its_decoder_and_refuses_unknown_ones():
    images, _ = toy_faces(20, 32, seed=3)
    assert mode_coverage(images)["decoder"] == "strict"
    assert mode_coverage(images, decoder="strict")["decoder"] == "strict"
    for wrong in ("lenient", None, len):
        with pytest.raises(ValueError, match='"strict", "calibrated"'):
            mode_coverage(images, decoder=wrong)


# --------------------------------------------------------------------------- variety (chapter 3)

CELLS = 2304  # 8 x 6 x 4 x 3 x 4 factor combinations


def _distinct_sd(n, cells=CELLS):
    """Standard deviation of the number of distinct cells after n uniform draws (exact).

    Var = c(c-1)(1-2/c)^n + c(1-1/c)^n - c^2(1-1/c)^(2n), from the occupancy indicators.
    """
    variance = (
        cells * (cells - 1) * (1 - 2 / cells) ** n
        + cells * (1 - 1 / cells) ** n
        - cells**2 * (1 - 1 / cells) ** (2 * n)
    )
    return math.sqrt(variance)


def _distinct_mean(n, cells=CELLS):
    return cells * (1 - (1 - 1 / cells) ** n)


def test_expected_distinct_in_small_and_large_cases():
    assert expected_distinct(0) == 0.0
    assert expected_distinct(1) == pytest.approx(1.0, rel=1e-12)
    assert expected_distinct(2) == pytest.approx(2 - 1 / CELLS, rel=1e-12)  # both differ but once
    assert expected_distinct(10**6) == pytest.approx(CELLS, rel=1e-12)  # every cell, surely
    assert expected_distinct(np.int64(1000)) == pytest.approx(_distinct_mean(1000), rel=1e-12)
    for wrong in (-1, -0.5, 2.5, float("nan"), True):
        with pytest.raises(ValueError, match="whole number of images"):
            expected_distinct(wrong)


@pytest.mark.parametrize("n", [10, 300, 2304, 6000])
def test_expected_distinct_is_the_mean_of_simulated_uniform_draws(n):
    reps = 2000
    draws = np.sort(np.random.default_rng(n).integers(0, CELLS, size=(reps, n)), axis=1)
    distinct = 1 + np.count_nonzero(np.diff(draws, axis=1), axis=1)
    standard_error = distinct.std() / math.sqrt(reps)
    assert abs(expected_distinct(n) - distinct.mean()) < 4 * standard_error + 1e-9
    if n > 10:  # the simulation's spread is the exact formula's
        assert distinct.std() == pytest.approx(_distinct_sd(n), rel=0.1)


def test_real_faces_have_variety_one_within_sampling_noise():
    images, _ = toy_faces(1000, 32, seed=7)
    result = mode_coverage(images)
    assert result["recognised"] == 1000 and result["unrecognised"] == 0.0
    noise = _distinct_sd(1000) / _distinct_mean(1000)  # 1.3 %
    assert abs(result["variety"] - 1.0) < 3 * noise
    # variety is the distinct combinations over their expected number
    assert result["variety"] * _distinct_mean(1000) == pytest.approx(
        result["coverage"] * CELLS, rel=1e-9
    )


def test_unrecognisable_images_lower_coverage_but_not_variety():
    images, _ = toy_faces(1000, 32, seed=7)
    full = mode_coverage(images)
    grey = images.copy()
    grey[::2] = 128  # flat grey: no face to read
    result = mode_coverage(grey)
    assert result["unrecognised"] == 0.5 and result["recognised"] == 500
    assert result["coverage"] < 0.65 * full["coverage"]  # coverage counts the lost faces
    noise = _distinct_sd(500) / _distinct_mean(500)
    assert abs(result["variety"] - 1.0) < 3 * noise  # the faces drawn are as varied as ever


def test_faces_of_half_the_hair_colours_have_less_variety():
    pool, factors = toy_faces(2400, 32, seed=8)
    half = pool[factors[:, 0] < 4][:1000]  # 1,152 of the 2,304 combinations can occur
    result = mode_coverage(half)
    assert result["recognised"] == 1000
    expected = _distinct_mean(1000, CELLS // 2) / _distinct_mean(1000)  # 0.82
    noise = _distinct_sd(1000, CELLS // 2) / _distinct_mean(1000)
    assert abs(result["variety"] - expected) < 3 * noise
    assert result["variety"] < 0.9


def test_one_repeated_face_has_tiny_variety_and_none_recognised_has_none():
    face, _ = toy_faces(1, 32, seed=9)
    result = mode_coverage(np.repeat(face, 1000, axis=0))
    assert result["variety"] == pytest.approx(1 / _distinct_mean(1000), rel=1e-9)  # 1 / 811
    assert result["variety"] < 0.002
    noise = np.random.default_rng(0).uniform(-1, 1, (20, 32, 32, 3)).astype(np.float32)
    assert math.isnan(mode_coverage(noise, value_range=(-1, 1))["variety"])


def test_mode_coverage_refuses_a_value_range_that_does_not_fit_the_images():
    images, _ = toy_faces(200, 32, seed=3)
    right = mode_coverage(images)["coverage"]
    assert right > 0
    scaled = images.astype(np.float32)  # floats in [0, 255]: guessed as [0, 1] before
    with pytest.raises(ValueError, match=r"to 255, outside the value_range \(0, 1\) guessed"):
        mode_coverage(scaled)
    assert mode_coverage(scaled, value_range=(0, 255))["coverage"] == right
    tanh = scaled / 127.5 - 1.0  # [-1, 1] read as [0, 1]
    with pytest.raises(
        ValueError, match=r"from -0\.\d+ to 1, outside the value_range \(0, 1\) given"
    ):
        mode_coverage(tanh, value_range=(0, 1))
    assert mode_coverage(tanh, value_range=(-1, 1))["coverage"] == right
    assert mode_coverage(tanh)["coverage"] == right  # guessed right: it has negative values
    broken = tanh.copy()
    broken[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mode_coverage(broken, value_range=(-1, 1))
