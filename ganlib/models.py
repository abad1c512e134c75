"""Generators and discriminators for the book, as un-compiled Keras 3 functional models.

Five families, each a generator/discriminator pair for 32x32 or 64x64 RGB images:

- ``mlp``: dense layers with ReLU, the "GAN basics" picture (also for 2-D toy data).
- ``baseline``: the Keras CelebA DCGAN example (``dcgan_overriding_train_step``),
  sigmoid output in [0, 1], latent size 128.
- ``improved``: the anime-face DCGAN project's model, layer for layer as its published notebook builds it, tanh output
  in [-1, 1], latent size 100; options undo its changes one at a time (chapter 3's ablation).
- ``cifar``: the CIFAR DCGAN project's model, transposed convolutions interleaved with
  same-size convolutions, BatchNormalization, tanh output, latent size 128.
- ``hybrid``: the improved generator trained against the cifar discriminator, chapter 4's
  cure for the cifar pair's collapse and the book's quick recipe (latent size 100).

Every discriminator ends in a linear ``Dense(1, name="logit")`` followed by a separate
``Activation("sigmoid", name="probability")``: the model outputs a probability, and
training code can take the logit from ``d.get_layer("logit").output`` for a numerically
stable cross-entropy. Every generator carries ``generator.value_range`` (low, high).

``width`` scales every filter and unit count except the 3-channel image output and the
1-unit logit (rounded to the nearest integer, at least 8); ``width=1.0`` is the
published model. It exists because the exact models train at a handful of images per
second on a laptop CPU, so a chapter's quick mode uses a narrower one and says so.
"""

import inspect
import math
import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ganlib.common import IMAGE_SIZES, check_image_size

__all__ = [
    "build_pair",
    "mlp_generator",
    "mlp_discriminator",
    "baseline_generator",
    "baseline_discriminator",
    "improved_generator",
    "improved_discriminator",
    "cifar_generator",
    "cifar_discriminator",
    "latent_dim",
    "value_range",
    "visible_pixels",
    "MinibatchStd",
    "ReplicaDropout",
    "MODEL_NAMES",
    "VALUE_RANGES",
    "DEFAULT_LATENT_DIM",
]

MODEL_NAMES = ("mlp", "baseline", "improved", "cifar", "hybrid")

# Output range of each family's generator: sigmoid -> (0, 1), tanh -> (-1, 1).
VALUE_RANGES = {
    "mlp": (-1.0, 1.0),
    "baseline": (0.0, 1.0),
    "improved": (-1.0, 1.0),
    "cifar": (-1.0, 1.0),
    "hybrid": (-1.0, 1.0),
}

# Latent sizes of the published models (the MLP's is this book's choice).
DEFAULT_LATENT_DIM = {"mlp": 64, "baseline": 128, "improved": 100, "cifar": 128, "hybrid": 100}

UPSAMPLE_CHOICES = ("nearest", "transposed")
POOLING_CHOICES = ("average", "flatten")
# The improved discriminator's convolution paddings: as published (same, valid, valid), or
# same padding in all three so that every input pixel reaches the output (chapter 3).
PADDING_CHOICES = ("published", "same")
# The improved generator's last activation and the value range it gives.
OUTPUT_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}
OUTPUT_CHOICES = tuple(OUTPUT_RANGES)
_MIN_FILTERS = 8


# --------------------------------------------------------------------------- helpers


def _check_width(width):
    if (
        isinstance(width, bool)
        or not isinstance(width, numbers.Real)
        or not math.isfinite(width)
        or width <= 0
    ):
        raise ValueError(
            f"width must be a positive number (1.0 is the published model), got {width!r}"
        )
    return float(width)


def _scaled(count, width):
    """A filter or unit count times `width`, rounded half up, at least 8."""
    return max(_MIN_FILTERS, int(math.floor(count * width + 0.5)))


def _check_latent_dim(latent_dim):
    if (
        isinstance(latent_dim, bool)
        or not isinstance(latent_dim, numbers.Integral)
        or latent_dim < 1
    ):
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    return int(latent_dim)


def _check_choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {choices}")
    return value


def _check_flag(value, what):
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be True or False, got {value!r}")
    return value


def _generator(inputs, outputs, name, value_range):
    model = keras.Model(inputs, outputs, name=name)
    # Keras 3 keeps plain tuples as they are; clone_model and saving drop the attribute,
    # which is why value_range() falls back to the model's name.
    model.value_range = None if value_range is None else tuple(float(v) for v in value_range)
    return model


