"""Tests for ganlib/models.py: shapes, value ranges, exact parameter counts, options, errors."""

import keras
import numpy as np
import pytest
from keras import layers

from ganlib import models

CONV_FAMILIES = ("baseline", "improved", "cifar")


def _noise(n, dim, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype("float32")


def _images(n, size, value_range=(-1.0, 1.0), seed=0):
    low, high = value_range
    return np.random.default_rng(seed).uniform(low, high, size=(n, size, size, 3)).astype("float32")


def _check_generator(generator, image_size, n=2):
    low, high = models.value_range(generator)
    out = keras.ops.convert_to_numpy(
        generator(_noise(n, models.latent_dim(generator)), training=False)
    )
    assert out.shape == (n, image_size, image_size, 3)
    assert out.dtype == np.float32
    assert np.all(out >= low) and np.all(out <= high)
    return out


def _check_discriminator(discriminator, image_size, n=3):
    out = keras.ops.convert_to_numpy(discriminator(_images(n, image_size), training=False))
    assert out.shape == (n, 1)
    assert np.all(out >= 0.0) and np.all(out <= 1.0)
    return out


# --------------------------------------------------------------------------- shapes and ranges


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_every_pair_has_the_right_shapes_ranges_and_names(name, image_size):
    width = 1.0 if name in ("improved", "mlp") else 0.25  # keep the big transposed stacks cheap
    generator, discriminator = models.build_pair(name, image_size, width=width)
    g_family, d_family = ("improved", "cifar") if name == "hybrid" else (name, name)
    assert generator.name == f"{g_family}_generator_{image_size}"
    assert discriminator.name == f"{d_family}_discriminator_{image_size}"
    assert generator.value_range == models.VALUE_RANGES[name]
    assert models.latent_dim(generator) == models.DEFAULT_LATENT_DIM[name]
    assert not generator.compiled and not discriminator.compiled
    _check_generator(generator, image_size)
    _check_discriminator(discriminator, image_size)


@pytest.mark.parametrize("image_size", [32, 64])
def test_hybrid_is_the_improved_generator_against_the_cifar_discriminator(image_size):
    generator, discriminator = models.build_pair("hybrid", image_size, width=0.25, latent_dim=64)
    improved = models.improved_generator(image_size, latent_dim=64, width=0.25)
    cifar = models.cifar_discriminator(image_size, width=0.25)
    for built, reference in ((generator, improved), (discriminator, cifar)):
        assert [layer.get_config() | {"name": ""} for layer in built.layers] == [
            layer.get_config() | {"name": ""} for layer in reference.layers
        ]
        assert [w.shape for w in built.weights] == [w.shape for w in reference.weights]
    # options go to the builder that takes them, as for any family
    _, normed = models.build_pair("hybrid", image_size, width=0.25, spectral_norm=True)
    assert any(isinstance(layer, layers.SpectralNormalization) for layer in normed.layers)
    with pytest.raises(ValueError, match="unknown option 'pooling'"):
        models.build_pair("hybrid", image_size, width=0.25, pooling="flatten")


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("upsample", models.UPSAMPLE_CHOICES)
def test_improved_generator_upsample_options(upsample, image_size):
    generator = models.improved_generator(image_size, upsample=upsample)
    _check_generator(generator, image_size)
    kinds = {type(layer).__name__ for layer in generator.layers}
    if upsample == "nearest":
        assert "UpSampling2D" in kinds and "Conv2DTranspose" not in kinds
    else:
        assert "Conv2DTranspose" in kinds and "UpSampling2D" not in kinds
        for i, filters in enumerate((128, 64)):
            config = generator.get_layer(f"conv_{i}").get_config()
            assert (
                config["filters"],
                config["kernel_size"],
                config["strides"],
                config["padding"],
            ) == (
                filters,
                (4, 4),
                (2, 2),
                "same",
            )


def test_transposed_improved_generator_parameter_count():
    # Dense as before; Conv2DTranspose 4x4 128->128 and 128->64 instead of 3x3 convolutions.
    dense = {32: 100 * 8 * 8 * 128 + 8 * 8 * 128, 64: 100 * 16 * 16 * 128 + 16 * 16 * 128}
    rest = (16 * 128 * 128 + 128) + 4 * 128 + (16 * 128 * 64 + 64) + 4 * 64 + (9 * 64 * 3 + 3)
    for size in (32, 64):
        generator = models.improved_generator(size, upsample="transposed")
        assert generator.count_params() == dense[size] + rest
        assert generator.count_params() == {32: 1_223_299, 64: 3_705_475}[size]


@pytest.mark.parametrize("image_size", [32, 64])
def test_improved_discriminator_flatten_option(image_size):
    discriminator = models.improved_discriminator(image_size, pooling="flatten")
    _check_discriminator(discriminator, image_size)
    assert isinstance(discriminator.get_layer("pool"), layers.Flatten)


def test_sigmoid_output_is_the_same_network_squashed_into_zero_one():
    tanh = models.improved_generator(32, width=0.25)
    sigmoid = models.improved_generator(32, width=0.25, output="sigmoid")
    assert sigmoid.name == "improved_generator_32_sigmoid"
    assert models.value_range(sigmoid) == (0.0, 1.0)
    assert models.value_range(keras.models.clone_model(sigmoid)) == (0.0, 1.0)
    sigmoid.set_weights(tanh.get_weights())  # the same layers: only the last activation differs
    noise = _noise(16, 100, seed=3)
    a = keras.ops.convert_to_numpy(tanh(noise, training=False)).astype(np.float64)
    _check_generator(sigmoid, 32, n=16)  # checks [0, 1] and the shape
    b = keras.ops.convert_to_numpy(sigmoid(noise, training=False))
    # tanh(x) = a  =>  x = artanh(a), and the sigmoid model gives 1 / (1 + exp(-x))
    np.testing.assert_allclose(b, 1 / (1 + np.exp(-np.arctanh(a))), atol=1e-5)
    assert b.min() < 0.5 < b.max()


@pytest.mark.parametrize(("image_size", "published"), [(32, 1_051_267), (64, 3_533_443)])
def test_improved_generator_without_batchnorm(image_size, published):
    generator = models.improved_generator(image_size, batchnorm=False)
    _check_generator(generator, image_size)
    assert generator.name == f"improved_generator_{image_size}_nobn"
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in generator.layers)
    # Two BatchNormalization layers gone, 4 numbers per channel each (128 and 64 channels);
    # the convolutions keep their bias, as in the published model.
    assert generator.count_params() == published - 4 * (128 + 64)
    for name in ("conv_0", "conv_1", "image"):
        assert generator.get_layer(name).use_bias
    with_bn = models.improved_generator(image_size)
    assert sum(isinstance(layer, layers.BatchNormalization) for layer in with_bn.layers) == 2


