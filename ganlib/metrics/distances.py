"""KID and FID: distances between two sets of feature vectors (chapter 6). NumPy only."""

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
    for side, features in (("real", real), ("fake", fake)):
        finite = np.isfinite(features).all(axis=1)
        if not finite.all():
            raise ValueError(
                f"{np.count_nonzero(~finite)} of the {len(features)} {side} feature vectors "
                f"hold NaN or infinite values (images with NaN pixels, e.g. from a generator "
                f"whose loss became NaN); drop those images or fix what made them"
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


# kid() reuses the kernel of the pooled features only if (n + m)^2 * 8 bytes <= this,
# i.e. n + m <= 5,792: KIDMonitor's 2,000 real + 1,000 generated (72 MB) fit, while
# 10,000 + 10,000 (3.2 GB) keep the per-subset path. Tests lower it to force that path.
_POOLED_KERNEL_MAX_BYTES = 256 * 2**20

# Subsets whose sums are gathered from the pooled kernel in one matrix product.
_CHUNK = 128


def pooled_kernel_pays(n, m, d, s, num_subsets):
    """Whether kid() should compute the kernel of the pooled features once (chapter 6).

    Two conditions: the pooled (n+m) x (n+m) float64 kernel fits _POOLED_KERNEL_MAX_BYTES,
    and its rough arithmetic, (n+m)^2 (d + num_subsets) for the kernel plus the indicator
    products that sum each subset, is below that of the per-subset path,
    num_subsets * 3 s^2 d. A few subsets much smaller than the sets favour the latter.
    """
    fits = (n + m) ** 2 * 8 <= _POOLED_KERNEL_MAX_BYTES
    return fits and (n + m) ** 2 * (d + num_subsets) < num_subsets * 3 * s * s * d


def _subset_sums(k, rows, cols):
    """For each subset t, the sum of k[np.ix_(rows[t], cols[t])]: float64 (T,) or a scalar.

    rows (T, s) and cols (T, s) are index arrays into k's rows and columns; None stands for
    "every index", which every subset then shares, so its sums come from k's row or column
    sums, or its total, computed once.
    """
    if rows is None and cols is None:
        return k.sum()
    if cols is None:
        return k.sum(axis=1)[rows].sum(axis=1)
    if rows is None:
        return k.sum(axis=0)[cols].sum(axis=1)
    # u_t^T k v_t with 0/1 indicator vectors: a matrix product, much cheaper than gathering
    # s^2 scattered entries per subset. Chunks bound the (T, len(k)) temporaries.
    sums = np.empty(len(rows))
    for start in range(0, len(rows), _CHUNK):
        r, c = rows[start : start + _CHUNK], cols[start : start + _CHUNK]
        u = np.zeros((len(r), k.shape[0]))
        u[np.arange(len(r))[:, None], r] = 1.0
        v = np.zeros((len(c), k.shape[1]))
        v[np.arange(len(c))[:, None], c] = 1.0
        sums[start : start + len(r)] = np.einsum("tj,tj->t", u @ k, v)
    return sums


def _within_sums(features, subsets):
    """sum_{i != j} k(f_i, f_j) over each subset of one side: (T,) or a scalar (None = all)."""
    k = _cubic_kernel(features, features)
    diag = np.diagonal(k)  # k(f_i, f_i): the unbiased estimate leaves these out
    return _subset_sums(k, subsets, subsets) - (
        diag.sum() if subsets is None else diag[subsets].sum(axis=1)
    )


def _kid_pooled(real, fake, real_subsets, fake_subsets, num_subsets):
    """Unbiased MMD^2 of each subset from the kernels of the whole sets: float64 (num_subsets,).

    real_subsets / fake_subsets: (num_subsets, s) index arrays into real / fake, or None
    where every subset is the whole of that side (then its sums are computed once).
    """
    s = len(real) if real_subsets is None else real_subsets.shape[1]
    # One kernel block at a time, each freed once reduced, so peak memory stays ~2 blocks.
    xx = _within_sums(real, real_subsets)
    yy = _within_sums(fake, fake_subsets)
    xy = _subset_sums(_cubic_kernel(real, fake), real_subsets, fake_subsets)
    values = (xx + yy) / (s * (s - 1)) - 2.0 * xy / (s * s)
    return np.broadcast_to(values, (num_subsets,))


def kid(real_features, fake_features, num_subsets=100, subset_size=1000, seed=0):
    """Kernel Inception Distance: the unbiased squared MMD with a cubic polynomial kernel (chapter 6).

    real_features (n, d), fake_features (m, d): float arrays from one extractor.
    With k(x, y) = (x . y / d + 1)^3 and subsets X, Y of size s drawn without
    replacement (s = min(subset_size, n, m))::

        MMD^2 = sum_{i != j} k(x_i, x_j) / (s (s - 1))
              + sum_{i != j} k(y_i, y_j) / (s (s - 1))
              - 2 sum_{i, j} k(x_i, y_j) / s^2

    Returns (mean, std) over num_subsets subsets as floats (one subset, std 0,
    when s covers both sets entirely). The estimate is unbiased, so for two
    samples of one distribution it scatters around zero and can be negative.
    The subsets are drawn from a generator seeded with `seed`. All arithmetic is
    float64. When the pooled features are few (KIDMonitor's 2,000 real + 1,000
    generated), the kernels of the whole sets are computed once and each subset's
    sums are read out of them (see pooled_kernel_pays); otherwise each subset
    costs three (s, d) x (d, s) matrix products. Both give the same values.
    """
    real, fake = _check_features(real_features, fake_features)
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be at least 1, got {num_subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2, got {subset_size}")
    n, m = len(real), len(fake)
    s = min(subset_size, n, m)
    if s == n == m:
        num_subsets = 1  # every "subset" is the whole of both sets: the same value each time
    rng = np.random.default_rng(seed)
    if pooled_kernel_pays(n, m, real.shape[1], s, num_subsets):
        # Same generator calls in the same order as the loop below, so the same subsets.
        real_subsets = np.empty((num_subsets, s), dtype=np.intp)
        fake_subsets = np.empty((num_subsets, s), dtype=np.intp)
        for t in range(num_subsets):
            real_subsets[t] = rng.choice(n, s, replace=False)
            fake_subsets[t] = rng.choice(m, s, replace=False)
        # A subset as large as its side is that whole side, merely reordered.
        values = _kid_pooled(
            real,
            fake,
            None if s == n else real_subsets,
            None if s == m else fake_subsets,
            num_subsets,
        )
        return float(values.mean()), float(values.std())
    values = np.empty(num_subsets)
    for t in range(num_subsets):
        x = real[rng.choice(n, s, replace=False)]
        y = fake[rng.choice(m, s, replace=False)]
        k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
        # The diagonal holds k(x_i, x_i); the unbiased estimate leaves it out.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (s * (s - 1))
        values[t] = within - 2.0 * k_xy.mean()
    return float(values.mean()), float(values.std())


def fid(real_features, fake_features):
    """Squared Fréchet distance between Gaussians fitted to two feature sets (chapter 6).

    With Inception features this is FID. It is the *squared* Fréchet (2-Wasserstein)
    distance between N(mu_r, S_r) and N(mu_f, S_f) (its square root is the distance)::

        FID = |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))

    real_features (n, d), fake_features (m, d): float arrays. The trace of the
    matrix square root is computed as the sum of square roots of the
    eigenvalues of S_r^(1/2) S_f S_r^(1/2), a symmetric positive semi-definite
    matrix, so no complex residue appears and singular covariances are fine
    (tiny negative eigenvalues from round-off are clipped to zero). With fewer
    samples than dimensions the covariances are singular and FID is strongly
    biased; a warning says so. Returns a float >= 0.
    """
    real, fake = _check_features(real_features, fake_features)
    d = real.shape[1]
    # FID scales with the square of the features: features so large (or small) that their
    # covariances would overflow (or vanish) are divided by their largest magnitude first.
    scale = max(float(np.abs(real).max()), float(np.abs(fake).max()))
    if not 1e-100 < scale < 1e100:
        scale = scale or 1.0
        real, fake = real / scale, fake / scale
    else:
        scale = 1.0
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
    try:
        eigenvalues, eigenvectors = np.linalg.eigh(cov_r)
        root_r = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
        middle = root_r @ cov_f @ root_r
        middle = (middle + middle.T) / 2.0  # symmetric up to round-off; make it exactly so
        trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    except np.linalg.LinAlgError as error:  # LAPACK did not converge
        raise ValueError(
            f"FID could not be computed: the eigenvalues of the {d}x{d} covariances did not "
            f"converge ({error}); check the features for extreme values or use KID"
        ) from None
    diff = mu_r - mu_f
    value = diff @ diff + np.trace(cov_r) + np.trace(cov_f) - 2.0 * trace_root
    return float(max(value, 0.0)) * scale * scale