def _discriminator_head(x, spectral_norm=False):
    """Linear logit, then its sigmoid as a separate layer so the logit can be reached."""
    logit = _normed(layers.Dense(1, name="logit"), spectral_norm)(x)
    probability = layers.Activation("sigmoid", name="probability")(logit)
    return probability


def _normed(layer, spectral_norm):
    """`layer`, or `layer` inside SpectralNormalization, which then takes its name.

    The wrapper carries the name (so ``get_layer("logit")`` still finds the logit) and
    the wrapped layer is renamed ``NAME_inner``. Keras's wrapper divides the kernel by
    its largest singular value (one power iteration per call) on each training-mode
    call and stores the result in the kernel, so the kernel itself is the normalised one.
    """
    if not spectral_norm:
        return layer
    name = layer.name
    layer.name = f"{name}_inner"
    return layers.SpectralNormalization(layer, name=name)


@keras.saving.register_keras_serializable(package="ganlib")
class MinibatchStd(layers.Layer):
    """Appends the batch's spread as one more feature map (chapter 4).

    inputs float (n, h, w, c) -> (n, h, w, c + 1). The new map holds, for each image,
    the mean over pixels and channels of the standard deviation across its group of
    images: std over the group per (pixel, channel), biased (divided by the group size),
    sqrt(variance + 1e-8). group_size: None takes the whole batch as one group; an int
    g splits it into g-image groups, image i in group i mod (n / g); n must then be a
    multiple of g (min(g, n) for smaller batches). A collapsed batch, all images alike,
    shows a std near 0, which the discriminator can learn to call fake. The statistic
    is of the batch the layer is called on: the GAN passes real and generated images
    separately, so each kind is measured on its own.
    """

    def __init__(self, group_size=None, **kwargs):
        super().__init__(**kwargs)
        if group_size is not None and (
            isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
        ):
            raise ValueError(f"group_size must be a positive integer or None, got {group_size!r}")
        self.group_size = group_size

    def call(self, inputs):
        shape = keras.ops.shape(inputs)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        groups = n if self.group_size is None else keras.ops.minimum(self.group_size, n)
        # The statistic in float32 also under mixed precision: a variance of nearly
        # identical images is too small for float16.
        x = keras.ops.cast(inputs, "float32")
        x = keras.ops.reshape(x, (groups, -1, h, w, c))
        variance = keras.ops.mean(keras.ops.square(x - keras.ops.mean(x, axis=0)), axis=0)
        spread = keras.ops.mean(keras.ops.sqrt(variance + 1e-8), axis=(1, 2, 3))  # (n / g,)
        spread = keras.ops.tile(spread, (groups,))  # image i gets its group i mod (n / g)
        spread = keras.ops.cast(spread, inputs.dtype)
        feature = keras.ops.ones((n, h, w, 1), dtype=inputs.dtype) * spread[:, None, None, None]
        return keras.ops.concatenate([inputs, feature], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], None if input_shape[-1] is None else input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


@keras.saving.register_keras_serializable(package="ganlib")
class ReplicaDropout(layers.Dropout):
    """Keras's Dropout, drawing each tf.distribute replica's mask as one device would (chapter 5)."""

    # The replicas share the mirrored seed state, so Keras's Dropout drops the same units
    # on every replica's slice of the batch. Like GAN's noise, this draws the mask of the
    # global batch and keeps this replica's rows: what one device draws for that batch.
    # With one replica it is Keras's own call, so single-device runs keep their masks; the
    # arithmetic below is that call's (tf.nn.experimental.stateless_dropout), bit for bit.
    def call(self, inputs, training=False):
        context = tf.distribute.get_replica_context()
        replicas = 1 if context is None else context.num_replicas_in_sync
        if not training or not 0 < self.rate < 1 or replicas == 1:
            return super().call(inputs, training=training)
        inputs = tf.convert_to_tensor(inputs)
        shape = tf.shape(inputs)
        given = self.noise_shape or (None,) * len(inputs.shape)
        noise = [shape[i] if d is None else d for i, d in enumerate(given)]
        per_example = given[0] is None  # else one mask for the whole batch, on every replica
        if per_example:
            noise[0] = shape[0] * replicas
        draws = keras.random.uniform(tf.stack(noise), dtype=inputs.dtype, seed=self.seed_generator)
        if per_example:
            start = context.replica_id_in_sync_group * shape[0]
            draws = draws[start : start + shape[0]]
        scaled = inputs * tf.constant(1 / (1 - self.rate), inputs.dtype)
        return tf.where(draws >= self.rate, scaled, tf.zeros((), inputs.dtype))


