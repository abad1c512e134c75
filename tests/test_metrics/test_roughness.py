"""Tests for ganlib/metrics/roughness.py: hand-made images, a loop reference, errors."""

import math

import numpy as np
import pytest

from ganlib.metrics import roughness_ratio


def _strip(size, width=4):
    """bool (size, size): the last `width` rows and columns, where the published discriminator is blind."""
    region = np.zeros((size, size), bool)
    region[size - width :] = True
    region[:, size - width :] = True
    return region


def _loop_ratio(images, region):
    """The definition with explicit loops: mean |right step| + |down step| inside over outside."""
    images = np.asarray(images, np.float64)
    n, size, _, channels = images.shape
    inside, outside = [], []
    for i in range(size - 1):
        for j in range(size - 1):
            total = 0.0
            for m in range(n):
                for c in range(channels):
                    here = images[m, i, j, c]
                    total += abs(here - images[m, i, j + 1, c]) + abs(here - images[m, i + 1, j, c])
            (inside if region[i, j] else outside).append(total / (n * channels))
    return (sum(inside) / len(inside)) / (sum(outside) / len(outside))


def test_a_ramp_is_equally_rough_everywhere():
    ramp = np.tile(np.arange(8, dtype=np.uint8) * 10, (8, 1))[None, :, :, None]  # steps of 10
    assert roughness_ratio(ramp, _strip(8, 2)) == 1.0


def test_exact_ratio_of_a_quadratic_ramp():
    # x[i, j] = j^2: each pixel's step to the right is 2j + 1, downwards 0. With the last
    # two columns as the region, only column 6 counts inside (column 7 has no right
    # neighbour): 13; outside columns 0..5: mean(1, 3, 5, 7, 9, 11) = 6.
    row = (np.arange(8) ** 2).astype(np.uint8)
    image = np.tile(row, (8, 1))[None, :, :, None]
    region = np.zeros((8, 8), bool)
    region[:, 6:] = True
    assert roughness_ratio(image, region) == pytest.approx(13 / 6)


def test_noise_only_in_the_strip_gives_a_large_ratio():
    rng = np.random.default_rng(0)
    images = np.full((6, 32, 32, 3), 100, np.uint8)
    strip = _strip(32)
    images[:, strip] = rng.integers(0, 256, size=(6, strip.sum(), 3))
    ratio = roughness_ratio(images, strip)
    assert ratio > 10  # outside, only the pixels next to the strip see its noise
    assert ratio == pytest.approx(_loop_ratio(images, strip), rel=1e-9)


def test_noise_everywhere_gives_about_one():
    images = np.random.default_rng(1).integers(0, 256, size=(40, 32, 32, 3)).astype(np.uint8)
    assert roughness_ratio(images, _strip(32)) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("seed", [2, 3])
def test_roughness_ratio_equals_the_loop_definition(seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(3, 9, 9, 2)).astype(np.uint8)
    images[:, :, :5] //= 4  # smoother on the left: the ratio is far from 1
    # a scattered region, mostly on the smooth side
    region = rng.random((9, 9)) < np.where(np.arange(9) < 5, 0.7, 0.15)[None, :]
    expected = _loop_ratio(images, region)
    assert abs(expected - 1.0) > 0.1
    assert roughness_ratio(images, region) == pytest.approx(expected, rel=1e-9)


def test_the_value_range_scales_both_sides_alike():
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(4, 16, 16, 3)).astype(np.uint8)
    images[:, :12, :12] //= 2
    region = _strip(16)
    as_uint8 = roughness_ratio(images, region)
    as_tanh = images.astype(np.float32) / 127.5 - 1.0
    assert roughness_ratio(as_tanh, region, value_range=(-1, 1)) == pytest.approx(
        as_uint8, rel=1e-5
    )
    as_unit = images.astype(np.float32) / 255.0
    assert roughness_ratio(as_unit, region, value_range=(0, 1)) == pytest.approx(as_uint8, rel=1e-5)


def test_a_flat_outside_gives_nan():
    images = np.zeros((2, 8, 8, 3), np.uint8)
    region = np.zeros((8, 8), bool)
    region[0, 0] = True
    assert math.isnan(roughness_ratio(images, region))


@pytest.mark.parametrize(
    ("images_shape", "region_shape"),
    [((2, 32, 32, 3), (16, 16)), ((2, 32, 32, 3), (32, 31)), ((32, 32, 3), (32, 32))],
)
def test_mismatched_shapes_are_refused(images_shape, region_shape):
    with pytest.raises(ValueError, match=r"images \(n, s, s, c\) and region \(s, s\) must match"):
        roughness_ratio(np.zeros(images_shape, np.uint8), np.ones(region_shape, bool))


def test_empty_or_full_regions_are_refused():
    images = np.random.default_rng(5).integers(0, 256, size=(2, 8, 8, 3)).astype(np.uint8)
    last_row_and_column = np.zeros((8, 8), bool)
    last_row_and_column[-1] = last_row_and_column[:, -1] = True  # no pixel with both neighbours
    all_but_those = ~last_row_and_column
    for region in (np.zeros((8, 8), bool), np.ones((8, 8), bool), last_row_and_column):
        with pytest.raises(ValueError, match="region must hold some, but not all"):
            roughness_ratio(images, region)
    with pytest.raises(ValueError, match="region must hold some, but not all"):
        roughness_ratio(images, all_but_those)
