"""Adaptive discriminator augmentation (ADA): augment what the discriminator sees, as much as it needs (chapter 7).

With little data the discriminator memorises the training images and its
feedback to the generator stops being useful. Karras et al. (2020) augment
every image the discriminator sees, real and generated alike, with a
probability p that a feedback loop adjusts: when the discriminator is too sure
about the real images (accuracy above a target) p goes up, otherwise it goes
down. Because generated images get the same augmentations, the generator is
not pushed to produce flipped or rotated faces. This follows the Keras example
"Data-efficient GANs with Adaptive Discriminator Augmentation".
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

__all__ = ["AdaptiveAugmenter"]


class AdaptiveAugmenter(keras.layers.Layer):
    """Flip, translate, rotate and zoom each image with probability `probability` (chapter 7).

    images: float or uint8 tensor (n, h, w, c) in any value range; the output has
    the same shape, dtype and range (geometric transforms only, edges filled by
    reflection, so no new pixel values appear beyond interpolation between
    existing ones). Each image is augmented independently: all are transformed,
    then a per-image coin with probability p picks the transformed or the
    original one.

    target_accuracy: the discriminator accuracy on real images that the loop
    aims for (0.85 in the Keras example). integration_steps: how many batches it
    takes p to move by 1 when the accuracy is off by 1; smaller reacts faster.
    max_translation, max_rotation, max_zoom: fractions of the image size, of a
    full turn (0.125 = 45 degrees) and of the zoom (0.25 = up to 25% zoom in).
    seed: makes the random transforms and the coins repeatable.

    call(images, training=True, draws=None): `draws`, float32 (n, draws_per_image)
    uniform in [0, 1), are the random numbers of the n images (coin, flip, zoom,
    angle, x shift, y shift); None draws them from the layer's own seed. `GAN`
    passes them in, cut from a draw for the whole global batch, so that under
    tf.distribute each replica's images get their own transforms (replicas share
    the layer's seed state, and would otherwise all draw the same numbers).
    """

    # Uniform numbers each image needs: coin, flip, zoom, angle, x shift, y shift.
    draws_per_image = 6

    def __init__(
        self,
        target_accuracy=0.85,
        integration_steps=1000,
        max_translation=0.125,
        max_rotation=0.125,
        max_zoom=0.25,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must be in [0, 1], got {target_accuracy}")
        if integration_steps <= 0:
            raise ValueError(f"integration_steps must be positive, got {integration_steps}")
        for name, value in (
            ("max_translation", max_translation),
            ("max_rotation", max_rotation),
            ("max_zoom", max_zoom),
        ):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        self.target_accuracy = float(target_accuracy)
        self.integration_steps = int(integration_steps)
        self.max_translation = float(max_translation)
        self.max_rotation = float(max_rotation)
        self.max_zoom = float(max_zoom)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Non-trainable so optimizers leave it alone; a weight so checkpoints keep it.
        self.probability = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="probability"
        )
        self.built = True  # nothing depends on the input shape; weights can load before a call

    def call(self, images, training=True, draws=None):
        if not training:
            return images
        images = tf.convert_to_tensor(images)
        original = tf.cast(images, tf.float32)
        n = tf.shape(images)[0]
        if draws is None:
            draws = keras.random.uniform((n, self.draws_per_image), seed=self.seed_generator)
        draws = tf.reshape(tf.cast(draws, tf.float32), (n, self.draws_per_image, 1, 1))
        augmented = self._transform(original, draws[:, 1:])
        coins = draws[:, :1]  # (n, 1, 1, 1)
        chosen = tf.where(coins < tf.cast(self.probability, tf.float32), augmented, original)
        if images.dtype.is_integer:
            # Interpolation gives fractional values; round before going back to integers.
            chosen = tf.round(chosen)
        return tf.cast(chosen, images.dtype)

    def _transform(self, images, draws):
        """Flip, zoom, rotate and translate every image with one affine map each.

        draws: float32 (n, 5, 1, 1) uniform in [0, 1): flip, zoom, angle, x and y shift.

        The four transforms are composed into one 2x2 matrix plus a shift per
        image and the image is resampled once (bilinear), so there is one
        interpolation, not four. Plain gathers instead of
        ImageProjectiveTransform keep the layer usable under XLA (jit_compile).
        """
        h, w = tf.shape(images)[1], tf.shape(images)[2]
        hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
        # Each (n, 1, 1), so that they broadcast over the pixel grid below.
        flip = tf.where(draws[:, 0] < 0.5, -1.0, 1.0)
        zoom = 1.0 - self.max_zoom * draws[:, 1]  # < 1 samples a smaller area: zoom in
        angle = (2.0 * draws[:, 2] - 1.0) * self.max_rotation * 2.0 * math.pi
        shift_x = (2.0 * draws[:, 3] - 1.0) * self.max_translation * wf
        shift_y = (2.0 * draws[:, 4] - 1.0) * self.max_translation * hf
        # Output pixel (x, y), measured from the image centre, samples the input at
        # centre + R(angle) @ diag(flip * zoom, zoom) @ (u, v) + shift.
        cx, cy = (wf - 1.0) / 2.0, (hf - 1.0) / 2.0
        u = tf.range(wf)[None, None, :] - cx
        v = tf.range(hf)[None, :, None] - cy
        cos, sin = tf.cos(angle), tf.sin(angle)
        x = cx + cos * flip * zoom * u - sin * zoom * v + shift_x
        y = cy + sin * flip * zoom * u + cos * zoom * v + shift_y
        return _bilinear_reflect(images, x, y)

    def update(self, real_accuracy):
        """Move p by (real_accuracy - target_accuracy) / integration_steps, clipped to [0, 1] (chapter 7).

        real_accuracy: scalar (tensor or float), the batch's share of real images
        the discriminator called real. Returns the new probability.
        """
        error = tf.cast(real_accuracy, tf.float32) - self.target_accuracy
        new = tf.clip_by_value(self.probability + error / self.integration_steps, 0.0, 1.0)
        self.probability.assign(new)
        return self.probability

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            target_accuracy=self.target_accuracy,
            integration_steps=self.integration_steps,
            max_translation=self.max_translation,
            max_rotation=self.max_rotation,
            max_zoom=self.max_zoom,
            seed=self.seed,
        )
        return config


def _reflect(index, size):
    """Map integer pixel indices outside [0, size) back inside by mirroring (d c b a | a b c d | d c b a)."""
    index = tf.math.floormod(index, 2 * size)
    return tf.where(index >= size, 2 * size - 1 - index, index)


def _bilinear_reflect(images, x, y):
    """Sample images (n, h, w, c) float32 at float pixel coordinates x, y (n, h, w)."""
    n, h, w, c = (tf.shape(images)[i] for i in range(4))
    x0, y0 = tf.floor(x), tf.floor(y)
    # Interpolation weights, flattened to (n, h * w, 1) like the gathered pixels.
    wx = tf.reshape(x - x0, (n, -1, 1))
    wy = tf.reshape(y - y0, (n, -1, 1))
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    flat = tf.reshape(images, (n, h * w, c))

    def pixels(yi, xi):
        index = _reflect(yi, h) * w + _reflect(xi, w)
        return tf.gather(flat, tf.reshape(index, (n, -1)), batch_dims=1)

    top = pixels(y0, x0) * (1.0 - wx) + pixels(y0, x0 + 1) * wx
    bottom = pixels(y0 + 1, x0) * (1.0 - wx) + pixels(y0 + 1, x0 + 1) * wx
    return tf.reshape(top * (1.0 - wy) + bottom * wy, (n, h, w, c))
