"""ganlib.costs: multiply-adds counted by hand on small layers (chapters 2 and 3)."""

import keras
import pytest

from ganlib import costs, models


def _tiny():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8 * 8 * 2)(inputs)  # 4 * 128
    x = keras.layers.Reshape((8, 8, 2))(x)
    x = keras.layers.Conv2D(5, 3, padding="same")(x)  # 64 pixels * 9 * 2 * 5
    x = keras.layers.BatchNormalization()(x)  # not counted
    x = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same")(x)  # 64 stamps * 16 * 5 * 3
    return keras.Model(inputs, x)


def test_counts_by_hand():
    model = _tiny()
    counts = [costs.multiply_adds(layer) for layer in model.layers]
    assert counts == [0, 4 * 128, 0, 64 * 9 * 2 * 5, 0, 64 * 16 * 5 * 3]
    assert costs.model_multiply_adds(model) == 512 + 5760 + 15360


def test_baseline_last_layer_at_64px():
    generator = models.baseline_generator(image_size=64)
    last = [layer for layer in generator.layers if type(layer).__name__ == "Conv2DTranspose"][-1]
    # 32x32 input pixels, each stamping a 4x4x256x512 kernel.
    assert costs.multiply_adds(last) == 32 * 32 * 4 * 4 * 256 * 512


def test_update_convention():
    small = _tiny()
    d_in = keras.Input((16, 16, 3))
    discriminator = keras.Model(d_in, keras.layers.Dense(1)(keras.layers.Flatten()(d_in)))
    g, d = 512 + 5760 + 15360, 16 * 16 * 3
    result = costs.update_multiply_adds(small, discriminator, 32)
    assert result["d_step"] == 32 * (g + 6 * d)
    assert result["g_step"] == 32 * (3 * g + 2 * d)
    assert result["update"] == result["d_step"] + result["g_step"]


@pytest.mark.parametrize("batch", [0, 2.5, True])
def test_bad_batch(batch):
    with pytest.raises(ValueError, match="batch_size"):
        costs.update_multiply_adds(_tiny(), _tiny(), batch)


def test_not_a_model():
    with pytest.raises(ValueError, match="built Keras model"):
        costs.model_multiply_adds("generator")