def test_improved_discriminator_without_dropout():
    kept = models.improved_discriminator(32, width=0.25)
    plain = models.improved_discriminator(32, width=0.25, dropout=False)
    assert plain.name == "improved_discriminator_32_nodropout"
    assert sum(isinstance(layer, layers.Dropout) for layer in kept.layers) == 2
    assert not any(isinstance(layer, layers.Dropout) for layer in plain.layers)
    assert plain.count_params() == kept.count_params()
    plain.set_weights(kept.get_weights())
    images = _images(8, 32)
    # In training mode dropout makes two calls differ; without it they are the same.
    first, second = (keras.ops.convert_to_numpy(plain(images, training=True)) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    noisy = [keras.ops.convert_to_numpy(kept(images, training=True)) for _ in range(2)]
    assert not np.array_equal(*noisy)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(kept(images, training=False)), first, rtol=1e-5
    )


def test_build_pair_sends_the_ablation_options_to_their_side():
    generator, discriminator = models.build_pair(
        "improved", 32, width=0.25, output="sigmoid", batchnorm=False, dropout=False
    )
    assert generator.name == "improved_generator_32_sigmoid_nobn"
    assert discriminator.name == "improved_discriminator_32_nodropout"
    assert generator.value_range == (0.0, 1.0)


# --------------------------------------------------------------------------- exact counts


@pytest.mark.parametrize(
    ("builder", "image_size", "expected"),
    [
        (models.baseline_generator, 64, 3_979_651),
        (models.baseline_generator, 32, 3_187_075),
        (models.baseline_discriminator, 64, 404_801),
        (models.baseline_discriminator, 32, 398_657),
        (models.improved_generator, 64, 3_533_443),
        (models.improved_generator, 32, 1_051_267),
        (models.improved_discriminator, 64, 547_969),
        (models.improved_discriminator, 32, 547_969),
    ],
)
def test_published_parameter_counts(builder, image_size, expected):
    assert builder(image_size).count_params() == expected


