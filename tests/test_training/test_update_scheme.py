"""Tests for GAN.compile(update_scheme=...) and train(update_scheme=...) (ganlib/training/gan.py, runs.py).

"notebook" is the anime-face notebook's iteration: the generated batch drawn in inference
mode, two discriminator updates (real batch, then generated batch), a generator update on
twice as many noise vectors.
"""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganlib import training
from ganlib.augment import AdaptiveAugmenter
from ganlib.data import toy_faces
from ganlib.models import build_pair
from ganlib.training import GAN, train_on_batch_loop
from ganlib.training.gan import D_NOISE

from ._helpers import conv_gan, dataset, images

BATCH = 4


class _Spy(GAN):
    """A GAN that writes down, in eager mode, what each step draws and shows the discriminator."""

    def noise(self, local_batch, stream=D_NOISE):
        z = super().noise(local_batch, stream)
        self.seen.append(("noise", stream, np.array(z)))
        return z

    def _logit(self, images):
        logit = super()._logit(images)
        self.seen.append(("logit", np.array(images), np.array(logit)))
        return logit


def _spy(update_scheme):
    keras.utils.set_random_seed(0)
    gan = _Spy.from_preset(
        "improved", 32, width=0.125, seed=3, jit_compile=False, update_scheme=update_scheme
    )
    object.__setattr__(gan, "seen", [])  # a plain list: Keras would track an attribute list
    return gan


def _outputs(generator, z):
    """generator(z) in inference and in training mode, its weights (moving statistics) kept."""
    weights = generator.get_weights()
    inference = np.array(generator(z, training=False))
    training_mode = np.array(generator(z, training=True))  # updates the moving statistics...
    generator.set_weights(weights)  # ...which are put back
    return inference, training_mode


def _softplus(x):
    return np.logaddexp(0.0, x)


# --------------------------------------------------------------------------- one step, watched


def test_notebook_step_draws_in_inference_mode_and_updates_d_twice_on_real_then_generated():
    gan = _spy("notebook")
    real = images(BATCH, 32, seed=1)
    z = np.array(gan.noise(BATCH, D_NOISE))  # the step's discriminator noise (step 0)
    gan.seen.clear()
    inference, training_mode = _outputs(gan.generator, z)
    # the improved generator's BatchNorm has fresh moving statistics: the modes differ
    assert np.abs(inference - training_mode).max() > 0.05
    moving = [w.numpy() for w in gan.generator.non_trainable_weights]

    logs = gan.train_step(tf.constant(real))

    noises = [entry for entry in gan.seen if entry[0] == "noise"]
    logits = [entry for entry in gan.seen if entry[0] == "logit"]
    # D's noise: one batch; G's: twice the real batch
    assert [(stream, len(value)) for _, stream, value in noises] == [
        (D_NOISE, BATCH),
        (noises[1][1], 2 * BATCH),
    ]
    assert noises[1][1] != D_NOISE
    np.testing.assert_array_equal(noises[0][2], z)
    # the discriminator sees the real batch, then the generated one, then G's 2x batch
    assert [len(entry[1]) for entry in logits] == [BATCH, BATCH, 2 * BATCH]
    np.testing.assert_array_equal(logits[0][1], real)
    np.testing.assert_allclose(logits[1][1], inference, atol=1e-6)
    assert np.abs(logits[1][1] - training_mode).max() > 0.05
    # two discriminator updates, one generator update; the step counted once
    assert int(gan.d_optimizer.iterations) == 2 and int(gan.g_optimizer.iterations) == 1
    assert int(gan.global_step) == 1
    # the moving statistics moved once, in the generator's own (training-mode) update:
    # momentum 0.8 toward the batch statistics, not twice
    after = [w.numpy() for w in gan.generator.non_trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(moving, after, strict=True))
    # the logged losses are those of the logits the discriminator gave
    real_logit, fake_logit, g_logit = (entry[2] for entry in logits)
    d_loss = 0.5 * (_softplus(-real_logit).mean() + _softplus(fake_logit).mean())
    assert float(logs["d_loss"]) == pytest.approx(d_loss, rel=1e-5)
    assert float(logs["g_loss"]) == pytest.approx(_softplus(-g_logit).mean(), rel=1e-5)
    assert float(logs["d_real_accuracy"]) == pytest.approx(np.mean(real_logit > 0))
    assert float(logs["d_fake_accuracy"]) == pytest.approx(np.mean(fake_logit < 0))


