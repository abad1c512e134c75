"""Evaluator: one way to measure generated images, set up once (chapters 3 and 6). NumPy only."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ganlib.metrics.blank import blank_share
from ganlib.metrics.coverage import mode_coverage, resolve_decoder
from ganlib.metrics.distances import kid
from ganlib.metrics.precision_recall import prdc
from ganlib.metrics.roughness import roughness_ratio

# What measure() returns, in this order; nan for what the Evaluator is not set up to measure.
KEYS = (
    "kid",
    "kid_std",
    "coverage",
    "kl_from_uniform",
    "unrecognised",
    "variety",
    "precision",
    "recall",
    "density",
    "nn_coverage",
    "blank_share",
    "strip_roughness",
)


def _whole(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Evaluator:
    """Fidelity, diversity and KID of generated images, with settings fixed once (chapters 3 and 6).

    real_features: float (m, d) features of real images made by `extractor` (images,
    value_range= -> features, e.g. DomainFeatures(...)); give both or neither. They
    give kid and kid_std (`kid` over `kid_subsets` subsets of `kid_subset_size`:
    a number, which kid caps at the smaller set, or "half": half the smaller set, at
    least 2) and, with k (None: not measured), precision, recall, density and
    nn_coverage (`prdc`; nan when a side has k points or fewer). decoder:
    `mode_coverage`'s decoder ("strict", "calibrated", a CalibratedDecoder) for
    coverage, kl_from_uniform, unrecognised and variety, or None. strip: bool (s, s)
    region for strip_roughness (`roughness_ratio`), or None. seed: the KID subsets'.
    blank_share is always measured. Chapter 3 explains the fidelity and diversity
    measures, chapter 6 KID and mode coverage.
    """

    KEYS = KEYS

    def __init__(
        self,
        real_features=None,
        extractor=None,
        *,
        decoder=None,
        k=5,
        kid_subsets=100,
        kid_subset_size=1000,
        strip=None,
        seed=0,
    ):
        if (real_features is None) != (extractor is None):
            raise ValueError(
                "give both real_features and extractor for KID and precision/recall (the "
                "features of real images and the extractor that made them), or neither"
            )
        if extractor is not None:
            if not callable(extractor):
                raise ValueError(
                    f"extractor must be callable as extractor(images, value_range=...), "
                    f"e.g. DomainFeatures(), got {extractor!r}"
                )
            real_features = np.asarray(real_features)
            if real_features.ndim != 2 or len(real_features) < 2:
                raise ValueError(
                    f"real_features must be an array (m, d) of at least 2 feature vectors, "
                    f"got shape {real_features.shape}; pass extractor(real_images)"
                )
            if not np.isfinite(real_features).all():
                raise ValueError(
                    "real_features hold NaN or infinite values; check the real images' value "
                    "range and compute them again with the extractor"
                )
            dim = getattr(extractor, "feature_dim", None)
            if dim is not None and dim != real_features.shape[1]:
                raise ValueError(
                    f"real_features have {real_features.shape[1]} dimensions but the extractor "
                    f"gives {dim}; compute real_features with this same extractor"
                )
        if k is not None and (not _whole(k) or k < 1):
            raise ValueError(
                f"k must be a whole number of at least 1 (prdc's neighbour; 5 is usual), or "
                f"None to skip precision and recall, got {k!r}"
            )
        if not _whole(kid_subsets) or kid_subsets < 1:
            raise ValueError(
                f"kid_subsets must be a whole number of at least 1, got {kid_subsets!r}"
            )
        if kid_subset_size != "half" and (not _whole(kid_subset_size) or kid_subset_size < 2):
            raise ValueError(
                f'kid_subset_size must be a whole number of at least 2 or "half" (half the '
                f"smaller set), got {kid_subset_size!r}"
            )
        if decoder is not None and not (isinstance(decoder, str) and decoder == "calibrated"):
            try:  # checks the name or the type; "calibrated" would load its network here
                resolve_decoder(decoder)
            except ValueError:
                raise ValueError(
                    f'decoder must be "strict", "calibrated", a CalibratedDecoder, or None for '
                    f"no mode coverage, got {decoder!r}"
                ) from None
        if strip is not None:
            strip = np.asarray(strip, dtype=bool)
            if strip.ndim != 2 or strip.shape[0] != strip.shape[1]:
                raise ValueError(
                    f"strip must be a bool mask (s, s) of the images' pixels, got shape "
                    f"{strip.shape}; pass None to skip strip_roughness"
                )
            # roughness_ratio's own check of the region, on one flat image.
            roughness_ratio(np.zeros((1, *strip.shape, 1)), strip, (0.0, 1.0))
        if seed is not None and (not _whole(seed) or seed < 0):
            raise ValueError(f"seed must be a whole number >= 0 or None, got {seed!r}")
        self.real_features, self.extractor, self.decoder = real_features, extractor, decoder
        self.k, self.kid_subsets, self.kid_subset_size = k, kid_subsets, kid_subset_size
        self.strip, self.seed = strip, seed
        # The whole mode_coverage result of the last measure (histograms, recognised), or None.
        self.last_coverage = None

    def measure(self, images, value_range=None) -> dict:
        """Every measurement of `images` (n, h, w, c): {key of KEYS: float}, nan where not set up (chapter 3).

        value_range: the images' (low, high), as in ganlib.common.to_uint8 (None guesses).
        """
        images = np.asarray(images)
        values = dict.fromkeys(KEYS, math.nan)
        values["blank_share"] = blank_share(images, value_range)
        if self.strip is not None:
            values["strip_roughness"] = roughness_ratio(images, self.strip, value_range)
        if self.extractor is not None:
            real = self.real_features
            fake = self.extractor(images, value_range=value_range)
            size = self.kid_subset_size
            if size == "half":
                size = max(2, min(len(fake), len(real)) // 2)
            values["kid"], values["kid_std"] = kid(
                real, fake, self.kid_subsets, size, seed=self.seed
            )
            if self.k is not None and min(len(fake), len(real)) > self.k:
                scores = prdc(real, fake, k=self.k)
                values.update(
                    precision=scores["precision"],
                    recall=scores["recall"],
                    density=scores["density"],
                    nn_coverage=scores["coverage"],
                )
        if self.decoder is not None:
            result = mode_coverage(images, value_range, decoder=self.decoder)
            for key in ("coverage", "kl_from_uniform", "unrecognised", "variety"):
                values[key] = result[key]
            self.last_coverage = result
        return {key: float(value) for key, value in values.items()}
