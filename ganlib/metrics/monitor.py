"""KIDMonitor: KID (and coverage) of a GAN's samples during training (chapter 5)."""

from __future__ import annotations

import keras
import numpy as np

from ganlib.metrics.coverage import mode_coverage
from ganlib.metrics.distances import kid


class KIDMonitor(keras.callbacks.Callback):
    """Keras callback: KID of freshly generated images against real ones every `every` epochs.

    real_images: images (n, h, w, c) in any value range (value_range as in
    plotting.to_uint8); their features are computed once, here. extractor:
    InceptionFeatures() or DomainFeatures(...). At the end of every `every`-th
    epoch it draws self.model.generate(n_samples, seed=seed) (the GAN's EMA
    generator when there is one), writes logs["kid"] (and logs["coverage"],
    logs["kl_from_uniform"] from mode_coverage when coverage=True) and appends
    (epoch, values) to .history. Other epochs get nan, so a CSV history keeps
    one column per metric from the first epoch on.
    """

    def __init__(
        self,
        real_images,
        extractor,
        every=1,
        n_samples=1000,
        coverage=False,
        value_range=None,
        num_subsets=100,
        subset_size=1000,
        seed=0,
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
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.seed = seed
        self.real_features = extractor(real_images, value_range=value_range)
        self.history = []

    def measure(self):
        """KID (and coverage) of self.model's samples now: dict of floats."""
        images = np.asarray(self.model.generate(self.n_samples, seed=self.seed))
        value_range = getattr(self.model, "value_range", None)
        fake_features = self.extractor(images, value_range=value_range)
        mean, std = kid(
            self.real_features, fake_features, self.num_subsets, self.subset_size, seed=self.seed
        )
        values = {"kid": mean, "kid_std": std}
        if self.coverage:
            result = mode_coverage(images, value_range=value_range)
            values["coverage"] = result["coverage"]
            values["kl_from_uniform"] = result["kl_from_uniform"]
        return values

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        keys = ["kid"] + (["coverage", "kl_from_uniform"] if self.coverage else [])
        if (epoch + 1) % self.every:
            for key in keys:
                logs.setdefault(key, float("nan"))
            return
        values = self.measure()
        self.history.append((epoch, values))
        for key in keys:
            logs[key] = values[key]
