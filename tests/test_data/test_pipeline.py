"""Tests for ganlib/data/pipeline.py."""

import numpy as np
import pytest

from ganlib.data import (
    image_dataset,
    toy_faces,
)

# ---------------------------------------------------------------------------
# Toy faces
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces32():
    return toy_faces(70, 32, seed=0)[0]


def test_image_dataset_batches_scaled_to_minus_one_one(faces32):
    batches = [b.numpy() for b in image_dataset(faces32, 32, shuffle=False)]
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
        first, np.concatenate([b.numpy() for b in image_dataset(faces32, 10, value_range=(0, 1))])
    )


def test_image_dataset_bad_arguments(faces32):
    for bad in (0, -1, 71, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            image_dataset(faces32, bad)
    with pytest.raises(ValueError, match="uint8"):
        image_dataset(faces32.astype(np.float32), 8)
    for bad in ((1, -1), 1.0, (0, 1, 2)):
        with pytest.raises(ValueError, match="value_range"):
            image_dataset(faces32, 8, value_range=bad)
