"""Tests for ganlib/training/gan.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganlib import training
from ganlib.augment import AdaptiveAugmenter
from ganlib.models import build_pair
from ganlib.training import (
    GAN,
    Checkpoints,
    HistoryCSV,
    list_checkpoints,
)
from ganlib.training.gan import D_NOISE, G_NOISE

from ._helpers import all_state, conv_gan, dataset, images, mlp_gan, moved, snapshot


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


def _ema_reference(ema, initial, sequence):
    """The warm-up EMA of a weight sequence in float64: the t-th update decays by min(ema, (1 + t) / (10 + t))."""
    average = np.asarray(initial, np.float64)
    for t, weight in enumerate(sequence):
        decay = min(ema, (1 + t) / (10 + t))
        average = decay * average + (1 - decay) * weight
    return average


def _averaged(gan):
    """(EMA weight, live weight) pairs of the generator's trainable weights."""
    pairs = zip(gan.ema_generator.weights, gan.generator.weights, strict=True)
    return [(ema, weight) for ema, weight in pairs if weight.trainable]


def _batch_norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_ema_follows_its_formula():
    gan = conv_gan(ema=0.9)
    assert gan.ema_generator is not None and not gan.ema_generator.trainable_variables
    ema_before = snapshot(gan.ema_generator.weights)
    gan.train_step(tf.constant(images(8, 32)))
    for old, ema, weight in zip(
        ema_before, gan.ema_generator.weights, gan.generator.weights, strict=True
    ):
        # The first update (t = 0) decays by min(0.9, 1 / 10); BatchNorm statistics are
        # copied as a stand-in until refresh_ema_statistics replaces them.
        expected = (
            _ema_reference(0.9, old, [weight.numpy()]) if weight.trainable else weight.numpy()
        )
        np.testing.assert_allclose(ema.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert _batch_norms(gan.generator)  # so the statistics above were checked
    with pytest.raises(ValueError, match="ema"):
        conv_gan(ema=1.5)


def test_ema_warm_up_matches_numpy_over_a_known_weight_sequence():
    gan = mlp_gan(ema=0.99)
    pairs = _averaged(gan)
    variables = [w for _, w in pairs]
    initial = snapshot([e for e, _ in pairs])
    rng = np.random.default_rng(4)
    sequences = [[] for _ in variables]
    for t in range(30):
        for variable, sequence in zip(variables, sequences, strict=True):
            sequence.append(rng.normal(size=variable.shape).astype(np.float32))
            variable.assign(sequence[-1])
        gan.global_step.assign(t)  # t: generator updates before this one
        gan.update_ema()
    for (ema, _), start, sequence in zip(pairs, initial, sequences, strict=True):
        expected = _ema_reference(0.99, start, sequence)
        np.testing.assert_allclose(ema.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_ema_copy_forgets_the_random_initial_weights_within_48_steps():
    # A fixed decay of 0.99 keeps 0.99**48 = 62% of the initial weights after 48
    # updates, so the copy trails the live generator by most of the way it moved.
    gan = mlp_gan(ema=0.99)
    initial = snapshot(gan.generator.trainable_variables)
    gan.fit(dataset(images(32), 8).repeat(), epochs=1, steps_per_epoch=48, verbose=0)

    def distance(a, b):
        return np.sqrt(
            sum(np.sum((np.asarray(x) - np.asarray(y)) ** 2) for x, y in zip(a, b, strict=True))
        )

    live = snapshot(gan.generator.trainable_variables)
    ema = snapshot(ema for ema, _ in _averaged(gan))
    assert distance(ema, live) < 0.3 * distance(live, initial)


def test_refreshed_ema_statistics_are_those_of_the_ema_weights():
    gan = conv_gan(ema=0.9)
    for _ in range(2):
        gan.train_step(tf.constant(images(8, 32)))
    live_statistics = snapshot(gan.generator.non_trainable_variables)
    first = _batch_norms(gan.ema_generator)[0]
    momentum = first.momentum
    gan.refresh_ema_statistics(batches=3, batch_size=16, seed=5)
    z = np.random.default_rng(5).standard_normal((3, 16, gan.latent_dim), dtype=np.float32)
    # The EMA generator's own activations entering its first BatchNorm layer (nothing
    # before it behaves differently in training mode).
    before_norm = keras.Model(gan.ema_generator.inputs[0], first.input)
    activations = np.stack([before_norm(batch).numpy().astype(np.float64) for batch in z])
    axes = tuple(range(1, activations.ndim - 1))  # per channel, within each batch
    batch_means = activations.mean(axis=axes)
    batch_variances = activations.var(axis=axes)
    np.testing.assert_allclose(first.moving_mean.numpy(), batch_means.mean(0), atol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), batch_variances.mean(0), rtol=1e-4)
    assert first.momentum == momentum and not gan.ema_generator.trainable_variables  # put back
    for before, after in zip(live_statistics, gan.generator.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(before, after.numpy())  # the live generator is untouched

    # generate() draws from the EMA copy, refreshing its statistics (with the GAN's own
    # seed) only when the copy changed: repeatable, and no refresh between two calls.
    gan.train_step(tf.constant(images(8, 32)))
    samples = gan.generate(2, seed=1)
    refreshed = snapshot(gan.ema_generator.non_trainable_variables)
    np.testing.assert_array_equal(samples, gan.generate(2, seed=1))
    gan.refresh_ema_statistics()
    for before, after in zip(refreshed, gan.ema_generator.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    z = np.random.default_rng(1).standard_normal((2, gan.latent_dim), dtype=np.float32)
    np.testing.assert_allclose(samples, gan.ema_generator(z, training=False).numpy(), rtol=1e-5)


def test_generate_without_seed_follows_keras_set_random_seed():
    gan = mlp_gan()
    keras.utils.set_random_seed(1)
    first = gan.generate(4)
    keras.utils.set_random_seed(1)
    np.testing.assert_array_equal(first, gan.generate(4))
    assert not np.array_equal(first, gan.generate(4))


def test_a_generator_of_your_own_needs_value_range():
    generator = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8 * 8 * 3), keras.layers.Reshape((8, 8, 3))],
        name="mine",
    )
    _, discriminator = build_pair("mlp", 8, latent_dim=4, width=0.125)
    with pytest.raises(ValueError, match=r"pass value_range=\(low, high\) to GAN"):
        GAN(generator, discriminator)
    assert GAN(generator, discriminator, value_range=(0, 1)).value_range == (0.0, 1.0)
    with pytest.raises(ValueError, match="low < high"):
        GAN(generator, discriminator, value_range=(1, -1))


