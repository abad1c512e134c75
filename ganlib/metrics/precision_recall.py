"""Precision, recall, density and coverage: fidelity and diversity apart (chapter 3). NumPy only.

Precision and recall as Kynkäänniemi et al. (2019) define them with k-nearest-neighbour
balls; density and coverage as Naeem et al. (2020). With real features X (m of them),
generated features Y (n) and r_k(x) the distance from x to its k-th nearest neighbour
among the other points of its own set:

- precision = share of y in Y inside the ball B(x, r_k(x)) of at least one real x
  (do the samples look like the data: fidelity);
- recall = share of x in X inside the ball B(y, r_k(y)) of at least one sample y
  (how much of the data the samples reach: diversity);
- density = (1 / (k n)) * sum over y of the number of real balls B(x, r_k(x)) holding y
  (fidelity that counts how deep inside the real manifold a sample lies; 1 on average
  when Y is drawn like X, above 1 where samples crowd dense real regions);
- coverage = share of real x whose ball B(x, r_k(x)) holds at least one sample
  (diversity that, unlike recall, real outliers cannot inflate).
"""

from __future__ import annotations

import numpy as np

# Rows of the distance matrix computed at once: 1,000 x 10,000 float64 is 80 MB.
_ROWS = 1000


def _pairwise_distances(a, b):
    """Euclidean distances float64 (len(a), len(b)), computed in blocks of rows."""
    b_squared = np.sum(b * b, axis=1)
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), _ROWS):
        block = a[start : start + _ROWS]
        squared = np.sum(block * block, axis=1)[:, None] - 2.0 * block @ b.T + b_squared[None]
        out[start : start + _ROWS] = np.sqrt(np.maximum(squared, 0.0))
    return out


def _radii(points, k):
    """Distance from each point to its k-th nearest neighbour among the others: float64 (n,)."""
    distances = _pairwise_distances(points, points)
    # Column 0 of each sorted row is the point itself (distance 0), so the k-th other is k.
    return np.partition(distances, k, axis=1)[:, k]


def _check(features, name):
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} holds NaN or infinite values; check the images (value range?) and the "
            "feature extractor before measuring"
        )
    return array


def prdc(real_features, fake_features, k=5) -> dict:
    """Precision, recall, density and coverage of generated against real features (chapter 3).

    real_features: float (m, d); fake_features: float (n, d), e.g. DomainFeatures of
    images; m and n greater than k. k: the neighbour that sets each ball's radius (5,
    as both papers recommend). Returns {"precision", "recall", "density", "coverage"}
    as floats: precision, recall and coverage in [0, 1], density >= 0. Precision and
    density measure fidelity, recall and coverage diversity (the module's docstring
    gives the definitions). ValueError for mismatched shapes, too few points or
    non-finite features.
    """
    real = _check(real_features, "real_features")
    fake = _check(fake_features, "fake_features")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake features must have the same dimension, got {real.shape[1]} "
            f"and {fake.shape[1]}"
        )
    if len(real) <= k or len(fake) <= k:
        raise ValueError(
            f"need more than k={k} feature vectors on each side, got {len(real)} real and "
            f"{len(fake)} fake; measure more samples or lower k"
        )
    real_radii, fake_radii = _radii(real, k), _radii(fake, k)
    distances = _pairwise_distances(real, fake)  # (m, n)
    inside_real = distances <= real_radii[:, None]  # fake j inside real i's ball
    inside_fake = distances <= fake_radii[None, :]  # real i inside fake j's ball
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float(inside_fake.any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * len(fake))),
        "coverage": float((distances.min(axis=1) <= real_radii).mean()),
    }
