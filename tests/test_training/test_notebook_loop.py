"""Tests for ganlib/training/notebook_loop.py."""

import keras
import numpy as np

from ganlib import training
from ganlib.models import build_pair

from ._helpers import images, moved, snapshot


def test_train_on_batch_loop_runs_the_notebook_iteration():
    keras.utils.set_random_seed(0)
    generator, discriminator = build_pair("mlp", 8, latent_dim=8, width=0.125)
    g_before, d_before = (
        snapshot(generator.trainable_variables),
        snapshot(discriminator.trainable_variables),
    )
    seen = []
    history = training.train_on_batch_loop(
        generator,
        discriminator,
        images(40),
        iterations=3,
        batch_size=4,
        callback=lambda i, logs: seen.append(i),
    )
    assert seen == [0, 1, 2]
    assert set(history) == {"d_loss", "d_acc", "d_real_accuracy", "d_fake_accuracy", "g_loss"}
    assert all(len(v) == 3 and np.isfinite(v).all() for v in history.values())
    assert all(moved(g_before, generator.trainable_variables))
    assert all(moved(d_before, discriminator.trainable_variables))
    assert discriminator.trainable  # left trainable for whoever uses it next
