"""The GAN as a keras.Model: `train_step` updates the discriminator, then the generator (chapter 5)."""

from __future__ import annotations

import contextlib
import numbers

import keras
import numpy as np
import tensorflow as tf

from ganlib import models as _models
from ganlib.common import check_int, check_value_range
from ganlib.training.callbacks import StopOnNonFinite
from ganlib.training.checkpoints import Checkpoints, load_checkpoint
from ganlib.training.devices import use_xla
from ganlib.training.spec import check_loss_options, check_update_scheme


def discriminator_logits(discriminator):
    """A model sharing `discriminator`'s weights that outputs its logit, float (n, 1) (chapter 5).

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


def _value_range(generator, value_range):
    """(low, high) floats: `value_range` checked, or a ganlib generator's own."""
    if value_range is None:
        try:
            return _models.value_range(generator)
        except ValueError as error:
            raise ValueError(
                f"{error}; pass value_range=(low, high) to GAN, e.g. (-1, 1) for a tanh output"
            ) from None
    return check_value_range(value_range)


def _uses_float16(model):
    return any(layer.compute_dtype == "float16" for layer in model.layers)


class _StepCountingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """A LossScaleOptimizer whose `iterations` counts the steps it skips, as Keras 2's did.

    Keras 3 skips a step whose scaled gradients overflowed without counting it, so a
    mixed-precision run's `iterations` (and `training.generator_updates`) would fall one
    short of its training steps at every overflow, which dynamic loss scaling provokes
    every few thousand steps.
    """

    def _stateful_handle_non_finite_grads(self):
        super()._stateful_handle_non_finite_grads()
        self.inner_optimizer.iterations.assign_add(1)


def _replicas():
    """(number of replicas, this replica's index) inside a train step."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 1, 0
    return context.num_replicas_in_sync, context.replica_id_in_sync_group


def _sum_over_replicas(value):
    """`value` summed over the replicas of a tf.distribute step (itself on one device)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce("sum", value)


def _batch_norm_layers(model):
    """The BatchNormalization layers of `model`, nested models included."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        found.extend(_batch_norm_layers(layer))
    return found


def _values_now(variables):
    """[(variable, its value now)]; a constant value (zeros, say) kept as one number."""
    starts = []
    for variable in variables:
        value = keras.ops.convert_to_numpy(variable)
        if value.size and (value == value.flat[0]).all():
            value = value.flat[0]
        starts.append((variable, value))
    return starts


def _put_back(starts):
    """Assign each variable of `_values_now`'s list the value it had then."""
    for variable, value in starts:
        variable.assign(np.broadcast_to(value, variable.shape))


def _check_same_variables(name, model, new):
    """ValueError unless `new` has as many variables as `model`, of the same shapes."""
    old_variables, new_variables = model.variables, new.variables
    if len(new_variables) != len(old_variables):
        raise ValueError(
            f"the new {name} has {len(new_variables)} variables, this GAN's {name} "
            f"{len(old_variables)}: build it as this GAN's {name} was built"
        )
    for old, fresh in zip(old_variables, new_variables, strict=True):
        if tuple(old.shape) != tuple(fresh.shape):
            raise ValueError(
                f"the new {name}'s variable {fresh.path} has shape {tuple(fresh.shape)}, "
                f"this GAN's {name}'s {old.path} {tuple(old.shape)}: build it as this "
                f"GAN's {name} was built"
            )


# The random streams of one training step. Each draws from the stateless seed
# (noise seed, counter); the counter layout of streams 0-3 is that of earlier ganlib
# versions, so their runs keep their noise, and streams 4-7 count down from -1 so that
# no two (step, stream) pairs share a seed. Stream 7 is the last free slot of that
# layout: a further stream needs a new one. With several discriminator updates per step
# (GAN.compile's d_steps), update i > 0 draws its streams from that seed with i folded
# in (tf.random.experimental.stateless_fold_in), so the first update draws what a step
# with one update draws.
D_NOISE, G_NOISE, REAL_LABELS, FAKE_LABELS = 0, 1, 2, 3
D_REAL_AUGMENT, D_FAKE_AUGMENT, G_FAKE_AUGMENT = 4, 5, 6
GP_MIX = 7  # the WGAN-GP interpolation weights


def steps_per_call(steps_per_epoch, done=0, limit=8):
    """Training steps per call into TensorFlow, Keras's steps_per_execution (chapter 5).

    The largest number up to `limit` that divides both the epoch length and the
    epoch's unfinished part, so calls never run past an epoch's end. Several steps
    per call spare Keras most of its per-step Python work (bench/RESULTS.md has
    the measured difference).
    """
    return max(k for k in range(1, limit + 1) if steps_per_epoch % k == 0 and done % k == 0)


