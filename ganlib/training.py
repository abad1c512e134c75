"""Training: the GAN model, its presets, the first design's loop, callbacks, checkpoints and runs.

`GAN` is a `keras.Model` whose `train_step` makes one discriminator update and one
generator update, so `fit()`, its callbacks, progress bar and `tf.distribute` all work.
`train()` (and `python -m ganlib train`) ties a dataset, a preset and a run folder
together: sample grids every epoch, checkpoints that survive a killed process,
`history.csv`, and resuming where the last run stopped.

A run folder holds::

    RUN/run.json              what was trained (model, size, width, latent size, data, seed)
    RUN/history.csv           one row per finished epoch, `epoch` counted from 0
    RUN/samples/epoch_XXXX.png  a fixed-noise grid per epoch
    RUN/checkpoints/ckpt-STEP.npz  the last `keep` checkpoints (weights, optimizer states, counters)
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import glob
import io
import json
import math
import os
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganlib import models as _models

IMAGE_SIZES = (32, 64)

# Optimizer and batch settings named after where they come from. Learning rates are
# Adam's; `batch_size` is the number of real images per update.
PRESETS = {
    "mlp": {
        "model": "mlp",
        "d_learning_rate": 2e-4,
        "g_learning_rate": 2e-4,
        "beta_1": 0.5,
        "batch_size": 64,
        "label_smoothing": 0.0,
        "label_noise": 0.0,
        "source": "chapter 1's dense GAN with the DCGAN paper's Adam settings (2e-4, beta_1 0.5)",
    },
    "baseline": {
        "model": "baseline",
        "d_learning_rate": 1e-4,
        "g_learning_rate": 1e-4,
        "beta_1": 0.9,
        "batch_size": 32,
        "label_smoothing": 0.0,
        "label_noise": 0.05,
        "source": "the Keras CelebA example: Adam(learning_rate=0.0001) for both networks "
        "with Keras's default beta_1 (0.9), 0.05 uniform noise on the labels",
    },
    "improved": {
        "model": "improved",
        "d_learning_rate": 1e-4,
        "g_learning_rate": 2e-4,
        "beta_1": 0.5,
        "batch_size": 32,
        "label_smoothing": 0.0,
        "label_noise": 0.0,
        "source": "the anime design's prose: Adam with beta_1 0.5, the generator's learning "
        "rate twice the discriminator's",
    },
    "improved_as_run": {
        "model": "improved",
        "d_learning_rate": 1e-4,
        "g_learning_rate": 1e-4,
        "beta_1": 0.5,
        "batch_size": 32,
        "label_smoothing": 0.0,
        "label_noise": 0.0,
        "source": "what the anime design's notebook actually ran: Adam 1e-4 and beta_1 0.5 "
        "for both networks",
    },
    "cifar": {
        "model": "cifar",
        "d_learning_rate": 2e-4,
        "g_learning_rate": 2e-4,
        "beta_1": 0.5,
        "batch_size": 128,
        "label_smoothing": 0.0,
        "label_noise": 0.0,
        "source": "the CIFAR design: Adam 2e-4 for both networks, batch 128 "
        "(beta_1 0.5, the DCGAN paper's value)",
    },
}

# The GAN's own logged values, in the order history.csv shows them.
METRIC_NAMES = ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "aug_p")


# --------------------------------------------------------------------------- devices


def _accelerator():
    """ "tpu", "gpu" or "cpu": what the default devices of this process are."""
    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    if tf.config.list_logical_devices("GPU"):
        return "gpu"
    return "cpu"


_tpu_strategy = None


def strategy():
    """The tf.distribute strategy for this machine.

    TPUStrategy on a Colab/Cloud TPU, MirroredStrategy over all GPUs when there
    are two or more, otherwise the default (one-device) strategy. Build the GAN
    and its optimizers under `strategy().scope()`; `fit` then splits each global
    batch across the replicas.
    """
    global _tpu_strategy
    if _tpu_strategy is not None:  # connecting again would wipe the TPU's memory
        return _tpu_strategy
    if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME") or glob.glob("/dev/accel*"):
        try:
            tpu = "" if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME") else "local"
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            _tpu_strategy = tf.distribute.TPUStrategy(resolver)
            return _tpu_strategy
        except (ValueError, RuntimeError, tf.errors.OpError):
            pass  # not a usable TPU after all: fall through to GPUs or the CPU
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= 2:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def _choice(value, what):
    if value is True:
        return "on"
    if value is False or value is None:
        return "off"
    if value not in ("auto", "on", "off"):
        raise ValueError(f"{what} must be 'auto', 'on' or 'off', got {value!r}")
    return value


def mixed_precision_policy(mode="auto", accelerator=None):
    """Keras dtype policy name for `mode` ("auto", "on", "off") on `accelerator`.

    auto: mixed_float16 on a GPU, mixed_bfloat16 on a TPU, float32 on the CPU.
    on: mixed_bfloat16 on a TPU, mixed_float16 elsewhere. off: float32.
    """
    mode = _choice(mode, "mixed_precision")
    accelerator = accelerator or _accelerator()
    if mode == "off" or (mode == "auto" and accelerator == "cpu"):
        return "float32"
    return "mixed_bfloat16" if accelerator == "tpu" else "mixed_float16"


def use_xla(mode="auto", accelerator=None):
    """Whether to jit-compile the training step: auto means on GPUs and TPUs only.

    On a 2-core CPU, XLA made the improved model's training step about 2.8 times slower.
    """
    mode = _choice(mode, "xla")
    accelerator = accelerator or _accelerator()
    return mode == "on" or (mode == "auto" and accelerator != "cpu")


@contextlib.contextmanager
def _dtype_policy(name):
    """Build models under the global dtype policy `name`, then put the old one back."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# --------------------------------------------------------------------------- the model