def test_from_preset_steps_per_execution_trains_the_same_weights():
    def trained(steps_per_execution):
        keras.utils.set_random_seed(0)
        gan = GAN.from_preset(
            "mlp", 8, width=0.125, latent_dim=8, seed=2, steps_per_execution=steps_per_execution
        )
        assert gan.steps_per_execution == steps_per_execution
        gan.fit(dataset(images(32), 8), epochs=2, verbose=0)
        return gan

    one, four = trained(1), trained(4)
    assert int(four.global_step.numpy()) == int(one.global_step.numpy()) == 8
    for a, b in zip(
        one.generator.weights + one.discriminator.weights,
        four.generator.weights + four.discriminator.weights,
        strict=True,
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    # Keras would run 8 steps in an epoch of 6 with 4 steps per call.
    with pytest.raises(ValueError, match="steps_per_call"):
        four.fit(dataset(images(32), 8).repeat(), epochs=1, steps_per_epoch=6, verbose=0)
    with pytest.raises(ValueError, match="steps_per_execution"):
        GAN.from_preset("mlp", 8, width=0.125, latent_dim=8, steps_per_execution=0)


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


def test_augmentation_draws_come_from_three_streams_of_seed_and_step():
    class Recording(keras.layers.Layer):
        draws_per_image = 3

        def __init__(self):
            super().__init__()
            self.probability = self.add_weight(shape=(), initializer="zeros", trainable=False)
            self.draws = []

        def call(self, images, training=True, draws=None):
            self.draws.append(np.asarray(draws))
            return images

        def update(self, real_accuracy):
            pass

    def drawn(seed, steps):
        augmenter = Recording()
        gan = mlp_gan(seed=seed, augmenter=augmenter)
        for _ in range(steps):
            gan.train_step(tf.constant(images(8)))
        return augmenter.draws

    first = drawn(0, 2)
    assert len(first) == 6 and all(d.shape == (8, 3) for d in first)
    assert all(0 <= d.min() and d.max() < 1 for d in first)
    # real and generated images in the D step, generated in the G step, and the next step
    assert len({d.tobytes() for d in first}) == 6
    for a, b in zip(first, drawn(0, 2), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], drawn(1, 1)[0])


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