class GAN(keras.Model):
    """A generator and a discriminator trained against each other with `fit()` (chapter 5).

    generator: noise float32 (n, latent_dim) -> images (n, h, w, c) in its value range.
    discriminator: images -> (n, 1); the loss uses its logit (see `discriminator_logits`).
    fit() takes batches of real images, float32 (n, h, w, c) in the generator's value
    range, as `ganlib.data.image_dataset` makes them.

    value_range: (low, high) of the generator's images; None reads it from a ganlib
    generator (`ganlib.models.value_range`), so pass it for a generator of your own.
    augmenter: a layer called as augmenter(images, training=True) on everything the
    discriminator sees, with update(real_accuracy) and a `probability` variable
    (ganlib.augment.AdaptiveAugmenter, chapter 7). An augmenter with a
    `draws_per_image` attribute is also given draws=, float32 (n, draws_per_image)
    uniform in [0, 1): its images' rows of a draw for the global batch, so that each
    replica augments its images differently. ema: keep an exponential moving average of
    the generator's weights with this decay (e.g. 0.99) in `ema_generator`, used by
    `generate()` (chapter 7; see `update_ema` and `refresh_ema_statistics`). seed: the
    noise stream (None draws one from NumPy's global state).

    Each step draws its noise, label noise and augmentations from (seed, step), the same
    numbers whether the global batch runs on one device or is split across replicas,
    and after a resume.
    """

    def __init__(
        self,
        generator,
        discriminator,
        latent_dim=None,
        augmenter=None,
        ema=None,
        seed=None,
        value_range=None,
        name="gan",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if ema is not None and not 0.0 < ema < 1.0:
            raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.99, or None; got {ema!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = _models.latent_dim(generator) if latent_dim is None else int(latent_dim)
        self.value_range = _value_range(generator, value_range)
        self.augmenter = augmenter
        if augmenter is not None and not augmenter.built:
            augmenter.build(tuple(discriminator.inputs[0].shape))
        # What `reset` puts back (plain containers: Keras would track their variables).
        object.__setattr__(
            self, "_augmenter_start", _values_now(augmenter.variables if augmenter else [])
        )
        object.__setattr__(self, "_optimizer_starts", [])  # (optimizer, its values as built)
        self.ema = None if ema is None else float(ema)
        self.ema_generator = None
        if ema is not None:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
            self.ema_generator.trainable = False
        # Generator updates folded into the EMA copy; `generate` compares it with the
        # count at its last `refresh_ema_statistics` to know when to refresh.
        self.ema_updates = keras.Variable(
            0, dtype="int64", trainable=False, aggregation="only_first_replica", name="ema_updates"
        )
        self._ema_statistics_of = None
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
        self.gan_loss, self.gp_weight, self.r1_gamma = "bce", 10.0, 0.0
        self.update_scheme = "ganlib"
        self.d_steps = 1
        self._d_update = 0  # the discriminator update whose random numbers are drawn (`_seed`)
        # A plain dict (Keras would wrap an attribute dict into a tracked one).
        object.__setattr__(self, "spec", None)  # the RunSpec of `from_spec`, if made by it
        self._step_offset = 0  # steps of the current epoch done before this fit() call
        self._auto_steps_per_execution = False  # from_preset(steps_per_execution="auto")
        self.built = True  # the two networks are built; nothing to infer from data

    # ----------------------------------------------------------------- setup

    @classmethod
    def from_spec(cls, spec, augmenter=None, jit_compile="auto", steps_per_execution="auto"):
        """A compiled GAN with `spec`'s models, optimizers, loss and noise seed (chapter 5).

        spec: a `RunSpec`. augmenter: the layer the discriminator's images pass through;
        None builds an AdaptiveAugmenter when spec.ada is set. `gan.spec` is the spec.
        Call it under a strategy's scope to train on several devices.

        steps_per_execution: training steps per call into TensorFlow, an int >= 1 or
        "auto" (the default). More than one spares Keras's per-step Python work and trains
        the same weights step for step, but Keras 3 runs whole calls, so with
        steps_per_epoch=6 and 4 steps per call each epoch would run 8 steps (`fit` raises
        ValueError instead). "auto" lets each `fit` choose, as `train` does:
        `steps_per_call(steps_per_epoch)` when steps_per_epoch is given, else up to 8 (a
        finite dataset simply ends its epoch early).
        """
        auto_steps = steps_per_execution == "auto"
        steps_per_execution = (
            1 if auto_steps else check_int(steps_per_execution, "steps_per_execution", 1)
        )
        if augmenter is None and spec.ada:
            from ganlib.augment import AdaptiveAugmenter

            options = {
                "target_accuracy": spec.ada_target,
                "integration_steps": spec.ada_integration_steps,
            }
            augmenter = AdaptiveAugmenter(
                seed=spec.seed,
                **{key: value for key, value in options.items() if value is not None},
            )
        generator, discriminator = _models.build_pair(
            spec.model,
            spec.image_size,
            latent_dim=spec.latent_dim,
            width=spec.width,
            **spec.build_options(),
        )
        gan = cls(generator, discriminator, augmenter=augmenter, ema=spec.ema, seed=spec.seed)
        gan.compile(
            d_optimizer=keras.optimizers.Adam(spec.d_learning_rate, beta_1=spec.beta_1),
            g_optimizer=keras.optimizers.Adam(spec.g_learning_rate, beta_1=spec.beta_1),
            label_smoothing=spec.label_smoothing,
            label_noise=spec.label_noise,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            loss=spec.loss,
            gp_weight=spec.gp_weight,
            r1_gamma=spec.r1_gamma,
            update_scheme=spec.update_scheme,
            d_steps=spec.d_steps,
        )
        gan._auto_steps_per_execution = auto_steps
        object.__setattr__(gan, "spec", spec)
        return gan

    @classmethod
    def from_preset(
        cls,
        name,
        image_size,
        augmenter=None,
        jit_compile="auto",
        steps_per_execution="auto",
        **changes,
    ):
        """`from_spec` of the preset `name` (`preset_spec(name, image_size=..., **changes)`) (chapter 5).

        changes: RunSpec settings (width, latent_dim, seed, loss, ...), learning_rate
        (the discriminator's; the generator's keeps the preset's ratio), and any other
        keyword as a `build_pair` option (e.g. spectral_norm=True, upsample="transposed").
        """
        from ganlib.training.presets import preset_spec
        from ganlib.training.spec import FIELD_NAMES

        fields = set(FIELD_NAMES)
        keywords = fields | {"learning_rate", "spectral_norm", "minibatch_std"}
        options = {key: changes.pop(key) for key in list(changes) if key not in keywords}
        if options:
            changes["model_options"] = {**(changes.get("model_options") or {}), **options}
        spec = preset_spec(name, image_size=image_size, **changes)
        return cls.from_spec(
            spec,
            augmenter=augmenter,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
        )

    def compile(
        self,
        d_optimizer=None,
        g_optimizer=None,
        label_smoothing=0.0,
        label_noise=0.0,
        jit_compile="auto",
        steps_per_execution=1,
        loss="bce",
        gp_weight=10.0,
        r1_gamma=0.0,
        update_scheme="ganlib",
        d_steps=1,
        **kwargs,
    ):
        """Set the two optimizers (default: Adam 2e-4, beta_1 0.5), the loss and its tricks (chapters 4-5).

        loss, with d = the discriminator's logit, x real and G(z) generated images:
        "bce" (default): non-saturating cross-entropy, D minimises
        0.5 * (BCE(d(x), 1) + BCE(d(G(z)), 0)), G minimises BCE(d(G(z)), 1).
        "hinge": D minimises mean(relu(1 - d(x))) + mean(relu(1 + d(G(z)))), G -mean(d(G(z))).
        "wgan-gp": D minimises mean(d(G(z))) - mean(d(x)) + gp_weight *
        mean((||grad d(x_hat)||_2 - 1)^2) at x_hat = e * x + (1 - e) * G(z), e ~ U(0, 1)
        per image (drawn from the GAN's seed and step); G minimises -mean(d(G(z))).
        For every loss the logged accuracies count d > 0 as "real".
        r1_gamma: adds (r1_gamma / 2) * mean(||grad_x d(x)||^2) over the real images to
        D's loss (0: off), taken at what D sees, i.e. after the augmenter if there is one;
        the interpolates x_hat are likewise made of augmented images. With BatchNorm or
        minibatch std in D an image's gradient also reaches through the batch statistics.
        label_smoothing: real images are labelled 1 - label_smoothing (one-sided).
        label_noise: each discriminator label moves towards 0.5 by up to this much,
        uniformly at random (the Keras CelebA example uses 0.05). Both: "bce" only.
        jit_compile: "auto" uses XLA on GPUs and TPUs only. With mixed_float16 models
        the optimizers are wrapped in LossScaleOptimizer.
        update_scheme: "ganlib" (`d_steps` discriminator updates, each on a real and a
        generated batch, the generated one drawn in training mode, then a generator update
        on as many noise vectors) or "notebook", the anime-face DCGAN project's iteration
        (chapter 3): `notebook_discriminator_steps`, then a generator update on twice as
        many noise vectors; "bce" loss only, without R1 or an augmenter.
        d_steps: discriminator updates per training step (an int >= 1, "ganlib" scheme
        only), each on the step's real batch and fresh noise, before its one generator
        update, as WGAN-GP's critic takes several (e.g. 5); the logs average them.
        """
        d_steps = check_int(d_steps, "d_steps (discriminator updates per training step)", 1)
        check_loss_options(loss, gp_weight, r1_gamma, label_smoothing, label_noise)
        check_update_scheme(update_scheme, loss, r1_gamma, self.augmenter is not None, d_steps)
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
        self.gan_loss, self.gp_weight, self.r1_gamma = loss, float(gp_weight), float(r1_gamma)
        self.update_scheme = update_scheme
        self.d_steps = d_steps
        # Create the optimizers' variables now, under the model's strategy: made lazily
        # inside a replica's step they would not be mirrored.
        self.build_optimizers()

    @staticmethod
    def _loss_scaled(optimizer, model):
        if _uses_float16(model) and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return _StepCountingLossScaleOptimizer(optimizer)
        return optimizer

    def build_optimizers(self):
        """Create the optimizers' variables now (a checkpoint restore needs them; chapter 5)."""
        starts = []  # each optimizer's state as built, which `reset` puts back
        with self.distribute_strategy.scope():
            for optimizer, model in (
                (self.d_optimizer, self.discriminator),
                (self.g_optimizer, self.generator),
            ):
                if not optimizer.built:
                    optimizer.build(model.trainable_variables)
                known = [start for start in self._optimizer_starts if start[0] is optimizer]
                if not known:
                    learning_rate = optimizer.learning_rate  # not part of that state
                    variables = [v for v in optimizer.variables if v is not learning_rate]
                    known = [(optimizer, _values_now(variables))]
                starts += known
        object.__setattr__(self, "_optimizer_starts", starts)

    def reset(self, seed, generator=None, discriminator=None):
        """Put this compiled GAN back into the state of a new one with noise seed `seed` (chapter 4).

        generator, discriminator: freshly built models of the same architecture, whose
        weights (and random states, e.g. Dropout's) are copied in; None leaves that
        network as it is.
        Everything else training changes starts again: the optimizers' state (not their
        learning rates), the step counters, the EMA copy (the generator's weights), the
        augmenter's state and the logged means. The traced training step is kept.
        """
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        copies = [
            (name, model, new)
            for name, model, new in (
                ("generator", self.generator, generator),
                ("discriminator", self.discriminator, discriminator),
            )
            if new is not None
        ]
        for name, model, new in copies:  # all checked before anything changes
            _check_same_variables(name, model, new)
        for _, model, new in copies:
            for variable, value in zip(model.variables, new.variables, strict=True):
                variable.assign(keras.ops.convert_to_numpy(value))
        for _, values in self._optimizer_starts:
            _put_back(values)
        _put_back(self._augmenter_start)
        if self.ema_generator is not None:
            self.ema_generator.set_weights(self.generator.get_weights())
        self._ema_statistics_of = None
        self.noise_seed.assign(int(seed))
        self.global_step.assign(0)
        self.nonfinite_step.assign(-1)
        self.ema_updates.assign(0)
        self._step_offset = 0
        for tracker in (
            self.d_loss_tracker,
            self.g_loss_tracker,
            self.real_accuracy_tracker,
            self.fake_accuracy_tracker,
            self.aug_p_tracker,
        ):
            tracker.reset_state()

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

    def _seed(self, stream):
        """The stateless seed, int64 (2,): (noise seed, counter of `stream` at this step).

        Inside `_drawing_for(update)` with update > 0, that seed with the update folded in.
        """
        step = tf.convert_to_tensor(self.global_step)
        if stream < 4:
            counter = step * 4 + stream
        else:
            counter = -(step * 4 + (stream - 4)) - 1
        seed = tf.stack([tf.convert_to_tensor(self.noise_seed), counter])
        if self._d_update:
            update = tf.constant(self._d_update, tf.int64)
            seed = tf.random.experimental.stateless_fold_in(seed, update)
        return seed

    @contextlib.contextmanager
    def _drawing_for(self, update):
        """Draw this step's random numbers for its discriminator update `update` (0: the first)."""
        self._d_update = update
        try:
            yield
        finally:
            self._d_update = 0

    def _random(self, kind, stream, shape_tail, local_batch):
        """This replica's slice of a global (batch, *shape_tail) draw seeded by (seed, step)."""
        replicas, replica = _replicas()
        shape = tf.concat([[local_batch * replicas], shape_tail], axis=0)
        values = kind(shape, seed=self._seed(stream))
        if replicas == 1:
            return values
        return values[replica * local_batch : (replica + 1) * local_batch]

    def noise(self, local_batch, stream=D_NOISE):
        """Standard normal float32 noise (local_batch, latent_dim) of this step (chapter 5).

        stream: D_NOISE (the discriminator step's) or G_NOISE (the generator step's).
        """
        return self._random(tf.random.stateless_normal, stream, [self.latent_dim], local_batch)

    def _labels(self, local_batch):
        real = tf.fill([local_batch, 1], 1.0 - self.label_smoothing)
        fake = tf.zeros([local_batch, 1])
        if self.label_noise:
            uniform = tf.random.stateless_uniform
            real -= self.label_noise * self._random(uniform, REAL_LABELS, [1], local_batch)
            fake += self.label_noise * self._random(uniform, FAKE_LABELS, [1], local_batch)
        return real, fake

    def _augment(self, images, stream):
        """images through the augmenter, its random numbers drawn from `stream` at this step.

        An augmenter that declares `draws_per_image` gets this replica's rows of a draw
        for the global batch, as the noise does: each replica's images get their own
        transforms, the same ones a single device gives the same global batch.
        """
        if self.augmenter is None:
            return images
        per_image = getattr(self.augmenter, "draws_per_image", None)
        if not per_image:
            return self.augmenter(images, training=True)
        uniform = tf.random.stateless_uniform
        draws = self._random(uniform, stream, [per_image], tf.shape(images)[0])
        return self.augmenter(images, training=True, draws=draws)

    def _logit(self, images):
        return tf.cast(self._logits(images, training=True), tf.float32)

    def discriminator_loss(self, real_images, noise):
        """D's loss on real_images and generator(noise): the float32 scalar its step minimises (chapter 5).

        The loss `compile` chose, penalties included; the mean over the batch (on several
        replicas, this replica's sum over the global batch). Runs both networks in
        training mode and draws this step's augmentations and interpolation weights.
        """
        return self._discriminator_objective(*self._discriminator_inputs(real_images, noise))[0]

    def generator_loss(self, noise):
        """G's loss on generator(noise), float32 scalar: what its step minimises (chapter 5)."""
        return self._generator_objective(noise)[0]

    def _discriminator_inputs(self, real_images, noise):
        """(real, generated) images as the discriminator sees them, augmented if so set."""
        fake_images = self.generator(noise, training=True)
        real_images = tf.convert_to_tensor(real_images)  # a tensor, so R1 can watch it
        return self._augment(real_images, D_REAL_AUGMENT), self._augment(
            fake_images, D_FAKE_AUGMENT
        )

    def _discriminator_objective(self, real_in, fake_in):
        """(loss over the global batch, logs of this replica's batch, real accuracy per image)."""
        batch = tf.shape(real_in)[0]
        replicas, _ = _replicas()
        global_batch = tf.cast(batch * replicas, tf.float32)
        # Two passes, not one on the concatenation: a BatchNorm layer (if any) then
        # normalises real and generated images each by their own batch statistics, and
        # a minibatch-std layer measures the spread of each kind on its own.
        if self.r1_gamma:
            # Inside the step's own tape: the penalty's gradient reaches D's weights.
            real_logits, real_gradients = self._logits_and_input_gradients(real_in)
        else:
            real_logits = self._logit(real_in)
        fake_logits = self._logit(fake_in)
        if self.gan_loss == "bce":
            real_labels, fake_labels = self._labels(batch)
            real_losses = tf.nn.sigmoid_cross_entropy_with_logits(real_labels, real_logits)
            fake_losses = tf.nn.sigmoid_cross_entropy_with_logits(fake_labels, fake_logits)
            weight = 0.5  # the mean of the two halves, as BCE on the joint batch would be
        elif self.gan_loss == "hinge":
            real_losses, fake_losses = tf.nn.relu(1.0 - real_logits), tf.nn.relu(1.0 + fake_logits)
            weight = 1.0
        else:  # wgan-gp
            real_losses, fake_losses = -real_logits, fake_logits
            weight = 1.0
        # Divided by the GLOBAL batch: the optimizer sums the replicas' gradients, so
        # the sum is the gradient of the mean over the whole batch.
        loss = weight * (tf.reduce_sum(real_losses) + tf.reduce_sum(fake_losses)) / global_batch
        logged = weight * (tf.reduce_mean(real_losses) + tf.reduce_mean(fake_losses))
        penalties = []
        if self.r1_gamma:
            penalties.append((0.5 * self.r1_gamma, self._squared_norms(real_gradients)))
        if self.gan_loss == "wgan-gp" and self.gp_weight:
            # The tiny offset keeps sqrt's gradient finite where a gradient is exactly 0.
            squared = self._squared_norms(self._interpolate_gradients(real_in, fake_in))
            norms = tf.sqrt(squared + 1e-12)
            penalties.append((self.gp_weight, tf.square(norms - 1.0)))
        for coefficient, values in penalties:
            loss += coefficient * tf.reduce_sum(values) / global_batch
            logged += coefficient * tf.reduce_mean(values)
        logs = {
            "d_loss": logged,
            "d_real_accuracy": tf.reduce_mean(tf.cast(real_logits > 0, tf.float32)),
            "d_fake_accuracy": tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)),
        }
        return loss, logs, tf.cast(real_logits > 0, tf.float32)

    @staticmethod
    def _squared_norms(gradients):
        """float32 (n,): each image's squared L2 norm of `gradients` (n, ...)."""
        gradients = tf.cast(gradients, tf.float32)
        return tf.reduce_sum(tf.square(gradients), axis=tf.range(1, tf.rank(gradients)))

    def _interpolate_gradients(self, real_in, fake_in):
        """grad of the logit at x_hat = e * real + (1 - e) * fake, e ~ U(0, 1) per image (GP_MIX)."""
        real_in, fake_in = tf.cast(real_in, tf.float32), tf.cast(fake_in, tf.float32)
        tail = [1] * (len(real_in.shape) - 1)
        mix = self._random(tf.random.stateless_uniform, GP_MIX, tail, tf.shape(real_in)[0])
        mixed = mix * real_in + (1.0 - mix) * fake_in
        return self._logits_and_input_gradients(mixed)[1]

    def _logits_and_input_gradients(self, images):
        """(D's float32 logits (n, 1), float32 d(sum of logits)/d images): R1's and GP's gradient.

        Under mixed_float16 the discriminator back-propagates in float16, where small
        gradients lose precision or flush to zero; this gradient is scaled up as the
        weights' are (the optimizer's current loss scale, 1 in float32) and divided back
        in float32. An overflow makes the penalty, and so the loss, non-finite: the
        loss-scale optimizer then skips the update and lowers its scale, as for any other.
        """
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            logits = self._logit(images)
            scale = self._input_gradient_scale()
            total = tf.reduce_sum(logits) * scale  # in the tape: the sum is part of the path
        return logits, tf.cast(tape.gradient(total, images), tf.float32) / scale

    def _input_gradient_scale(self):
        """The discriminator optimizer's loss scale, float32 scalar: 1.0 unless mixed_float16."""
        return tf.cast(self.d_optimizer.scale_loss(tf.constant(1.0)), tf.float32)

    def _generator_objective(self, noise):
        """(loss over the global batch, G's loss on this replica's batch)."""
        batch = tf.shape(noise)[0]
        replicas, _ = _replicas()
        global_batch = tf.cast(batch * replicas, tf.float32)
        fake_in = self._augment(self.generator(noise, training=True), G_FAKE_AUGMENT)
        logits = self._logit(fake_in)
        if self.gan_loss == "bce":
            losses = tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logits), logits)
        else:  # hinge and wgan-gp: the same generator loss
            losses = -logits
        return tf.reduce_sum(losses) / global_batch, tf.reduce_mean(losses)  # see above

    def discriminator_step(self, real_images, noise):
        """One discriminator update on real_images and generator(noise); dict of local values (chapter 5)."""
        global_batch = tf.cast(tf.shape(real_images)[0] * _replicas()[0], tf.float32)
        real_in, fake_in = self._discriminator_inputs(real_images, noise)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            loss, logs, real_correct = self._discriminator_objective(real_in, fake_in)
            scaled_loss = self.d_optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, variables)
        self.d_optimizer.apply_gradients(zip(gradients, variables, strict=True))
        if self.augmenter is not None:
            # p moves by the same amount on every replica: the accuracy over the global batch.
            self.augmenter.update(_sum_over_replicas(tf.reduce_sum(real_correct)) / global_batch)
        return logs

    def generator_step(self, noise):
        """One generator update: make the discriminator call generator(noise) real (chapter 5).

        The EMA copy, if any, is not updated here: `train_step` calls `update_ema` after it.
        """
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            loss, logged = self._generator_objective(noise)
            scaled_loss = self.g_optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, variables)
        self.g_optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return {"g_loss": logged}

    def notebook_discriminator_steps(self, real_images, noise):
        """The anime-face notebook's two discriminator updates; dict of local values (chapter 3).

        generator(noise) is drawn in inference mode (Keras `predict`: BatchNormalization
        on its moving statistics), then the discriminator takes one update on the real
        batch (labelled real) and a second on the generated batch (labelled fake), as
        its two `train_on_batch` calls do. d_loss is the mean of the two losses.
        """
        global_batch = tf.cast(tf.shape(real_images)[0] * _replicas()[0], tf.float32)
        fake_images = tf.stop_gradient(self.generator(noise, training=False))
        real_labels, fake_labels = self._labels(tf.shape(noise)[0])
        variables = self.discriminator.trainable_variables
        losses, logits = [], []
        for images, labels in ((real_images, real_labels), (fake_images, fake_labels)):
            with tf.GradientTape() as tape:
                logit = self._logit(images)
                per_image = tf.nn.sigmoid_cross_entropy_with_logits(labels, logit)
                scaled_loss = self.d_optimizer.scale_loss(tf.reduce_sum(per_image) / global_batch)
            gradients = tape.gradient(scaled_loss, variables)
            self.d_optimizer.apply_gradients(zip(gradients, variables, strict=True))
            losses.append(tf.reduce_mean(per_image))
            logits.append(logit)
        return {
            "d_loss": 0.5 * (losses[0] + losses[1]),
            "d_real_accuracy": tf.reduce_mean(tf.cast(logits[0] > 0, tf.float32)),
            "d_fake_accuracy": tf.reduce_mean(tf.cast(logits[1] < 0, tf.float32)),
        }

    def ema_decay(self):
        """The decay of this generator update: min(ema, (1 + t) / (10 + t)), float32 scalar (chapter 7).

        t counts the generator updates before this one (`global_step`). The warm-up keeps
        the random initial weights from lingering: with a fixed 0.99 they would still be
        0.99 ** 48 = 62% of the copy after 48 updates; with it, the copy is an average of
        recent weights from the start, and `ema` itself applies from t = 890 on (for 0.99).
        """
        t = tf.cast(tf.convert_to_tensor(self.global_step), tf.float32)
        return tf.minimum(tf.constant(self.ema, tf.float32), (1.0 + t) / (10.0 + t))

    def update_ema(self):
        """w_ema <- d * w_ema + (1 - d) * w for trainable weights, d = `ema_decay()` (chapter 7).

        Non-trainable weights, BatchNorm moving statistics among them, are copied from the
        live generator: a stand-in only, as those statistics belong to the live weights,
        not to the averaged ones. `refresh_ema_statistics` computes the copy's own, and
        `generate` calls it whenever the copy changed; call it yourself before using
        `ema_generator` directly.
        """
        decay = self.ema_decay()
        for ema_weight, weight in zip(
            self.ema_generator.weights, self.generator.weights, strict=True
        ):
            if weight.trainable:
                decay_w = tf.cast(decay, ema_weight.dtype)
                ema_weight.assign(decay_w * ema_weight + (1.0 - decay_w) * weight)
            else:
                ema_weight.assign(weight)
        self.ema_updates.assign_add(1)

    def refresh_ema_statistics(self, batches=8, batch_size=64, seed=None):
        """Recompute the EMA generator's BatchNorm moving statistics for its own weights (chapter 7).

        Runs `ema_generator` in training mode on `batches` batches of standard normal
        noise (np.random.default_rng(seed), default seed: the GAN's noise seed) and sets
        each BatchNorm layer's moving mean and variance to the average of its batch means
        and (biased) batch variances over those batches: an exact average, not Keras's
        momentum blend. Averaged weights need statistics of their own: the live
        generator's, which `update_ema` copies, would normalise with the wrong means.
        The next `update_ema` copies those again; `generate` refreshes whenever the copy
        changed. Does nothing without an EMA generator or BatchNorm layers.
        """
        if self.ema_generator is None:
            return
        batches = check_int(batches, "batches", 1)
        batch_size = check_int(batch_size, "batch_size", 1)
        layers = _batch_norm_layers(self.ema_generator)
        if layers:
            seed = int(keras.ops.convert_to_numpy(self.noise_seed)) if seed is None else seed
            z = np.random.default_rng(seed).standard_normal(
                (batches, batch_size, self.latent_dim), dtype=np.float32
            )
            saved = [(layer.momentum, layer.trainable) for layer in layers]
            try:
                for layer in layers:
                    # Keras 3 BatchNorm uses batch statistics only in a trainable layer.
                    layer.trainable = True
                for i in range(batches):
                    for layer in layers:
                        # momentum i/(i+1) makes the moving value the running average of
                        # the i+1 batches so far (the first batch replaces the old value).
                        layer.momentum = i / (i + 1)
                    self.ema_generator(z[i], training=True)
            finally:
                for layer, (momentum, trainable) in zip(layers, saved, strict=True):
                    layer.momentum, layer.trainable = momentum, trainable
        self._ema_statistics_of = self._ema_state()

    def _ema_state(self):
        """What the EMA copy's statistics depend on: its update count and the step."""
        return (
            int(keras.ops.convert_to_numpy(self.ema_updates)),
            int(keras.ops.convert_to_numpy(self.global_step)),
        )

    def _record_nonfinite(self, *losses):
        """Store the current step in `nonfinite_step` if it is the first with a NaN/inf loss."""
        bad = tf.reduce_sum(tf.cast(~tf.math.is_finite(tf.stack(losses)), tf.float32))
        # Summed over replicas: `nonfinite_step` keeps the first replica's value only, and
        # a NaN on another replica must count too.
        finite = _sum_over_replicas(bad) == 0
        first_bad = tf.convert_to_tensor(self.nonfinite_step)
        step = tf.convert_to_tensor(self.global_step)
        self.nonfinite_step.assign(tf.where(finite | (first_bad >= 0), first_bad, step))

    def _track(self, batch, logs):
        """Update the logged means, each image of the global batch weighing the same."""
        weight = tf.cast(batch, tf.float32)
        for tracker in self.metrics:
            if tracker is self.aug_p_tracker:
                tracker.update_state(self.augmenter.probability)
            else:
                tracker.update_state(logs[tracker.name], sample_weight=weight)

    def _discriminator_updates(self, real_images):
        """The step's discriminator updates on real_images, each on fresh noise; their mean logs.

        `d_steps` times `discriminator_step` (update i > 0 draws from the step's streams
        with i folded into their seeds), or the notebook scheme's own two updates.
        """
        batch = tf.shape(real_images)[0]
        if self.update_scheme == "notebook":
            return self.notebook_discriminator_steps(real_images, self.noise(batch, D_NOISE))
        logs = []
        for update in range(self.d_steps):
            with self._drawing_for(update):
                logs.append(self.discriminator_step(real_images, self.noise(batch, D_NOISE)))
        if len(logs) == 1:
            return logs[0]
        return {name: tf.add_n([log[name] for log in logs]) / len(logs) for name in logs[0]}

    def train_step(self, data):
        """`d_steps` discriminator updates, then a generator update, on real images; the logs (chapter 5)."""
        real_images = data[0] if isinstance(data, (tuple, list)) else data
        batch = tf.shape(real_images)[0]  # this replica's share of the global batch
        d_logs = self._discriminator_updates(real_images)
        # The notebook scheme's generator update takes twice the batch (chapter 3).
        g_batch = 2 * batch if self.update_scheme == "notebook" else batch
        g_logs = self.generator_step(self.noise(g_batch, G_NOISE))
        if self.ema_generator is not None:
            self.update_ema()
        self._record_nonfinite(d_logs["d_loss"], g_logs["g_loss"])
        self.global_step.assign_add(1)  # after the step: its random streams used the old value
        self._track(batch, {**d_logs, **g_logs})
        return {metric.name: metric.result() for metric in self.metrics}

    # ----------------------------------------------------------------- using it

    def generate(self, n, seed=None, batch_size=256, ema=None):
        """n images, float32 (n, h, w, c) in `value_range`, from the EMA generator if there is one (chapter 5).

        seed: the same seed gives the same noise, hence the same images from the same
        weights; None draws the noise from NumPy's global state, which
        keras.utils.set_random_seed sets. ema: None uses the EMA copy when there is one,
        True requires it, False uses the trained generator itself (chapter 7 compares
        the two). The EMA copy's BatchNorm statistics are recomputed first
        (`refresh_ema_statistics`) when its weights changed since the last time, with
        fixed noise, so this stays repeatable.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if ema not in (None, True, False):
            raise ValueError(f"ema must be None, True or False, got {ema!r}")
        if ema and self.ema_generator is None:
            raise ValueError("ema=True, but this GAN has no EMA copy: build it with ema=0.999, say")
        use_ema = self.ema_generator is not None if ema is None else ema
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        z = np.random.default_rng(seed).standard_normal((int(n), self.latent_dim), dtype=np.float32)
        generator = self.ema_generator if use_ema else self.generator
        if n == 0:
            return np.zeros((0, *generator.outputs[0].shape[1:]), np.float32)
        if use_ema and self._ema_statistics_of != self._ema_state():
            self.refresh_ema_statistics()
        parts = [
            keras.ops.convert_to_numpy(generator(z[i : i + batch_size], training=False))
            for i in range(0, int(n), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def fit(self, x=None, y=None, *, resume=False, **kwargs):
        """keras.Model.fit, plus: stop with FloatingPointError at a NaN/inf loss, and resume (chapter 5).

        resume=True loads the newest checkpoint of the `Checkpoints` callback in
        `callbacks` and continues from it: `epochs` stays the total, so a resumed run
        ends where an uninterrupted one would, a checkpoint taken in the middle of an
        epoch finishing that epoch first.

        With a tf.data.Dataset `x`, freshly made the same way as the interrupted fit's,
        it goes on with the batch where the run stopped: the batches of x.repeat() from
        epoch * steps_per_epoch + steps done on (skipping runs x's pipeline over the
        skipped batches). That needs `steps_per_epoch`, in the interrupted fit too: it
        is what makes Keras feed x.repeat() (when it divides x's length or x repeats);
        without it Keras 3 starts a new pass of x at each epoch's start and another at
        its end, so epoch e sees x's pass 2e. One exception: a dataset that reshuffles
        each pass (shuffle's reshuffle_each_iteration) draws each pass's order from a
        state shared by all its iterators, so after a checkpoint taken in the middle of
        an epoch (`Checkpoints(every_steps=...)`) the rest of that epoch is exact but
        the later epochs get other orders than an uninterrupted run (each still a full
        pass); from an epoch-end checkpoint everything is exact. Other `x` (arrays)
        start the remaining epochs on orders Keras draws afresh.

        steps_per_epoch must be a multiple of the compiled steps_per_execution: Keras
        runs whole calls, so it would otherwise train past each epoch's end.
        """
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # a dataset brings its own order
        if self._auto_steps_per_execution:
            steps = kwargs.get("steps_per_epoch")
            self._use_steps_per_execution(steps_per_call(steps) if steps else 8)
        self._check_steps_per_execution(kwargs.get("steps_per_epoch"))
        if not any(isinstance(c, StopOnNonFinite) for c in callbacks):
            callbacks.insert(0, StopOnNonFinite())
        if resume:
            checkpoints = [c for c in callbacks if isinstance(c, Checkpoints)]
            if not checkpoints:
                raise ValueError(
                    "fit(resume=True) continues from checkpoints: pass "
                    "callbacks=[Checkpoints(folder)] to say where they are"
                )
            steps = kwargs.get("steps_per_epoch")
            if isinstance(x, tf.data.Dataset) and not steps:
                raise ValueError(
                    "fit(resume=True) on a dataset needs steps_per_epoch to find the batch "
                    "where the run stopped; pass it (and pass it when training from scratch "
                    "too, so that both runs see the same batches)"
                )
            state = load_checkpoint(self, checkpoints[0].directory)
            if state is not None:
                x = self._resume(x, y, callbacks, kwargs, steps, state)
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    def _resume(self, x, y, callbacks, kwargs, steps, state):
        """Train the rest of an interrupted epoch; return the `x` that continues after it.

        Sets kwargs["initial_epoch"] for the fit of the remaining epochs.
        """
        epoch, done = state["epoch"], state["step_in_epoch"]
        epochs = kwargs.get("epochs", 1)
        dataset = isinstance(x, tf.data.Dataset)

        def stream(position):
            # x's passes one after the other, from batch `position`: what fit fed the
            # interrupted run, a reshuffling x giving each pass its next order.
            return x.repeat().skip(position) if dataset else x

        if done and steps and done >= steps:  # more steps done than this epoch length allows
            epoch, done = epoch + 1, 0
        if done and steps and epoch < epochs:
            rest = {
                key: value
                for key, value in kwargs.items()
                if key not in ("epochs", "initial_epoch", "steps_per_epoch")
            }
            if self._auto_steps_per_execution:
                self._use_steps_per_execution(steps_per_call(steps, done))
            self._check_steps_per_execution(steps - done)
            self.fit_epoch_rest(
                stream(epoch * steps + done),
                y=y,
                epoch=epoch,
                done=done,
                steps_per_epoch=steps,
                callbacks=callbacks,
                **rest,
            )
            epoch += 1
        kwargs["initial_epoch"] = epoch
        return stream(epoch * steps)

    def set_steps_per_execution(self, every):
        """Run `every` training steps per call into TensorFlow in every later `fit` (chapter 5).

        Turns off the "auto" choice of `from_spec`; `train` uses it once it has chosen.
        """
        self._auto_steps_per_execution = False
        self._use_steps_per_execution(check_int(every, "steps_per_execution", 1))

    def _use_steps_per_execution(self, every):
        """Run `every` steps per call from now on (Keras keeps the traced function otherwise)."""
        if self.distribute_strategy.num_replicas_in_sync > 1:
            # Keras runs several steps per call inside a tf.cond, where the replicas'
            # all_reduce of the step fails ("You must feed a value for placeholder").
            every = 1
        if every != self.steps_per_execution:
            self.steps_per_execution = every
            self.train_function = None

    def _check_steps_per_execution(self, steps_per_epoch):
        every = self.steps_per_execution
        if steps_per_epoch and every > 1 and steps_per_epoch % every:
            raise ValueError(
                f"steps_per_epoch {steps_per_epoch} is not a multiple of steps_per_execution "
                f"{every}, so Keras would run past each epoch's end; compile with "
                f"steps_per_execution=ganlib.training.steps_per_call({steps_per_epoch})"
            )

    def fit_epoch_rest(self, x, *, epoch, done, steps_per_epoch, callbacks=None, **kwargs):
        """Fit the rest of epoch `epoch` (from 0), whose first `done` steps are trained (chapter 5).

        x yields the epoch's remaining steps_per_epoch - done batches; the callbacks see
        the step numbers of the whole epoch, so its checkpoints and history row continue
        those of the interrupted run. kwargs go to `fit`.
        """
        self._step_offset = done
        try:
            return super().fit(
                x,
                callbacks=callbacks,
                epochs=epoch + 1,
                initial_epoch=epoch,
                steps_per_epoch=steps_per_epoch - done,
                **kwargs,
            )
        finally:
            self._step_offset = 0