def discriminator_logits(discriminator):
    """A model sharing `discriminator`'s weights that outputs its logit, float (n, 1).

    Uses the layer named "logit" (every ganlib discriminator has one); otherwise the
    input of a final sigmoid Activation layer, the pre-activation of a final sigmoid
    Dense layer, or the output itself when the model ends linear.
    """
    inputs = discriminator.inputs
    inputs = inputs[0] if len(inputs) == 1 else inputs  # a bare tensor in, as the model is called
    names = [layer.name for layer in discriminator.layers]
    if "logit" in names:
        return keras.Model(inputs, discriminator.get_layer("logit").output)
    last = discriminator.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "linear")
    if activation == "linear":
        return discriminator
    if activation == "sigmoid" and isinstance(last, keras.layers.Activation):
        return keras.Model(inputs, last.input)
    if activation == "sigmoid" and isinstance(last, keras.layers.Dense):
        return _DenseLogits(keras.Model(inputs, last.input), last)
    raise ValueError(
        f"cannot find the logit of {discriminator.name!r}: name its last linear layer "
        f"'logit' or end it in a sigmoid (it ends in {activation!r})"
    )


class _DenseLogits(keras.layers.Layer):
    """features(x) @ kernel + bias of a sigmoid Dense layer: its logit."""

    def __init__(self, features, dense):
        super().__init__(name=f"{dense.name}_logit")
        self.features, self.dense = features, dense
        self.built = True

    def call(self, inputs, training=None):
        x = self.features(inputs, training=training)
        x = keras.ops.matmul(x, self.dense.kernel)
        return x + self.dense.bias if self.dense.use_bias else x


def _uses_float16(model):
    return any(layer.compute_dtype == "float16" for layer in model.layers)


