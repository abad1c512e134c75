"""Tests for ganlib/training/devices.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganlib import training
from ganlib.training.devices import dtype_policy

from ._helpers import images, mlp_gan, run_script


def test_mixed_float16_scales_the_loss_and_keeps_float32_outputs():
    with dtype_policy("mixed_float16"):
        gan = mlp_gan()
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    logs = gan.train_step(tf.constant(images(8)))
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert gan._logit(tf.constant(images(2))).dtype == tf.float32
    assert gan.generate(2).dtype == np.float32


def test_device_choices():
    assert training.mixed_precision_policy("auto", "cpu") == "float32"
    assert training.mixed_precision_policy("auto", "gpu") == "mixed_float16"
    assert training.mixed_precision_policy("auto", "tpu") == "mixed_bfloat16"
    assert training.mixed_precision_policy("off", "gpu") == "float32"
    assert training.use_xla("auto", "cpu") is False and training.use_xla("auto", "gpu") is True
    assert training.use_xla("on", "cpu") is True
    with pytest.raises(ValueError, match="auto"):
        training.use_xla("fast")
    assert training.strategy().num_replicas_in_sync == 1  # no GPUs here


def test_mirrored_strategy_matches_one_device(tmp_path):
    """Two logical CPUs must be set up before TensorFlow starts: its own process."""
    result = run_script(
        """
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, numpy as np
        from ganlib.models import build_pair
        from ganlib.training import GAN

        x = np.random.default_rng(0).uniform(-1, 1, (48, 8, 8, 3)).astype("float32")

        def run(strategy):
            keras.utils.set_random_seed(0)
            with strategy.scope():
                generator, discriminator = build_pair("mlp", 8, latent_dim=8, width=0.125)
                gan = GAN(generator, discriminator, seed=3, ema=0.9)
                gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), label_noise=0.1)
            data = tf.data.Dataset.from_tensor_slices(x).batch(8, drop_remainder=True)
            history = gan.fit(data, epochs=2, verbose=0).history
            weights = [w.numpy() for w in generator.weights + discriminator.weights + gan.ema_generator.weights]
            return history, weights, strategy.num_replicas_in_sync

        h1, w1, n1 = run(tf.distribute.get_strategy())
        h2, w2, n2 = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
        print(json.dumps({
            "replicas": [n1, n2],
            "weights": max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2)),
            "logs": max(abs(a - b) for k in h1 for a, b in zip(h1[k], h2[k])),
            "moved": max(float(np.max(np.abs(a))) for a in w1),
        }))
        """
    )
    assert result["replicas"] == [1, 2]
    assert result["weights"] < 1e-5 and result["logs"] < 1e-5


def test_train_runs_one_step_per_call_on_several_replicas(tmp_path):
    # Several steps per call put the replicas' all_reduce inside a tf.cond, where it fails;
    # train's "auto" (4 steps per call here on one device) must choose 1 on two replicas.
    result = run_script(
        f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import ganlib
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        gan, history = ganlib.train("toy-faces:64", model="improved", image_size=32, width=0.125,
                                    epochs=1, batch_size=8, steps_per_epoch=4, ada=True,
                                    run_dir={str(tmp_path / "run")!r}, distribute=strategy, verbose=0)
        print(json.dumps({{"per_call": gan.steps_per_execution, "steps": int(gan.global_step.numpy()),
                          "epochs": len(history["epoch"])}}))
        """
    )
    assert result == {"per_call": 1, "steps": 4, "epochs": 1}


@pytest.mark.parametrize("penalty", ["r1", "gp"])
def test_input_gradient_penalties_are_loss_scaled_under_mixed_float16(penalty):
    """R1 and GP differentiate D with respect to its input: under mixed_float16 that
    back-propagation runs in float16, where gradients below about 6e-5 lose precision and
    below 6e-8 flush to zero. Each layer's weights scaled by 0.03 make the input gradients
    about 1e-7 per pixel (the weights themselves stay well inside float16's range); scaled
    like the weights' gradients, the penalties' squared norms then match float32 to 0.1 %,
    unscaled they were up to 0.25 % off (and all zero with 0.003 per layer)."""
    options = {"r1_gamma": 1.0} if penalty == "r1" else {"loss": "wgan-gp", "gp_weight": 10.0}

    def gan_with_tiny_gradients(policy):
        with dtype_policy(policy):
            gan = mlp_gan(seed=0)
        gan.compile(
            keras.optimizers.Adam(1e-3, beta_1=0.5),
            keras.optimizers.Adam(1e-3, beta_1=0.5),
            **options,
        )
        return gan

    real = tf.constant(images(16))
    noise = tf.constant(np.random.default_rng(1).standard_normal((16, 8)), tf.float32)
    exact = gan_with_tiny_gradients("float32")
    mixed = gan_with_tiny_gradients("mixed_float16")
    assert isinstance(mixed.d_optimizer, keras.optimizers.LossScaleOptimizer)
    for source, target in zip(exact.weights, mixed.weights, strict=True):
        target.assign(source)  # the same network in both precisions
    for gan in (exact, mixed):
        for weight in gan.discriminator.weights:
            weight.assign(weight * 0.03)

    # The penalties' gradients, image by image, at the same points in both precisions:
    # R1's at the real images, GP's at the same interpolations (same seed and step).
    fake = exact.generator(noise)

    def squared_norms(gan):
        if penalty == "r1":
            return gan._squared_norms(gan._logits_and_input_gradients(real)[1]).numpy()
        return gan._squared_norms(gan._interpolate_gradients(real, fake)).numpy()

    expected = squared_norms(exact)
    assert np.all((expected > 1e-12) & (expected < 1e-8)), expected  # the premise: tiny
    np.testing.assert_allclose(squared_norms(mixed), expected, rtol=1e-3)
