"""Tests for the cures of mode collapse: GAN losses, R1, spectral norm, minibatch std, options.

Each cure is checked against its definition, computed here on its own: the losses and
penalties in numpy from fixed weights and inputs, R1 against central differences.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganlib import models, training
from ganlib.cli import main
from ganlib.data import toy_faces
from ganlib.training import GAN, preset_spec, runs
from ganlib.training.gan import GP_MIX

from ._helpers import run_script

N, SIDE, LATENT, HIDDEN = 5, 4, 2, 3


def _tiny_pair(dtype="float32", seed=0):
    """A dense generator noise (n, 2) -> (n, 4, 4, 1) and a tanh MLP discriminator, fixed weights."""
    rng = np.random.default_rng(seed)
    z = keras.Input((LATENT,))
    g = keras.layers.Dense(SIDE * SIDE, activation="tanh", name="project")(z)
    g = keras.layers.Reshape((SIDE, SIDE, 1))(g)
    generator = keras.Model(z, g)
    x = keras.Input((SIDE, SIDE, 1))
    h = keras.layers.Flatten(dtype=dtype)(x)
    h = keras.layers.Dense(HIDDEN, activation="tanh", name="hidden", dtype=dtype)(h)
    logit = keras.layers.Dense(1, name="logit", dtype=dtype)(h)
    out = keras.layers.Activation("sigmoid", dtype=dtype)(logit)
    discriminator = keras.Model(x, out)
    for model in (generator, discriminator):
        model.set_weights([rng.normal(0, 0.7, w.shape) for w in model.get_weights()])
    return generator, discriminator


def _tiny_gan(seed=3, **compile_options):
    generator, discriminator = _tiny_pair()
    gan = GAN(generator, discriminator, seed=seed, value_range=(-1, 1))
    gan.compile(jit_compile=False, **compile_options)
    return gan


def _inputs(seed=1):
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, (N, SIDE, SIDE, 1)).astype(np.float32)
    noise = rng.normal(size=(N, LATENT)).astype(np.float32)
    return real, noise


def _numpy_nets(gan):
    """(G, d, grad_x d) in float64 numpy from the GAN's weights: d is the logit."""
    gk, gb = (w.astype(np.float64) for w in gan.generator.get_weights())
    w1, b1, w2, b2 = (w.astype(np.float64) for w in gan.discriminator.get_weights())

    def generate(noise):
        return np.tanh(noise @ gk + gb).reshape(-1, SIDE, SIDE, 1)

    def logit(x):
        return (np.tanh(x.reshape(len(x), -1) @ w1 + b1) @ w2 + b2)[:, 0]

    def gradient(x):
        h = np.tanh(x.reshape(len(x), -1) @ w1 + b1)
        return ((1 - h**2) * w2[:, 0]) @ w1.T  # (n, 16): d logit / d pixel

    return generate, logit, gradient


def _softplus(x):
    return np.logaddexp(0.0, x)


@pytest.mark.parametrize("loss", ["bce", "hinge", "wgan-gp"])
def test_each_loss_is_its_formula(loss):
    gan = _tiny_gan(loss=loss, gp_weight=2.5)
    real, noise = _inputs()
    generate, d, grad = _numpy_nets(gan)
    fake = generate(noise.astype(np.float64))
    d_real, d_fake = d(real.astype(np.float64)), d(fake)
    if loss == "bce":  # -log sigmoid(t) = softplus(-t), -log(1 - sigmoid(t)) = softplus(t)
        d_expected = 0.5 * (_softplus(-d_real).mean() + _softplus(d_fake).mean())
        g_expected = _softplus(-d_fake).mean()
    elif loss == "hinge":
        d_expected = np.maximum(0, 1 - d_real).mean() + np.maximum(0, 1 + d_fake).mean()
        g_expected = -d_fake.mean()
    else:
        # The interpolation weights: the GAN's stream GP_MIX at step 0, drawn here by hand.
        counter = -(4 * 0 + (GP_MIX - 4)) - 1
        eps = tf.random.stateless_uniform([N, 1, 1, 1], seed=[3, counter]).numpy()
        assert len(np.unique(eps)) == N and (0 < eps).all() and (eps < 1).all()
        mixed = eps * real + (1 - eps) * fake
        norms = np.linalg.norm(grad(mixed), axis=1)
        d_expected = d_fake.mean() - d_real.mean() + 2.5 * np.mean((norms - 1) ** 2)
        g_expected = -d_fake.mean()
        assert 2.5 * np.mean((norms - 1) ** 2) > 1e-3  # the penalty counts in this check
    assert float(gan.discriminator_loss(real, noise)) == pytest.approx(d_expected, rel=1e-5)
    assert float(gan.generator_loss(noise)) == pytest.approx(g_expected, rel=1e-5)