def _reshuffling():
    """32 images in batches of 8, in a new order every epoch (the same orders each time it is made)."""
    tf.random.set_seed(0)  # the shuffle's seed combines with the global one
    x = tf.data.Dataset.from_tensor_slices(images(32))
    return x.shuffle(32, seed=7, reshuffle_each_iteration=True).batch(8, drop_remainder=True)


def _resumed_matches_uninterrupted(tmp_path, make_dataset, every_steps, drop_newest):
    """All state after 4 epochs of 4 steps, trained in one go and resumed after 2 epochs."""
    whole = mlp_gan()
    whole.fit(make_dataset(), epochs=4, steps_per_epoch=4, verbose=0)
    folder = tmp_path / "checkpoints"
    checkpoints = Checkpoints(folder, every_steps=every_steps)
    mlp_gan().fit(make_dataset(), epochs=2, steps_per_epoch=4, verbose=0, callbacks=[checkpoints])
    if drop_newest:
        list_checkpoints(folder)[-1].unlink()  # the newest is now step 6: epoch 1, 2 steps done
    resumed = mlp_gan(seed=1)
    resumed.fit(
        make_dataset(),
        epochs=4,
        steps_per_epoch=4,
        verbose=0,
        resume=True,
        callbacks=[Checkpoints(folder)],
    )
    assert int(resumed.global_step.numpy()) == 16
    for a, b in zip(all_state(whole), all_state(resumed), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_fit_resume_goes_on_with_the_next_pass_of_a_reshuffling_dataset(tmp_path):
    _resumed_matches_uninterrupted(tmp_path, _reshuffling, None, drop_newest=False)


def test_fit_resume_in_the_middle_of_an_epoch_goes_on_with_the_next_batch(tmp_path):
    # 8 batches, 4 per epoch: the interrupted epoch 1 ends on batches 6 and 7.
    _resumed_matches_uninterrupted(
        tmp_path, lambda: dataset(images(64), 8), every_steps=3, drop_newest=True
    )


def test_fit_resume_on_a_dataset_needs_steps_per_epoch(tmp_path):
    folder = tmp_path / "checkpoints"
    gan = mlp_gan()
    gan.fit(dataset(images(32), 8), epochs=1, verbose=0, callbacks=[Checkpoints(folder)])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        gan.fit(
            dataset(images(32), 8),
            epochs=2,
            verbose=0,
            resume=True,
            callbacks=[Checkpoints(folder)],
        )


def test_from_preset_chooses_the_steps_per_call_for_each_fit():
    # The default "auto" picks, per fit, the largest count up to 8 that divides the epoch,
    # as ganlib.train does; an explicit count stays as given.
    gan = GAN.from_preset("improved", 32, width=0.125, seed=0)
    data = dataset(images(24, size=32), 4)  # 6 batches of 4
    gan.fit(data.repeat(), epochs=1, steps_per_epoch=6, verbose=0)
    assert gan.steps_per_execution == 6 and int(gan.global_step.numpy()) == 6
    gan.fit(data.repeat(), epochs=1, steps_per_epoch=4, verbose=0)
    assert gan.steps_per_execution == 4 and int(gan.global_step.numpy()) == 10
    fixed = GAN.from_preset("improved", 32, width=0.125, seed=0, steps_per_execution=3)
    with pytest.raises(ValueError, match="multiple of steps_per_execution"):
        fixed.fit(data.repeat(), epochs=1, steps_per_epoch=4, verbose=0)
    assert fixed.steps_per_execution == 3


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_step_skipped_by_loss_scaling_still_counts_as_a_generator_update(jit_compile):
    # Under mixed_float16 a step whose scaled gradients overflow changes no weight; Keras 3
    # left it out of `iterations`, so a long GPU run counted fewer updates than it trained.
    from ganlib.training.devices import dtype_policy

    with dtype_policy("mixed_float16"):
        gan = mlp_gan()
    gan.compile(
        keras.optimizers.Adam(1e-3, beta_1=0.5),
        keras.optimizers.Adam(1e-3, beta_1=0.5),
        jit_compile=jit_compile,
    )
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    weights = snapshot(gan.generator.trainable_variables)
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        optimizer.dynamic_scale.assign(1e38)  # every scaled gradient overflows float16
    gan.fit(dataset(images(16), 8), epochs=1, verbose=0)
    assert not any(moved(weights, gan.generator.trainable_variables))  # both steps skipped
    assert training.generator_updates(gan) == int(gan.global_step.numpy()) == 2
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        optimizer.dynamic_scale.assign(1.0)
    gan.fit(dataset(images(16), 8), epochs=1, verbose=0)
    assert all(moved(weights, gan.generator.trainable_variables))  # these two were applied
    assert training.generator_updates(gan) == int(gan.global_step.numpy()) == 4


# --------------------------------------------------------------------------- GAN.reset


def _fresh_mlp_pair(seed):
    """mlp_gan's two networks, as it builds them with `seed`."""
    keras.utils.set_random_seed(seed)
    return build_pair("mlp", 8, latent_dim=8, width=0.125)


def _ada(seed=0):
    return AdaptiveAugmenter(integration_steps=2, seed=seed)  # p moves within a few steps


def _trained(gan, steps, seed=0):
    """gan after `steps` fit steps on the same 8-image batches; fit's loss history."""
    x = dataset(images(8 * steps, seed=seed), 8)
    return gan.fit(x, epochs=1, verbose=0).history


def test_reset_gan_trains_as_a_new_gan_of_that_seed():
    gan = mlp_gan(seed=0, ema=0.9, augmenter=_ada())
    _trained(gan, 3)
    traced = gan.train_function
    assert float(gan.augmenter.probability.numpy()) > 0  # ADA's p moved
    gan.reset(7, *_fresh_mlp_pair(7))
    history = _trained(gan, 4, seed=1)
    assert gan.train_function is traced  # the same traced step, used again

    new = mlp_gan(seed=7, ema=0.9, augmenter=_ada())
    expected = _trained(new, 4, seed=1)
    for name in expected:
        np.testing.assert_allclose(history[name], expected[name], rtol=1e-6, atol=1e-7)
    # weights, EMA copy, augmenter, both optimizers (moments and step counts), seed and step
    for a, b in zip(all_state(gan), all_state(new), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(gan.ema_updates.numpy()) == int(new.ema_updates.numpy()) == 4


def test_reset_zeroes_the_counters_and_logs_but_keeps_the_learning_rate_and_weights():
    gan = mlp_gan(ema=0.9)
    _trained(gan, 2)
    gan.d_optimizer.learning_rate = 5e-4  # as a callback might set it
    gan.nonfinite_step.assign(1)
    weights = snapshot(gan.generator.weights + gan.discriminator.weights)
    gan.reset(3)
    assert int(gan.d_optimizer.iterations.numpy()) == int(gan.g_optimizer.iterations.numpy()) == 0
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        moments = [v for v in optimizer.variables if "momentum" in v.path or "velocity" in v.path]
        assert moments and not any(np.any(v.numpy()) for v in moments)
    assert float(gan.d_optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    assert float(gan.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    assert int(gan.noise_seed.numpy()) == 3 and int(gan.global_step.numpy()) == 0
    assert int(gan.nonfinite_step.numpy()) == -1 and int(gan.ema_updates.numpy()) == 0
    assert all(float(v.numpy()) == 0 for tracker in gan.metrics for v in tracker.variables)
    # without new networks the weights stay, and the EMA copy starts from them
    for before, after in zip(
        weights, gan.generator.weights + gan.discriminator.weights, strict=True
    ):
        np.testing.assert_array_equal(before, after.numpy())
    for ema, weight in zip(gan.ema_generator.weights, gan.generator.weights, strict=True):
        np.testing.assert_array_equal(ema.numpy(), weight.numpy())


def test_reset_refuses_networks_of_another_shape_and_names_the_network():
    gan = mlp_gan()
    _trained(gan, 1)
    generator, discriminator = _fresh_mlp_pair(1)
    keras.utils.set_random_seed(1)
    wider_g, wider_d = build_pair("mlp", 8, latent_dim=8, width=0.25)
    with pytest.raises(ValueError, match="new generator"):
        gan.reset(1, wider_g, discriminator)
    with pytest.raises(ValueError, match="new discriminator"):
        gan.reset(1, generator, wider_d)
    with pytest.raises(ValueError, match="new discriminator has 0 variables"):
        gan.reset(
            1, discriminator=keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten()])
        )
    assert int(gan.global_step.numpy()) == 1  # nothing was reset
    with pytest.raises(ValueError, match="seed"):
        gan.reset(1.5)


def test_reset_puts_the_loss_scale_back_under_mixed_precision():
    from ganlib.training.devices import dtype_policy

    with dtype_policy("mixed_float16"):
        gan = mlp_gan(seed=0)
        _trained(gan, 3)
        for optimizer in (gan.d_optimizer, gan.g_optimizer):
            assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            assert int(optimizer.step_counter.numpy()) == 3
            optimizer.dynamic_scale.assign(64.0)  # as an overflow would have lowered it
        gan.reset(7, *_fresh_mlp_pair(7))
        for optimizer in (gan.d_optimizer, gan.g_optimizer):
            assert int(optimizer.step_counter.numpy()) == 0
            assert float(optimizer.dynamic_scale.numpy()) == optimizer.initial_scale
        history = _trained(gan, 3, seed=1)
        new = mlp_gan(seed=7)
        expected = _trained(new, 3, seed=1)
    for name in expected:
        np.testing.assert_allclose(history[name], expected[name], rtol=1e-6, atol=1e-7)
    for a, b in zip(all_state(gan), all_state(new), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- d_steps


@pytest.mark.parametrize("d_steps", [0, -1, 1.5, True, "2"])
def test_compile_refuses_a_bad_d_steps(d_steps):
    gan = mlp_gan()
    with pytest.raises(ValueError, match="d_steps"):
        gan.compile(d_steps=d_steps)


def test_compile_refuses_d_steps_with_the_notebook_scheme():
    gan = mlp_gan()
    with pytest.raises(ValueError, match=r"d_steps=2.*notebook|notebook.*d_steps=2"):
        gan.compile(update_scheme="notebook", d_steps=2)
    gan.compile(update_scheme="notebook", d_steps=1)  # its own two updates


def test_d_steps_makes_that_many_discriminator_updates_per_generator_update():
    gan = mlp_gan()
    gan.compile(
        keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5), d_steps=3
    )
    logs = gan.train_step(tf.constant(images(8)))
    assert int(gan.d_optimizer.iterations.numpy()) == 3
    assert int(gan.g_optimizer.iterations.numpy()) == 1
    assert int(gan.global_step.numpy()) == 1
    assert all(np.isfinite(float(value)) for value in logs.values())


def test_two_discriminator_steps_are_two_discriminator_step_calls_then_a_generator_step():
    def gan_with(d_steps):
        gan = mlp_gan(seed=4)
        adam = keras.optimizers.Adam
        gan.compile(adam(1e-3, beta_1=0.5), adam(1e-3, beta_1=0.5), d_steps=d_steps)
        return gan

    real = images(8, seed=2)
    stepped = gan_with(2)
    logs = stepped.train_step(tf.constant(real))

    by_hand = gan_with(1)
    # The first update draws the step's D_NOISE stream; the second draws it with 1 folded
    # into its seed (noise seed 4, counter 4 * step + D_NOISE = 0).
    first = by_hand.noise(8, D_NOISE)
    seed = tf.random.experimental.stateless_fold_in(
        tf.constant([4, 0], tf.int64), tf.constant(1, tf.int64)
    )
    second = tf.random.stateless_normal((8, by_hand.latent_dim), seed=seed)
    assert not np.array_equal(first.numpy(), second.numpy())
    d_logs = [by_hand.discriminator_step(real, z) for z in (first, second)]
    g_logs = by_hand.generator_step(by_hand.noise(8, G_NOISE))

    for a, b in zip(all_state(stepped)[:-2], all_state(by_hand)[:-2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # all but the seed and step
    d_loss = np.mean([float(log["d_loss"]) for log in d_logs])  # the logs average the two
    assert float(logs["d_loss"]) == pytest.approx(d_loss, rel=1e-6)
    assert float(logs["g_loss"]) == pytest.approx(float(g_logs["g_loss"]), rel=1e-6)
    one = gan_with(1)
    one.train_step(tf.constant(real))
    assert not np.allclose(one.generator.weights[0].numpy(), stepped.generator.weights[0].numpy())


def test_wgan_gp_with_five_critic_steps_trains_under_xla():
    gan = mlp_gan()
    adam = keras.optimizers.Adam
    gan.compile(
        adam(1e-4, beta_1=0.0, beta_2=0.9),
        adam(1e-4, beta_1=0.0, beta_2=0.9),
        loss="wgan-gp",
        d_steps=5,
        jit_compile=True,
    )
    history = _trained(gan, 2)
    assert all(np.isfinite(values).all() for values in history.values())
    assert int(gan.d_optimizer.iterations.numpy()) == 10
    assert int(gan.g_optimizer.iterations.numpy()) == 2


def test_generate_draws_from_the_generator_it_is_asked_for():
    gan = GAN.from_preset("mlp", 32, width=0.125, ema=0.9, jit_compile=False)
    data = np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 3)).astype("float32")
    gan.fit(data, batch_size=32, epochs=1, verbose=0)
    z = np.random.default_rng(5).standard_normal((4, gan.latent_dim), dtype=np.float32)
    live = gan.generate(4, seed=5, ema=False)
    np.testing.assert_array_equal(live, gan.generator(z, training=False).numpy())
    ema = gan.generate(4, seed=5, ema=True)
    np.testing.assert_array_equal(ema, gan.generate(4, seed=5))  # None: the EMA copy
    np.testing.assert_array_equal(ema, gan.ema_generator(z, training=False).numpy())
    assert not np.array_equal(live, ema)
    with pytest.raises(ValueError, match="ema must be None, True or False"):
        gan.generate(4, seed=5, ema="yes")
    plain = GAN.from_preset("mlp", 32, width=0.125, jit_compile=False)
    with pytest.raises(ValueError, match="no EMA copy"):
        plain.generate(4, seed=5, ema=True)
    np.testing.assert_array_equal(plain.generate(4, seed=5, ema=False), plain.generate(4, seed=5))
