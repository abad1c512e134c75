"""Tests for ganlib/training.py: the GAN step, presets, checkpoints, resuming, NaN stop, distribution."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganlib import training
from ganlib.models import build_pair
from ganlib.training import (
    GAN,
    PRESETS,
    Checkpoints,
    HistoryCSV,
    SampleGrid,
    checkpoints,
    load_checkpoint,
    save_checkpoint,
)

SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def mlp_gan(seed=0, **kwargs):
    """The smallest GAN: dense layers, 8x8 images, 8 noise dimensions."""
    keras.utils.set_random_seed(seed)
    generator, discriminator = build_pair("mlp", 8, latent_dim=8, width=0.125)
    gan = GAN(generator, discriminator, seed=seed, **kwargs)
    gan.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
    return gan


def conv_gan(seed=0, **kwargs):
    """The improved pair at 32 px, width 0.125: BatchNorm in G, Dropout in D."""
    keras.utils.set_random_seed(seed)
    return GAN.from_preset("improved", 32, width=0.125, seed=seed, **kwargs)


def images(n, size=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def dataset(x, batch_size):
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size, drop_remainder=True)


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def moved(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables, strict=True)]


def run_script(source, *args, timeout=240):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=SUBPROCESS_ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- presets


def test_presets_name_the_seeds_settings():
    assert PRESETS["improved"]["g_learning_rate"] == 2 * PRESETS["improved"]["d_learning_rate"]
    assert (
        PRESETS["improved_as_run"]["g_learning_rate"]
        == PRESETS["improved_as_run"]["d_learning_rate"]
        == 1e-4
    )
    assert PRESETS["baseline"]["d_learning_rate"] == PRESETS["baseline"]["g_learning_rate"] == 1e-4
    assert PRESETS["cifar"]["d_learning_rate"] == 2e-4 and PRESETS["cifar"]["batch_size"] == 128
    for name in ("improved", "improved_as_run", "cifar"):
        assert PRESETS[name]["beta_1"] == 0.5


def test_from_preset_keeps_the_learning_rate_ratio():
    gan = conv_gan()
    d_lr = float(gan.d_optimizer.learning_rate.numpy())
    g_lr = float(gan.g_optimizer.learning_rate.numpy())
    assert g_lr == pytest.approx(2 * d_lr) and d_lr == pytest.approx(1e-4)
    assert float(gan.d_optimizer.beta_1) == 0.5
    assert gan.preset["batch_size"] == 32 and gan.preset["latent_dim"] == 100
    faster = GAN.from_preset("improved", 32, width=0.125, learning_rate=5e-5)
    assert float(faster.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    same = GAN.from_preset("improved_as_run", 32, width=0.125)
    assert float(same.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="unknown preset"):
        GAN.from_preset("dcgan", 32)


# --------------------------------------------------------------------------- the step


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


def test_ema_follows_its_formula():
    gan = conv_gan(ema=0.9)
    assert gan.ema_generator is not None and not gan.ema_generator.trainable_variables
    ema_before = snapshot(gan.ema_generator.weights)
    gan.train_step(tf.constant(images(8, 32)))
    for old, ema, weight in zip(
        ema_before, gan.ema_generator.weights, gan.generator.weights, strict=True
    ):
        expected = 0.9 * old + 0.1 * weight.numpy() if weight.trainable else weight.numpy()
        np.testing.assert_allclose(ema.numpy(), expected, rtol=1e-5, atol=1e-7)
    moving = [w for w in gan.generator.weights if "moving" in w.path]
    assert moving  # BatchNorm statistics are copied, not averaged
    # generate() draws from the EMA copy
    z = np.random.default_rng(1).standard_normal((2, gan.latent_dim), dtype=np.float32)
    np.testing.assert_allclose(
        gan.generate(2, seed=1), gan.ema_generator(z, training=False).numpy(), rtol=1e-5
    )
    with pytest.raises(ValueError, match="ema"):
        conv_gan(ema=1.5)


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


def test_mixed_float16_scales_the_loss_and_keeps_float32_outputs():
    with training._dtype_policy("mixed_float16"):
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


# --------------------------------------------------------------------------- the first design's loop


def test_train_on_batch_loop_runs_the_notebook_iteration():
    keras.utils.set_random_seed(0)
    generator, discriminator = build_pair("mlp", 8, latent_dim=8, width=0.125)
    g_before, d_before = (
        snapshot(generator.trainable_variables),
        snapshot(discriminator.trainable_variables),
    )
    seen = []
    history = training.train_on_batch_loop(
        generator,
        discriminator,
        images(40),
        iterations=3,
        batch_size=4,
        callback=lambda i, logs: seen.append(i),
    )
    assert seen == [0, 1, 2]
    assert set(history) == {"d_loss", "d_acc", "d_real_accuracy", "d_fake_accuracy", "g_loss"}
    assert all(len(v) == 3 and np.isfinite(v).all() for v in history.values())
    assert all(moved(g_before, generator.trainable_variables))
    assert all(moved(d_before, discriminator.trainable_variables))
    assert discriminator.trainable  # left trainable for whoever uses it next


# --------------------------------------------------------------------------- callbacks


def test_sample_grid_saves_the_same_noise_every_epoch(tmp_path):
    gan = mlp_gan()
    grid = SampleGrid(tmp_path, rows=2, cols=3)
    gan.fit(dataset(images(16), 8), epochs=2, verbose=0, callbacks=[grid])
    assert [epoch for epoch, _ in grid.grids] == [0, 1]
    assert grid.grids[0][1].shape == (6, 8, 8, 3) and grid.grids[0][1].dtype == np.uint8
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_0000.png",
        "epoch_0001.png",
    ]
    grid.on_epoch_end(2)  # same weights, same noise: the same picture
    np.testing.assert_array_equal(grid.grids[-1][1], grid.grids[-2][1])


def test_history_csv_drops_rows_of_an_interrupted_run(tmp_path):
    path = tmp_path / "history.csv"
    training.write_history(path, [{"epoch": e, "d_loss": 0.5, "g_loss": 1.0} for e in range(5)])
    callback = HistoryCSV(path)
    callback.on_epoch_begin(2)
    callback.on_epoch_end(2, {"d_loss": 0.25, "g_loss": 2.0, "kid": 0.1})
    rows = training.read_history(path)
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[2]["kid"] == 0.1 and np.isnan(rows[0]["kid"])
    assert path.read_text().splitlines()[0] == "epoch,d_loss,g_loss,kid"


# --------------------------------------------------------------------------- checkpoints


def all_state(gan):
    return [v.numpy() for group in training._state_groups(gan).values() for v in group]


def test_checkpoint_round_trip_restores_everything_but_the_learning_rate(tmp_path):
    gan = conv_gan(ema=0.99)
    gan.fit(dataset(images(16, 32), 8), epochs=1, verbose=0)
    path = save_checkpoint(gan, tmp_path, epoch=1)
    assert path.name == "ckpt-000000002.npz"
    other = GAN.from_preset("improved", 32, width=0.125, seed=7, ema=0.99, learning_rate=3e-4)
    state = load_checkpoint(other, tmp_path)
    assert state["epoch"] == 1 and state["step_in_epoch"] == 0 and state["step"] == 2
    for group, variables in training._state_groups(gan).items():
        for saved, restored in zip(variables, training._state_groups(other)[group], strict=True):
            if not saved.path.endswith("learning_rate"):  # learning rates stay as compiled
                np.testing.assert_array_equal(saved.numpy(), restored.numpy(), err_msg=saved.path)
    assert float(other.d_optimizer.learning_rate.numpy()) == pytest.approx(3e-4)
    assert int(other.noise_seed.numpy()) == int(gan.noise_seed.numpy())
    np.testing.assert_array_equal(other.generate(3, seed=0), gan.generate(3, seed=0))


def test_checkpoint_of_another_model_is_refused(tmp_path):
    save_checkpoint(conv_gan(), tmp_path, epoch=0)
    wider = GAN.from_preset("improved", 32, width=0.25)
    with pytest.raises(ValueError, match="does not fit this GAN"):
        load_checkpoint(wider, tmp_path)
    with pytest.raises(ValueError, match="ema_generator"):
        load_checkpoint(conv_gan(ema=0.9), tmp_path)
    save_checkpoint(conv_gan(ema=0.9), tmp_path / "ema", epoch=0)
    with pytest.raises(ValueError, match="also holds ema_generator"):
        load_checkpoint(conv_gan(), tmp_path / "ema")


def test_checkpoints_keep_the_last_k_and_survive_a_broken_write(tmp_path, monkeypatch, capsys):
    gan = mlp_gan()
    for step in range(1, 5):
        gan.global_step.assign(step)
        save_checkpoint(gan, tmp_path, epoch=step, keep=2)
    assert [p.name for p in checkpoints(tmp_path)] == ["ckpt-000000003.npz", "ckpt-000000004.npz"]
    good = all_state(gan)

    # The process dies between writing the temporary file and renaming it.
    def crash(*args):
        raise KeyboardInterrupt("killed")

    gan.global_step.assign(5)
    with monkeypatch.context() as patch:
        patch.setattr(training.os, "replace", crash)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(gan, tmp_path, epoch=5, keep=2)
    assert list(tmp_path.glob(".ckpt-000000005.npz.*.tmp"))  # the half-done write is left aside
    # A newest file that is cut short (a copy that did not finish) is skipped too.
    newest = tmp_path / "ckpt-000000006.npz"
    newest.write_bytes((tmp_path / "ckpt-000000004.npz").read_bytes()[:1000])
    fresh = mlp_gan(seed=1)
    state = load_checkpoint(fresh, tmp_path)
    assert state["step"] == 4 and "skipping unreadable checkpoint" in capsys.readouterr().out
    for saved, restored in zip(good, all_state(fresh), strict=True):
        np.testing.assert_array_equal(saved, restored)
    # the next run clears what a dead process left half-written (this process counts as dead
    # for its own leftovers: it is not writing them any more)
    training.remove_stale_temporaries(tmp_path)
    assert not list(tmp_path.glob(".ckpt-*.tmp"))


def test_a_process_killed_while_saving_leaves_a_loadable_checkpoint(tmp_path):
    script = f"""
        import sys, keras
        from ganlib.training import GAN, save_checkpoint
        gan = GAN.from_preset("improved", 32, seed=0)  # full width: each file is ~18 MB
        step = 0
        while True:
            step += 1
            gan.global_step.assign(step)
            save_checkpoint(gan, {str(tmp_path)!r}, epoch=step, keep=2)
            print(step, flush=True)
    """
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=SUBPROCESS_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for _ in range(3):  # wait for a few complete saves, then kill it in the middle of one
            assert process.stdout.readline(), "the saving process died"
        time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    gan = GAN.from_preset("improved", 32, seed=1)
    state = load_checkpoint(gan, tmp_path)
    assert state is not None and state["step"] >= 3


def test_nan_in_the_data_stops_training_at_its_step(tmp_path):
    keras.utils.set_random_seed(0)
    generator, _ = build_pair("mlp", 8, latent_dim=8, width=0.125)
    x = keras.Input((8, 8, 3))
    logit = keras.layers.Dense(1, name="logit")(keras.layers.Flatten()(x))
    discriminator = keras.Model(x, keras.layers.Activation("sigmoid")(logit))
    gan = GAN(generator, discriminator, seed=0)
    gan.compile()
    data = images(32)
    data[16:24] = np.nan  # the third batch of the first epoch
    folder = tmp_path / "checkpoints"
    # Only epoch-end callbacks: Keras checks the steps in its background thread.
    callbacks = [Checkpoints(folder), HistoryCSV(tmp_path / "history.csv"), SampleGrid(tmp_path)]
    with pytest.raises(FloatingPointError, match=r"epoch 0 .*step 3 of 4 \(training step 3\)"):
        gan.fit(dataset(data, 8), epochs=2, verbose=0, callbacks=callbacks)
    assert int(gan.nonfinite_step.numpy()) == 2
    assert not checkpoints(folder) and not (tmp_path / "history.csv").exists()
    assert not (tmp_path / "samples").exists()


def test_nan_stops_training_and_names_the_step(tmp_path):
    gan = mlp_gan()

    class Poison(keras.callbacks.Callback):
        """After step 2 the discriminator's logit turns NaN (as after an overflow)."""

        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.discriminator.get_layer("logit").bias.assign([np.nan])

    folder = tmp_path / "checkpoints"
    callbacks = [
        Checkpoints(folder, every_steps=1, keep=10),
        HistoryCSV(tmp_path / "history.csv"),
        Poison(),
    ]
    with pytest.raises(FloatingPointError, match=r"epoch 0 .*step 3 of 4 \(training step 3\)"):
        gan.fit(dataset(images(32), 8), epochs=2, verbose=0, callbacks=callbacks)
    assert [p.name for p in checkpoints(folder)] == ["ckpt-000000001.npz", "ckpt-000000002.npz"]
    assert not (tmp_path / "history.csv").exists()
    fresh = mlp_gan(seed=1)
    assert load_checkpoint(fresh, folder)["step"] == 2
    assert all(np.isfinite(v).all() for v in all_state(fresh))


