"""The anime-face DCGAN project's train_on_batch loop, to compare with `fit` (chapter 5)."""

from __future__ import annotations

import keras
import numpy as np

from ganlib import models as _models


def train_on_batch_loop(
    generator,
    discriminator,
    images,
    iterations,
    batch_size=32,
    d_optimizer=None,
    g_optimizer=None,
    generator_batch=None,
    seed=0,
    callback=None,
):
    """The anime-face DCGAN project's notebook loop, unchanged, to compare with `fit` (chapter 5).

    Each iteration: `batch_size` real images drawn at random with replacement (label 1)
    and `batch_size` images from `generator.predict` on fresh noise (label 0) go through
    two `discriminator.train_on_batch` calls, whose loss and accuracy are averaged; then
    the stacked generator -> frozen discriminator model takes `train_on_batch` on
    `generator_batch` noise vectors (default 2 * batch_size, as in the notebook)
    labelled 1. Loss: binary cross-entropy on the sigmoid output, as in that notebook.

    images: float32 (n, h, w, c) already in the generator's value range. The models are
    trained in place; default optimizers: Adam 1e-4, beta_1 0.5 (the notebook's).
    callback(iteration, logs) runs after each iteration. Returns a dict of lists:
    d_loss, d_acc, d_real_accuracy, d_fake_accuracy, g_loss.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty float array (n, ...), got shape {images.shape}"
        )
    if batch_size < 1 or iterations < 0:
        raise ValueError(
            f"need batch_size >= 1 and iterations >= 0, got {batch_size}, {iterations}"
        )
    generator_batch = 2 * batch_size if generator_batch is None else int(generator_batch)
    latent = _models.latent_dim(generator)
    discriminator.trainable = True
    discriminator.compile(
        optimizer=d_optimizer or keras.optimizers.Adam(1e-4, beta_1=0.5),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    # Keras 2 froze the discriminator when the combined model was compiled; Keras 3 reads
    # `trainable` when each train function is first traced, so it is switched before each call.
    discriminator.trainable = False
    z = keras.Input((latent,))
    combined = keras.Model(z, discriminator(generator(z)), name="combined")
    combined.compile(
        optimizer=g_optimizer or keras.optimizers.Adam(1e-4, beta_1=0.5), loss="binary_crossentropy"
    )
    rng = np.random.default_rng(seed)
    ones, zeros = np.ones((batch_size, 1), np.float32), np.zeros((batch_size, 1), np.float32)
    history = {k: [] for k in ("d_loss", "d_acc", "d_real_accuracy", "d_fake_accuracy", "g_loss")}
    try:
        for iteration in range(iterations):
            real = images[rng.integers(0, len(images), batch_size)]
            noise = rng.standard_normal((batch_size, latent), dtype=np.float32)
            fake = generator.predict(noise, verbose=0)
            discriminator.trainable = True
            loss_real, acc_real = discriminator.train_on_batch(real, ones)
            loss_fake, acc_fake = discriminator.train_on_batch(fake, zeros)
            discriminator.trainable = False
            noise = rng.standard_normal((generator_batch, latent), dtype=np.float32)
            g_loss = combined.train_on_batch(noise, np.ones((generator_batch, 1), np.float32))
            logs = {
                "d_loss": 0.5 * (float(loss_real) + float(loss_fake)),
                "d_acc": 0.5 * (float(acc_real) + float(acc_fake)),
                "d_real_accuracy": float(acc_real),
                "d_fake_accuracy": float(acc_fake),
                "g_loss": float(np.ravel(g_loss)[0]),
            }
            for key, value in logs.items():
                history[key].append(value)
            if callback is not None:
                callback(iteration, logs)
    finally:
        discriminator.trainable = True  # as it was given
    return history
