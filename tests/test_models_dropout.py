"""ReplicaDropout: Keras's Dropout on one device, each replica its own rows of the mask under
tf.distribute (chapter 5)."""

import json
import os
import re
import subprocess
import sys
import textwrap
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from ganlib import models
from ganlib.models import ReplicaDropout


def _layout(variable):
    return re.sub(r"seed_generator_\d+", "seed_generator", variable.path), tuple(variable.shape)


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("noise_shape", [None, (None, 1, None)])
@pytest.mark.parametrize("compiled", [False, True])
def test_one_device_draws_keras_dropouts_masks(noise_shape, compiled):
    x = np.random.default_rng(0).normal(size=(6, 5, 7)).astype("float32")
    ours = ReplicaDropout(0.3, noise_shape=noise_shape, seed=11)
    theirs = layers.Dropout(0.3, noise_shape=noise_shape, seed=11)
    call = tf.function if compiled else (lambda f: f)
    ours_call = call(lambda v: ours(v, training=True))
    theirs_call = call(lambda v: theirs(v, training=True))
    for _ in range(3):
        a, b = ours_call(x), theirs_call(x)
        assert _same_bits(a, b)
    assert not np.array_equal(a, x)  # it did drop
    assert _same_bits(ours.seed_generator.state, theirs.seed_generator.state)
    assert _same_bits(ours(x, training=False), x)


def test_the_discriminators_use_it_and_train_as_with_keras_dropout():
    for name, options in (("baseline", {}), ("improved", {}), ("improved", {"pooling": "flatten"})):
        keras.utils.set_random_seed(0)
        _, ours = models.build_pair(name, 32, width=0.125, **options)
        with mock.patch.object(models, "ReplicaDropout", layers.Dropout):
            keras.utils.set_random_seed(0)
            _, theirs = models.build_pair(name, 32, width=0.125, **options)
        dropouts = [layer for layer in ours.layers if isinstance(layer, layers.Dropout)]
        assert dropouts and all(type(layer) is ReplicaDropout for layer in dropouts)
        # The checkpoints' layout: the same variables in the same order (the seed
        # generators' names count up across the process, so their numbers differ here).
        assert [_layout(v) for v in ours.variables] == [_layout(v) for v in theirs.variables]
        x = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
        for _ in range(2):
            assert _same_bits(ours(x, training=True), theirs(x, training=True))
        assert models.visible_pixels(ours).shape == (32, 32)
    for make in (models.mlp_generator, models.baseline_generator, models.improved_generator):
        generator = make(32)
        assert not any(isinstance(layer, layers.Dropout) for layer in generator.layers)


def test_it_saves_and_loads_with_its_model(tmp_path):
    discriminator = models.improved_discriminator(32, width=0.125)
    path = tmp_path / "discriminator.keras"
    discriminator.save(path)
    loaded = keras.models.load_model(path)
    found = [layer for layer in loaded.layers if isinstance(layer, ReplicaDropout)]
    assert [(layer.name, layer.rate) for layer in found] == [
        ("conv_1_dropout", 0.25),
        ("dense_dropout", 0.5),
    ]
    x = np.random.default_rng(2).uniform(-1, 1, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x), discriminator(x))
    layer = ReplicaDropout(0.2, noise_shape=(None, 1), seed=5, name="d")
    assert ReplicaDropout.from_config(layer.get_config()).get_config() == layer.get_config()


class _Replica:
    """A stand-in for replica `replica_id_in_sync_group` of two (a tensor, as on a TPU)."""

    num_replicas_in_sync = 2

    def __init__(self, replica):
        self.replica_id_in_sync_group = replica


def test_each_replica_keeps_its_rows_of_the_global_mask_under_xla():
    # XLA cannot run under MirroredStrategy on logical CPUs (a replica's variable is on
    # another device), so the replica context is faked and the replica id is a tensor.
    # XLA draws other numbers than TensorFlow's kernels: one device's are XLA's too.
    x = np.random.default_rng(3).normal(size=(8, 6)).astype("float32")
    keras_dropout = layers.Dropout(0.5, seed=4)
    theirs = tf.function(lambda v: keras_dropout(v, training=True), jit_compile=True)(x)
    rows = []
    for replica in (0, 1):
        ours = ReplicaDropout(0.5, seed=4)

        @tf.function(jit_compile=True)
        def step(v, replica_id, ours=ours):
            with mock.patch.object(
                tf.distribute, "get_replica_context", return_value=_Replica(replica_id)
            ):
                return ours(v, training=True)

        rows.append(step(x[replica * 4 : replica * 4 + 4], tf.constant(replica)))
        assert ours.seed_generator.state.numpy().tolist() == [4, 1]
    assert _same_bits(np.concatenate(rows), theirs)
    assert not np.array_equal(rows[0] == 0, rows[1] == 0)


