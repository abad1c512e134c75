"""Tests for ganlib/metrics/precision_recall.py: a naive reference, hand-worked values, the toy faces' factors."""

import importlib
import math

import numpy as np
import pytest

from ganlib.data import toy_faces
from ganlib.metrics import prdc


def _naive_prdc(real, fake, k):
    """The four definitions written out with Python loops and exact distances.

    r_k(p) = distance from p to its k-th nearest neighbour among the OTHER points of
    its own set; a ball B(p, r) holds q when |p - q| <= r (Kynkaanniemi et al. 2019;
    Naeem et al. 2020).
    """
    real = [np.asarray(p, np.float64) for p in real]
    fake = [np.asarray(q, np.float64) for q in fake]

    def distance(a, b):
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))

    def radius(points, i):
        others = sorted(distance(points[i], points[j]) for j in range(len(points)) if j != i)
        return others[k - 1]

    real_radii = [radius(real, i) for i in range(len(real))]
    fake_radii = [radius(fake, j) for j in range(len(fake))]
    in_real_ball = [
        [distance(y, x) <= r for x, r in zip(real, real_radii, strict=True)] for y in fake
    ]
    precision = sum(any(row) for row in in_real_ball) / len(fake)
    recall = sum(
        any(distance(x, y) <= r for y, r in zip(fake, fake_radii, strict=True)) for x in real
    ) / len(real)
    density = sum(sum(row) for row in in_real_ball) / (k * len(fake))
    coverage = sum(
        any(distance(x, y) <= real_radii[i] for y in fake) for i, x in enumerate(real)
    ) / len(real)
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def _assert_same(result, expected):
    assert set(result) == {"precision", "recall", "density", "coverage"}
    for key, value in expected.items():
        assert isinstance(result[key], float), key
        assert result[key] == pytest.approx(value, abs=1e-12), key


# --------------------------------------------------------------------------- the definitions


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_prdc_equals_the_naive_definitions_on_random_sets(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(40, 3))
    # shifted and wider: the four numbers land well inside (0, 1), where errors show
    fake = rng.normal(0.6, 1.4, size=(30, 3))
    expected = _naive_prdc(real, fake, k)
    assert 0 < expected["precision"] < 1 and 0 < expected["coverage"] < 1
    _assert_same(prdc(real, fake, k=k), expected)
    # the arguments' roles are not symmetric
    swapped = _naive_prdc(fake, real, k)
    _assert_same(prdc(fake, real, k=k), swapped)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_equals_the_naive_definitions_with_ties_and_duplicates(k):
    # points on a small integer grid: many duplicates and equal distances, all exact in
    # float64, so "<=" on the ball's edge and "the k-th among the others" are tested
    rng = np.random.default_rng(10 + k)
    real = rng.integers(0, 3, size=(30, 2)).astype(np.float64)
    fake = rng.integers(0, 4, size=(25, 2)).astype(np.float64)
    _assert_same(prdc(real, fake, k=k), _naive_prdc(real, fake, k))
    _assert_same(prdc(real, real.copy(), k=k), _naive_prdc(real, real, k))


def test_prdc_computes_in_blocks_of_rows_without_changing_the_result(monkeypatch):
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(23, 4)), rng.normal(0.3, 1.2, size=(17, 4))
    expected = _naive_prdc(real, fake, 4)
    # the file, not the function of the same name that ganlib.metrics exports
    module = importlib.import_module("ganlib.metrics.precision_recall")
    monkeypatch.setattr(module, "_ROWS", 5)  # 23 = 4 blocks of 5 and one of 3
    _assert_same(prdc(real, fake, k=4), expected)


def test_prdc_by_hand_where_an_outlier_inflates_recall_but_not_coverage():
    real = np.arange(6.0)[:, None]  # 0..5: each one's nearest other point is 1 away (k=1)
    fake = np.array([[0.5], [10.0], [2.2]])
    result = prdc(real, fake, k=1)
    # precision: 0.5 and 2.2 lie within 1 of a real point, 10 does not
    assert result["precision"] == pytest.approx(2 / 3)
    # density: 0.5 is inside the balls of 0 and 1, 2.2 inside those of 2 and 3
    assert result["density"] == pytest.approx(4 / 3)
    # coverage: 0, 1, 2 and 3 have a sample within 1; 4 and 5 do not
    assert result["coverage"] == pytest.approx(4 / 6)
    # recall: the outlier 10 has a ball of radius 7.8 (to 2.2) that swallows 4 and 5
    assert result["recall"] == 1.0


@pytest.mark.parametrize("k", [1, 5])
def test_identical_sets_have_full_precision_recall_and_coverage(k):
    features = np.random.default_rng(4).normal(size=(60, 8))
    for fake in (features, features.copy(), features.astype(np.float32)):
        result = prdc(features, fake, k=k)
        assert result["precision"] == result["recall"] == result["coverage"] == 1.0
    # each real ball holds its own point and its k nearest: k + 1 of the copies
    assert prdc(features, features, k=k)["density"] == pytest.approx((k + 1) / k)