def test_the_default_step_draws_in_training_mode_and_updates_each_network_once():
    # the same spy on ganlib's own step: what the test above tells apart
    gan = _spy("ganlib")
    real = images(BATCH, 32, seed=1)
    z = np.array(gan.noise(BATCH, D_NOISE))
    gan.seen.clear()
    _, training_mode = _outputs(gan.generator, z)
    gan.train_step(tf.constant(real))
    noises = [entry for entry in gan.seen if entry[0] == "noise"]
    logits = [entry for entry in gan.seen if entry[0] == "logit"]
    assert [len(value) for _, _, value in noises] == [BATCH, BATCH]
    assert [len(entry[1]) for entry in logits] == [BATCH, BATCH, BATCH]
    np.testing.assert_allclose(logits[1][1], training_mode, atol=1e-5)
    assert int(gan.d_optimizer.iterations) == 1 and int(gan.g_optimizer.iterations) == 1


@pytest.mark.parametrize(("update_scheme", "d_per_g"), [("notebook", 2), ("ganlib", 1)])
def test_fit_makes_two_discriminator_updates_per_step_with_the_notebook_scheme(
    update_scheme, d_per_g
):
    gan = conv_gan(update_scheme=update_scheme)
    assert gan.update_scheme == gan.spec.update_scheme == update_scheme
    history = gan.fit(dataset(images(24, 32), 8), epochs=1, verbose=0)
    assert int(gan.global_step) == 3 and int(gan.g_optimizer.iterations) == 3
    assert int(gan.d_optimizer.iterations) == d_per_g * 3
    assert all(np.isfinite(history.history[key]).all() for key in ("d_loss", "g_loss"))


# --------------------------------------------------------------------------- the notebook's own loop


def test_the_notebook_scheme_trains_the_same_weights_as_the_notebooks_train_on_batch_loop():
    """Same start, same real batches and noise, plain SGD: `fit` ends on the loop's weights.

    The notebook's loop (train_on_batch_loop) draws its real batches and noise from
    np.random.default_rng(seed); the GAN is given those same draws. The discriminator
    has no Dropout, so nothing else is random. Any change of the iteration (training-mode
    generation, one combined update, as many generator vectors as real images) moves
    the weights far more than the tolerance.
    """
    steps, seed, latent, rate = 3, 7, 100, 0.05
    keras.utils.set_random_seed(0)
    generator, discriminator = build_pair("improved", 32, width=0.125, dropout=False)
    our_g, our_d = build_pair("improved", 32, width=0.125, dropout=False)
    our_g.set_weights(generator.get_weights())
    our_d.set_weights(discriminator.get_weights())
    start = discriminator.get_weights() + generator.get_weights()
    data = images(20, 32, seed=1)

    # the loop's draws, in its order: real indices, D's noise, G's noise (2x), per iteration
    rng = np.random.default_rng(seed)
    real, d_noise, g_noise = [], [], []
    for _ in range(steps):
        real.append(data[rng.integers(0, len(data), BATCH)])
        d_noise.append(rng.standard_normal((BATCH, latent), dtype=np.float32))
        g_noise.append(rng.standard_normal((2 * BATCH, latent), dtype=np.float32))
    train_on_batch_loop(
        generator,
        discriminator,
        data,
        iterations=steps,
        batch_size=BATCH,
        d_optimizer=keras.optimizers.SGD(rate),
        g_optimizer=keras.optimizers.SGD(rate),
        seed=seed,
    )

    class Scripted(GAN):
        def noise(self, local_batch, stream=D_NOISE):
            table = self.d_table if stream == D_NOISE else self.g_table
            return tf.gather(table, tf.convert_to_tensor(self.global_step))

    gan = Scripted(our_g, our_d, seed=0)
    object.__setattr__(gan, "d_table", tf.constant(np.stack(d_noise)))
    object.__setattr__(gan, "g_table", tf.constant(np.stack(g_noise)))
    gan.compile(
        keras.optimizers.SGD(rate),
        keras.optimizers.SGD(rate),
        jit_compile=False,
        update_scheme="notebook",
    )
    gan.fit(dataset(np.concatenate(real), BATCH), epochs=1, verbose=0)
    assert int(gan.d_optimizer.iterations) == 2 * steps

    theirs = discriminator.get_weights() + generator.get_weights()  # moving statistics too
    ours = our_d.get_weights() + our_g.get_weights()
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6)
    moved = max(np.abs(a - b).max() for a, b in zip(theirs, start, strict=True))
    assert moved > 0.05  # far above the tolerance: the comparison can tell schemes apart


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "options",
    [dict(loss="hinge"), dict(loss="wgan-gp"), dict(r1_gamma=1.0)],
)
def test_compile_refuses_the_notebook_scheme_with_another_loss_or_r1(options):
    generator, discriminator = build_pair("mlp", 8, latent_dim=8, width=0.125)
    gan = GAN(generator, discriminator, seed=0)
    with pytest.raises(ValueError, match='update_scheme="notebook" is the anime-face notebook'):
        gan.compile(update_scheme="notebook", jit_compile=False, **options)
    gan.compile(jit_compile=False, **options)  # the same options with ganlib's step are fine


