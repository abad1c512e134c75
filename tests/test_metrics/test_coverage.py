"""Tests for ganlib/metrics/coverage.py."""

import math

import numpy as np
import pytest

from ganlib.data import FACTOR_NAMES, toy_faces
from ganlib.metrics import mode_coverage

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