# --------------------------------------------------------------------------- MLP


def _mlp_data_shape(image_size, channels, data_shape):
    if data_shape is None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        return (image_size, image_size, channels)
    shape = tuple(data_shape)
    if len(shape) not in (1, 3) or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            f"data_shape must be (features,) for vectors or (height, width, channels) "
            f"for images, got {data_shape!r}"
        )
    return shape


def _mlp_suffix(shape):
    return f"{shape[0]}" if len(shape) == 3 and shape[0] == shape[1] else "x".join(map(str, shape))


def _check_hidden(hidden):
    hidden = tuple(hidden)
    if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ValueError(
            f"hidden must be a non-empty sequence of positive unit counts, got {hidden!r}"
        )
    return hidden


def mlp_generator(
    image_size=32, latent_dim=64, hidden=(256, 512), channels=3, width=1.0, data_shape=None
):
    """Dense generator: noise (n, latent_dim) -> Dense+ReLU per `hidden` -> data (chapter 1).

    Images (default, data_shape (image_size, image_size, channels)): float32
    (n, s, s, channels) through tanh, value range (-1, 1). Vectors (data_shape=(d,),
    e.g. (2,) for the ring of Gaussians): float32 (n, d) through a linear output,
    value range None (unbounded). `width` scales the hidden units.
    """
    shape = _mlp_data_shape(image_size, channels, data_shape)
    latent_dim = _check_latent_dim(latent_dim)
    width = _check_width(width)
    hidden = _check_hidden(hidden)
    is_image = len(shape) == 3
    z = keras.Input((latent_dim,), name="z")
    x = z
    for i, units in enumerate(hidden):
        x = layers.Dense(_scaled(units, width), activation="relu", name=f"dense_{i}")(x)
    x = layers.Dense(math.prod(shape), activation="tanh" if is_image else "linear", name="output")(
        x
    )
    if is_image:
        x = layers.Reshape(shape, name="image")(x)
    value_range = VALUE_RANGES["mlp"] if is_image else None
    return _generator(z, x, f"mlp_generator_{_mlp_suffix(shape)}", value_range)


def mlp_discriminator(
    image_size=32, hidden=(512, 256), channels=3, width=1.0, data_shape=None, spectral_norm=False
):
    """Dense discriminator: data -> Flatten -> Dense+ReLU per `hidden` -> logit -> probability.
    Explained in chapter 1.

    Input float32 (n, s, s, channels) images or (n, d) vectors (see `mlp_generator`);
    output float32 (n, 1) probabilities in [0, 1]. `width` scales the hidden units.
    spectral_norm: wrap every Dense layer, the logit's too, in SpectralNormalization
    (chapter 4).
    """
    shape = _mlp_data_shape(image_size, channels, data_shape)
    width = _check_width(width)
    hidden = _check_hidden(hidden)
    inputs = keras.Input(shape, name="data")
    x = layers.Flatten(name="flatten")(inputs) if len(shape) == 3 else inputs
    for i, units in enumerate(hidden):
        dense = layers.Dense(_scaled(units, width), activation="relu", name=f"dense_{i}")
        x = _normed(dense, spectral_norm)(x)
    outputs = _discriminator_head(x, spectral_norm)
    return keras.Model(inputs, outputs, name=f"mlp_discriminator_{_mlp_suffix(shape)}")


# --------------------------------------------------------------------------- baseline


