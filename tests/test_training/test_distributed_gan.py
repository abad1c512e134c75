"""GAN under tf.distribute.MirroredStrategy on two logical CPUs against one device (chapter 5).

Two logical CPUs must be set up before TensorFlow starts, so everything runs in one
subprocess (`_SCRIPT`) and the tests read its findings. With BatchNorm the weights of
two replicas cannot match one device's: each replica normalises by the statistics of its
own 8 images; what must match there is every random draw (Dropout's masks included).
"""

import pytest

from ._helpers import run_script

_SCRIPT = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from ganlib.augment import AdaptiveAugmenter
from ganlib.models import build_pair
from ganlib.training import GAN
from ganlib.training import gan as gan_module

ONE = tf.distribute.get_strategy()
TWO = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
results = {}


def make(strategy, model, size, augment=True, ema=0.9):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        # integration_steps so large that p stays at 0.5 whatever the accuracy
        augmenter = AdaptiveAugmenter(seed=0, integration_steps=10**9) if augment else None
        kwargs = {"latent_dim": 8} if model == "mlp" else {}
        gan = GAN.from_preset(model, size, width=0.125, ema=ema, augmenter=augmenter,
                              seed=3, jit_compile=False, **kwargs)
    if augmenter is not None:
        augmenter.probability.assign(0.5)
    return gan


def replicas(fn):
    # fn() run in each replica, the replicas' results concatenated in replica order
    values = TWO.experimental_local_results(TWO.run(fn))
    return np.concatenate([np.asarray(v) for v in values])


def gap(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


# (a) The BatchNorm model: each replica's images get their own augmentations, those a
# single device gives the same global batch; the noise too.
one, two = make(ONE, "improved", 32), make(TWO, "improved", 32)
image = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
same16 = tf.constant(np.repeat(image, 16, axis=0))
same8 = tf.constant(np.repeat(image, 8, axis=0))
streams = [gan_module.D_REAL_AUGMENT, gan_module.D_FAKE_AUGMENT, gan_module.G_FAKE_AUGMENT]
single = [one._augment(same16, s).numpy() for s in streams]
split = [replicas(lambda s=s: two._augment(same8, s)) for s in streams]
results["augment_gap"] = gap(single, split)
results["replica_slices_differ"] = all(not np.allclose(x[:8], x[8:]) for x in split)
results["streams_differ"] = not np.allclose(single[0], single[1]) and not np.allclose(single[1], single[2])
noise = [gan_module.D_NOISE, gan_module.G_NOISE]
results["noise_gap"] = gap([one.noise(16, s).numpy() for s in noise],
                           [replicas(lambda s=s: two.noise(8, s)) for s in noise])

# Training it: BatchNorm sees 8 images per replica rather than 16, so the weights
# part ways; check it runs, and that the EMA copy's statistics, refreshed under
# the strategy, are those one device computes for the same EMA weights.
x = np.random.default_rng(1).uniform(-1, 1, (32, 32, 32, 3)).astype("float32")
data = tf.data.Dataset.from_tensor_slices(x).batch(16, drop_remainder=True)
history = two.fit(data, epochs=1, verbose=0).history
results["bn_finite"] = all(np.isfinite(v).all() for v in history.values())
results["bn_steps"] = int(two.global_step.numpy())
samples = two.generate(4, seed=0)  # refreshes the EMA statistics under the strategy
results["bn_samples_finite"] = bool(np.isfinite(samples).all())
for mine, theirs in zip(one.ema_generator.weights, two.ema_generator.weights):
    mine.assign(theirs.numpy())
one.refresh_ema_statistics()
results["ema_statistics_gap"] = gap(
    [w.numpy() for w in one.ema_generator.non_trainable_weights],
    [w.numpy() for w in two.ema_generator.non_trainable_weights],
)
results["ema_samples_gap"] = gap([samples], [one.ema_generator(
    np.random.default_rng(0).standard_normal((4, one.latent_dim), dtype=np.float32)).numpy()])

# (b) Without BatchNorm or Dropout (the dense pair) two replicas train what one device
# trains, augmenter (p = 0.5) and EMA included.
x = np.random.default_rng(2).uniform(-1, 1, (48, 8, 8, 3)).astype("float32")
runs = []
for strategy in (ONE, TWO):
    gan = make(strategy, "mlp", 8)
    data = tf.data.Dataset.from_tensor_slices(x).batch(16, drop_remainder=True)
    logs = gan.fit(data, epochs=2, verbose=0).history
    weights = [w.numpy() for w in gan.generator.weights + gan.discriminator.weights
               + gan.ema_generator.weights + [gan.augmenter.probability]]
    runs.append((logs, weights))
results["mlp_weights_gap"] = gap(runs[0][1], runs[1][1])
results["mlp_logs_gap"] = max(abs(a - b) for k in runs[0][0] for a, b in zip(runs[0][0][k], runs[1][0][k]))
results["mlp_moved"] = gap(runs[0][1], [np.zeros_like(w) for w in runs[0][1]])

# (c) A NaN loss on one replica only, either one, is caught at its step. It must come
# from the generator step: a NaN in the discriminator step would reach every replica
# through the summed gradients before the generator step. An augmenter puts it into
# one replica's third call of each step (real, fake, then the generator step's fake);
# the discriminator is linear because TensorFlow's fused Dense + LeakyReLU kernel turns
# NaN into 0.
import threading


class PoisonGeneratorStep(keras.layers.Layer):
    calls = threading.local()  # each replica traces the step in a thread of its own

    def __init__(self, replica):
        super().__init__()
        self.replica = replica
        self.probability = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, images, training=True):
        count = getattr(self.calls, "count", 0)
        self.calls.count = count + 1
        if count % 3 != 2:
            return images
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return images + tf.where(tf.equal(replica, self.replica), np.nan, 0.0)

    def update(self, real_accuracy):
        pass


