"""The ring of Gaussians: 2-D points around a circle, where mode collapse can be counted (chapters 1 and 4). NumPy only."""

from __future__ import annotations

import numbers

import numpy as np

from ganlib.common import check_int

__all__ = ["ring_centres", "sample_ring", "ring_density"]


def _check_ring(modes, radius, std=None):
    modes = check_int(modes, "modes", 1)
    for value, name in ((radius, "radius"), (std, "std")):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
            raise ValueError(f"{name} must be a positive number, e.g. 2.0 or 0.02; got {value!r}")
    return modes


def ring_centres(modes=8, radius=2.0):
    """The mixture's centres, float32 (modes, 2): radius * (cos 2 pi k / modes, sin 2 pi k / modes) (chapter 1)."""
    modes = _check_ring(modes, radius)
    angles = 2 * np.pi * np.arange(modes) / modes
    return (radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)


def sample_ring(n, modes=8, radius=2.0, std=0.02, seed=0):
    """n points, float32 (n, 2), of the ring mixture: a centre drawn uniformly plus N(0, std^2 I) (chapter 1).

    Draws from np.random.default_rng(seed): first the n centres' indices, then the noise.
    """
    n = check_int(n, "n", 0)
    modes = _check_ring(modes, radius, std)
    centres = ring_centres(modes, radius)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, modes, size=n)
    noise = std * rng.standard_normal((n, 2))
    return (centres[which] + noise).astype(np.float32)


def ring_density(points, modes=8, radius=2.0, std=0.02):
    """The ring mixture's exact density p_data at points (n, 2): float64 (n,) (chapter 4).

    p_data(x) = (1 / modes) sum_k N(x; mu_k, std^2 I), mu_k from `ring_centres`.
    """
    modes = _check_ring(modes, radius, std)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be an array (n, 2) of 2-D points, got shape {points.shape}")
    centres = ring_centres(modes, radius).astype(np.float64)
    squared = ((points[:, None, :] - centres[None]) ** 2).sum(axis=-1)
    return np.exp(-squared / (2 * std**2)).sum(axis=1) / (modes * 2 * np.pi * std**2)