def test_samples_drawn_like_the_data_score_about_one_and_far_ones_zero():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(400, 4))
    like = prdc(real, rng.normal(size=(400, 4)))
    assert like["precision"] > 0.9 and like["recall"] > 0.9 and like["coverage"] > 0.9
    assert like["density"] == pytest.approx(1.0, abs=0.15)
    far = prdc(real, rng.normal(50.0, 1.0, size=(400, 4)))
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("real", "fake", "k", "message"),
    [
        ((10, 3), (10, 3), 10, "need more than k=10 feature vectors on each side, got 10 real"),
        ((20, 3), (5, 3), 5, "need more than k=5 .* got 20 real and 5 fake"),
        ((20, 3), (20, 4), 5, "same dimension, got 3 and 4"),
        ((20,), (20, 3), 5, r"real_features must be a 2-D array \(n, d\), got shape \(20,\)"),
        ((20, 3), (2, 10, 3), 5, "fake_features must be a 2-D array"),
        ((20, 3), (20, 3), 0, "k must be a whole number >= 1, got 0"),
        ((20, 3), (20, 3), 2.5, "k must be a whole number >= 1, got 2.5"),
        ((20, 3), (20, 3), True, "k must be a whole number >= 1, got True"),
    ],
)
def test_prdc_refuses_bad_shapes_and_k(real, fake, k, message):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=message):
        prdc(rng.normal(size=real), rng.normal(size=fake), k=k)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("side", ["real_features", "fake_features"])
def test_prdc_refuses_non_finite_features(bad, side):
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    (real if side == "real_features" else fake)[7, 1] = bad
    with pytest.raises(ValueError, match=f"{side} holds NaN or infinite values"):
        prdc(real, fake)


# --------------------------------------------------------------------------- the toy faces' known factors


def _pixels(images, block=4):
    """A cheap description of toy faces: the image averaged over 4x4 blocks, float (n, 192)."""
    n, size = len(images), images.shape[1]
    x = images.astype(np.float64).reshape(n, size // block, block, size // block, block, 3)
    return x.mean(axis=(2, 4)).reshape(n, -1)


def test_samples_missing_half_the_hair_colours_lose_diversity_but_not_fidelity():
    real_images, real_factors = toy_faces(1000, 32, seed=1)
    like_images, _ = toy_faces(500, 32, seed=2)  # drawn like the data
    pool, pool_factors = toy_faces(1200, 32, seed=3)
    half_images = pool[pool_factors[:, 0] < 4][:500]  # only hair colours 0-3 of 8
    assert len(half_images) == 500
    real, like, half = _pixels(real_images), _pixels(like_images), _pixels(half_images)
    drawn_like, missing_half = prdc(real, like), prdc(real, half)
    # fidelity: every face is a real-looking face, so precision and density stay
    assert drawn_like["precision"] > 0.9
    assert missing_half["precision"] >= drawn_like["precision"] - 0.03
    assert missing_half["density"] == pytest.approx(drawn_like["density"], abs=0.1)
    # diversity: about half of the data is out of reach
    assert drawn_like["recall"] > 0.9 and drawn_like["coverage"] > 0.8
    assert missing_half["recall"] < 0.6 * drawn_like["recall"]
    assert missing_half["coverage"] < 0.6 * drawn_like["coverage"]
    # and the recall lost is that of the missing hair colours (recall needs only the
    # samples' balls, so it can be read per group of real faces)
    kept = real[real_factors[:, 0] < 4]
    gone = real[real_factors[:, 0] >= 4]
    assert prdc(kept, half)["recall"] > 0.9
    assert prdc(gone, half)["recall"] < 0.1
    assert prdc(gone, like)["recall"] > 0.9


def test_images_that_are_not_faces_lose_fidelity():
    real_images, _ = toy_faces(600, 32, seed=4)
    faces, _ = toy_faces(300, 32, seed=5)
    noise = np.random.default_rng(6).integers(0, 256, size=(300, 32, 32, 3)).astype(np.uint8)
    result = prdc(_pixels(real_images), _pixels(np.concatenate([faces, noise])))
    # half the samples are noise: precision and density halve, the faces still reach
    # the data (recall stays high)
    assert result["precision"] == pytest.approx(0.5, abs=0.05)
    assert result["density"] < 0.65
    assert result["recall"] > 0.8


def test_the_name_prdc_stays_the_function_whichever_is_imported_first():
    """A module named like the function it exports would replace it once imported directly."""
    import subprocess
    import sys

    code = (
        "import ganlib.metrics.precision_recall\n"
        "from ganlib import metrics\n"
        "import numpy as np\n"
        "x = np.arange(60.0).reshape(20, 3)\n"
        "assert callable(metrics.prdc), type(metrics.prdc)\n"
        "print(metrics.prdc(x, x)['precision'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.0"
