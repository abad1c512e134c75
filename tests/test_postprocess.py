"""Tests for ganlib.postprocess: shapes, dtypes, value ranges, best-n ordering and ESRGAN loading."""

import sys
import types

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ganlib import postprocess  # noqa: E402
from ganlib.postprocess import (  # noqa: E402
    compare_grid,
    enhance,
    esrgan,
    median_denoise,
    select_best,
    sharpen,
    upscale,
)

RNG = np.random.default_rng(0)
UINT8 = RNG.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
UNIT = RNG.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
SIGNED = RNG.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)


def check_range(out, like):
    if like.dtype == np.uint8:
        return
    low = -1.0 if like.min() < 0 else 0.0
    assert out.min() >= low and out.max() <= 1.0


@pytest.mark.parametrize("images", [UINT8, UNIT, SIGNED], ids=["uint8", "unit", "signed"])
@pytest.mark.parametrize(
    "function, scale",
    [(upscale, 2), (median_denoise, 1), (sharpen, 1), (enhance, 2)],
    ids=["upscale", "median", "sharpen", "enhance"],
)
def test_shape_dtype_and_range_are_kept(images, function, scale):
    out = function(images)
    assert out.dtype == images.dtype
    assert out.shape == (3, 16 * scale, 16 * scale, 3)
    check_range(out, images)
    single = function(images[0])
    assert single.shape == (16 * scale, 16 * scale, 3) and single.dtype == images.dtype
    np.testing.assert_allclose(
        single.astype(np.float32),
        out[0].astype(np.float32),
        atol=1 if images.dtype == np.uint8 else 1e-5,
    )


def test_upscale_factor_and_method():
    assert upscale(UNIT, factor=3, method="bilinear").shape == (3, 48, 48, 3)
    nearest = upscale(UINT8, factor=2, method="nearest")
    np.testing.assert_array_equal(nearest[:, ::2, ::2], UINT8)
    with pytest.raises(ValueError, match="method"):
        upscale(UNIT, method="magic")


def test_upscale_of_a_flat_image_is_flat():
    flat = np.full((8, 8, 1), 0.25, np.float32)
    np.testing.assert_allclose(upscale(flat), 0.25, atol=1e-6)


def test_median_removes_a_speckle_and_keeps_a_flat_image():
    image = np.full((9, 9, 3), 100, np.uint8)
    image[4, 4] = 255
    out = median_denoise(image)
    assert (out == 100).all()


def test_sharpen_matches_pillow_directly():
    from PIL import Image, ImageFilter

    expected = np.asarray(Image.fromarray(UINT8[0]).filter(ImageFilter.SHARPEN))
    np.testing.assert_array_equal(sharpen(UINT8[0]), expected)


def test_grey_images_work():
    grey = RNG.uniform(0, 1, (2, 8, 8, 1)).astype(np.float32)
    for function in (upscale, median_denoise, sharpen):
        assert function(grey).shape[-1] == 1


def test_bad_input_raises():
    with pytest.raises(ValueError, match="shape"):
        sharpen(np.zeros((2, 8, 8, 5), np.uint8))
    with pytest.raises(ValueError, match="uint8 or float"):
        upscale(np.zeros((2, 8, 8, 3), np.int32))


class BrightnessGAN:
    """A stand-in GAN: random images; the discriminator likes bright ones."""

    def __init__(self):
        self.rng = np.random.default_rng(1)

    def generate(self, n, seed=None):
        rng = self.rng if seed is None else np.random.default_rng(seed)
        levels = rng.uniform(-1, 1, (n, 1, 1, 1))
        self.pool = np.clip(levels + rng.normal(0, 0.05, (n, 8, 8, 3)), -1, 1)
        return self.pool.astype(np.float32)

    def discriminator(self, images, training=False):
        return np.asarray(images).mean(axis=(1, 2, 3))[:, None]


def test_select_best_keeps_the_brightest_best_first():
    gan = BrightnessGAN()
    images, scores = select_best(gan, 5, pool=200, batch_size=32)
    assert images.shape == (5, 8, 8, 3) and scores.shape == (5,)
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), scores, rtol=1e-5)
    brightest = np.sort(gan.pool.mean(axis=(1, 2, 3)))[::-1][:5]
    np.testing.assert_allclose(scores, brightest, rtol=1e-5)