def baseline_generator(image_size=64, latent_dim=128, width=1.0):
    """The Keras CelebA DCGAN generator: noise (n, latent_dim) -> float32 (n, s, s, 3) in [0, 1].
    Explained in chapter 3.

    Dense to (s/8, s/8, 128), three Conv2DTranspose (128, 256, 512; kernel 4, stride 2,
    same) each with LeakyReLU(0.2), then Conv2D 3, kernel 5, sigmoid.
    3,979,651 parameters at 64 px, 3,187,075 at 32 px (a 4x4 start).
    """
    image_size = check_image_size(image_size, IMAGE_SIZES, "baseline image_size")
    latent_dim = _check_latent_dim(latent_dim)
    width = _check_width(width)
    start, channels = image_size // 8, _scaled(128, width)
    z = keras.Input((latent_dim,), name="z")
    x = layers.Dense(start * start * channels, name="project")(z)
    x = layers.Reshape((start, start, channels), name="reshape")(x)
    for i, filters in enumerate((128, 256, 512)):
        x = layers.Conv2DTranspose(
            _scaled(filters, width), 4, strides=2, padding="same", name=f"up_{i}"
        )(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"up_{i}_act")(x)
    x = layers.Conv2D(3, 5, padding="same", activation="sigmoid", name="image")(x)
    return _generator(z, x, f"baseline_generator_{image_size}", VALUE_RANGES["baseline"])


def baseline_discriminator(image_size=64, width=1.0, spectral_norm=False, minibatch_std=False):
    """The Keras CelebA DCGAN discriminator: float32 (n, s, s, 3) in [0, 1] -> (n, 1) probability.
    Explained in chapter 3.

    Conv2D 64, 128, 128 (kernel 4, stride 2, same) each with LeakyReLU(0.2), Flatten,
    Dropout 0.2, Dense 1. 404,801 parameters at 64 px, 398,657 at 32 px.
    spectral_norm: wrap every Conv2D and Dense, the logit's too, in SpectralNormalization
    (chapter 4). minibatch_std: a `MinibatchStd` layer before the last Conv2D (chapter 4).
    """
    image_size = check_image_size(image_size, IMAGE_SIZES, "baseline image_size")
    width = _check_width(width)
    images = keras.Input((image_size, image_size, 3), name="images")
    x = images
    for i, filters in enumerate((64, 128, 128)):
        if minibatch_std and i == 2:
            x = MinibatchStd(name="minibatch_std")(x)
        conv = layers.Conv2D(
            _scaled(filters, width), 4, strides=2, padding="same", name=f"conv_{i}"
        )
        x = _normed(conv, spectral_norm)(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"conv_{i}_act")(x)
    x = layers.Flatten(name="flatten")(x)
    x = ReplicaDropout(0.2, name="dropout")(x)
    outputs = _discriminator_head(x, spectral_norm)
    return keras.Model(images, outputs, name=f"baseline_discriminator_{image_size}")


# --------------------------------------------------------------------------- improved


def improved_generator(
    image_size=64, latent_dim=100, width=1.0, upsample="nearest", output="tanh", batchnorm=True
):
    """The improved generator of the anime-face DCGAN project (chapter 3).

    noise (n, latent_dim) -> float32 (n, s, s, 3) in [-1, 1] (in [0, 1] with output="sigmoid").

    Dense to (s/4, s/4, 128) with ReLU, then two blocks of 2x upsampling + Conv2D 3x3
    (128, then 64 filters) + BatchNormalization(momentum=0.8) + ReLU, then Conv2D 3x3
    to 3 channels with tanh. 3,533,443 parameters at 64 px, 1,051,267 at 32 px.

    upsample: "nearest" (what the notebook ran: UpSampling2D then a same-size Conv2D,
    a known cure for checkerboard artefacts) or "transposed" (what the prose says:
    Conv2DTranspose kernel 4, stride 2, same padding, with the same filter counts).
    output: "tanh" (what was run, value range (-1, 1)) or "sigmoid" (the baseline's
    (0, 1); `value_range(generator)` reports it, so the GAN scales the real images to
    match). batchnorm: False drops the two BatchNormalization layers (768 parameters
    fewer at width 1.0); the convolutions keep their bias either way, as published.
    The model's name records each change from the published model (``_transposed``,
    ``_sigmoid``, ``_nobn``).
    """
    image_size = check_image_size(image_size, IMAGE_SIZES, "improved image_size")
    latent_dim = _check_latent_dim(latent_dim)
    width = _check_width(width)
    _check_choice(upsample, UPSAMPLE_CHOICES, "upsample")
    _check_choice(output, OUTPUT_CHOICES, "output")
    _check_flag(batchnorm, "batchnorm")
    start, channels = image_size // 4, _scaled(128, width)
    z = keras.Input((latent_dim,), name="z")
    x = layers.Dense(start * start * channels, activation="relu", name="project")(z)
    x = layers.Reshape((start, start, channels), name="reshape")(x)
    for i, filters in enumerate((128, 64)):
        filters = _scaled(filters, width)
        if upsample == "nearest":
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"upsample_{i}")(x)
            x = layers.Conv2D(filters, 3, padding="same", name=f"conv_{i}")(x)
        else:
            x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"conv_{i}")(x)
        if batchnorm:
            x = layers.BatchNormalization(momentum=0.8, name=f"conv_{i}_bn")(x)
        x = layers.ReLU(name=f"conv_{i}_act")(x)
    x = layers.Conv2D(3, 3, padding="same", activation=output, name="image")(x)
    suffix = "_transposed" * (upsample == "transposed") + "_sigmoid" * (output == "sigmoid")
    suffix += "_nobn" * (not batchnorm)
    return _generator(z, x, f"improved_generator_{image_size}{suffix}", OUTPUT_RANGES[output])


