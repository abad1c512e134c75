"""Tests for ganlib/metrics/monitor.py."""

import math

import keras
import numpy as np
import pytest

from ganlib.data import toy_faces
from ganlib.metrics import KIDMonitor
from ganlib.plotting import to_uint8

# --------------------------------------------------------------------------- KID


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
    # The spread over the 100 subsets is logged next to the mean, nan where kid is.
    stds = history.history["kid_std"]
    assert len(stds) == 4 and math.isnan(stds[0]) and math.isnan(stds[2])
    assert 0 < stds[1] < 0.01 and 0 < stds[3] < 0.01
    assert monitor.history[0][1]["kid_std"] == stds[1]
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


def test_kid_monitor_subsets_follow_n_samples():
    real, _ = toy_faces(300, 32, seed=5)
    # The subset is the whole generated set: only the real side varies, 10 subsets do.
    whole = KIDMonitor(real, colour_features, n_samples=200)
    assert (whole.subset_size, whole.num_subsets) == (200, 10)
    # Fewer real images than a subset: kid shrinks the subset, so both sides vary.
    few_real = KIDMonitor(real, colour_features, n_samples=2000)
    assert (few_real.subset_size, few_real.num_subsets) == (1000, 100)
    smaller = KIDMonitor(real, colour_features, n_samples=200, subset_size=50)
    assert (smaller.subset_size, smaller.num_subsets) == (50, 100)
    chosen = KIDMonitor(real, colour_features, n_samples=200, num_subsets=7, subset_size=20)
    assert (chosen.subset_size, chosen.num_subsets) == (20, 7)
    whole.set_model(ToyFaceModel())
    logs = {}
    whole.on_epoch_end(0, logs)
    assert abs(logs["kid"]) < 0.01 and 0 < logs["kid_std"] < 0.01


def test_kid_monitor_coverage_says_which_decoder_reads_the_faces():
    """train(kid_every=...)'s coverage reads with the strict decoder unless told otherwise."""
    from ganlib.metrics import mode_coverage

    real, _ = toy_faces(300, 32, seed=5)
    strict = KIDMonitor(real, colour_features, n_samples=200, coverage=True, subset_size=100)
    assert strict.decoder == "strict" and strict.evaluator.decoder == "strict"
    strict.set_model(ToyFaceModel())
    values = strict.measure()
    assert list(values) == ["kid", "kid_std", "coverage", "kl_from_uniform"]
    images = ToyFaceModel().generate(200, seed=0)
    expected = mode_coverage(images, (-1.0, 1.0), decoder="strict")
    assert values["coverage"] == expected["coverage"]
    assert values["kl_from_uniform"] == expected["kl_from_uniform"]
    chosen = KIDMonitor(real, colour_features, n_samples=200, coverage=True, decoder="calibrated")
    assert chosen.evaluator.decoder == "calibrated"
    # Without coverage no decoder is used, and only KID is measured.
    assert KIDMonitor(real, colour_features, n_samples=200).evaluator.decoder is None
    with pytest.raises(ValueError, match='decoder must be "strict", "calibrated"'):
        KIDMonitor(real, colour_features, n_samples=200, coverage=True, decoder="loose")