def test_flatten_head_costs_2_44_times_more_at_64_and_nothing_more_at_32():
    pooled = models.improved_discriminator(64).count_params()
    flat = models.improved_discriminator(64, pooling="flatten").count_params()
    assert flat == 1_334_401
    assert round(flat / pooled, 2) == 2.44
    assert (
        models.improved_discriminator(32, pooling="flatten").count_params()
        == models.improved_discriminator(32).count_params()
    )


# --------------------------------------------------------------------------- against the published layer lists


def _keras_example_pair():
    """The Keras CelebA DCGAN example's two models, typed in from the example."""
    discriminator = keras.Sequential(
        [
            keras.Input(shape=(64, 64, 3)),
            layers.Conv2D(64, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(128, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(128, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Flatten(),
            layers.Dropout(0.2),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    generator = keras.Sequential(
        [
            keras.Input(shape=(128,)),
            layers.Dense(8 * 8 * 128),
            layers.Reshape((8, 8, 128)),
            layers.Conv2DTranspose(128, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(256, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(512, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(3, kernel_size=5, padding="same", activation="sigmoid"),
        ]
    )
    return generator, discriminator


def _improved_reference_pair():
    """The anime notebook's two models, typed in from its layer tables."""
    generator = keras.Sequential(
        [
            keras.Input(shape=(100,)),
            layers.Dense(16 * 16 * 128, activation="relu"),
            layers.Reshape((16, 16, 128)),
            layers.UpSampling2D(),
            layers.Conv2D(128, 3, padding="same"),
            layers.BatchNormalization(momentum=0.8),
            layers.Activation("relu"),
            layers.UpSampling2D(),
            layers.Conv2D(64, 3, padding="same"),
            layers.BatchNormalization(momentum=0.8),
            layers.Activation("relu"),
            layers.Conv2D(3, 3, padding="same", activation="tanh"),
        ]
    )
    discriminator = keras.Sequential(
        [
            keras.Input(shape=(64, 64, 3)),
            layers.Conv2D(32, 5, strides=2, padding="same"),
            layers.LeakyReLU(),
            layers.Conv2D(128, 5, strides=2, padding="valid"),
            layers.LeakyReLU(),
            layers.Dropout(0.25),
            layers.Conv2D(128, 5, strides=2, padding="valid"),
            layers.LeakyReLU(),
            layers.GlobalAveragePooling2D(),
            layers.Dense(256),
            layers.LeakyReLU(),
            layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    return generator, discriminator


def _same_function(ours, reference, inputs):
    """Copy the reference's weights into ours; both must then compute the same thing."""
    ours.set_weights(reference.get_weights())  # fails on any shape or order mismatch
    expected = keras.ops.convert_to_numpy(reference(inputs, training=False))
    got = keras.ops.convert_to_numpy(ours(inputs, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_baseline_matches_the_keras_example():
    reference_g, reference_d = _keras_example_pair()
    generator, discriminator = models.baseline_generator(64), models.baseline_discriminator(64)
    _same_function(generator, reference_g, _noise(2, 128))
    _same_function(discriminator, reference_d, _images(3, 64, (0.0, 1.0)))

    convs = [layer for layer in discriminator.layers if isinstance(layer, layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides, c.padding) for c in convs] == [
        (64, (4, 4), (2, 2), "same"),
        (128, (4, 4), (2, 2), "same"),
        (128, (4, 4), (2, 2), "same"),
    ]
    slopes = [
        layer.negative_slope
        for layer in discriminator.layers
        if isinstance(layer, layers.LeakyReLU)
    ]
    assert slopes == pytest.approx([0.2, 0.2, 0.2])
    assert discriminator.get_layer("dropout").rate == pytest.approx(0.2)

    ups = [layer for layer in generator.layers if isinstance(layer, layers.Conv2DTranspose)]
    assert [(c.filters, c.kernel_size, c.strides, c.padding) for c in ups] == [
        (128, (4, 4), (2, 2), "same"),
        (256, (4, 4), (2, 2), "same"),
        (512, (4, 4), (2, 2), "same"),
    ]
    slopes = [
        layer.negative_slope for layer in generator.layers if isinstance(layer, layers.LeakyReLU)
    ]
    assert slopes == pytest.approx([0.2, 0.2, 0.2])
    image = generator.get_layer("image").get_config()
    assert (image["filters"], image["kernel_size"], image["activation"]) == (3, (5, 5), "sigmoid")


def test_improved_matches_the_notebook_layer_tables():
    reference_g, reference_d = _improved_reference_pair()
    generator, discriminator = models.improved_generator(64), models.improved_discriminator(64)
    _same_function(generator, reference_g, _noise(2, 100))
    _same_function(discriminator, reference_d, _images(3, 64))
    for layer in discriminator.layers:
        if isinstance(layer, layers.LeakyReLU):
            assert layer.negative_slope == pytest.approx(0.3)  # Keras's default, as run
    for layer in generator.layers:
        if isinstance(layer, layers.BatchNormalization):
            assert layer.momentum == pytest.approx(0.8)


# --------------------------------------------------------------------------- logit and probability


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_probability_is_sigmoid_of_the_logit_layer(name):
    _, discriminator = models.build_pair(name, 32, width=0.25)
    logit_layer = discriminator.get_layer("logit")
    assert isinstance(logit_layer, layers.Dense) and logit_layer.units == 1
    assert logit_layer.get_config()["activation"] == "linear"
    assert discriminator.layers[-1].name == "probability"
    both = keras.Model(discriminator.inputs[0], [logit_layer.output, discriminator.output])
    logits, probabilities = (
        keras.ops.convert_to_numpy(t) for t in both(_images(4, 32), training=False)
    )
    np.testing.assert_allclose(probabilities, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- width


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("name", CONV_FAMILIES)
def test_narrower_models_have_fewer_parameters_and_the_same_shapes(name, image_size):
    counts = []
    for width in (1.0, 0.5, 0.25):
        generator, discriminator = models.build_pair(name, image_size, width=width)
        counts.append((generator.count_params(), discriminator.count_params()))
        if width < 1.0:
            _check_generator(generator, image_size)
            _check_discriminator(discriminator, image_size)
    for wide, narrow in zip(counts, counts[1:], strict=False):
        assert narrow[0] < wide[0] and narrow[1] < wide[1]


def test_half_width_improved_pair_halves_every_count():
    generator = models.improved_generator(32, width=0.5)
    assert generator.get_layer("reshape").output.shape[-1] == 64
    assert [generator.get_layer(f"conv_{i}").filters for i in range(2)] == [64, 32]
    assert generator.get_layer("image").filters == 3
    discriminator = models.improved_discriminator(32, width=0.5)
    assert [discriminator.get_layer(f"conv_{i}").filters for i in range(3)] == [16, 64, 64]
    assert discriminator.get_layer("dense").units == 128
    assert discriminator.get_layer("logit").units == 1


@pytest.mark.parametrize("name", CONV_FAMILIES)
def test_width_never_goes_below_eight_filters(name):
    generator, discriminator = models.build_pair(name, 32, width=0.01)
    for model in (generator, discriminator):
        for layer in model.layers:
            if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)) and layer.name != "image":
                assert layer.filters == 8, layer.name
            if isinstance(layer, layers.Dense) and layer.name != "logit":
                # a hidden layer of 8 units, or a projection to 8 channels at 4x4 or 8x8
                assert layer.units in (8, 4 * 4 * 8, 8 * 8 * 8), layer.name
    _check_generator(generator, 32)
    _check_discriminator(discriminator, 32)


@pytest.mark.parametrize("width", [0, -1.0, float("nan"), "half", True])
def test_bad_width_is_refused(width):
    with pytest.raises(ValueError, match="width"):
        models.improved_generator(32, width=width)
    with pytest.raises(ValueError, match="width"):
        models.build_pair("cifar", 32, width=width)


# --------------------------------------------------------------------------- MLP and vector data


def test_mlp_layers_are_dense_relu():
    generator, discriminator = models.build_pair("mlp", 32)
    assert [layer.units for layer in generator.layers if isinstance(layer, layers.Dense)] == [
        256,
        512,
        32 * 32 * 3,
    ]
    assert [layer.units for layer in discriminator.layers if isinstance(layer, layers.Dense)] == [
        512,
        256,
        1,
    ]
    hidden = [
        layer
        for layer in generator.layers + discriminator.layers
        if layer.name.startswith("dense_")
    ]
    assert hidden and all(layer.get_config()["activation"] == "relu" for layer in hidden)
    assert generator.get_layer("output").get_config()["activation"] == "tanh"


def test_mlp_for_two_dimensional_points():
    generator, discriminator = models.build_pair("mlp", None, latent_dim=8, data_shape=(2,))
    assert generator.value_range is None and models.value_range(generator) is None
    assert generator.get_layer("output").get_config()["activation"] == "linear"
    points = keras.ops.convert_to_numpy(generator(_noise(5, 8), training=False))
    assert points.shape == (5, 2)
    assert models.latent_dim(generator) == 8
    probabilities = keras.ops.convert_to_numpy(discriminator(points * 10.0, training=False))
    assert probabilities.shape == (5, 1) and np.all((probabilities >= 0) & (probabilities <= 1))


def test_mlp_options_route_to_one_side_with_a_prefix():
    generator, discriminator = models.build_pair(
        "mlp", 32, hidden=(32,), discriminator_hidden=(16, 8)
    )
    assert generator.get_layer("dense_0").units == 32
    assert [discriminator.get_layer(f"dense_{i}").units for i in range(2)] == [16, 8]
    with pytest.raises(ValueError, match="data_shape"):
        models.mlp_generator(data_shape=(4, 4))


# --------------------------------------------------------------------------- build_pair and helpers


def test_build_pair_routes_options_and_latent_dim():
    generator, discriminator = models.build_pair(
        "improved", 32, latent_dim=16, width=0.25, upsample="transposed", pooling="flatten"
    )
    assert models.latent_dim(generator) == 16
    assert generator.name == "improved_generator_32_transposed"
    assert discriminator.name == "improved_discriminator_32_flatten"
    assert any(isinstance(layer, layers.Conv2DTranspose) for layer in generator.layers)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("stylegan", 32), {}, "choose one of .*mlp.*baseline.*improved.*cifar"),
        (("improved", 48), {}, "32 or 64"),
        (("baseline", 128), {}, "32 or 64"),
        (("improved", 32), {"upsample": "bilinear"}, "nearest.*transposed"),
        (("improved", 32), {"pooling": "max"}, "average.*flatten"),
        (("improved", 32), {"padding": "valid"}, "unknown padding 'valid'.*published.*same"),
        (("baseline", 32), {"padding": "same"}, "unknown option 'padding'"),
        (("baseline", 32), {"upsample": "nearest"}, "unknown option 'upsample'"),
        (("cifar", 32), {"dropout": 0.3}, "unknown option 'dropout'"),
        (
            ("improved", 32),
            {"hidden": (8,)},
            "valid options: batchnorm, dropout, minibatch_std, output, padding, pooling, "
            "spectral_norm, upsample",
        ),
        (
            ("improved", 32),
            {"output": "relu"},
            r"unknown output 'relu'; choose one of .*tanh.*sigmoid",
        ),
        (("improved", 32), {"batchnorm": "no"}, "batchnorm must be True or False"),
        (("improved", 32), {"dropout": 0.5}, "dropout must be True or False"),
        (("baseline", 32), {"output": "tanh"}, "unknown option 'output'"),
        (("improved", 32), {"latent_dim": 0}, "latent_dim"),
    ],
)
def test_build_pair_refuses_bad_requests(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build_pair(*args, **kwargs)


def test_value_range_survives_saving_by_name(tmp_path):
    path = tmp_path / "generator.keras"
    models.cifar_generator(32, width=0.25).save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.name == "cifar_generator_32"
    assert models.value_range(reloaded) == (-1.0, 1.0)


def test_value_range_survives_cloning_by_name():
    generator = models.baseline_generator(32, width=0.25)
    clone = keras.models.clone_model(generator)
    assert not hasattr(clone, "value_range")
    assert models.value_range(clone) == (0.0, 1.0)
    assert models.value_range(models.improved_generator(32, width=0.25)) == (-1.0, 1.0)
    inputs = keras.Input((4,))
    stranger = keras.Model(inputs, layers.Reshape((2, 2, 1))(inputs), name="painter")
    with pytest.raises(ValueError, match="value range"):
        models.value_range(stranger)


def test_latent_dim_helper():
    assert models.latent_dim(models.cifar_generator(32, latent_dim=7, width=0.25)) == 7
    with pytest.raises(ValueError, match="noise input"):
        models.latent_dim(models.cifar_discriminator(32, width=0.25))


# --------------------------------------------------------------------------- cures (chapter 5)


def _numpy_minibatch_std(x, group_size=None):
    """The MinibatchStd definition, written out: per group, biased std over images, then means."""
    n = len(x)
    members = n // (group_size or n)  # groups: images i, i + members, i + 2 * members, ...
    spread = np.empty(n)
    for i in range(n):
        group = x[i % members :: members].astype(np.float64)
        spread[i] = np.sqrt(group.var(axis=0) + 1e-8).mean()
    feature = np.broadcast_to(spread[:, None, None, None], (*x.shape[:-1], 1))
    return np.concatenate([x, feature], axis=-1)


@pytest.mark.parametrize("group_size", [None, 3, 6])
def test_minibatch_std_is_the_mean_std_over_the_group(group_size):
    x = np.random.default_rng(0).normal(size=(6, 3, 3, 2)).astype(np.float32)
    layer = models.MinibatchStd(group_size=group_size)
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, _numpy_minibatch_std(x, group_size), rtol=1e-5, atol=1e-6)
    if group_size == 3:  # two groups, so two different values
        assert not np.allclose(out[0, ..., -1], out[1, ..., -1])
    collapsed = keras.ops.convert_to_numpy(layer(np.repeat(x[:1], 6, axis=0)))
    np.testing.assert_allclose(collapsed[..., -1], 1e-4, rtol=1e-3)  # sqrt(0 + 1e-8)
    again = models.MinibatchStd.from_config(layer.get_config())
    assert again.group_size == group_size


def test_minibatch_std_refuses_a_bad_group_size():
    with pytest.raises(ValueError, match="group_size must be a positive integer or None"):
        models.MinibatchStd(group_size=0)


@pytest.mark.parametrize("family", CONV_FAMILIES)
def test_cure_options_reach_the_discriminator(family):
    plain = models.build_pair(family, 32, width=0.125)[1]
    _, discriminator = models.build_pair(
        family, 32, width=0.125, spectral_norm=True, minibatch_std=True
    )
    _check_discriminator(discriminator, 32)
    # minibatch std sits right before the last convolution, which sees one more channel
    last_conv = discriminator.get_layer("conv_2")
    assert last_conv.input.shape[-1] == plain.get_layer("conv_2").input.shape[-1] + 1
    assert discriminator.get_layer("minibatch_std").output is last_conv.input
    # every layer with a kernel is wrapped, the logit included, and keeps its name
    kernels = [layer.name for layer in plain.layers if hasattr(layer, "kernel")]
    assert "logit" in kernels
    for name in kernels:
        assert isinstance(discriminator.get_layer(name), layers.SpectralNormalization), name
    assert not any(isinstance(layer, layers.SpectralNormalization) for layer in plain.layers)
    assert "minibatch_std" not in [layer.name for layer in plain.layers]


# --------------------------------------------------------------------------- what a discriminator sees (chapter 3)


def _gradient_visible(model, n=4, seed=0):
    """bool (h, w): pixels with a nonzero input gradient of the output, the reference.

    |d output / d input| summed over n random images and the channels, in inference
    mode; of the logit where the model has one, so that no saturated sigmoid can hide a
    pixel. Independent of visible_pixels: TensorFlow's own backward pass.
    """
    import tensorflow as tf

    names = [layer.name for layer in model.layers]
    head = (
        keras.Model(model.inputs[0], model.get_layer("logit").output) if "logit" in names else model
    )
    shape = tuple(model.inputs[0].shape[1:])
    x = tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(head(x, training=False))
    gradient = tape.gradient(total, x).numpy()
    return np.abs(gradient).sum(axis=(0, 3)) > 0


def _discriminator_cases():
    cases = []
    for size in (32, 64):
        for family in ("baseline", "improved", "cifar", "hybrid"):
            options = [{}, {"spectral_norm": True}, {"minibatch_std": True}]
            if family == "improved":
                options += [
                    {"padding": "same"},
                    {"pooling": "flatten"},
                    {"dropout": False},
                    {"padding": "same", "spectral_norm": True, "minibatch_std": True},
                    {"padding": "same", "pooling": "flatten"},
                ]
            cases += [(family, size, option) for option in options]
        cases += [("mlp", size, {}), ("mlp", size, {"spectral_norm": True})]
    return cases


@pytest.mark.parametrize(
    ("family", "image_size", "options"),
    _discriminator_cases(),
    ids=lambda value: (
        "-".join(f"{k}={v}" for k, v in value.items()) or "plain"
        if isinstance(value, dict)
        else str(value)
    ),
)
def test_visible_pixels_match_the_input_gradients_of_every_discriminator(
    family, image_size, options
):
    _, discriminator = models.build_pair(family, image_size, width=0.25, **options)
    visible = models.visible_pixels(discriminator)
    assert visible.shape == (image_size, image_size) and visible.dtype == bool
    np.testing.assert_array_equal(visible, _gradient_visible(discriminator))
    published_improved = (
        family == "improved"
        and options.get("padding", "published") == "published"
        and not options.get("minibatch_std")  # its batch statistic reads every position
    )
    if published_improved:
        # the last 4 rows and columns, whatever the size: 1 - (s - 4)^2 / s^2 of the image
        expected = np.zeros((image_size, image_size), bool)
        expected[: image_size - 4, : image_size - 4] = True
        np.testing.assert_array_equal(visible, expected)
    else:
        assert visible.all()


@pytest.mark.parametrize(("image_size", "blind"), [(32, 0.234375), (64, 0.12109375)])
def test_the_published_improved_discriminator_is_blind_to_its_last_four_rows_and_columns(
    image_size, blind
):
    # 23.4 % of a 32 px image, 12.1 % of a 64 px one: the published model as typed in
    # from the notebook (a Sequential, not ganlib's builder) and ganlib's at width 1
    reference = _improved_reference_pair()[1] if image_size == 64 else None
    for discriminator in filter(None, (reference, models.improved_discriminator(image_size))):
        visible = models.visible_pixels(discriminator)
        assert visible.shape == (image_size, image_size)
        assert 1.0 - visible.mean() == blind
        assert not visible[image_size - 4 :].any() and not visible[:, image_size - 4 :].any()
        np.testing.assert_array_equal(visible, _gradient_visible(discriminator, n=2))
    # what it cannot see cannot change its output, bit for bit; one seen pixel does
    discriminator = models.improved_discriminator(image_size, width=0.25)
    images = _images(3, image_size, seed=1)
    scribbled = images.copy()
    scribbled[:, image_size - 4 :] = _images(3, image_size, seed=2)[:, image_size - 4 :]
    scribbled[:, :, image_size - 4 :] = _images(3, image_size, seed=3)[:, :, image_size - 4 :]
    logits = keras.Model(discriminator.inputs[0], discriminator.get_layer("logit").output)
    before = keras.ops.convert_to_numpy(logits(images, training=False))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(logits(scribbled, training=False)), before
    )
    seen = images.copy()
    seen[:, image_size - 5, image_size - 5] += 0.5
    assert not np.array_equal(keras.ops.convert_to_numpy(logits(seen, training=False)), before)


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("width", [1.0, 0.25])
def test_same_padding_sees_every_pixel_with_exactly_the_published_parameters(image_size, width):
    published = models.improved_discriminator(image_size, width=width)
    full = models.improved_discriminator(image_size, width=width, padding="same")
    assert full.name == f"improved_discriminator_{image_size}_samepad"
    assert published.name == f"improved_discriminator_{image_size}"
    assert models.visible_pixels(full).all()
    assert full.count_params() == published.count_params()
    if width == 1.0:
        assert full.count_params() == 547_969  # the published count, at both sizes
    assert [full.get_layer(f"conv_{i}").padding for i in range(3)] == ["same"] * 3
    assert [published.get_layer(f"conv_{i}").padding for i in range(3)] == [
        "same",
        "valid",
        "valid",
    ]
    # the same weights fit both, layer for layer
    full.set_weights(published.get_weights())
    _check_discriminator(full, image_size)
    # only the discriminator changes when build_pair is asked for the full view
    generator, discriminator = models.build_pair("improved", image_size, width=0.25, padding="same")
    assert discriminator.name.endswith("_samepad") and generator.name.endswith(f"_{image_size}")


def _window_model(shape, specs):
    """A small model of spatial layers from `specs`, then Flatten and a 'logit' Dense."""
    inputs = keras.Input(shape)
    x = inputs
    for kind, *args in specs:
        if kind == "conv":
            kernel, stride, padding, dilation = args
            x = layers.Conv2D(4, kernel, strides=stride, padding=padding, dilation_rate=dilation)(x)
            x = layers.LeakyReLU(0.2)(x)
        else:
            pool = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
            size, stride, padding = args
            x = pool(size, strides=stride, padding=padding)(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(1, name="logit")(x))


@pytest.mark.parametrize(
    ("shape", "specs", "blind_rows"),
    [
        # a valid convolution whose windows stop one pixel short
        ((18, 18, 3), [("conv", 3, 2, "valid", 1)], [17]),
        # an even kernel with same padding (TensorFlow pads the end more), then a valid stride
        ((20, 20, 3), [("conv", 4, 2, "same", 1), ("conv", 3, 3, "valid", 1)], [19]),
        # a dilated convolution, then pooling that leaves its last output out
        ((21, 21, 3), [("conv", 3, 1, "valid", 2), ("avg", 2, 2, "valid")], [20]),
        # a 1x1 kernel with stride 2 looks at every other pixel only
        ((10, 10, 3), [("conv", 1, 2, "same", 1)], [1, 3, 5, 7, 9]),
        # windows of 2 every 3 pixels: holes inside the image, not only at its edge
        ((16, 16, 3), [("conv", 1, 1, "valid", 1), ("max", 2, 3, "valid")], [2, 5, 8, 11, 14, 15]),
        # a dilated same convolution seen through a stride-4 sampling
        ((12, 12, 3), [("conv", 3, 1, "same", 3), ("conv", 1, 4, "valid", 1)], [2, 6, 9, 10]),
        # same-padded pooling with an odd window and stride
        ((15, 15, 3), [("avg", 3, 2, "same"), ("conv", 2, 3, "valid", 1)], [4, 10]),
        # rows and columns differ: the axes must not be swapped
        ((18, 20, 3), [("conv", (3, 5), (2, 3), "valid", 1)], [17]),
    ],
)
def test_visible_pixels_follows_kernel_stride_padding_and_dilation(shape, specs, blind_rows):
    model = _window_model(shape, specs)
    visible = models.visible_pixels(model)
    assert visible.shape == shape[:2]
    # max pooling passes gradient to each window's largest value only: many images
    np.testing.assert_array_equal(visible, _gradient_visible(model, n=32))
    assert sorted(np.flatnonzero(~visible.any(axis=1))) == blind_rows
    if shape[:2] == (18, 20):  # columns: windows of 5 every 3 on 20 -> 6 windows, 0..19 seen
        assert visible[:17].all() and visible.any(axis=0).all()


def test_visible_pixels_of_a_minibatch_std_layer_is_everything_before_it():
    inputs = keras.Input((12, 12, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="valid")(inputs)  # 5x5, row 11 unseen so far
    x = models.MinibatchStd()(x)
    x = layers.Conv2D(4, 1, strides=5, padding="valid")(x)  # 1x1 of position 0 only
    model = keras.Model(inputs, layers.Dense(1, name="logit")(layers.Flatten()(x)))
    visible = models.visible_pixels(model)
    expected = np.zeros((12, 12), bool)
    expected[:11, :11] = True  # the std reads all 5x5 positions, which see rows 0..10
    np.testing.assert_array_equal(visible, expected)
    np.testing.assert_array_equal(visible, _gradient_visible(model))


def test_visible_pixels_refuses_models_it_cannot_read():
    vector = models.mlp_discriminator(data_shape=(2,))
    with pytest.raises(ValueError, match=r"needs a model of images \(n, s, s, c\)"):
        models.visible_pixels(vector)
    inputs = keras.Input((None, None, 3))
    any_size = keras.Model(inputs, layers.GlobalAveragePooling2D()(layers.Conv2D(2, 3)(inputs)))
    with pytest.raises(ValueError, match="needs a model of images"):
        models.visible_pixels(any_size)
    # layers that move pixels around, whether or not they change the image size: a
    # silent answer would be wrong (a 3x3 depthwise window reaches the odd pixels that
    # the stride-2 sampling after it skips; see the test above)
    for name, layer in (
        ("crop", layers.Cropping2D(1, name="crop")),
        ("up", layers.UpSampling2D(2, name="up")),
        ("depthwise", layers.DepthwiseConv2D(3, padding="same", name="depthwise")),
        ("separable", layers.SeparableConv2D(4, 3, padding="same", name="separable")),
        ("transposed", layers.Conv2DTranspose(4, 3, padding="same", name="transposed")),
    ):
        inputs = keras.Input((10, 10, 3))
        x = layers.Conv2D(2, 1, strides=2)(layer(inputs))
        model = keras.Model(inputs, layers.Dense(1, name="logit")(layers.Flatten()(x)))
        with pytest.raises(ValueError, match=f"cannot follow layer '{name}'"):
            models.visible_pixels(model)