def test_the_gradient_penalty_matches_a_tape_on_the_same_interpolates():
    gan = _tiny_gan(loss="wgan-gp", gp_weight=1.0)
    plain = _tiny_gan(loss="wgan-gp", gp_weight=0.0)
    real, noise = _inputs(seed=4)
    fake = gan.generator(noise).numpy()
    counter = -(4 * 0 + (GP_MIX - 4)) - 1
    eps = tf.random.stateless_uniform([N, 1, 1, 1], seed=[3, counter])
    mixed = tf.constant(eps * real + (1 - eps) * fake)
    logit = keras.Model(gan.discriminator.inputs, gan.discriminator.get_layer("logit").output)
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        values = logit(mixed)
    gradients = tape.gradient(values, mixed).numpy().reshape(N, -1)
    penalty = np.mean((np.sqrt((gradients**2).sum(axis=1)) - 1) ** 2)
    difference = float(gan.discriminator_loss(real, noise)) - float(
        plain.discriminator_loss(real, noise)
    )
    assert difference == pytest.approx(penalty, rel=1e-4)


def test_r1_is_half_gamma_times_the_mean_squared_gradient_by_finite_differences():
    generator, discriminator = _tiny_pair(dtype="float64", seed=2)
    real, noise = _inputs(seed=5)
    losses = {}
    for gamma in (0.0, 3.0):
        gan = GAN(generator, discriminator, seed=3, value_range=(-1, 1))
        gan.compile(jit_compile=False, r1_gamma=gamma)
        losses[gamma] = float(gan.discriminator_loss(real, noise))
    _, d, _ = _numpy_nets(gan)
    x, h = real.astype(np.float64).reshape(N, -1), 1e-5
    gradient = np.zeros_like(x)
    for i in range(x.shape[1]):  # central differences, one pixel at a time
        step = np.zeros_like(x)
        step[:, i] = h
        up, down = (v.reshape(real.shape) for v in (x + step, x - step))
        gradient[:, i] = (d(up) - d(down)) / (2 * h)
    expected = 3.0 / 2 * np.mean((gradient**2).sum(axis=1))
    assert expected > 1e-2
    assert losses[3.0] - losses[0.0] == pytest.approx(expected, rel=1e-4)


def test_the_steps_minimise_the_exposed_losses():
    gan = _tiny_gan(loss="hinge", r1_gamma=1.0)
    real, noise = _inputs()
    d_loss = float(gan.discriminator_loss(real, noise))
    assert float(gan.discriminator_step(real, noise)["d_loss"]) == pytest.approx(d_loss, rel=1e-6)
    assert float(gan.discriminator_loss(real, noise)) < d_loss  # the step went downhill
    g_loss = float(gan.generator_loss(noise))
    assert float(gan.generator_step(noise)["g_loss"]) == pytest.approx(g_loss, rel=1e-6)
    assert float(gan.generator_loss(noise)) < g_loss


