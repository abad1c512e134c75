"""Tests for ganlib/metrics/ring.py."""

import numpy as np
import pytest

from ganlib.data.ring import ring_centres, sample_ring
from ganlib.metrics.ring import nearest_mode, ring_coverage


def test_nearest_mode_by_hand():
    centres = np.array([[0.0, 0.0], [1.0, 0.0]])
    points = np.array([[0.1, 0.0], [0.9, 0.05], [0.5, 0.5], [1.0, 0.3]])
    np.testing.assert_array_equal(nearest_mode(points, centres, near=0.2), [0, 1, -1, -1])
    np.testing.assert_array_equal(nearest_mode(points, centres, near=0.31), [0, 1, -1, 1])


def test_real_ring_covers_every_mode_and_sits_near_the_centres():
    centres = ring_centres()
    result = ring_coverage(sample_ring(4000, seed=1), centres, near=0.25)
    assert result["modes_covered"] == 8 and result["covered"].all()
    assert result["near_share"] == 1.0
    assert result["per_mode"].sum() == 4000
    # Within 3 std of a centre: the chi distribution with 2 degrees of freedom gives
    # 1 - exp(-9 / 2) = 0.9889 of the points.
    tight = ring_coverage(sample_ring(20_000, seed=2), centres, near=3 * 0.02)
    assert tight["near_share"] == pytest.approx(1 - np.exp(-4.5), abs=0.003)


def test_a_collapsed_generator_covers_only_its_modes():
    centres = ring_centres()
    points = np.concatenate(
        [
            np.tile(centres[2], (95, 1)),
            np.tile(centres[5], (4, 1)),
            np.tile(centres[6], (1, 1)),
            np.zeros((100, 2)),
        ]
    )
    result = ring_coverage(points, centres, near=0.25, min_share=0.01)
    np.testing.assert_array_equal(result["per_mode"], [0, 0, 95, 0, 0, 4, 1, 0])
    # mode 6 holds 1 of 200 points, less than 1%
    assert result["modes_covered"] == 2
    np.testing.assert_array_equal(np.flatnonzero(result["covered"]), [2, 5])
    assert result["near_share"] == 0.5
    assert ring_coverage(points, centres, min_share=0.0)["modes_covered"] == 3


@pytest.mark.parametrize(
    ("points", "centres", "options", "message"),
    [
        (np.zeros((0, 2)), ring_centres(), {}, "empty"),
        (np.zeros((5, 3)), ring_centres(), {}, "points"),
        (np.zeros((5, 2)), np.zeros(2), {}, "centres"),
        (np.zeros((5, 2)), ring_centres(), {"near": 0.0}, "near"),
        (np.zeros((5, 2)), ring_centres(), {"min_share": 2.0}, "min_share"),
    ],
)
def test_bad_input_raises_value_error(points, centres, options, message):
    with pytest.raises(ValueError, match=message):
        ring_coverage(points, centres, **options)
