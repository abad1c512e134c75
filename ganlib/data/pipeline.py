"""Input pipelines: uint8 arrays as batched, scaled tf.data datasets, and resizing (chapter 3).

TensorFlow is imported inside `image_dataset` only, so the loaders stay fast to import.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ganlib.common import check_image_size, check_int, check_value_range


class _Required:
    """The default of a parameter that has to be given, so forgetting it gets a clear message."""

    def __repr__(self):
        return "<required>"


_REQUIRED = _Required()


def image_dataset(
    images,
    batch_size: int,
    value_range=_REQUIRED,
    shuffle: bool = True,
    seed: int = 0,
    *,
    repeat: bool = False,
    skip_batches: int = 0,
):
    """A tf.data.Dataset of float32 batches (batch_size, h, w, c) scaled to value_range (chapter 3).

    images: uint8 (n, h, w, c) in [0, 255], e.g. from any loader here.
    value_range: (low, high) of the generator's output, required: pass
    `gan.value_range`; (-1, 1) for tanh generators (the improved and CIFAR presets),
    (0, 1) for the sigmoid baseline. With shuffle, the order is drawn from `seed`
    and changes every epoch; the last incomplete batch is dropped so every batch
    has the same size. repeat: an endless stream of epochs. skip_batches: start
    at this batch of that stream (a resumed run); the batches before it are
    skipped as index lists, never gathered or scaled, and the order from there on
    is the one an unskipped stream gives.
    Batches are gathered from one in-memory copy by index and scaled as whole
    batches, then prefetched, so the input keeps up with a GPU.
    """
    if value_range is _REQUIRED:
        raise TypeError(
            "image_dataset() needs value_range: pass value_range=gan.value_range "
            "(for example (-1, 1) for tanh generators, (0, 1) for the sigmoid baseline)"
        )
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be a uint8 array (n, h, w, c) in [0, 255], got {images.dtype} {images.shape}"
        )
    n = len(images)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or not 1 <= batch_size <= n
    ):
        raise ValueError(
            f"batch_size must be an integer from 1 to the number of images ({n}), got {batch_size!r}"
        )
    low, high = check_value_range(value_range)
    skip_batches = check_int(skip_batches, "skip_batches", 0)

    import tensorflow as tf

    with tf.device("/CPU:0"):  # tf.data runs on the CPU: keep the array there, not on a GPU
        table = tf.constant(images)
    scale = (high - low) / 255.0

    def to_batch(indices):
        return tf.cast(tf.gather(table, indices), tf.float32) * scale + low

    dataset = tf.data.Dataset.range(n)
    if shuffle:
        dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(int(batch_size), drop_remainder=True)
    if repeat:
        # After the shuffle, so each epoch draws a new order, as repeating the result would.
        dataset = dataset.repeat()
    if skip_batches:
        # On the index batches, before the map: a skipped batch costs a few integers.
        dataset = dataset.skip(skip_batches)
    dataset = dataset.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (n, h, w, 3) -> uint8 (n, image_size, image_size, 3), Lanczos; no-op at that size (chapter 7)."""
    image_size = check_image_size(image_size)
    if images.shape[1:3] == (image_size, image_size):
        return images
    return np.stack(
        [
            np.asarray(
                Image.fromarray(im).resize((image_size, image_size), Image.Resampling.LANCZOS)
            )
            for im in images
        ]
    )