def test_bce_default_is_unchanged_and_the_label_tricks_are_refused_elsewhere():
    default, explicit = _tiny_gan(), _tiny_gan(loss="bce", gp_weight=5.0)
    real, noise = _inputs()
    assert float(default.discriminator_loss(real, noise)) == float(
        explicit.discriminator_loss(real, noise)
    )
    with pytest.raises(ValueError, match="'bce' loss only"):
        _tiny_gan(loss="hinge", label_smoothing=0.1)
    with pytest.raises(ValueError, match="'bce' loss only"):
        _tiny_gan(loss="wgan-gp", label_noise=0.05)
    with pytest.raises(ValueError, match="unknown loss 'wgan'; choose one of bce, hinge"):
        _tiny_gan(loss="wgan")
    with pytest.raises(ValueError, match="r1_gamma must be a number >= 0"):
        _tiny_gan(r1_gamma=-1.0)


def _largest_singular_values(discriminator):
    """{layer name: largest singular value} of each wrapped kernel, as (kh*kw*cin, cout)."""
    values = {}
    for layer in discriminator.layers:
        if isinstance(layer, keras.layers.SpectralNormalization):
            kernel = keras.ops.convert_to_numpy(layer.layer.kernel).astype(np.float64)
            matrix = kernel.reshape(-1, kernel.shape[-1])
            values[layer.name] = np.linalg.svd(matrix, compute_uv=False)[0]
    return values


def test_spectral_norm_keeps_each_kernel_at_singular_value_one_while_training():
    keras.utils.set_random_seed(0)
    gan = GAN.from_preset("improved", 32, width=0.125, seed=0, spectral_norm=True)
    real = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    gan.fit(real, batch_size=8, epochs=1, verbose=0)
    assert int(gan.global_step.numpy()) == 2
    for _ in range(5):  # more power iterations: the layer's u converges towards the top one
        gan.discriminator(real[:8], training=True)
    values = _largest_singular_values(gan.discriminator)
    assert set(values) == {"conv_0", "conv_1", "conv_2", "dense", "logit"}
    for name, value in values.items():
        assert value == pytest.approx(1.0, rel=0.03), name
    # Without the wrapper the kernels are far from 1: the check above can fail.
    keras.utils.set_random_seed(0)
    plain = models.build_pair("improved", 32, width=0.125)[1]
    sigmas = [
        np.linalg.svd(layer.kernel.numpy().reshape(-1, layer.kernel.shape[-1]), compute_uv=False)[0]
        for layer in plain.layers
        if hasattr(layer, "kernel")
    ]
    assert max(abs(s - 1) for s in sigmas) > 0.2


# --------------------------------------------------------------------------- as options

CURES = dict(loss="hinge", r1_gamma=1.0, spectral_norm=True, minibatch_std=True)
SMALL = dict(model="improved", image_size=32, width=0.125, batch_size=8, verbose=0, grid=(1, 1))