def test_compile_refuses_the_notebook_scheme_with_an_augmenter():
    generator, discriminator = build_pair("improved", 32, width=0.125)
    gan = GAN(generator, discriminator, augmenter=AdaptiveAugmenter(seed=0), seed=0)
    with pytest.raises(ValueError, match="without another loss, R1 or an augmenter"):
        gan.compile(update_scheme="notebook", jit_compile=False)
    with pytest.raises(ValueError, match="augmenter"):
        GAN.from_preset(
            "improved", 32, width=0.125, augmenter=AdaptiveAugmenter(), update_scheme="notebook"
        )


@pytest.mark.parametrize("scheme", ["keras", "Notebook", None, ""])
def test_an_unknown_update_scheme_is_refused(scheme):
    generator, discriminator = build_pair("mlp", 8, latent_dim=8, width=0.125)
    gan = GAN(generator, discriminator, seed=0)
    with pytest.raises(ValueError, match="update_scheme must be one of ganlib, notebook"):
        gan.compile(update_scheme=scheme, jit_compile=False)


SMALL = dict(image_size=32, width=0.125, batch_size=8, verbose=0, grid=(1, 1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(update_scheme="keras"), "update_scheme must be one of ganlib, notebook"),
        (dict(update_scheme="notebook", loss="hinge"), 'update_scheme="notebook"'),
        (dict(update_scheme="notebook", r1_gamma=0.5), 'update_scheme="notebook"'),
        (dict(update_scheme="notebook", ada=True), 'update_scheme="notebook"'),
    ],
)
def test_train_refuses_a_bad_update_scheme_before_anything_is_written(tmp_path, options, message):
    faces = toy_faces(16, 32)[0]
    with pytest.raises(ValueError, match=message):
        training.train(faces, **SMALL, epochs=1, run_dir=tmp_path / "r", **options)
    assert not (tmp_path / "r").exists()


def test_train_records_the_update_scheme_and_refuses_to_resume_with_another(tmp_path):
    faces = toy_faces(16, 32)[0]
    run = tmp_path / "run"
    gan, history = training.train(faces, **SMALL, epochs=1, run_dir=run, update_scheme="notebook")
    assert history["epoch"] == [0]
    assert gan.update_scheme == "notebook"
    assert int(gan.d_optimizer.iterations) == 2 * int(gan.g_optimizer.iterations) == 4
    info = json.loads((run / "run.json").read_text())["spec"]
    assert info["update_scheme"] == "notebook"
    assert training.load_run(run).update_scheme == "notebook"

    before = (run / "run.json").read_text()
    said = "update_scheme: the run has 'notebook', this call asks for 'ganlib'"
    with pytest.raises(ValueError, match=re.escape(said)) as error:
        training.train(faces, **SMALL, epochs=2, run_dir=run)  # the default scheme
    assert str(error.value).startswith(f"run folder {run} was made with other settings")
    assert (run / "run.json").read_text() == before
    assert len(training.read_history(run / "history.csv")) == 1  # nothing was trained
    # with its own scheme it resumes
    _, history = training.train(faces, **SMALL, epochs=2, run_dir=run, update_scheme="notebook")
    assert history["epoch"] == [0, 1]