def improved_discriminator(
    image_size=64,
    width=1.0,
    pooling="average",
    spectral_norm=False,
    minibatch_std=False,
    dropout=True,
    padding="published",
):
    """The improved discriminator of the anime-face DCGAN project (chapter 3).

    float32 (n, s, s, 3) in the generator's range ([-1, 1] as published) -> (n, 1) probability.

    Conv2D 32/128/128, kernel 5, stride 2 (same, valid, valid), each with LeakyReLU
    (Keras default slope 0.3), Dropout 0.25 after the second; pooling; Dense 256 +
    LeakyReLU + Dropout 0.5; Dense 1. 547,969 parameters at 32 and 64 px.

    pooling: "average" (GlobalAveragePooling2D, what was run) or "flatten" (the usual
    DCGAN head, 1,334,401 parameters at 64 px; the same network at 32 px, where the
    last feature map is 1x1).
    dropout: False leaves out both Dropout layers (the same parameters, none of them
    dropped in training).
    padding: "published" (same, valid, valid, as run) never looks at the last 4 rows and
    columns of the image (`visible_pixels`); "same" pads all three convolutions, so every
    pixel is seen, with the same parameter count under average pooling (the "full view" of
    chapter 3; with "flatten" the larger last map feeds more weights into Dense 256).
    spectral_norm: wrap every Conv2D and Dense, the logit's too, in SpectralNormalization
    (chapter 4). minibatch_std: a `MinibatchStd` layer before the last Conv2D (chapter 4).
    """
    image_size = check_image_size(image_size, IMAGE_SIZES, "improved image_size")
    width = _check_width(width)
    _check_choice(pooling, POOLING_CHOICES, "pooling")
    _check_flag(dropout, "dropout")
    _check_choice(padding, PADDING_CHOICES, "padding")
    paddings = ("same", "valid", "valid") if padding == "published" else ("same",) * 3
    images = keras.Input((image_size, image_size, 3), name="images")
    x = images
    for i, (filters, pad) in enumerate(zip((32, 128, 128), paddings, strict=True)):
        if minibatch_std and i == 2:
            x = MinibatchStd(name="minibatch_std")(x)
        conv = layers.Conv2D(_scaled(filters, width), 5, strides=2, padding=pad, name=f"conv_{i}")
        x = _normed(conv, spectral_norm)(x)
        x = layers.LeakyReLU(name=f"conv_{i}_act")(x)
        if i == 1 and dropout:
            x = ReplicaDropout(0.25, name=f"conv_{i}_dropout")(x)
    if pooling == "average":
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = layers.Flatten(name="pool")(x)
    x = _normed(layers.Dense(_scaled(256, width), name="dense"), spectral_norm)(x)
    x = layers.LeakyReLU(name="dense_act")(x)
    if dropout:
        x = ReplicaDropout(0.5, name="dense_dropout")(x)
    outputs = _discriminator_head(x, spectral_norm)
    suffix = (
        "_flatten" * (pooling == "flatten")
        + "_nodropout" * (not dropout)
        + "_samepad" * (padding == "same")
    )
    return keras.Model(images, outputs, name=f"improved_discriminator_{image_size}{suffix}")


# --------------------------------------------------------------------------- cifar

# This book's reading of the CIFAR DCGAN project (which gives the layer types, not the sizes):
# filters per resolution stage, coarsest first; the generator mirrors the discriminator.
CIFAR_GENERATOR_FILTERS = (256, 128, 64)
CIFAR_DISCRIMINATOR_FILTERS = (64, 128, 256)
# Moving statistics follow the batch faster than Keras's 0.99, so samples drawn in
# inference mode look right after the few hundred steps of a quick run.
_CIFAR_BN_MOMENTUM = 0.9


