"""Tests for ganlib.metrics: KID and FID against plain references, extractors, mode coverage, KIDMonitor."""

import math

import keras
import numpy as np
import pytest
import scipy.linalg

from ganlib import metrics
from ganlib.data import FACTOR_NAMES, toy_faces
from ganlib.metrics import KIDMonitor, fid, kid, mode_coverage
from ganlib.plotting import to_uint8

# --------------------------------------------------------------------------- KID


def reference_mmd(x, y):
    """Unbiased squared MMD with k(a, b) = (a.b/d + 1)^3, written out term by term."""
    d = x.shape[1]
    m = len(x)

    def k(a, b):
        return (sum(float(ai) * float(bi) for ai, bi in zip(a, b, strict=True)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2.0 * xy


def test_kid_on_whole_sets_matches_the_reference():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.3, 1.2, size=(12, 5))
    mean, std = kid(
        x, y, num_subsets=3, subset_size=100
    )  # capped to 12: every subset is everything
    assert mean == pytest.approx(reference_mmd(x, y), rel=1e-10, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_subsets_match_the_reference_drawn_the_same_way():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 4)), rng.normal(0.5, 1.0, size=(25, 4))
    draws = np.random.default_rng(7)
    values = []
    for _ in range(4):
        xs = x[draws.choice(30, 10, replace=False)]
        ys = y[draws.choice(25, 10, replace=False)]
        values.append(reference_mmd(xs, ys))
    mean, std = kid(x, y, num_subsets=4, subset_size=10, seed=7)
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)


def test_kid_of_one_distribution_is_near_zero_and_can_be_negative():
    values = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
        values.append(kid(x, y, num_subsets=10, subset_size=100, seed=seed)[0])
    shifted = kid(x, y + 0.5, num_subsets=10, subset_size=100)[0]
    assert max(abs(v) for v in values) < 0.05 * shifted
    assert min(values) < 0  # unbiased: it scatters around zero


def test_kid_grows_with_the_shift():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    values = [
        kid(x, y + shift, num_subsets=20, subset_size=200)[0] for shift in (0.0, 0.2, 0.5, 1.0)
    ]
    assert values == sorted(values)
    assert values[1] > 0


def test_kid_is_seeded():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(100, 4)), rng.normal(size=(100, 4))
    assert kid(x, y, 5, 20, seed=1) == kid(x, y, 5, 20, seed=1)
    assert kid(x, y, 5, 20, seed=1) != kid(x, y, 5, 20, seed=2)


@pytest.mark.parametrize(
    "x, y",
    [
        (np.zeros((5, 3)), np.zeros((5, 4))),
        (np.zeros(5), np.zeros(5)),
        (np.zeros((1, 3)), np.zeros((5, 3))),
    ],
)
def test_kid_and_fid_reject_bad_shapes(x, y):
    with pytest.raises(ValueError):
        kid(x, y)
    with pytest.raises(ValueError):
        fid(x, y)


# --------------------------------------------------------------------------- FID


def reference_fid(x, y):
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(cov_x @ cov_y).real
    return float(np.sum((mu_x - mu_y) ** 2) + np.trace(cov_x + cov_y - 2.0 * root))


def test_fid_matches_scipy_sqrtm():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    y = rng.normal(1.0, 2.0, size=(400, 6)) @ rng.normal(size=(6, 6))
    assert fid(x, y) == pytest.approx(reference_fid(x, y), rel=1e-7)


def test_fid_of_identical_gaussians_is_near_zero_and_of_shifted_ones_the_shift():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4))
    assert fid(x, y) < 0.01
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fid(x, y + 1.0) == pytest.approx(4.0, rel=0.02)  # |mu difference|^2 = 4


def test_fid_warns_on_singular_covariances_but_still_answers():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(10, 20)), rng.normal(size=(10, 20))
    with pytest.warns(UserWarning, match="singular"):
        value = fid(x, y)
    assert math.isfinite(value) and value >= 0


# --------------------------------------------------------------------------- extractors


def test_inception_features_without_weights_says_what_to_do(monkeypatch):
    def offline(**kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: Name or service not known"
        )

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(FileNotFoundError) as info:
        metrics.InceptionFeatures()
    message = str(info.value)
    assert "DomainFeatures" in message
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "weights=" in message


def test_inception_features_missing_weights_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="DomainFeatures"):
        metrics.InceptionFeatures(weights=tmp_path / "nope.h5")


