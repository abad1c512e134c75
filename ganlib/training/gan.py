"""The GAN as a keras.Model: one discriminator and one generator update per `train_step` (chapter 4)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ganlib import models as _models
from ganlib.training.callbacks import StopOnNonFinite
from ganlib.training.checkpoints import Checkpoints, load_checkpoint
from ganlib.training.devices import use_xla
from ganlib.training.presets import PRESETS


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
