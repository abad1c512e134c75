"""Tests for ganlib/training/gan.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganlib import training
from ganlib.training import (
    GAN,
    Checkpoints,
    HistoryCSV,
    list_checkpoints,
)

from ._helpers import conv_gan, dataset, images, mlp_gan, moved, snapshot


def test_discriminator_step_moves_only_the_discriminator():
    gan = conv_gan()
    real = images(8, 32)
    g_before, d_before = (
        snapshot(gan.generator.trainable_variables),
        snapshot(gan.discriminator.trainable_variables),
    )
    gan.discriminator_step(real, gan.noise(8, 0))
    assert not any(moved(g_before, gan.generator.trainable_variables))
    assert all(moved(d_before, gan.discriminator.trainable_variables))


def test_generator_step_moves_only_the_generator():
    gan = conv_gan()
    g_before, d_before = (
        snapshot(gan.generator.trainable_variables),
        snapshot(gan.discriminator.trainable_variables),
    )
    gan.generator_step(gan.noise(8, 1))
    assert not any(moved(d_before, gan.discriminator.trainable_variables))
    assert all(moved(g_before, gan.generator.trainable_variables))


def test_each_half_lowers_its_loss_on_an_easy_problem():
    gan = mlp_gan()
    real = np.full((16, 8, 8, 3), 0.9, np.float32)  # far from what the untrained generator draws
    noise = gan.noise(16, 0)
    discriminator_step, generator_step = (
        tf.function(gan.discriminator_step),
        tf.function(gan.generator_step),
    )
    d_losses = [float(discriminator_step(real, noise)["d_loss"]) for _ in range(40)]
    assert d_losses[-1] < 0.5 * d_losses[0]
    g_losses = [float(generator_step(noise)["g_loss"]) for _ in range(40)]
    assert g_losses[-1] < 0.5 * g_losses[0]


def test_fit_logs_the_four_values_and_counts_steps():
    gan = mlp_gan()
    history = gan.fit(dataset(images(32), 8), epochs=2, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy"}
    assert all(np.isfinite(v).all() and len(v) == 2 for v in history.history.values())
    assert int(gan.global_step.numpy()) == 8


def test_noise_depends_on_seed_and_step_only():
    a, b = mlp_gan(seed=5), mlp_gan(seed=5)
    np.testing.assert_array_equal(a.noise(4, 0).numpy(), b.noise(4, 0).numpy())
    assert not np.array_equal(a.noise(4, 0).numpy(), a.noise(4, 1).numpy())
    b.global_step.assign(1)
    assert not np.array_equal(a.noise(4, 0).numpy(), b.noise(4, 0).numpy())


def test_generate_shape_range_and_seed():
    gan = conv_gan()
    samples = gan.generate(5, seed=3)
    assert samples.shape == (5, 32, 32, 3) and samples.dtype == np.float32
    assert samples.min() >= -1 and samples.max() <= 1 and gan.value_range == (-1.0, 1.0)
    np.testing.assert_array_equal(samples, gan.generate(5, seed=3))
    assert gan.generate(0).shape == (0, 32, 32, 3)
    baseline = GAN.from_preset("baseline", 32, width=0.125)
    drawn = baseline.generate(3, seed=0)
    assert baseline.value_range == (0.0, 1.0) and drawn.min() >= 0 and drawn.max() <= 1
    with pytest.raises(ValueError, match="non-negative"):
        gan.generate(-1)


def test_logits_from_any_sigmoid_ending():
    inputs = keras.Input((4,))
    features = keras.layers.Dense(3, activation="relu")(inputs)
    dense_sigmoid = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(features))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    logits = training.discriminator_logits(dense_sigmoid)(x).numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), dense_sigmoid(x).numpy(), rtol=1e-5)
    linear = keras.Model(inputs, keras.layers.Dense(1)(features))
    assert training.discriminator_logits(linear) is linear
    softmax = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(features))
    with pytest.raises(ValueError, match="logit"):
        training.discriminator_logits(softmax)


def test_ema_follows_its_formula():
    gan = conv_gan(ema=0.9)
    assert gan.ema_generator is not None and not gan.ema_generator.trainable_variables
    ema_before = snapshot(gan.ema_generator.weights)
    gan.train_step(tf.constant(images(8, 32)))
    for old, ema, weight in zip(
        ema_before, gan.ema_generator.weights, gan.generator.weights, strict=True
    ):
        expected = 0.9 * old + 0.1 * weight.numpy() if weight.trainable else weight.numpy()
        np.testing.assert_allclose(ema.numpy(), expected, rtol=1e-5, atol=1e-7)
    moving = [w for w in gan.generator.weights if "moving" in w.path]
    assert moving  # BatchNorm statistics are copied, not averaged
    # generate() draws from the EMA copy
    z = np.random.default_rng(1).standard_normal((2, gan.latent_dim), dtype=np.float32)
    np.testing.assert_allclose(
        gan.generate(2, seed=1), gan.ema_generator(z, training=False).numpy(), rtol=1e-5
    )
    with pytest.raises(ValueError, match="ema"):
        conv_gan(ema=1.5)


def test_augmenter_sees_every_discriminator_input_and_logs_p():
    class Counting(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.probability = self.add_weight(shape=(), initializer="zeros", trainable=False)
            self.calls, self.updates = 0, []

        def call(self, images, training=True):
            self.calls += 1
            return images

        def update(self, real_accuracy):
            self.updates.append(float(real_accuracy))
            self.probability.assign(0.25)

    augmenter = Counting()
    gan = mlp_gan(augmenter=augmenter)
    logs = gan.train_step(tf.constant(images(8)))
    assert augmenter.calls == 3  # real and generated in the D step, generated in the G step
    assert len(augmenter.updates) == 1 and 0 <= augmenter.updates[0] <= 1
    assert float(logs["aug_p"]) == 0.25


def test_fit_resume_continues_in_the_middle_of_an_epoch(tmp_path):
    x = dataset(images(32), 8)  # 4 steps per epoch
    folder = tmp_path / "checkpoints"
    gan = mlp_gan()
    gan.fit(
        x, epochs=1, steps_per_epoch=4, verbose=0, callbacks=[Checkpoints(folder, every_steps=3)]
    )
    # the epoch-end checkpoint is lost: the newest one is at step 3 of epoch 0
    list_checkpoints(folder)[-1].unlink()
    history_path = tmp_path / "history.csv"
    resumed = mlp_gan(seed=1)
    resumed.fit(
        x.repeat(),
        epochs=2,
        steps_per_epoch=4,
        verbose=0,
        resume=True,
        callbacks=[HistoryCSV(history_path), Checkpoints(folder, every_steps=3)],
    )
    assert int(resumed.global_step.numpy()) == 8
    assert [row["epoch"] for row in training.read_history(history_path)] == [0, 1]
    with pytest.raises(ValueError, match="Checkpoints"):
        mlp_gan().fit(x, epochs=1, verbose=0, resume=True)