def _replicas():
    """(number of replicas, this replica's index) inside a train step."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 1, 0
    return context.num_replicas_in_sync, context.replica_id_in_sync_group


class GAN(keras.Model):
    """A generator and a discriminator trained against each other with `fit()`.

    generator: noise float32 (n, latent_dim) -> images (n, h, w, c) in its value range.
    discriminator: images -> (n, 1); the loss uses its logit (see `discriminator_logits`).
    fit() takes batches of real images, float32 (n, h, w, c) in the generator's value
    range, as `ganlib.data.image_dataset` makes them.

    augmenter: a layer called as augmenter(images, training=True) on everything the
    discriminator sees, with update(real_accuracy) and a `probability` variable
    (ganlib.augment.AdaptiveAugmenter). ema: keep an exponential moving average of the
    generator's weights with this decay (e.g. 0.99) in `ema_generator`, used by
    `generate()`. seed: the noise stream (None draws one from NumPy's global state).

    Each step draws its noise from (seed, step), the same numbers whether the global
    batch runs on one device or is split across replicas, and after a resume.
    """

    def __init__(
        self,
        generator,
        discriminator,
        latent_dim=None,
        augmenter=None,
        ema=None,
        seed=None,
        name="gan",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if ema is not None and not 0.0 < ema < 1.0:
            raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.99, or None; got {ema!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = _models.latent_dim(generator) if latent_dim is None else int(latent_dim)
        self.value_range = _models.value_range(generator)
        self.augmenter = augmenter
        if augmenter is not None and not augmenter.built:
            augmenter.build(tuple(discriminator.inputs[0].shape))
        self.ema = None if ema is None else float(ema)
        self.ema_generator = None
        if ema is not None:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
            self.ema_generator.trainable = False
        self._logits = discriminator_logits(discriminator)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        self.noise_seed = keras.Variable(
            int(seed), dtype="int64", trainable=False, name="noise_seed"
        )
        self.global_step = keras.Variable(
            0, dtype="int64", trainable=False, aggregation="only_first_replica", name="global_step"
        )
        # The first step (counted from 0) whose losses were NaN or infinite, -1 while none was.
        # Kept on the device so that spotting it costs no wait for each step's results.
        self.nonfinite_step = keras.Variable(
            -1,
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="nonfinite_step",
        )
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.real_accuracy_tracker = keras.metrics.Mean(name="d_real_accuracy")
        self.fake_accuracy_tracker = keras.metrics.Mean(name="d_fake_accuracy")
        self.aug_p_tracker = keras.metrics.Mean(name="aug_p")
        self.d_optimizer = self.g_optimizer = None
        self.label_smoothing = self.label_noise = 0.0
        # A plain dict (Keras would wrap an attribute dict into a tracked one).
        object.__setattr__(self, "preset", None)
        self._step_offset = 0  # steps of the current epoch done before this fit() call
        self.built = True  # the two networks are built; nothing to infer from data

    # ----------------------------------------------------------------- setup

    @classmethod
    def from_preset(
        cls,
        name,
        image_size,
        width=1.0,
        latent_dim=None,
        learning_rate=None,
        ema=None,
        augmenter=None,
        seed=None,
        jit_compile="auto",
        steps_per_execution=1,
        **model_options,
    ):
        """A compiled GAN with PRESETS[name]'s models (ganlib.models.build_pair) and optimizers.

        learning_rate: the discriminator's Adam learning rate; the generator's keeps the
        preset's ratio (2x for "improved"). `gan.preset` records every setting, batch size
        included. Call it under a strategy's scope to train on several devices.
        steps_per_execution: training steps per call into TensorFlow; more than one spares
        Keras's per-step work (see `steps_per_call`, which `train` uses).
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        preset = dict(PRESETS[name])
        if learning_rate is not None:
            if not learning_rate > 0:
                raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
            ratio = preset["g_learning_rate"] / preset["d_learning_rate"]
            preset["d_learning_rate"] = float(learning_rate)
            preset["g_learning_rate"] = float(learning_rate) * ratio
        generator, discriminator = _models.build_pair(
            preset["model"], image_size, latent_dim=latent_dim, width=width, **model_options
        )
        gan = cls(generator, discriminator, augmenter=augmenter, ema=ema, seed=seed)
        gan.compile(
            d_optimizer=keras.optimizers.Adam(preset["d_learning_rate"], beta_1=preset["beta_1"]),
            g_optimizer=keras.optimizers.Adam(preset["g_learning_rate"], beta_1=preset["beta_1"]),
            label_smoothing=preset["label_smoothing"],
            label_noise=preset["label_noise"],
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
        )
        preset.update(
            name=name,
            image_size=image_size,
            width=width,
            latent_dim=gan.latent_dim,
            ema=ema,
            augmenter=augmenter is not None,
        )
        object.__setattr__(gan, "preset", preset)
        return gan

    def compile(
        self,
        d_optimizer=None,
        g_optimizer=None,
        label_smoothing=0.0,
        label_noise=0.0,
        jit_compile="auto",
        steps_per_execution=1,
        **kwargs,
    ):
        """Set the two optimizers (default: Adam 2e-4, beta_1 0.5) and the label tricks.

        label_smoothing: real images are labelled 1 - label_smoothing (one-sided).
        label_noise: each discriminator label moves towards 0.5 by up to this much,
        uniformly at random (the Keras CelebA example uses 0.05).
        jit_compile: "auto" uses XLA on GPUs and TPUs only. With mixed_float16 models
        the optimizers are wrapped in LossScaleOptimizer.
        """
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if not 0.0 <= label_noise <= 0.5:
            raise ValueError(f"label_noise must be in [0, 0.5], got {label_noise!r}")
        if jit_compile == "auto":
            jit_compile = use_xla("auto")
        super().compile(
            optimizer=None,
            jit_compile=bool(jit_compile),
            steps_per_execution=steps_per_execution,
            **kwargs,
        )
        self.d_optimizer = self._loss_scaled(
            d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5), self.discriminator
        )
        self.g_optimizer = self._loss_scaled(
            g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5), self.generator
        )
        if self.d_optimizer is self.g_optimizer:
            raise ValueError("the generator and the discriminator need two optimizer objects")
        self.label_smoothing = float(label_smoothing)
        self.label_noise = float(label_noise)
        # Create the optimizers' variables now, under the model's strategy: made lazily
        # inside a replica's step they would not be mirrored.
        self.build_optimizers()

    @staticmethod
    def _loss_scaled(optimizer, model):
        if _uses_float16(model) and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def build_optimizers(self):
        """Create the optimizers' variables now (a checkpoint restore needs them)."""
        with self.distribute_strategy.scope():
            for optimizer, model in (
                (self.d_optimizer, self.discriminator),
                (self.g_optimizer, self.generator),
            ):
                if not optimizer.built:
                    optimizer.build(model.trainable_variables)

    @property
    def metrics(self):
        trackers = [
            self.d_loss_tracker,
            self.g_loss_tracker,
            self.real_accuracy_tracker,
            self.fake_accuracy_tracker,
        ]
        return trackers + ([self.aug_p_tracker] if self.augmenter is not None else [])

    # ----------------------------------------------------------------- the step

    def _random(self, kind, stream, shape_tail, local_batch):
        """This replica's slice of a global (batch, *shape_tail) draw seeded by (seed, step)."""
        replicas, replica = _replicas()
        seed = tf.stack(
            [
                tf.convert_to_tensor(self.noise_seed),
                tf.convert_to_tensor(self.global_step) * 4 + stream,
            ]
        )
        shape = tf.concat([[local_batch * replicas], shape_tail], axis=0)
        values = kind(shape, seed=seed)
        if replicas == 1:
            return values
        return values[replica * local_batch : (replica + 1) * local_batch]

    def noise(self, local_batch, stream=0):
        """Standard normal noise (local_batch, latent_dim) for this step; stream 0 or 1."""
        return self._random(tf.random.stateless_normal, stream, [self.latent_dim], local_batch)

    def _labels(self, local_batch):
        real = tf.fill([local_batch, 1], 1.0 - self.label_smoothing)
        fake = tf.zeros([local_batch, 1])
        if self.label_noise:
            uniform = tf.random.stateless_uniform
            real -= self.label_noise * self._random(uniform, 2, [1], local_batch)
            fake += self.label_noise * self._random(uniform, 3, [1], local_batch)
        return real, fake

    def _augment(self, images):
        return images if self.augmenter is None else self.augmenter(images, training=True)

    def _logit(self, images):
        return tf.cast(self._logits(images, training=True), tf.float32)

    def discriminator_step(self, real_images, noise):
        """One discriminator update on real_images and generator(noise); dict of local values."""
        batch = tf.shape(real_images)[0]
        replicas, _ = _replicas()
        global_batch = tf.cast(batch * replicas, tf.float32)
        fake_images = self.generator(noise, training=True)
        real_in, fake_in = self._augment(real_images), self._augment(fake_images)
        real_labels, fake_labels = self._labels(batch)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            real_logits, fake_logits = self._logit(real_in), self._logit(fake_in)
            real_losses = tf.nn.sigmoid_cross_entropy_with_logits(real_labels, real_logits)
            fake_losses = tf.nn.sigmoid_cross_entropy_with_logits(fake_labels, fake_logits)
            # The mean of the two halves' losses, over the global batch: replicas' gradients add up.
            loss = 0.5 * (tf.reduce_sum(real_losses) + tf.reduce_sum(fake_losses)) / global_batch
            scaled_loss = self.d_optimizer.scale_loss(loss)
        real_correct = tf.cast(real_logits > 0, tf.float32)
        real_accuracy = None
        if self.augmenter is not None:
            # p moves by the same amount on every replica: the accuracy over the global batch.
            correct = tf.reduce_sum(real_correct)
            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                # In cross-replica context (merge_call), like the optimizer's own reduction,
                # so every replica creates its collectives in the same order.
                correct = context.merge_call(
                    lambda strategy, value: strategy.reduce("SUM", value, axis=None),
                    args=(correct,),
                )
            real_accuracy = correct / global_batch
        gradients = tape.gradient(scaled_loss, variables)
        self.d_optimizer.apply_gradients(zip(gradients, variables, strict=True))
        if real_accuracy is not None:
            self.augmenter.update(real_accuracy)
        return {
            "d_loss": 0.5 * (tf.reduce_mean(real_losses) + tf.reduce_mean(fake_losses)),
            "d_real_accuracy": tf.reduce_mean(real_correct),
            "d_fake_accuracy": tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)),
        }

    def generator_step(self, noise):
        """One generator update: make the discriminator call generator(noise) real."""
        batch = tf.shape(noise)[0]
        replicas, _ = _replicas()
        global_batch = tf.cast(batch * replicas, tf.float32)
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            logits = self._logit(self._augment(self.generator(noise, training=True)))
            losses = tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logits), logits)
            loss = tf.reduce_sum(losses) / global_batch
            scaled_loss = self.g_optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, variables)
        self.g_optimizer.apply_gradients(zip(gradients, variables, strict=True))
        if self.ema_generator is not None:
            self.update_ema()
        return {"g_loss": tf.reduce_mean(losses)}

    def update_ema(self):
        """w_ema <- ema * w_ema + (1 - ema) * w for trainable weights; copy the rest (BN statistics)."""
        for ema_weight, weight in zip(
            self.ema_generator.weights, self.generator.weights, strict=True
        ):
            if weight.trainable:
                ema_weight.assign(self.ema * ema_weight + (1.0 - self.ema) * weight)
            else:
                ema_weight.assign(weight)

    def train_step(self, data):
        real_images = data[0] if isinstance(data, (tuple, list)) else data
        batch = tf.shape(real_images)[0]
        d_logs = self.discriminator_step(real_images, self.noise(batch, 0))
        g_logs = self.generator_step(self.noise(batch, 1))
        finite = tf.reduce_all(tf.math.is_finite(tf.stack([d_logs["d_loss"], g_logs["g_loss"]])))
        first_bad = tf.convert_to_tensor(self.nonfinite_step)
        step = tf.convert_to_tensor(self.global_step)
        self.nonfinite_step.assign(tf.where(finite | (first_bad >= 0), first_bad, step))
        self.global_step.assign_add(1)
        weight = tf.cast(batch, tf.float32)
        self.d_loss_tracker.update_state(d_logs["d_loss"], sample_weight=weight)
        self.g_loss_tracker.update_state(g_logs["g_loss"], sample_weight=weight)
        self.real_accuracy_tracker.update_state(d_logs["d_real_accuracy"], sample_weight=weight)
        self.fake_accuracy_tracker.update_state(d_logs["d_fake_accuracy"], sample_weight=weight)
        if self.augmenter is not None:
            self.aug_p_tracker.update_state(self.augmenter.probability)
        return {metric.name: metric.result() for metric in self.metrics}

    # ----------------------------------------------------------------- using it

    def generate(self, n, seed=None, batch_size=256):
        """n images, float32 (n, h, w, c) in `value_range`, from the EMA generator if there is one.

        seed: the same seed gives the same noise, hence the same images from the same weights.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        z = np.random.default_rng(seed).standard_normal((int(n), self.latent_dim), dtype=np.float32)
        generator = self.ema_generator if self.ema_generator is not None else self.generator
        if n == 0:
            return np.zeros((0, *generator.outputs[0].shape[1:]), np.float32)
        parts = [
            keras.ops.convert_to_numpy(generator(z[i : i + batch_size], training=False))
            for i in range(0, int(n), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def fit(self, x=None, y=None, *, resume=False, **kwargs):
        """keras.Model.fit, plus: stop with FloatingPointError at a NaN/inf loss, and resume.

        resume=True loads the newest checkpoint of the `Checkpoints` callback in
        `callbacks` and continues from it: `epochs` stays the total, so a resumed run
        ends where an uninterrupted one would. A checkpoint taken in the middle of an
        epoch finishes that epoch's remaining steps first when `steps_per_epoch` is given.
        """
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # a dataset brings its own order
        if not any(isinstance(c, StopOnNonFinite) for c in callbacks):
            callbacks.insert(0, StopOnNonFinite())
        if resume:
            checkpoints = [c for c in callbacks if isinstance(c, Checkpoints)]
            if not checkpoints:
                raise ValueError(
                    "fit(resume=True) continues from checkpoints: pass "
                    "callbacks=[Checkpoints(folder)] to say where they are"
                )
            state = load_checkpoint(self, checkpoints[0].directory)
            if state is not None:
                epoch, done = state["epoch"], state["step_in_epoch"]
                kwargs["initial_epoch"] = epoch
                steps = kwargs.get("steps_per_epoch")
                if done and steps and done < steps and epoch < kwargs.get("epochs", 1):
                    self._fit_part(
                        x,
                        y,
                        callbacks,
                        dict(kwargs, epochs=epoch + 1, steps_per_epoch=steps - done),
                        done,
                    )
                    kwargs["initial_epoch"] = epoch + 1
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    def _fit_part(self, x, y, callbacks, kwargs, done):
        """The rest of an interrupted epoch, its first `done` steps already trained."""
        self._step_offset = done
        try:
            return super().fit(x, y, callbacks=callbacks, **kwargs)
        finally:
            self._step_offset = 0


# --------------------------------------------------------------------------- the first design's loop


def train_on_batch_loop(
    generator,
    discriminator,
    images,
    iterations,
    batch_size=32,
    d_optimizer=None,
    g_optimizer=None,
    generator_batch=None,
    seed=0,
    callback=None,
):
    """The anime notebook's own training loop, kept as it ran, for comparison with `fit`.

    Each iteration: `batch_size` real images drawn at random with replacement (label 1)
    and `batch_size` images from `generator.predict` on fresh noise (label 0) go through
    two `discriminator.train_on_batch` calls, whose loss and accuracy are averaged; then
    the stacked generator -> frozen discriminator model takes `train_on_batch` on
    `generator_batch` noise vectors (default 2 * batch_size, as in the notebook)
    labelled 1. Loss: binary cross-entropy on the sigmoid output, as it ran.

    images: float32 (n, h, w, c) already in the generator's value range. The models are
    trained in place; default optimizers: Adam 1e-4, beta_1 0.5 (the notebook's).
    callback(iteration, logs) runs after each iteration. Returns a dict of lists:
    d_loss, d_acc, d_real_accuracy, d_fake_accuracy, g_loss.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty float array (n, ...), got shape {images.shape}"
        )
    if batch_size < 1 or iterations < 0:
        raise ValueError(
            f"need batch_size >= 1 and iterations >= 0, got {batch_size}, {iterations}"
        )
    generator_batch = 2 * batch_size if generator_batch is None else int(generator_batch)
    latent = _models.latent_dim(generator)
    discriminator.trainable = True
    discriminator.compile(
        optimizer=d_optimizer or keras.optimizers.Adam(1e-4, beta_1=0.5),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    # Keras 2 froze the discriminator when the combined model was compiled; Keras 3 reads
    # `trainable` when each train function is first traced, so it is switched before each call.
    discriminator.trainable = False
    z = keras.Input((latent,))
    combined = keras.Model(z, discriminator(generator(z)), name="combined")
    combined.compile(
        optimizer=g_optimizer or keras.optimizers.Adam(1e-4, beta_1=0.5), loss="binary_crossentropy"
    )
    rng = np.random.default_rng(seed)
    ones, zeros = np.ones((batch_size, 1), np.float32), np.zeros((batch_size, 1), np.float32)
    history = {k: [] for k in ("d_loss", "d_acc", "d_real_accuracy", "d_fake_accuracy", "g_loss")}
    try:
        for iteration in range(iterations):
            real = images[rng.integers(0, len(images), batch_size)]
            noise = rng.standard_normal((batch_size, latent), dtype=np.float32)
            fake = generator.predict(noise, verbose=0)
            discriminator.trainable = True
            loss_real, acc_real = discriminator.train_on_batch(real, ones)
            loss_fake, acc_fake = discriminator.train_on_batch(fake, zeros)
            discriminator.trainable = False
            noise = rng.standard_normal((generator_batch, latent), dtype=np.float32)
            g_loss = combined.train_on_batch(noise, np.ones((generator_batch, 1), np.float32))
            logs = {
                "d_loss": 0.5 * (float(loss_real) + float(loss_fake)),
                "d_acc": 0.5 * (float(acc_real) + float(acc_fake)),
                "d_real_accuracy": float(acc_real),
                "d_fake_accuracy": float(acc_fake),
                "g_loss": float(np.ravel(g_loss)[0]),
            }
            for key, value in logs.items():
                history[key].append(value)
            if callback is not None:
                callback(iteration, logs)
    finally:
        discriminator.trainable = True  # as it was given
    return history


# --------------------------------------------------------------------------- checkpoints

_CHECKPOINT_GLOB = "ckpt-*.npz"
_FORMAT = 1


def _state_groups(gan):
    """Every variable a resume needs, in named groups of fixed order."""
    gan.build_optimizers()
    groups = {
        "generator": gan.generator.variables,
        "discriminator": gan.discriminator.variables,
    }
    if gan.ema_generator is not None:
        groups["ema_generator"] = gan.ema_generator.variables
    if gan.augmenter is not None:
        groups["augmenter"] = gan.augmenter.variables
    # A loss-scaling wrapper's own scale is left out, so a run can move between a GPU
    # (mixed float16) and a CPU or TPU and back.
    groups["d_optimizer"] = _inner(gan.d_optimizer).variables
    groups["g_optimizer"] = _inner(gan.g_optimizer).variables
    groups["gan"] = [gan.noise_seed, gan.global_step]
    return groups


def _inner(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def checkpoints(directory):
    """Checkpoint files in `directory`, oldest first (by training step)."""
    directory = Path(directory)
    return sorted(directory.glob(_CHECKPOINT_GLOB)) if directory.is_dir() else []


def save_checkpoint(gan, directory, epoch, step_in_epoch=0, keep=3, steps_per_epoch=None):
    """Write the GAN's full training state to directory/ckpt-STEP.npz atomically; keep the last `keep`.

    epoch: epochs finished; step_in_epoch: steps done in the unfinished one. The file is
    written under a temporary name, flushed to disk and renamed, so a process killed at
    any moment leaves either the old set of checkpoints or the new one, never half a file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    groups = _state_groups(gan)
    arrays, layout = {}, {}
    for group, variables in groups.items():
        layout[group] = []
        for i, variable in enumerate(variables):
            value = np.asarray(keras.ops.convert_to_numpy(variable))
            arrays[f"{group}:{i:04d}"] = value
            layout[group].append([variable.path, list(value.shape), str(value.dtype)])
    step = int(keras.ops.convert_to_numpy(gan.global_step))
    meta = {
        "format": _FORMAT,
        "epoch": int(epoch),
        "step_in_epoch": int(step_in_epoch),
        "step": step,
        "steps_per_epoch": None if steps_per_epoch is None else int(steps_per_epoch),
        "saved": datetime.datetime.now().isoformat(timespec="seconds"),
        "layout": layout,
    }
    arrays["__meta__"] = np.array(json.dumps(meta))
    path = directory / f"ckpt-{step:09d}.npz"
    temporary = directory / f".{path.name}.{os.getpid()}.tmp"
    with open(temporary, "wb") as file:
        np.savez(file, **arrays)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    for old in checkpoints(directory)[: -max(1, int(keep))]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return path


def remove_stale_temporaries(directory):
    """Delete half-written checkpoint files left by processes that no longer run."""
    for temporary in Path(directory).glob(".ckpt-*.tmp"):
        try:
            pid = int(temporary.suffixes[-2].lstrip("."))
            os.kill(pid, 0)  # raises if no such process
            if pid != os.getpid():
                continue  # another live process is writing it
        except ProcessLookupError:
            pass
        except (ValueError, IndexError, PermissionError):
            continue
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _read_checkpoint(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}  # reads (and CRC-checks) everything
    meta = json.loads(str(arrays.pop("__meta__")))
    if meta.get("format") != _FORMAT:
        raise ValueError(f"unknown checkpoint format {meta.get('format')!r}")
    return meta, arrays


def latest_checkpoint(directory):
    """(path, meta, arrays) of the newest checkpoint in `directory` that reads completely, or None.

    A damaged or half-written file (a process killed while writing, a full disk) is
    skipped with a warning and the one before it is used.
    """
    for path in reversed(checkpoints(directory)):
        try:
            meta, arrays = _read_checkpoint(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            print(f"ganlib: skipping unreadable checkpoint {path}: {error}")
            continue
        return path, meta, arrays
    return None


def load_checkpoint(gan, directory):
    """Restore the newest readable checkpoint in `directory` into `gan`.

    Returns its counters {"epoch", "step_in_epoch", "step", "path", ...} or None when
    there is none. Raises ValueError when it was made by a differently shaped GAN.
    Learning rates are not restored: the ones the GAN was compiled with apply.
    """
    found = latest_checkpoint(directory)
    if found is None:
        return None
    path, meta, arrays = found
    groups = _state_groups(gan)
    extra = sorted(set(meta["layout"]) - set(groups))
    if extra:
        raise ValueError(
            f"checkpoint {path} does not fit this GAN: it also holds {', '.join(extra)}; "
            f"resume with the settings it was made with or use a new run folder"
        )
    assignments = []
    for group, variables in groups.items():
        saved = meta["layout"].get(group)
        if saved is None or len(saved) != len(variables):
            raise ValueError(
                f"checkpoint {path} does not fit this GAN: it has "
                f"{'no' if saved is None else len(saved)} {group} variables, the GAN has "
                f"{len(variables)}; resume with the settings it was made with or use a new run folder"
            )
        for i, variable in enumerate(variables):
            value = arrays[f"{group}:{i:04d}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"checkpoint {path} does not fit this GAN: {group} variable {variable.path} "
                    f"has shape {tuple(variable.shape)}, the checkpoint {tuple(value.shape)}"
                )
            if not variable.path.endswith("learning_rate"):
                assignments.append((variable, value))
    for variable, value in assignments:
        variable.assign(value)
    gan.nonfinite_step.assign(-1)  # a checkpoint is only ever written before a bad step
    return {**{k: v for k, v in meta.items() if k != "layout"}, "path": str(path)}


# --------------------------------------------------------------------------- callbacks


def _finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def _own_values_finite(logs):
    return all(_finite(v) for k, v in (logs or {}).items() if k in METRIC_NAMES)


def _failed_step(model):
    """The first non-finite step of a GAN (from 0), or None (also for other models)."""
    variable = getattr(model, "nonfinite_step", None)
    if variable is None:
        return None
    step = int(keras.ops.convert_to_numpy(variable))
    return step if step >= 0 else None


class StopOnNonFinite(keras.callbacks.Callback):
    """Raise FloatingPointError once a GAN's loss has been NaN or infinite, naming the step.

    The GAN's train_step records the first bad step on the device; this callback
    checks that record after the steps (in Keras's background thread when no other
    callback needs each step's results, so the GPU never waits for it) and at the end
    of the epoch, before the callbacks after it: no checkpoint, history row or sample
    grid is written after a bad step.
    """

    async_safe = True

    def on_train_begin(self, logs=None):
        if hasattr(self.model, "nonfinite_step"):
            self.model.nonfinite_step.assign(-1)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = int(keras.ops.convert_to_numpy(self.model.global_step))

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def _check(self):
        bad = _failed_step(self.model)
        if bad is None:
            return
        offset = getattr(self.model, "_step_offset", 0)
        total = self.params.get("steps") if self.params else None
        of = f" of {total + offset}" if total else ""
        in_epoch = bad - self._epoch_start + offset + 1
        raise FloatingPointError(
            f"a loss became NaN or infinite at epoch {self._epoch} (counting from 0), "
            f"step {in_epoch}{of} (training step {bad + 1}); training stopped and no "
            f"checkpoint was written after it. Lower the learning rate or check the data, "
            f"then resume from the last checkpoint."
        )


class Checkpoints(keras.callbacks.Callback):
    """Save the full training state into `directory` at each epoch end and every `every_steps` steps.

    keep: how many checkpoints to keep. Nothing is written once a loss is NaN or infinite.
    `GAN.fit(..., resume=True)` restores from the same folder.
    """

    def __init__(self, directory, every_steps=None, keep=3):
        super().__init__()
        if every_steps is not None and every_steps < 1:
            raise ValueError(
                f"every_steps must be a positive number of steps or None, got {every_steps}"
            )
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.every_steps = every_steps
        self.keep = int(keep)
        self.last_path = None
        # Saving between steps needs the steps to wait; epoch-end saves do not.
        self.async_safe = every_steps is None

    def _steps_per_epoch(self):
        steps = self.params.get("steps") if self.params else None
        return None if steps is None else steps + getattr(self.model, "_step_offset", 0)

    def on_train_begin(self, logs=None):
        self._last_step = int(keras.ops.convert_to_numpy(self.model.global_step))
        remove_stale_temporaries(self.directory)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (
            not self.every_steps
            or not _own_values_finite(logs)
            or _failed_step(self.model) is not None
        ):
            return
        step = int(keras.ops.convert_to_numpy(self.model.global_step))
        crossed = step // self.every_steps > self._last_step // self.every_steps
        self._last_step = step  # (with steps_per_execution > 1 the count jumps)
        done = getattr(self.model, "_step_offset", 0) + batch + 1
        if crossed and done != self._steps_per_epoch():
            self.last_path = save_checkpoint(
                self.model, self.directory, self._epoch, done, self.keep, self._steps_per_epoch()
            )

    def on_epoch_end(self, epoch, logs=None):
        if _own_values_finite(logs) and _failed_step(self.model) is None:
            self.last_path = save_checkpoint(
                self.model, self.directory, epoch + 1, 0, self.keep, self._steps_per_epoch()
            )


class HistoryCSV(keras.callbacks.Callback):
    """Keep `path` as a CSV with one row per finished epoch (`epoch` column, from 0).

    When an epoch starts, rows for it and later epochs (left by an interrupted run)
    are dropped, so a resumed run has no gap and no duplicate. Rewritten atomically
    after every epoch. `.rows` holds the same rows as dicts; path=None keeps only those.
    """

    def __init__(self, path):
        super().__init__()
        self.path = None if path is None else Path(path)
        self.rows = read_history(self.path) if self.path is not None and self.path.is_file() else []

    def on_epoch_begin(self, epoch, logs=None):
        self.rows = [row for row in self.rows if row["epoch"] < epoch]

    def on_epoch_end(self, epoch, logs=None):
        if not _own_values_finite(logs):
            return
        row = {"epoch": epoch}
        row.update({k: float(v) for k, v in (logs or {}).items() if _is_number(v)})
        self.rows.append(row)
        if self.path is not None:
            write_history(self.path, self.rows)


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def write_history(path, rows):
    """Write rows (dicts with an `epoch` key) as CSV, atomically; columns in a stable order."""
    keys = {key for row in rows for key in row}
    columns = ["epoch"] + [k for k in METRIC_NAMES if k in keys]
    columns += sorted(keys - set(columns))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(buffer.getvalue())
    os.replace(temporary, path)


def read_history(path):
    """history.csv as a list of dicts: `epoch` int, other columns float (nan when empty)."""
    rows = []
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            rows.append(
                {
                    k: int(v) if k == "epoch" else (float(v) if v != "" else float("nan"))
                    for k, v in row.items()
                }
            )
    return rows


class SampleGrid(keras.callbacks.Callback):
    """A rows x cols grid from the same noise at the end of every `every`-th epoch.

    Kept in memory as `.grids`, a list of (epoch, uint8 images (rows*cols, h, w, c)),
    and, with a run_dir, saved as run_dir/samples/epoch_XXXX.png (epoch from 0).
    Uses `model.generate`, so the EMA generator when there is one.
    """

    def __init__(self, run_dir=None, rows=5, cols=5, seed=1234, every=1, scale=1):
        super().__init__()
        if rows < 1 or cols < 1 or every < 1:
            raise ValueError(
                f"rows, cols and every must be at least 1, got {rows}, {cols}, {every}"
            )
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.rows, self.cols, self.seed, self.every, self.scale = rows, cols, seed, every, scale
        self.grids = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or not _own_values_finite(logs):
            return
        from ganlib.plotting import save_grid, to_uint8

        images = self.model.generate(self.rows * self.cols, seed=self.seed)
        value_range = getattr(self.model, "value_range", None)
        self.grids.append((epoch, to_uint8(images, value_range)))
        if self.run_dir is not None:
            save_grid(
                self.run_dir / "samples" / f"epoch_{epoch:04d}.png",
                images,
                self.rows,
                self.cols,
                value_range=value_range,
                scale=self.scale,
            )


# --------------------------------------------------------------------------- runs

RUN_KEYS = ("model", "image_size", "width", "latent_dim", "ema", "ada")


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
    return int(value)


def _load_data(data, image_size):
    """(uint8 images (n, s, s, 3), description) from a SOURCE string or a uint8 array."""
    from ganlib.data import load_source

    if isinstance(data, (str, os.PathLike)):
        return load_source(str(data), image_size)
    images = np.asarray(data)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"data must be a SOURCE string or uint8 RGB images (n, h, w, 3), got {images.dtype} {images.shape}"
        )
    if images.shape[1:3] != (image_size, image_size):
        raise ValueError(
            f"the images are {images.shape[1]}x{images.shape[2]} but image_size is {image_size}; "
            f"resize them (ganlib.data.resize_images) or pass image_size={images.shape[1]}"
        )
    return images, f"array of {len(images)} images"


def _describe(config):
    parts = [
        f"model {config.get('model')!r}",
        f"{config.get('image_size')} px",
        f"width {config.get('width')}",
    ]
    parts.append(f"latent_dim {config.get('latent_dim')}")
    if config.get("ema"):
        parts.append(f"ema {config['ema']}")
    if config.get("ada"):
        parts.append("ada")
    return ", ".join(parts)


def _prepare_run(run, config, details, resume):
    """Create run/run.json, or check that an existing run was made with the same model."""
    info = run / "run.json"
    if info.is_file():
        saved = json.loads(info.read_text())
        if any(saved.get(key) != config[key] for key in RUN_KEYS):
            raise ValueError(
                f"run folder {run} was made with {_describe(saved)}, not {_describe(config)}; "
                f"use the same settings to resume it or choose another run folder"
            )
        if not resume and checkpoints(run / "checkpoints"):
            raise ValueError(
                f"run folder {run} already has checkpoints; resume it or choose another run folder"
            )
        return saved
    run.mkdir(parents=True, exist_ok=True)
    record = {**config, **details}
    temporary = run / f".run.json.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, info)
    return record


def _kid_monitor(images, data, image_size, every, seed):
    """KIDMonitor against up to 2,000 real images: domain features for toy faces, Inception otherwise."""
    from ganlib import metrics

    toy = isinstance(data, str) and data.strip().startswith("toy-faces")
    extractor = (
        metrics.DomainFeatures(image_size=image_size) if toy else metrics.InceptionFeatures()
    )
    rng = np.random.default_rng(seed)
    real = images[np.sort(rng.choice(len(images), min(len(images), 2000), replace=False))]
    return metrics.KIDMonitor(real, extractor, every=every, n_samples=1000, coverage=toy, seed=seed)


def steps_per_call(steps_per_epoch, done=0, limit=8):
    """How many training steps one call into TensorFlow runs (Keras's steps_per_execution).

    The largest number up to `limit` that divides both the epoch length and the
    epoch's unfinished part, so calls never run past an epoch's end. Handing Keras
    several steps per call spares it most of its per-step Python work: on 2 CPU cores
    that made fit about 15% faster for the improved model at 32 px, width 0.25.
    """
    return max(k for k in range(1, limit + 1) if steps_per_epoch % k == 0 and done % k == 0)


def _columns(rows):
    keys = [key for row in rows for key in row]
    return {key: [row.get(key, float("nan")) for row in rows] for key in dict.fromkeys(keys)}


def train(
    data,
    model="improved",
    image_size=64,
    epochs=10,
    batch_size=None,
    run_dir=None,
    steps_per_epoch=None,
    seed=0,
    width=1.0,
    learning_rate=None,
    mixed_precision="auto",
    xla="auto",
    ema=None,
    ada=False,
    kid_every=0,
    callbacks=(),
    resume=True,
    verbose="auto",
    latent_dim=None,
    checkpoint_every=None,
    keep=3,
    grid=(5, 5),
    distribute=None,
    steps_per_execution="auto",
):
    """Train PRESETS[model] on `data` and return (gan, history).

    data: a SOURCE string for ganlib.data.load_source ("toy-faces:2000", "cifar10:cat",
    "anime-faces", a folder) or uint8 images (n, image_size, image_size, 3).
    epochs: the total; with run_dir and resume=True a run continues from its newest
    checkpoint and stops at the same epoch as an uninterrupted one. batch_size: global
    real images per update (default the preset's), split across replicas.
    steps_per_epoch: default len(images) // batch_size. The data order is drawn from
    `seed`, and a resumed run takes up the same order where it stopped.
    mixed_precision, xla: "auto", "on" or "off" (see mixed_precision_policy, use_xla).
    ema: EMA decay of a generator copy (e.g. 0.99). ada: adaptive augmentation.
    kid_every: KID (and mode coverage for toy faces) every N epochs, 0 for never.
    callbacks run before the run's own history and checkpoint callbacks, so what they
    put into `logs` lands in history.csv. checkpoint_every: also checkpoint every N steps.
    distribute: a tf.distribute strategy (default `strategy()`). steps_per_execution:
    training steps per call into TensorFlow, "auto" for `steps_per_call(...)`.

    Seeds Python, NumPy and TensorFlow with `seed` (keras.utils.set_random_seed).
    history: dict of lists, `epoch` plus one list per logged value, all epochs of the
    run (also those of earlier sessions). A NaN or infinite loss raises
    FloatingPointError naming the step; the last good checkpoint stays in place.
    """
    if model not in PRESETS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(PRESETS)}")
    if isinstance(image_size, bool) or image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be 32 or 64, got {image_size!r}")
    preset = PRESETS[model]
    epochs = _check_int(epochs, "epochs", 1)
    batch_size = _check_int(
        preset["batch_size"] if batch_size is None else batch_size, "batch size", 2
    )
    if steps_per_epoch is not None:
        steps_per_epoch = _check_int(steps_per_epoch, "steps_per_epoch", 1)
    kid_every = _check_int(kid_every, "kid_every", 0)
    if ema is not None and not 0.0 < ema < 1.0:
        raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.99, got {ema!r}")
    width = float(width)
    if not width > 0:
        raise ValueError(f"width must be positive (1.0 is the published model), got {width!r}")
    latent_dim = (
        _models.DEFAULT_LATENT_DIM[preset["model"]] if latent_dim is None else int(latent_dim)
    )
    images, description = _load_data(data, image_size)
    if len(images) < batch_size:
        raise ValueError(
            f"{len(images)} images are fewer than one batch of {batch_size}; lower the batch size"
        )
    steps = steps_per_epoch or len(images) // batch_size

    distribute = distribute or strategy()
    replicas = distribute.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch size {batch_size} does not split evenly over {replicas} replicas")
    accelerator = _accelerator()
    policy = mixed_precision_policy(mixed_precision, accelerator)
    jit_compile = use_xla(xla, accelerator)

    run = None if run_dir is None else Path(run_dir)
    config = {
        "model": model,
        "image_size": int(image_size),
        "width": width,
        "latent_dim": latent_dim,
        "ema": ema,
        "ada": bool(ada),
    }
    if run is not None:
        details = {
            "family": preset["model"],
            "preset": dict(preset),
            "data": description,
            "data_spec": data if isinstance(data, str) else None,
            "seed": seed,
            "batch_size": batch_size,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        }
        _prepare_run(run, config, details, resume)

    keras.utils.set_random_seed(seed)
    with _dtype_policy(policy), distribute.scope():
        augmenter = None
        if ada:
            from ganlib.augment import AdaptiveAugmenter

            augmenter = AdaptiveAugmenter(seed=seed)
        gan = GAN.from_preset(
            model,
            image_size,
            width=width,
            latent_dim=latent_dim,
            learning_rate=learning_rate,
            ema=ema,
            augmenter=augmenter,
            seed=seed,
            jit_compile=jit_compile,
        )
    gan.preset.update(
        batch_size=batch_size,
        steps_per_epoch=steps,
        mixed_precision=policy,
        xla=jit_compile,
        replicas=replicas,
        data=description,
    )

    history_callback = HistoryCSV(None if run is None else run / "history.csv")
    own = [SampleGrid(run, *grid, seed=seed, scale=2 if image_size <= 32 else 1)]
    if kid_every:
        own.insert(0, _kid_monitor(images, data, image_size, kid_every, seed))
    own.append(history_callback)
    if run is not None:
        own.append(Checkpoints(run / "checkpoints", every_steps=checkpoint_every, keep=keep))
    all_callbacks = [StopOnNonFinite(), *callbacks, *own]
    gan.sample_grid = next(c for c in own if isinstance(c, SampleGrid))

    from ganlib.data import image_dataset

    def stream(position):
        """The run's endless batch stream (same seed, same order), from batch `position` on."""
        dataset = image_dataset(images, batch_size, gan.value_range, shuffle=True, seed=seed)
        return dataset.repeat().skip(position)

    state = load_checkpoint(gan, run / "checkpoints") if run is not None and resume else None
    epoch, done = (state["epoch"], state["step_in_epoch"]) if state else (0, 0)
    if steps_per_execution == "auto":
        steps_per_execution = steps_per_call(steps, done if done < steps else 0)
    gan.steps_per_execution = _check_int(steps_per_execution, "steps_per_execution", 1)
    fit_options = {"verbose": verbose, "shuffle": False}
    try:
        if done and epoch < epochs and done < steps:
            gan._fit_part(
                stream(epoch * steps + done),
                None,
                all_callbacks,
                dict(
                    fit_options, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps - done
                ),
                done,
            )
            epoch += 1
        elif done:  # more steps done than this epoch length allows: go on with the next epoch
            epoch += 1
        if epoch < epochs:
            gan.fit(
                stream(epoch * steps),
                epochs=epochs,
                initial_epoch=epoch,
                steps_per_epoch=steps,
                callbacks=all_callbacks,
                **fit_options,
            )
    except FloatingPointError as error:
        last = checkpoints(run / "checkpoints")[-1:] if run is not None else []
        where = f" The last good checkpoint is {last[0]}." if last else " There is no checkpoint."
        raise FloatingPointError(f"{error}{where}") from None
    return gan, _columns(history_callback.rows)


def load_run(run_dir):
    """The GAN of a run folder with its newest checkpoint loaded, e.g. to draw samples.

    Built from RUN/run.json with this machine's default dtype policy; `gan.checkpoint`
    holds the checkpoint's counters (epoch, step, path). FileNotFoundError when the
    folder has no run.json or no checkpoint yet.
    """
    run = Path(run_dir)
    info = run / "run.json"
    if not info.is_file():
        raise FileNotFoundError(
            f"{run} is not a run folder (no run.json); train one with "
            f"python -m ganlib train ... --run {run}"
        )
    config = json.loads(info.read_text())
    augmenter = None
    if config.get("ada"):
        from ganlib.augment import AdaptiveAugmenter

        augmenter = AdaptiveAugmenter()
    gan = GAN.from_preset(
        config["model"],
        config["image_size"],
        width=config["width"],
        latent_dim=config["latent_dim"],
        ema=config.get("ema"),
        augmenter=augmenter,
        jit_compile=False,
    )
    state = load_checkpoint(gan, run / "checkpoints")
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {run / 'checkpoints'} yet; train the run first")
    object.__setattr__(gan, "checkpoint", state)
    return gan
