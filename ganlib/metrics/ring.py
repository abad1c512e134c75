"""Mode coverage on the ring of Gaussians: which centre each point is near, and how many modes are used (chapters 1 and 4). NumPy only."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["nearest_mode", "ring_coverage"]


def _points_and_centres(points, centres):
    points = np.asarray(points, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be an array (n, 2) of 2-D points, got shape {points.shape}")
    if centres.ndim != 2 or centres.shape[1] != 2 or len(centres) == 0:
        raise ValueError(
            f"centres must be an array (modes, 2), e.g. ganlib.data.ring_centres(), "
            f"got shape {centres.shape}"
        )
    return points, centres


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def nearest_mode(points, centres, near):
    """For each point, the index of its nearest centre, or -1 when that is `near` or farther: int64 (n,) (chapter 4).

    points: float (n, 2); centres: float (modes, 2), e.g. `ganlib.data.ring_centres()`.
    """
    points, centres = _points_and_centres(points, centres)
    near = _check_positive(near, "near")
    distances = np.linalg.norm(points[:, None, :] - centres[None], axis=-1)
    nearest = distances.argmin(axis=1)
    closest = distances[np.arange(len(points)), nearest]
    return np.where(closest < near, nearest, -1).astype(np.int64)


def ring_coverage(points, centres, near=0.25, min_share=0.01):
    """How many of the ring's modes a set of points uses, and how many points sit near a centre (chapter 1).

    points: float (n, 2), n >= 1; centres: float (modes, 2). A point is *near* a mode
    when its nearest centre is closer than `near`; a mode is *covered* when at least
    min_share of all points are near it. Returns a dict:

    - near_share: share of the points near some centre (float in [0, 1]);
    - per_mode: int64 (modes,), the points near each centre;
    - covered: bool (modes,), which modes are covered;
    - modes_covered: how many are (int).
    """
    mode = nearest_mode(points, centres, near)
    if len(mode) == 0:
        raise ValueError("points is empty; pass at least one point")
    if isinstance(min_share, bool) or not isinstance(min_share, numbers.Real):
        raise ValueError(f"min_share must be a number in [0, 1], got {min_share!r}")
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be a number in [0, 1], got {min_share!r}")
    per_mode = np.bincount(mode[mode >= 0], minlength=len(np.asarray(centres)))
    covered = per_mode >= min_share * len(mode)
    # A mode with no point near it is never covered, even with min_share 0.
    covered &= per_mode > 0
    return {
        "near_share": float((mode >= 0).mean()),
        "per_mode": per_mode.astype(np.int64),
        "covered": covered,
        "modes_covered": int(covered.sum()),
    }
