"""KIDMonitor: KID (and coverage) of a GAN's samples during training (chapter 6)."""

from __future__ import annotations

import keras
import numpy as np

from ganlib.metrics.evaluator import Evaluator

# With the generated set used whole, only the real side's subset changes from one
# subset to the next, and 10 subsets leave a third of that noise (see KIDMonitor).
_WHOLE_SET_SUBSETS = 10
_DEFAULT_SUBSETS = 100
_DEFAULT_SUBSET_SIZE = 1000


class KIDMonitor(keras.callbacks.Callback):
    """Keras callback: KID of freshly generated images against real ones every `every` epochs (chapter 6).

    real_images: images (n, h, w, c) in any value range (value_range as in
    ganlib.common.to_uint8); their features are computed once, here. extractor:
    InceptionFeatures() or DomainFeatures(...). At the end of every `every`-th
    epoch it draws self.model.generate(n_samples, seed=seed) (the GAN's EMA
    generator when there is one), writes logs["kid"] and logs["kid_std"] (mean
    and standard deviation over the subsets, see ganlib.metrics.kid), plus
    logs["coverage"] and logs["kl_from_uniform"] from mode_coverage when
    coverage=True, and appends (epoch, values) to .history. Other epochs get nan,
    so a CSV history keeps one column per metric from the first epoch on. It
    measures with a `metrics.Evaluator` (`.evaluator`).

    decoder: mode_coverage's decoder for that coverage, "strict" by default: what
    train(kid_every=...) writes. The strict decoder reads few generated faces, so
    its coverage is lower than that of ganlib.experiments.Measurements and
    bench/recipes.py, which read with "calibrated" (chapter 3); pass
    decoder="calibrated" (or a CalibratedDecoder) to measure theirs.

    subset_size: None means min(1000, n_samples). num_subsets: None means 100,
    or 10 when a subset is the whole generated set (subset_size >= n_samples and
    at least n_samples real images). Then every subset holds the same generated
    images and only the real subset changes, so kid_std measures how much the
    choice of real images moves the value, not the noise of drawing n_samples
    fake ones (measure again with another seed to see that), and more subsets
    only shrink the first: the mean keeps about kid_std / sqrt(num_subsets) of
    it, a third of kid_std with 10, while the second stays whatever the number.
    When both sets are exactly one subset large, kid uses that one subset and
    kid_std is 0.
    """

    def __init__(
        self,
        real_images,
        extractor,
        every=1,
        n_samples=1000,
        coverage=False,
        value_range=None,
        num_subsets=None,
        subset_size=None,
        seed=0,
        decoder="strict",
    ):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        if n_samples < 2:
            raise ValueError(f"n_samples must be at least 2, got {n_samples}")
        self.extractor = extractor
        self.every = int(every)
        self.n_samples = int(n_samples)
        self.coverage = bool(coverage)
        self.seed = seed
        self.real_features = extractor(real_images, value_range=value_range)
        if subset_size is None:
            subset_size = min(_DEFAULT_SUBSET_SIZE, self.n_samples)
        if num_subsets is None:
            # The size kid will really use: it never exceeds either set.
            used = min(subset_size, len(self.real_features), self.n_samples)
            num_subsets = _WHOLE_SET_SUBSETS if used == self.n_samples else _DEFAULT_SUBSETS
        self.subset_size = int(subset_size)
        self.num_subsets = int(num_subsets)
        self.decoder = decoder
        self.evaluator = Evaluator(
            self.real_features,
            extractor,
            decoder=decoder if self.coverage else None,
            k=None,
            kid_subsets=self.num_subsets,
            kid_subset_size=self.subset_size,
            seed=seed,
        )
        self.history = []

    def measure(self):
        """KID (and coverage) of self.model's samples now: dict of floats ("kid", "kid_std", ...)."""
        images = np.asarray(self.model.generate(self.n_samples, seed=self.seed))
        values = self.evaluator.measure(images, getattr(self.model, "value_range", None))
        return {key: values[key] for key in self._keys()}

    def _keys(self):
        return ["kid", "kid_std"] + (["coverage", "kl_from_uniform"] if self.coverage else [])

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        keys = self._keys()
        if (epoch + 1) % self.every:
            for key in keys:
                logs.setdefault(key, float("nan"))
            return
        values = self.measure()
        self.history.append((epoch, values))
        for key in keys:
            logs[key] = values[key]