def test_train_runs_with_the_cures_records_them_and_refuses_another_architecture(tmp_path):
    faces = toy_faces(16, 32)[0]
    run = tmp_path / "run"
    gan, history = training.train(faces, **SMALL, **CURES, epochs=1, steps_per_epoch=2, run_dir=run)
    assert np.isfinite(history["d_loss"]).all() and int(gan.global_step.numpy()) == 2
    assert (gan.gan_loss, gan.r1_gamma) == ("hinge", 1.0)
    names = [layer.name for layer in gan.discriminator.layers]
    assert "minibatch_std" in names
    assert isinstance(gan.discriminator.get_layer("logit"), keras.layers.SpectralNormalization)
    info = json.loads((run / "run.json").read_text())["spec"]
    assert (info["loss"], info["r1_gamma"]) == (CURES["loss"], CURES["r1_gamma"])
    assert info["model_options"] == {"spectral_norm": True, "minibatch_std": True}
    assert info["gp_weight"] == 10.0 and info["label_smoothing"] == 0.0
    # the architecture must match to resume; the weights then load
    for change in ("spectral_norm", "minibatch_std"):
        other = {**CURES, change: False}
        with pytest.raises(ValueError, match=f"model_options: the run has .*'{change}': True"):
            training.train(faces, **SMALL, **other, epochs=2, steps_per_epoch=2, run_dir=run)
    loaded = training.load_run(run)
    assert loaded.gan_loss == "hinge" and "minibatch_std" in [
        layer.name for layer in loaded.discriminator.layers
    ]
    for a, b in zip(loaded.discriminator.weights, gan.discriminator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_run_json_from_before_the_cures_resumes_as_without_them(tmp_path):
    old = dict(model="improved", image_size=32, width=0.125, latent_dim=100, ema=None, ada=False)
    (tmp_path / "run.json").write_text(json.dumps(old))  # no loss, penalties or build flags
    spec = preset_spec("improved", image_size=32, width=0.125, seed=0)
    record = {"spec": spec.to_json(), "data_fingerprint": "f"}
    runs._prepare_run(tmp_path, spec, record, resume=True)  # no ValueError
    (tmp_path / "run.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="model_options: the run has {}"):
        runs._prepare_run(
            tmp_path, spec.replace(model_options={"spectral_norm": True}), record, True
        )


def test_train_checks_the_loss_options_before_writing_the_run(tmp_path):
    faces = np.zeros((16, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="'bce' loss only"):
        training.train(faces, **SMALL, loss="wgan-gp", label_smoothing=0.1, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_command_line_takes_the_cures(tmp_path, capsys):
    run = tmp_path / "run"
    command = ["train", "--data", "toy-faces:16", "--run", str(run), "--model", "improved"]
    command += ["--width", "0.125", "--image-size", "32", "--batch-size", "8", "--epochs", "1"]
    cures = ["--loss", "wgan-gp", "--gp-weight", "5", "--r1-gamma", "0.5", "--spectral-norm"]
    assert main([*command, *cures, "--minibatch-std", "--steps-per-epoch", "1"]) == 0
    info = json.loads((run / "run.json").read_text())["spec"]
    assert (info["loss"], info["gp_weight"], info["r1_gamma"]) == ("wgan-gp", 5.0, 0.5)
    assert info["model_options"] == {"spectral_norm": True, "minibatch_std": True}
    assert info["label_smoothing"] == 0.0
    capsys.readouterr()
    bad = ["--loss", "hinge", "--label-smoothing", "0.1"]
    assert main([*command, "--run", str(tmp_path / "other"), *bad]) == 2
    assert "'bce' loss only" in capsys.readouterr().err
    assert main([*command, "--run", str(tmp_path / "other"), "--r1-gamma", "-1"]) == 2
    assert "argument --r1-gamma: r1_gamma must be a number >= 0" in capsys.readouterr().err
    assert main([*command, "--run", str(tmp_path / "other"), "--loss", "wgan"]) == 2
    assert "invalid choice: 'wgan'" in capsys.readouterr().err


_TWO_REPLICAS = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from ganlib.models import build_pair
from ganlib.training import GAN

TWO = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
real = rng.uniform(-1, 1, (16, 8, 8, 3)).astype("float32")
noise = rng.normal(size=(16, 8)).astype("float32")
results = {}
for loss in ("hinge", "wgan-gp"):
    gans = []
    for strategy in (tf.distribute.get_strategy(), TWO):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            g, d = build_pair("mlp", 8, latent_dim=8, width=0.125)  # no BatchNorm, no Dropout
            gan = GAN(g, d, seed=3)
            gan.compile(jit_compile=False, loss=loss, r1_gamma=2.0)
        gans.append(gan)
    one = float(gans[0].discriminator_loss(real, noise))
    def half(values):
        return TWO.experimental_distribute_values_from_function(
            lambda context: values[8 * context.replica_id_in_sync_group :][:8]
        )
    parts = TWO.run(gans[1].discriminator_loss, args=(half(real), half(noise)))
    results[loss] = [one, sum(float(v) for v in TWO.experimental_local_results(parts))]
print(json.dumps(results))
"""


def test_the_losses_keep_the_global_batch_scaling_on_two_replicas():
    # Each replica's loss is its sum over the GLOBAL batch (interpolation weights
    # included), so the replicas' losses add up to the one-device loss.
    for one, two in run_script(_TWO_REPLICAS).values():
        assert two == pytest.approx(one, rel=1e-5)