def test_inception_feature_pipeline_with_random_weights():
    extractor = metrics.InceptionFeatures(weights=None, batch_size=1)
    images = np.random.default_rng(7).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    features = extractor(images)
    assert features.shape == (2, 2048) and features.dtype == np.float32
    # The same images as floats in [-1, 1] give the same features.
    again = extractor(images.astype(np.float32) / 127.5 - 1.0, value_range=(-1, 1))
    np.testing.assert_allclose(again, features, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- DomainFeatures


@pytest.fixture(scope="module")
def domain_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ganlib_cache")


@pytest.fixture(scope="module")
def domain(domain_cache):
    """Trained once per test session (the slow test of this file, about half a minute)."""
    return metrics.DomainFeatures(image_size=32, cache_dir=domain_cache)


def test_domain_features_reach_98_percent_on_every_factor(domain):
    assert set(domain.accuracy) == set(FACTOR_NAMES)
    for name, accuracy in domain.accuracy.items():
        assert accuracy >= 0.98, f"{name}: {accuracy:.3f}"


def test_domain_features_load_from_the_cache(domain, domain_cache, monkeypatch):
    def no_training(self, verbose):
        raise AssertionError("should have loaded the cached weights")

    monkeypatch.setattr(metrics.DomainFeatures, "_train", no_training)
    monkeypatch.setenv("GANLIB_CACHE", str(domain_cache))
    again = metrics.DomainFeatures(image_size=32)
    assert again.weights_path == domain.weights_path
    assert again.accuracy == domain.accuracy
    images, _ = toy_faces(8, 32, seed=3)
    np.testing.assert_allclose(again(images), domain(images), rtol=1e-5, atol=1e-5)


def test_domain_features_shapes_sizes_and_value_ranges(domain):
    images, _ = toy_faces(20, 32, seed=4)
    features = domain(images)
    assert features.shape == (20, 128) and features.dtype == np.float32
    as_float = domain(images.astype(np.float32) / 127.5 - 1.0, value_range=(-1, 1))
    np.testing.assert_allclose(as_float, features, rtol=1e-4, atol=1e-4)
    assert domain(images[0]).shape == (1, 128)
    large, _ = toy_faces(20, 64, seed=4)  # resized to the network's 32 px
    assert domain(large).shape == (20, 128)


def test_domain_features_tell_a_collapsed_generator_from_real_faces(domain):
    real, _ = toy_faces(600, 32, seed=10)
    other, _ = toy_faces(600, 32, seed=11)
    faces, factors = toy_faces(3000, 32, seed=12)
    collapsed = faces[factors[:, 0] == 0][:300]  # only black hair
    same = kid(domain(real), domain(other), num_subsets=20, subset_size=300)[0]
    different = kid(domain(real), domain(collapsed), num_subsets=20, subset_size=300)[0]
    assert different > 10 * abs(same)


def test_domain_features_at_64_pixels_and_a_warning_when_undertrained(tmp_path):
    with pytest.warns(UserWarning, match="train longer"):
        small = metrics.DomainFeatures(
            image_size=64, cache_dir=tmp_path, train_size=256, test_size=64, epochs=1
        )
    images, _ = toy_faces(4, 64, seed=0)
    assert small(images).shape == (4, 128)
    assert small.model.input_shape == (None, 64, 64, 3)
    with pytest.raises(ValueError, match="32 or 64"):
        metrics.DomainFeatures(image_size=48, cache_dir=tmp_path)


# --------------------------------------------------------------------------- mode coverage


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


# --------------------------------------------------------------------------- KIDMonitor


def colour_features(images, value_range=None):
    """A cheap extractor for the callback tests: mean colour and its spread."""
    pixels = to_uint8(images, value_range).reshape(len(images), -1, 3).astype(np.float32) / 255.0
    return np.concatenate([pixels.mean(axis=1), pixels.std(axis=1)], axis=1)


class ToyFaceModel(keras.Model):
    """A stand-in for the GAN: a trivial trainable model whose generate() draws toy faces."""

    value_range = (-1.0, 1.0)

    def __init__(self, collapse=False):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.collapse = collapse

    def call(self, x):
        return self.dense(x)

    def generate(self, n, seed=None):
        images, _ = toy_faces(n, 32, seed=0 if seed is None else seed + 100)
        if self.collapse:
            images = np.repeat(images[:1], n, axis=0)
        return images.astype(np.float32) / 127.5 - 1.0


def test_kid_monitor_writes_into_the_fit_history():
    real, _ = toy_faces(300, 32, seed=5)
    monitor = KIDMonitor(
        real, colour_features, every=2, n_samples=200, coverage=True, subset_size=100
    )
    model = ToyFaceModel()
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(
        np.zeros((8, 2)), np.zeros((8, 1)), epochs=4, verbose=0, callbacks=[monitor]
    )
    kids = history.history["kid"]
    assert len(kids) == 4 and math.isnan(kids[0]) and math.isnan(kids[2])
    assert abs(kids[1]) < 0.01 and abs(kids[3]) < 0.01
    assert [epoch for epoch, _ in monitor.history] == [1, 3]
    assert history.history["coverage"][1] > 0.05
    assert "kl_from_uniform" in history.history


def test_kid_monitor_sees_a_collapsed_generator():
    real, _ = toy_faces(300, 32, seed=5)
    good = KIDMonitor(real, colour_features, n_samples=200, subset_size=100)
    bad = KIDMonitor(real, colour_features, n_samples=200, coverage=True, subset_size=100)
    good.set_model(ToyFaceModel())
    bad.set_model(ToyFaceModel(collapse=True))
    good_logs, bad_logs = {}, {}
    good.on_epoch_end(0, good_logs)
    bad.on_epoch_end(0, bad_logs)
    assert bad_logs["kid"] > 10 * abs(good_logs["kid"])
    assert bad_logs["coverage"] == 1 / 2304


def test_kid_monitor_checks_its_arguments():
    with pytest.raises(ValueError):
        KIDMonitor(np.zeros((4, 8, 8, 3), np.uint8), colour_features, every=0)
