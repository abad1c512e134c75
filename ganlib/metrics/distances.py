"""KID and FID: distances between two sets of feature vectors (chapter 5). NumPy only."""

from __future__ import annotations

import warnings

import numpy as np


def _check_features(real_features, fake_features):
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2:
        raise ValueError(
            f"features must be 2-D arrays (n, d), got shapes {real.shape} and {fake.shape}"
        )
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake features must have the same dimension, got {real.shape[1]} and {fake.shape[1]}"
        )
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(
            f"need at least 2 feature vectors on each side, got {len(real)} and {len(fake)}"
        )
    return real, fake


def _cubic_kernel(a, b):
    """k(a_i, b_j) = (a_i . b_j / d + 1)^3 for all pairs: float64 (len(a), len(b))."""
    k = a @ b.T
    k /= a.shape[1]
    k += 1.0
    cube = k * k
    cube *= k  # in place, and faster than ** 3
    return cube


def kid(real_features, fake_features, num_subsets=100, subset_size=1000, seed=0):
    """Kernel Inception Distance: the unbiased squared MMD with a cubic polynomial kernel.

    real_features (n, d), fake_features (m, d): float arrays from one extractor.
    With k(x, y) = (x . y / d + 1)^3 and subsets X, Y of size s drawn without
    replacement (s = min(subset_size, n, m))::

        MMD^2 = sum_{i != j} k(x_i, x_j) / (s (s - 1))
              + sum_{i != j} k(y_i, y_j) / (s (s - 1))
              - 2 sum_{i, j} k(x_i, y_j) / s^2

    Returns (mean, std) over num_subsets subsets as floats (one subset, std 0,
    when s covers both sets entirely). The estimate is unbiased, so for two
    samples of one distribution it scatters around zero and can be negative.
    Each subset costs three (s, d) x (d, s) matrix products in
    float64; the subsets are drawn from a generator seeded with `seed`.
    """
    real, fake = _check_features(real_features, fake_features)
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be at least 1, got {num_subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2, got {subset_size}")
    s = min(subset_size, len(real), len(fake))
    if s == len(real) == len(fake):
        num_subsets = 1  # every "subset" is the whole of both sets: the same value each time
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for t in range(num_subsets):
        x = real[rng.choice(len(real), s, replace=False)]
        y = fake[rng.choice(len(fake), s, replace=False)]
        k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
        # The diagonal holds k(x_i, x_i); the unbiased estimate leaves it out.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (s * (s - 1))
        values[t] = within - 2.0 * k_xy.mean()
    return float(values.mean()), float(values.std())


def fid(real_features, fake_features):
    """Fréchet distance between Gaussians fitted to two feature sets (FID with Inception features).

    ``FID = |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))``. The trace of the
    matrix square root is computed as the sum of square roots of the
    eigenvalues of S_r^(1/2) S_f S_r^(1/2), a symmetric positive semi-definite
    matrix, so no complex residue appears and singular covariances are fine
    (tiny negative eigenvalues from round-off are clipped to zero). With fewer
    samples than dimensions the covariances are singular and FID is strongly
    biased; a warning says so. Returns a float >= 0.
    """
    real, fake = _check_features(real_features, fake_features)
    d = real.shape[1]
    if min(len(real), len(fake)) <= d:
        warnings.warn(
            f"FID with {min(len(real), len(fake))} samples of {d}-dimensional features: the "
            "covariances are singular and the value is biased upwards; use more samples than "
            "dimensions (10,000 is usual for Inception features) or compare with KID.",
            stacklevel=2,
        )
    mu_r, mu_f = real.mean(axis=0), fake.mean(axis=0)
    cov_r = np.atleast_2d(np.cov(real, rowvar=False))
    cov_f = np.atleast_2d(np.cov(fake, rowvar=False))
    eigenvalues, eigenvectors = np.linalg.eigh(cov_r)
    root_r = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    middle = root_r @ cov_f @ root_r
    middle = (middle + middle.T) / 2.0  # symmetric up to round-off; make it exactly so
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    diff = mu_r - mu_f
    value = diff @ diff + np.trace(cov_r) + np.trace(cov_f) - 2.0 * trace_root
    return float(max(value, 0.0))