caught = []
for replica in (0, 1):
    keras.utils.set_random_seed(0)
    with TWO.scope():
        generator, _ = build_pair("mlp", 8, latent_dim=8, width=0.125)
        linear = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                                   keras.layers.Dense(1, name="logit")])
        gan = GAN(generator, linear, augmenter=PoisonGeneratorStep(replica), seed=3)
        gan.compile(jit_compile=False)
    x = np.random.default_rng(3).uniform(-1, 1, (16, 8, 8, 3)).astype("float32")
    try:
        history = gan.fit(tf.data.Dataset.from_tensors(x), epochs=1, verbose=0).history
        caught.append(["not caught", history["g_loss"], history["d_loss"]])
    except FloatingPointError as error:
        caught.append([int(gan.nonfinite_step.numpy()), "training step 1" in str(error)])
results["nan_caught"] = caught
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def results():
    return run_script(_SCRIPT, timeout=600)


def test_each_replica_augments_its_own_slice_of_the_global_draw(results):
    assert results["replica_slices_differ"]
    assert results["streams_differ"]
    assert results["augment_gap"] < 1e-5
    assert results["noise_gap"] == 0.0


def test_batch_norm_model_trains_and_refreshes_its_ema_statistics_under_the_strategy(results):
    assert results["bn_finite"] and results["bn_steps"] == 2 and results["bn_samples_finite"]
    assert results["ema_statistics_gap"] < 1e-4
    assert results["ema_samples_gap"] < 1e-4


def test_two_replicas_train_what_one_device_trains_with_augmentation(results):
    assert results["mlp_moved"] > 1e-3
    assert results["mlp_weights_gap"] < 1e-5 and results["mlp_logs_gap"] < 1e-5


def test_a_nan_on_either_replica_stops_training_at_its_step(results):
    assert results["nan_caught"] == [[0, True], [0, True]]