def test_fit_resume_continues_in_the_middle_of_an_epoch(tmp_path):
    x = dataset(images(32), 8)  # 4 steps per epoch
    folder = tmp_path / "checkpoints"
    gan = mlp_gan()
    gan.fit(
        x, epochs=1, steps_per_epoch=4, verbose=0, callbacks=[Checkpoints(folder, every_steps=3)]
    )
    # the epoch-end checkpoint is lost: the newest one is at step 3 of epoch 0
    checkpoints(folder)[-1].unlink()
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


# --------------------------------------------------------------------------- train() and runs


def test_train_checks_its_arguments(tmp_path):
    faces = np.zeros((8, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown model"):
        training.train(faces, model="big", image_size=32)
    with pytest.raises(ValueError, match="batch size"):
        training.train(faces, image_size=32, batch_size=1)
    with pytest.raises(ValueError, match="image_size"):
        training.train(faces, image_size=48)
    with pytest.raises(ValueError, match="32x32 but image_size is 64"):
        training.train(faces, image_size=64)
    with pytest.raises(ValueError, match="fewer than one batch"):
        training.train(faces, image_size=32, batch_size=16)
    with pytest.raises(ValueError, match="uint8"):
        training.train(faces.astype(np.float32), image_size=32)


def test_train_writes_a_run_and_refuses_another_model_in_it(tmp_path, monkeypatch):
    from ganlib import metrics

    class Flat:  # a stand-in feature extractor: the KID plumbing, not the features, is tested here
        def __call__(self, images, value_range=None):
            return np.asarray(images, np.float32).reshape(len(images), -1)[:, :32]

    monkeypatch.setattr(metrics, "DomainFeatures", lambda image_size: Flat())
    run = tmp_path / "run"
    gan, history = training.train(
        "toy-faces:32",
        model="improved",
        image_size=32,
        width=0.125,
        epochs=1,
        batch_size=8,
        run_dir=run,
        verbose=0,
        kid_every=1,
        grid=(2, 2),
    )
    assert history["epoch"] == [0] and np.isfinite(history["kid"][0])
    assert "kid" in (run / "history.csv").read_text().splitlines()[0]
    info = json.loads((run / "run.json").read_text())
    assert (info["model"], info["image_size"], info["width"], info["latent_dim"]) == (
        "improved",
        32,
        0.125,
        100,
    )
    assert info["data_spec"] == "toy-faces:32" and info["seed"] == 0
    assert gan.preset["steps_per_epoch"] == 4 and gan.sample_grid.grids[0][1].shape == (
        4,
        32,
        32,
        3,
    )
    with pytest.raises(ValueError, match="was made with model 'improved'"):
        training.train(
            "toy-faces:32",
            model="cifar",
            image_size=32,
            width=0.125,
            epochs=1,
            batch_size=8,
            run_dir=run,
        )
    with pytest.raises(ValueError, match="already has checkpoints"):
        training.train(
            "toy-faces:32",
            image_size=32,
            width=0.125,
            epochs=1,
            batch_size=8,
            run_dir=run,
            resume=False,
        )
    loaded = training.load_run(run)
    np.testing.assert_array_equal(loaded.generate(2, seed=0), gan.generate(2, seed=0))

    class Poison(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.discriminator.get_layer("logit").bias.assign([np.inf])

    with pytest.raises(
        FloatingPointError,
        match=r"epoch 1 .*step 2 of 4 \(training step 6\).*checkpoint is .*ckpt-000000004",
    ):
        training.train(
            "toy-faces:32",
            image_size=32,
            width=0.125,
            epochs=2,
            batch_size=8,
            run_dir=run,
            verbose=0,
            steps_per_execution=1,  # the poison acts between single steps
            callbacks=[Poison()],
            grid=(2, 2),
        )
    assert [row["epoch"] for row in training.read_history(run / "history.csv")] == [0]


def test_plot_history_from_a_dict_and_a_run(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from ganlib.plotting import plot_history

    history = {
        "epoch": [0, 1, 2],
        "d_loss": [0.7, 0.6, 0.5],
        "g_loss": [0.8, 0.9, 1.0],
        "d_real_accuracy": [0.5, 0.6, 0.7],
        "d_fake_accuracy": [0.4, 0.5, 0.6],
    }
    loss_ax, accuracy_ax = plot_history(history)
    assert len(loss_ax.lines) == 2 and len(accuracy_ax.lines) == 2
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), [0, 1, 2])
    training.write_history(
        tmp_path / "history.csv",
        [dict(zip(history, row, strict=True)) for row in zip(*history.values(), strict=True)],
    )
    loss_ax, _ = plot_history(tmp_path)
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(), history["g_loss"])
    with pytest.raises(FileNotFoundError):
        plot_history(tmp_path / "missing")


# --------------------------------------------------------------------------- exactness (own processes)


def test_resumed_runs_end_where_an_uninterrupted_one_does(tmp_path):
    """Op determinism is process-wide, so this runs in its own process."""
    result = run_script(
        """
        import json, shutil, sys
        import numpy as np, tensorflow as tf
        tf.config.experimental.enable_op_determinism()
        from ganlib import training
        from ganlib.data import toy_faces

        faces, _ = toy_faces(64, image_size=32)
        root = sys.argv[1]
        options = dict(model="improved", image_size=32, width=0.125, batch_size=16, ema=0.9,
                       ada=True, checkpoint_every=3, steps_per_execution=2, verbose=0,
                       grid=(2, 2))

        def state(gan):
            return [v.numpy() for v in gan.generator.weights + gan.discriminator.weights
                    + gan.ema_generator.weights + [gan.augmenter.probability]]

        def largest_difference(a, b):
            return max(float(np.max(np.abs(x - y))) for x, y in zip(state(a), state(b)))

        a, history_a = training.train(faces, epochs=3, run_dir=f"{root}/a", **options)
        training.train(faces, epochs=2, run_dir=f"{root}/b", **options)  # stopped after 2 epochs
        shutil.copytree(f"{root}/b", f"{root}/c")
        b, history_b = training.train(faces, epochs=3, run_dir=f"{root}/b", **options)
        # c was killed before epoch 1 ended: its newest checkpoint is at step 2 of that epoch
        training.checkpoints(f"{root}/c/checkpoints")[-1].unlink()
        _, meta, _ = training.latest_checkpoint(f"{root}/c/checkpoints")
        c, history_c = training.train(faces, epochs=3, run_dir=f"{root}/c", **options)
        print(json.dumps({
            "b": largest_difference(a, b), "c": largest_difference(a, c),
            "epochs": [history_a["epoch"], history_b["epoch"], history_c["epoch"]],
            "same_history": history_a == history_b,
            "steps": [int(g.global_step.numpy()) for g in (a, b, c)],
            "p": float(a.augmenter.probability.numpy()),
            "resumed_from": [meta["epoch"], meta["step_in_epoch"]],
        }))
        """,
        tmp_path,
    )
    assert result["epochs"] == [[0, 1, 2]] * 3
    assert result["steps"] == [12, 12, 12]
    assert result["b"] == 0.0 and result["same_history"]
    assert result["resumed_from"] == [1, 2] and result["c"] == 0.0  # in the middle of epoch 1
    assert result["p"] > 0  # the augmenter did move, and was resumed along with the rest


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
