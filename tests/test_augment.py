"""Tests for ganlib.augment: the adaptive augmenter's transforms and its feedback loop."""

import numpy as np
import pytest
import tensorflow as tf

from ganlib.augment import AdaptiveAugmenter


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)


def test_probability_is_a_non_trainable_weight_starting_at_zero():
    augmenter = AdaptiveAugmenter()
    assert float(augmenter.probability.numpy()) == 0.0
    assert augmenter.trainable_weights == []
    assert augmenter.probability in augmenter.non_trainable_weights


def test_p_zero_leaves_images_unchanged(images):
    out = AdaptiveAugmenter(seed=1)(images)
    np.testing.assert_array_equal(np.asarray(out), images)


def test_p_one_changes_images_and_keeps_shape_dtype_range(images):
    augmenter = AdaptiveAugmenter(seed=1)
    augmenter.probability.assign(1.0)
    out = np.asarray(augmenter(images))
    assert out.shape == images.shape and out.dtype == np.float32
    changed = [not np.allclose(o, i) for o, i in zip(out, images, strict=True)]
    assert all(changed)
    # Bilinear interpolation with mirrored edges only mixes existing values.
    assert out.min() >= images.min() - 1e-6 and out.max() <= images.max() + 1e-6


def test_uint8_stays_uint8():
    images = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    augmenter = AdaptiveAugmenter(seed=2)
    augmenter.probability.assign(1.0)
    out = augmenter(images)
    assert out.dtype == tf.uint8 and tuple(out.shape) == images.shape


def test_each_image_decides_independently(images):
    augmenter = AdaptiveAugmenter(seed=3)
    augmenter.probability.assign(0.5)
    batch = np.repeat(images[:1], 400, axis=0)
    out = np.asarray(augmenter(batch))
    share = np.mean([not np.allclose(o, images[0]) for o in out])
    assert 0.4 < share < 0.6


def test_transforms_only_flip_when_the_others_are_off(images):
    augmenter = AdaptiveAugmenter(max_translation=0, max_rotation=0, max_zoom=0, seed=4)
    augmenter.probability.assign(1.0)
    out = np.asarray(augmenter(images))
    for o, i in zip(out, images, strict=True):
        assert np.allclose(o, i, atol=1e-5) or np.allclose(o, i[:, ::-1], atol=1e-5)


def test_inference_mode_is_identity(images):
    augmenter = AdaptiveAugmenter()
    augmenter.probability.assign(1.0)
    np.testing.assert_array_equal(np.asarray(augmenter(images, training=False)), images)


def test_p_rises_for_a_discriminator_that_is_always_right():
    augmenter = AdaptiveAugmenter(target_accuracy=0.85, integration_steps=100)
    for _ in range(10):
        augmenter.update(tf.constant(1.0))
    assert float(augmenter.probability.numpy()) == pytest.approx(10 * 0.15 / 100, rel=1e-5)


def test_p_falls_for_a_discriminator_that_is_always_wrong_and_is_clipped():
    augmenter = AdaptiveAugmenter(target_accuracy=0.85, integration_steps=10)
    augmenter.probability.assign(0.5)
    augmenter.update(0.0)
    assert float(augmenter.probability.numpy()) == pytest.approx(0.5 - 0.085, rel=1e-5)
    for _ in range(20):
        augmenter.update(0.0)
    assert float(augmenter.probability.numpy()) == 0.0
    for _ in range(200):
        augmenter.update(1.0)
    assert float(augmenter.probability.numpy()) == 1.0


@pytest.mark.parametrize("jit_compile", [False, True])
def test_runs_inside_tf_function(images, jit_compile):
    augmenter = AdaptiveAugmenter(seed=5, integration_steps=10)

    @tf.function(jit_compile=jit_compile)
    def step(batch):
        augmenter.update(tf.constant(1.0))
        return augmenter(batch, training=True)

    out = step(images)
    assert out.shape == images.shape
    assert float(augmenter.probability.numpy()) == pytest.approx(0.015, rel=1e-4)


def test_seed_makes_it_repeatable(images):
    outs = []
    for _ in range(2):
        augmenter = AdaptiveAugmenter(seed=7)
        augmenter.probability.assign(0.7)
        outs.append(np.asarray(augmenter(images)))
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize(
    "kwargs", [{"target_accuracy": 1.5}, {"integration_steps": 0}, {"max_rotation": -0.1}]
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        AdaptiveAugmenter(**kwargs)


def _draws(coin, flip, n=1):
    """Draws that leave zoom, angle and shifts at their identity values (zoom 1, angle 0, shift 0)."""
    return np.tile(np.array([[coin, flip, 0.0, 0.5, 0.5, 0.5]], np.float32), (n, 1))


def test_given_draws_decide_the_coin_and_the_transform(images):
    augmenter = AdaptiveAugmenter(seed=8)
    augmenter.probability.assign(0.5)
    draws = np.concatenate([_draws(0.1, 0.2), _draws(0.1, 0.7), _draws(0.9, 0.2)])
    out = np.asarray(augmenter(images[:3], draws=draws))
    np.testing.assert_allclose(out[0], images[0][:, ::-1], atol=1e-5)  # coin < p, flip < 0.5
    np.testing.assert_allclose(out[1], images[1], atol=1e-5)  # transformed, but no flip
    np.testing.assert_array_equal(out[2], images[2])  # coin >= p: the original
    assert AdaptiveAugmenter.draws_per_image == draws.shape[1]


def test_the_same_draws_give_the_same_images_whatever_the_seed(images):
    draws = np.random.default_rng(9).uniform(size=(len(images), 6)).astype(np.float32)
    outs = []
    for seed in (1, 2):
        augmenter = AdaptiveAugmenter(seed=seed)
        augmenter.probability.assign(0.6)
        outs.append(np.asarray(augmenter(images, draws=draws)))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], images)