def cifar_generator(image_size=32, latent_dim=128, width=1.0):
    """The CIFAR DCGAN project's generator (chapter 7).

    noise (n, latent_dim) -> float32 (n, s, s, 3) in [-1, 1].

    Dense to (s/8, s/8, 256); then per stage (256, 128, 64 filters) a Conv2DTranspose
    (kernel 4, stride 2, same) that doubles the size and a Conv2D (kernel 3, same) that
    keeps it, each followed by BatchNormalization and ReLU; Conv2D 3x3 with tanh.
    Convolutions before BatchNormalization have no bias (it would be cancelled).
    """
    image_size = check_image_size(image_size, IMAGE_SIZES, "cifar image_size")
    latent_dim = _check_latent_dim(latent_dim)
    width = _check_width(width)
    start, channels = image_size // 8, _scaled(CIFAR_GENERATOR_FILTERS[0], width)
    z = keras.Input((latent_dim,), name="z")
    x = layers.Dense(start * start * channels, use_bias=False, name="project")(z)
    x = layers.Reshape((start, start, channels), name="reshape")(x)
    x = layers.BatchNormalization(momentum=_CIFAR_BN_MOMENTUM, name="project_bn")(x)
    x = layers.ReLU(name="project_act")(x)
    for i, filters in enumerate(CIFAR_GENERATOR_FILTERS):
        filters = _scaled(filters, width)
        x = layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", use_bias=False, name=f"up_{i}"
        )(x)
        x = layers.BatchNormalization(momentum=_CIFAR_BN_MOMENTUM, name=f"up_{i}_bn")(x)
        x = layers.ReLU(name=f"up_{i}_act")(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv_{i}")(x)
        x = layers.BatchNormalization(momentum=_CIFAR_BN_MOMENTUM, name=f"conv_{i}_bn")(x)
        x = layers.ReLU(name=f"conv_{i}_act")(x)
    x = layers.Conv2D(3, 3, padding="same", activation="tanh", name="image")(x)
    return _generator(z, x, f"cifar_generator_{image_size}", VALUE_RANGES["cifar"])


def cifar_discriminator(image_size=32, width=1.0, spectral_norm=False, minibatch_std=False):
    """The CIFAR DCGAN project's discriminator (chapter 7).

    float32 (n, s, s, 3) in [-1, 1] -> (n, 1) probability.

    Three Conv2D (64, 128, 256 filters; kernel 4, stride 2, same), each followed by
    LeakyReLU(0.2), the last two with BatchNormalization before it (none on the first,
    which sees the raw images, as in the DCGAN paper); Flatten; Dense 1.
    spectral_norm: wrap every Conv2D and the logit's Dense in SpectralNormalization
    (chapter 4); the BatchNormalization layers stay. minibatch_std: a `MinibatchStd`
    layer before the last Conv2D (chapter 4).
    """
    image_size = check_image_size(image_size, IMAGE_SIZES, "cifar image_size")
    width = _check_width(width)
    images = keras.Input((image_size, image_size, 3), name="images")
    x = images
    for i, filters in enumerate(CIFAR_DISCRIMINATOR_FILTERS):
        if minibatch_std and i == len(CIFAR_DISCRIMINATOR_FILTERS) - 1:
            x = MinibatchStd(name="minibatch_std")(x)
        conv = layers.Conv2D(
            _scaled(filters, width), 4, strides=2, padding="same", use_bias=i == 0, name=f"conv_{i}"
        )
        x = _normed(conv, spectral_norm)(x)
        if i > 0:
            x = layers.BatchNormalization(momentum=_CIFAR_BN_MOMENTUM, name=f"conv_{i}_bn")(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"conv_{i}_act")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = _discriminator_head(x, spectral_norm)
    return keras.Model(images, outputs, name=f"cifar_discriminator_{image_size}")


# --------------------------------------------------------------------------- pairs

_BUILDERS = {
    "mlp": (mlp_generator, mlp_discriminator),
    "baseline": (baseline_generator, baseline_discriminator),
    "improved": (improved_generator, improved_discriminator),
    "cifar": (cifar_generator, cifar_discriminator),
    # chapter 4: the cifar pair collapses because of its generator; this keeps its
    # discriminator and swaps the generator for the improved one.
    "hybrid": (improved_generator, cifar_discriminator),
}
_PAIR_ARGUMENTS = ("image_size", "latent_dim", "width")


# Options whose values can be checked without building a model (see `split_options`).
_OPTION_CHECKS = {
    "upsample": lambda value: _check_choice(value, UPSAMPLE_CHOICES, "upsample"),
    "pooling": lambda value: _check_choice(value, POOLING_CHOICES, "pooling"),
    "padding": lambda value: _check_choice(value, PADDING_CHOICES, "padding"),
    "output": lambda value: _check_choice(value, OUTPUT_CHOICES, "output"),
    "batchnorm": lambda value: _check_flag(value, "batchnorm"),
    "dropout": lambda value: _check_flag(value, "dropout"),
}


def _options_of(builder):
    return [p for p in inspect.signature(builder).parameters if p not in _PAIR_ARGUMENTS]


def split_options(name, options):
    """(generator options, discriminator options) of build_pair's `options` for family `name`.

    ValueError for an unknown family, an option neither builder takes, or a value that
    `_OPTION_CHECKS` refuses; so `train` can check a run's options before it starts.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
    make_generator, make_discriminator = _BUILDERS[name]
    g_names, d_names = _options_of(make_generator), _options_of(make_discriminator)
    g_options, d_options = {}, {}
    for key, value in options.items():
        if key.startswith("generator_") and key[len("generator_") :] in g_names:
            g_options[key[len("generator_") :]] = value
        elif key.startswith("discriminator_") and key[len("discriminator_") :] in d_names:
            d_options[key[len("discriminator_") :]] = value
        elif key in g_names or key in d_names:
            if key in g_names:
                g_options[key] = value
            if key in d_names:
                d_options[key] = value
        else:
            valid = ", ".join(sorted({*g_names, *d_names})) or "none"
            raise ValueError(
                f"unknown option {key!r} for {name!r} models; valid options: {valid} "
                "(prefix one with generator_ or discriminator_ to send it to one side only)"
            )
    for side in (g_options, d_options):
        for key, value in side.items():
            if key in _OPTION_CHECKS:
                _OPTION_CHECKS[key](value)
    return g_options, d_options


def build_pair(name, image_size, latent_dim=None, width=1.0, **options):
    """(generator, discriminator) of family `name` (one of MODEL_NAMES).
    Explained in chapter 3.

    image_size: 32 or 64 (any positive size for "mlp"; ignored there when
    data_shape is given). latent_dim: None takes DEFAULT_LATENT_DIM[name].
    options go to the builder that takes them (upsample, output, batchnorm ->
    generator; pooling, dropout, spectral_norm, minibatch_std -> discriminator; mlp's
    data_shape and channels -> both); prefix one with
    ``generator_`` or ``discriminator_`` to send it to one side only
    (e.g. ``discriminator_hidden=(128,)``).
    """
    g_options, d_options = split_options(name, options)
    make_generator, make_discriminator = _BUILDERS[name]
    if name != "mlp":
        check_image_size(image_size, IMAGE_SIZES, f"{name} image_size")
    latent_dim = DEFAULT_LATENT_DIM[name] if latent_dim is None else latent_dim
    generator = make_generator(
        image_size=image_size, latent_dim=latent_dim, width=width, **g_options
    )
    discriminator = make_discriminator(image_size=image_size, width=width, **d_options)
    return generator, discriminator


def latent_dim(generator):
    """Length of the noise vector `generator` takes (its input is (n, latent_dim)) (chapter 5)."""
    shape = tuple(generator.inputs[0].shape)
    if len(generator.inputs) != 1 or len(shape) != 2 or shape[-1] is None:
        raise ValueError(
            f"{generator.name!r} does not take one (n, latent_dim) noise input: {shape}"
        )
    return int(shape[-1])


def _axis_window(size, kernel, stride, dilation, padding):
    """(output size, first input index of output 0) of one axis of a convolution or pooling."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - span) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + span - size, 0) // 2  # TensorFlow pads the end more


# Layers that act on each position alone: visible_pixels walks past them.
_POINTWISE_LAYERS = (
    layers.Activation,
    layers.LeakyReLU,
    layers.ReLU,
    layers.ELU,
    layers.PReLU,
    layers.BatchNormalization,
    layers.Dropout,
    layers.GaussianNoise,
    layers.GaussianDropout,
    layers.Rescaling,
    layers.Identity,
)


def _spatial_windows(model):
    """The layers of discriminator `model` that map positions to positions, input first.

    Each entry is None (the layer reads every position of its input, e.g. MinibatchStd)
    or ((size, kernel, stride, dilation, padding) for rows, same for columns).
    Pointwise layers (activations, BatchNormalization, Dropout) are left out; the walk
    stops at the first layer whose output is not an image (Flatten, pooling, Dense).
    Any other layer with an image output is a ValueError: a same-size layer that mixes
    neighbours (DepthwiseConv2D, a nested model) would otherwise be read as pointwise.
    """
    windows = []
    # Not model.layers[1:]: a Sequential model does not list its InputLayer.
    for layer in (x for x in model.layers if not isinstance(x, layers.InputLayer)):
        inner = getattr(layer, "layer", layer)  # SpectralNormalization wraps its layer
        shape_in, shape_out = tuple(layer.input.shape), tuple(layer.output.shape)
        if len(shape_out) != 4:
            break
        if isinstance(inner, MinibatchStd):
            windows.append(None)
        elif isinstance(inner, (layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D)) and (
            not isinstance(inner, layers.Conv2DTranspose)
        ):
            kernel = getattr(inner, "kernel_size", None) or inner.pool_size
            dilation = getattr(inner, "dilation_rate", (1, 1))
            windows.append(
                tuple(
                    (shape_in[1 + a], kernel[a], inner.strides[a], dilation[a], inner.padding)
                    for a in range(2)
                )
            )
        elif not isinstance(inner, _POINTWISE_LAYERS) or shape_in[1:3] != shape_out[1:3]:
            raise ValueError(
                f"visible_pixels cannot follow layer {layer.name!r} ({type(inner).__name__}); "
                "it knows Conv2D, 2-D pooling, MinibatchStd and pointwise layers "
                "(activations, BatchNormalization, Dropout)"
            )
    return windows


def visible_pixels(model):
    """bool (s, s): the input pixels that can change discriminator `model`'s output (chapter 3).

    Worked out from the layers, not from gradients: walking back from the last feature
    map, whose every position reaches the output (Flatten, global pooling or Dense come
    after it), each Conv2D or pooling layer of kernel k, stride s and padding p makes an
    input position visible when some visible output's window covers it. A layer that
    reads every position (MinibatchStd) makes its whole input visible. For the improved
    discriminator as published (5x5, stride 2; same, valid, valid) the last 4 rows and
    columns stay False at 32 and at 64 px; with padding="same" every pixel is True.
    """
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(
            f"visible_pixels needs a model of images (n, s, s, c), got input shape {shape}"
        )
    windows = _spatial_windows(model)
    axes = []
    for axis in range(2):
        sizes = [shape[1 + axis]]
        for window in windows:
            if window is not None:
                size, kernel, stride, dilation, padding = window[axis]
                sizes.append(_axis_window(size, kernel, stride, dilation, padding)[0])
        seen = np.ones(sizes[-1], bool)
        for window in reversed(windows):
            if window is None:
                seen = np.ones_like(seen)  # the layer's input size: the same as its output's
                continue
            size, kernel, stride, dilation, padding = window[axis]
            _, start = _axis_window(size, kernel, stride, dilation, padding)
            before = np.zeros(size, bool)
            for out in np.flatnonzero(seen):
                taps = out * stride - start + dilation * np.arange(kernel)
                before[taps[(taps >= 0) & (taps < size)]] = True
            seen = before
        axes.append(seen)
    return axes[0][:, None] & axes[1][None, :]


def value_range(generator):
    """(low, high) of `generator`'s output, or None for unbounded (vector) output (chapter 3).

    Reads `generator.value_range`; a clone or a reloaded model has lost that attribute,
    so it falls back to the model's name: (0, 1) for an improved generator named
    ``..._sigmoid`` (output="sigmoid"), else the family named at its start.
    """
    if hasattr(generator, "value_range"):
        return generator.value_range
    if len(generator.outputs[0].shape) != 4:
        return None
    family = generator.name.split("_", 1)[0]
    if family == "improved" and "sigmoid" in generator.name.split("_"):
        return OUTPUT_RANGES["sigmoid"]
    if family not in VALUE_RANGES:
        raise ValueError(
            f"cannot tell the value range of {generator.name!r}: it has no value_range "
            f"attribute and its name does not start with one of {MODEL_NAMES}"
        )
    return VALUE_RANGES[family]