def test_a_gan_with_it_trains_under_xla():
    from ganlib.training import GAN

    keras.utils.set_random_seed(0)
    gan = GAN.from_preset("improved", 32, width=0.125, seed=0, jit_compile=True)
    assert any(isinstance(layer, ReplicaDropout) for layer in gan.discriminator.layers)
    x = np.random.default_rng(4).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    history = gan.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0).history
    assert all(np.isfinite(values).all() for values in history.values())
    assert int(gan.global_step.numpy()) == 2


_TWO_DEVICES = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from ganlib.models import ReplicaDropout, improved_discriminator

TWO = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
ONE_REPLICA = tf.distribute.MirroredStrategy(["/cpu:0"])
x = np.random.default_rng(0).normal(size=(8, 5, 6)).astype("float32")
results = {}


def split(strategy, batch):
    n = len(batch) // strategy.num_replicas_in_sync
    return strategy.experimental_distribute_values_from_function(
        lambda c: batch[c.replica_id_in_sync_group * n : (c.replica_id_in_sync_group + 1) * n])


def run(strategy, layer, batch):
    step = tf.function(lambda v: strategy.run(lambda w: layer(w, training=True), args=(v,)))
    values = strategy.experimental_local_results(step(split(strategy, batch)))
    return np.concatenate([np.asarray(v) for v in values])


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


for key, noise_shape in (("per_example", None), ("per_row", (None, 1, None)),
                         ("whole_batch", (1, None, None))):
    for dtype in ("float32", "float16"):
        for cls in (ReplicaDropout, keras.layers.Dropout):
            with TWO.scope():
                layer = cls(0.4, noise_shape=noise_shape, seed=7, dtype=dtype)
            one = keras.layers.Dropout(0.4, noise_shape=noise_shape, seed=7, dtype=dtype)
            calls = [(run(TWO, layer, x), np.asarray(one(x, training=True))) for _ in range(2)]
            name = f"{key}_{dtype}_{cls.__name__}"
            results[name + "_as_one_device"] = all(same_bits(a, b) for a, b in calls)
            results[name + "_replicas_differ"] = all(
                not np.array_equal(a[:4] == 0, a[4:] == 0) for a, _ in calls)

with ONE_REPLICA.scope():
    layer = ReplicaDropout(0.4, seed=7)
one = keras.layers.Dropout(0.4, seed=7)
results["one_replica"] = all(
    same_bits(run(ONE_REPLICA, layer, x), np.asarray(one(x, training=True))) for _ in range(2))

# The improved discriminator (Dropout, no BatchNorm) in training mode: two replicas on
# halves of a batch give what one device gives for the whole batch.
images = np.random.default_rng(1).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
keras.utils.set_random_seed(0)
single = improved_discriminator(32, width=0.125)
keras.utils.set_random_seed(0)
with TWO.scope():
    double = improved_discriminator(32, width=0.125)
gaps = [float(np.max(np.abs(run(TWO, double, images) - np.asarray(single(images, training=True)))))
        for _ in range(2)]
results["discriminator_gap"] = max(gaps)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def two_devices():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_TWO_DEVICES)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_replicas_draw_their_own_rows_of_one_devices_mask(two_devices):
    for dtype in ("float32", "float16"):
        for key in ("per_example", "per_row"):
            assert two_devices[f"{key}_{dtype}_ReplicaDropout_as_one_device"], (key, dtype)
            assert two_devices[f"{key}_{dtype}_ReplicaDropout_replicas_differ"], (key, dtype)
            # What it fixes: Keras's Dropout repeats one mask on each replica.
            assert not two_devices[f"{key}_{dtype}_Dropout_replicas_differ"], (key, dtype)
        # One mask for the whole batch (noise_shape (1, ...)) is one mask on every replica.
        assert two_devices[f"whole_batch_{dtype}_ReplicaDropout_as_one_device"]
        assert not two_devices[f"whole_batch_{dtype}_ReplicaDropout_replicas_differ"]


def test_one_replica_draws_keras_dropouts_masks(two_devices):
    assert two_devices["one_replica"]


def test_two_replicas_run_the_discriminator_as_one_device(two_devices):
    assert two_devices["discriminator_gap"] < 1e-5
