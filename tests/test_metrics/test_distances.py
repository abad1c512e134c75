"""Tests for ganlib/metrics/distances.py."""

import math

import numpy as np
import pytest
import scipy.linalg

from ganlib.metrics import distances, fid, kid

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


def reference_kid(x, y, num_subsets, subset_size, seed):
    """Mean and std of reference_mmd over subsets drawn like kid draws them (real, then fake)."""
    draws = np.random.default_rng(seed)
    s = min(subset_size, len(x), len(y))
    values = []
    for _ in range(num_subsets):
        xs = x[draws.choice(len(x), s, replace=False)]
        ys = y[draws.choice(len(y), s, replace=False)]
        values.append(reference_mmd(xs, ys))
    return np.mean(values), np.std(values)


@pytest.mark.parametrize(
    "n, m, subset_size",
    [
        (60, 30, 30),  # KIDMonitor's shape: every fake subset is the whole fake set
        (30, 60, 30),  # every real subset is the whole real set
        (40, 35, 12),  # subsets smaller than both sets
    ],
)
@pytest.mark.parametrize("path", ["chosen", "pooled", "per-subset"])
def test_kid_paths_match_the_reference(n, m, subset_size, path, monkeypatch):
    if path == "pooled":
        monkeypatch.setattr(distances, "pooled_kernel_pays", lambda *args: True)
    elif path == "per-subset":
        monkeypatch.setattr(distances, "_POOLED_KERNEL_MAX_BYTES", 0)
        assert not distances.pooled_kernel_pays(n, m, 5, subset_size, 10)
    rng = np.random.default_rng(8)
    # Non-negative like pooled ReLU features, and shifted, so that KID is clearly non-zero.
    x, y = rng.gamma(1.0, 0.5, size=(n, 5)), rng.gamma(1.3, 0.5, size=(m, 5))
    expected_mean, expected_std = reference_kid(x, y, 10, subset_size, seed=11)
    mean, std = kid(x, y, num_subsets=10, subset_size=subset_size, seed=11)
    assert mean == pytest.approx(expected_mean, rel=1e-9)
    assert std == pytest.approx(expected_std, rel=1e-7)


def test_kid_paths_agree_on_the_same_seed(monkeypatch):
    rng = np.random.default_rng(9)
    x, y = rng.gamma(1.0, 0.3, size=(300, 16)), rng.gamma(1.1, 0.3, size=(200, 16))
    assert distances.pooled_kernel_pays(300, 200, 16, 200, 50)
    pooled = kid(x, y, num_subsets=50, subset_size=200, seed=4)
    monkeypatch.setattr(distances, "_POOLED_KERNEL_MAX_BYTES", 0)
    per_subset = kid(x, y, num_subsets=50, subset_size=200, seed=4)
    assert pooled == pytest.approx(per_subset, rel=1e-10)


def test_kid_reuses_the_pooled_kernel_for_the_monitor_but_not_for_large_sets():
    # KIDMonitor: 2,000 real against 1,000 generated, DomainFeatures (128) or Inception (2,048).
    assert distances.pooled_kernel_pays(2000, 1000, 128, 1000, 100)
    assert distances.pooled_kernel_pays(2000, 1000, 2048, 1000, 100)
    # 10,000 + 10,000: the pooled kernel would take 3.2 GB.
    assert not distances.pooled_kernel_pays(10000, 10000, 2048, 1000, 100)
    # One small subset of large sets: drawing it anew is cheaper than the whole kernel.
    assert not distances.pooled_kernel_pays(2000, 1000, 128, 50, 1)


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


def test_kid_and_fid_refuse_nan_or_infinite_features():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(40, 4))
    for bad in (np.nan, np.inf):
        broken = y.copy()
        broken[3, 1] = bad
        with pytest.raises(ValueError, match="1 of the 40 fake feature vectors hold NaN"):
            kid(x, broken)
        with pytest.raises(ValueError, match="NaN or infinite"):
            fid(x, broken)
        with pytest.raises(ValueError, match="real feature vectors"):
            kid(broken, x)


def test_fid_never_raises_linalg_error(monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 3))
    y = rng.normal(0.5, 1.0, size=(300, 3))
    # features so large that their covariances overflow: the same value, scaled
    big = fid(x * 1e150, y * 1e150)
    assert math.isfinite(big) and big / 1e300 == pytest.approx(fid(x, y), rel=1e-9)

    def no_convergence(*args, **kwargs):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(np.linalg, "eigh", no_convergence)
    with pytest.raises(ValueError, match="did not converge.*use KID"):
        fid(x, y)
