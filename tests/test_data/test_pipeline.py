"""Tests for ganlib/data/pipeline.py."""

import numpy as np
import pytest

from ganlib.data import (
    image_dataset,
    toy_faces,
)


@pytest.fixture(scope="module")
def faces32():
    return toy_faces(70, 32, seed=0)[0]


def test_image_dataset_batches_scaled_to_minus_one_one(faces32):
    batches = [b.numpy() for b in image_dataset(faces32, 32, (-1, 1), shuffle=False)]
    assert len(batches) == 2  # 70 images: the last 6 are dropped
    for batch in batches:
        assert batch.shape == (32, 32, 32, 3) and batch.dtype == np.float32
        assert batch.min() >= -1.0 and batch.max() <= 1.0
    np.testing.assert_allclose(batches[0], faces32[:32] / 127.5 - 1.0, atol=1e-6)
    assert batches[0].min() < -0.5 and batches[0].max() > 0.9


def test_image_dataset_zero_one_and_shuffling(faces32):
    dataset = image_dataset(faces32, 10, value_range=(0, 1), seed=3)
    first = np.concatenate([b.numpy() for b in dataset])
    second = np.concatenate([b.numpy() for b in dataset])
    assert first.shape == (70, 32, 32, 3) and first.min() >= 0.0 and first.max() <= 1.0
    # Every batch image is one of the inputs, scaled; each epoch is a new order.
    sums = {int(s) for s in faces32.reshape(70, -1).astype(np.int64).sum(axis=1)}
    assert {int(round(s)) for s in (first * 255).reshape(70, -1).sum(axis=1)} <= sums
    assert not np.array_equal(first, second)
    np.testing.assert_allclose(
        np.sort(first.reshape(70, -1).sum(1)), np.sort(second.reshape(70, -1).sum(1)), rtol=1e-5
    )
    # Same seed, same order.
    again = np.concatenate(
        [b.numpy() for b in image_dataset(faces32, 10, value_range=(0, 1), seed=3)]
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(
        first,
        np.concatenate([b.numpy() for b in image_dataset(faces32, 10, value_range=(0, 1))]),
    )


def test_image_dataset_bad_arguments(faces32):
    for bad in (0, -1, 71, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            image_dataset(faces32, bad, (-1, 1))
    with pytest.raises(ValueError, match="uint8"):
        image_dataset(faces32.astype(np.float32), 8, (-1, 1))
    for bad in ((1, -1), 1.0, (0, 1, 2)):
        with pytest.raises(ValueError, match="value_range"):
            image_dataset(faces32, 8, value_range=bad)


def test_image_dataset_needs_the_value_range(faces32):
    # (-1, 1) used to be the default, silently wrong for the sigmoid baseline's (0, 1)
    with pytest.raises(
        TypeError, match=r"pass value_range=gan.value_range .*\(0, 1\) for the sigmoid"
    ):
        image_dataset(faces32, 8)


def _flat(dataset, n):
    return np.stack([batch.numpy() for batch in dataset.take(n)])


def test_skipping_batches_continues_the_uninterrupted_order(faces32):
    # 70 images in batches of 10: 7 per epoch, so the streams below cross epoch boundaries
    whole = _flat(image_dataset(faces32, 10, (0, 1), seed=5, repeat=True), 20)
    assert not np.array_equal(whole[:7], whole[7:14])  # each epoch a new order
    for position in (0, 3, 7, 12):
        rest = image_dataset(faces32, 10, (0, 1), seed=5, repeat=True, skip_batches=position)
        np.testing.assert_array_equal(_flat(rest, 20 - position), whole[position:])
    once = image_dataset(faces32, 10, (0, 1), seed=5, skip_batches=4)
    np.testing.assert_array_equal(_flat(once, 10), whole[4:7])  # without repeat: one epoch
    with pytest.raises(ValueError, match="skip_batches"):
        image_dataset(faces32, 10, (0, 1), skip_batches=-1)


def _chain(dataset):
    """The datasets from the output back to the source, as (type name, element dtype)."""
    chain = []
    while dataset is not None:
        chain.append((type(dataset).__name__, dataset.element_spec.dtype))
        dataset = getattr(dataset, "_input_dataset", None)
    return chain


def test_a_resumed_stream_skips_indices_not_images(faces32):
    """A resumed run's skipped batches are never gathered and scaled (train's stream)."""
    import tensorflow as tf

    from ganlib.training.runs import _stream

    chain = _chain(_stream(faces32, 10, (-1, 1), seed=0, position=25))
    skips = [dtype for name, dtype in chain if "Skip" in name]
    assert skips == [tf.int64], chain  # one skip, over batches of indices
    # and the stream still yields the images, scaled
    assert chain[0][1] == tf.float32