def test_select_best_with_a_seed_repeats_its_selection():
    gan = BrightnessGAN()
    images, scores = select_best(gan, 5, pool=100, seed=3)
    again, again_scores = select_best(gan, 5, pool=100, seed=3)
    np.testing.assert_array_equal(again, images)
    np.testing.assert_array_equal(again_scores, scores)
    other, _ = select_best(gan, 5, pool=100, seed=4)
    assert not np.array_equal(other, images)
    unseeded, _ = select_best(gan, 5, pool=100)  # None: whatever the generator draws next
    assert not np.array_equal(unseeded, images)


def test_select_best_checks_n():
    with pytest.raises(ValueError):
        select_best(BrightnessGAN(), 10, pool=5)


def fake_esrgan(batch):
    """Nearest-neighbour 4x: (n, h, w, 3) float [0, 255] -> (n, 4h, 4w, 3)."""
    batch = np.asarray(batch)
    assert batch.dtype == np.float32 and batch.max() <= 255.0 and batch.shape[-1] == 3
    return np.repeat(np.repeat(batch, 4, axis=1), 4, axis=2)


@pytest.mark.parametrize("images", [UINT8, SIGNED], ids=["uint8", "signed"])
def test_esrgan_with_a_fake_model(images):
    out = esrgan(images, model=fake_esrgan)
    assert out.shape == (3, 64, 64, 3) and out.dtype == images.dtype
    tolerance = 0 if images.dtype == np.uint8 else 1e-5
    np.testing.assert_allclose(out[:, ::4, ::4].astype(float), images.astype(float), atol=tolerance)
    assert esrgan(images[0], model=fake_esrgan).shape == (64, 64, 3)


def test_esrgan_without_tensorflow_hub_says_how_to_install(monkeypatch):
    postprocess._load_esrgan.cache_clear()
    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)
    with pytest.raises(ImportError, match="pip install tensorflow-hub"):
        esrgan(UINT8)


def test_esrgan_offline_says_what_to_do(monkeypatch):
    postprocess._load_esrgan.cache_clear()
    hub = types.ModuleType("tensorflow_hub")

    def load(handle):
        raise OSError("Name or service not known")

    hub.load = load
    monkeypatch.setitem(sys.modules, "tensorflow_hub", hub)
    with pytest.raises(FileNotFoundError) as info:
        esrgan(UINT8)
    message = str(info.value)
    assert "could not load ESRGAN" in message and "Name or service not known" in message
    # It says how to get the model as a folder and how to pass it.
    assert "captain-pool/esrgan-tf2" in message and "SavedModel" in message
    assert "hub.resolve('https://tfhub.dev/captain-pool/esrgan-tf2/1')" in message
    assert "esrgan(images, model='path/to/folder')" in message
    postprocess._load_esrgan.cache_clear()


def test_compare_grid_offline_warns_how_to_get_esrgan(monkeypatch):
    postprocess._load_esrgan.cache_clear()
    hub = types.ModuleType("tensorflow_hub")

    def load(handle):
        raise OSError("Name or service not known")

    hub.load = load
    monkeypatch.setitem(sys.modules, "tensorflow_hub", hub)
    with pytest.warns(UserWarning, match="left ESRGAN out") as record:
        figure = compare_grid(UINT8[:1], rounds=1)
    message = str(record[0].message)
    assert "hub.resolve" in message and "esrgan_model='path/to/folder'" in message
    assert "skipped" in figure.axes[-1].texts[0].get_text()
    postprocess._load_esrgan.cache_clear()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_esrgan_loads_a_local_saved_model(tmp_path):
    import tensorflow as tf

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, x):
            return tf.image.resize(x, tf.shape(x)[1:3] * 4, method="nearest")

    tf.saved_model.save(Doubler(), str(tmp_path / "esrgan"))
    postprocess._load_esrgan.cache_clear()
    out = esrgan(UINT8[:1], model=str(tmp_path / "esrgan"))
    assert out.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(out[:, ::4, ::4], UINT8[:1])
    postprocess._load_esrgan.cache_clear()


def test_compare_grid_with_and_without_esrgan(monkeypatch):
    figure = compare_grid(SIGNED[:2], esrgan_model=fake_esrgan)
    axes = figure.axes
    assert len(axes) == 2 * 4  # original, enhanced x2, enhanced x4, ESRGAN
    assert "ESRGAN" in axes[3].get_title()
    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)
    postprocess._load_esrgan.cache_clear()
    with pytest.warns(UserWarning, match="pip install tensorflow-hub"):
        figure = compare_grid(UINT8[:2], rounds=1)
    assert len(figure.axes) == 2 * 3
    assert "skipped" in figure.axes[2].texts[0].get_text()
    import matplotlib.pyplot as plt

    plt.close("all")
