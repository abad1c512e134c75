"""Feature extractors for KID and FID: Inception (ImageNet) and a small toy-face network (chapter 6)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganlib.common import (
    IMAGE_SIZES,
    atomic_save,
    atomic_write,
    cache_root,
    check_image_size,
    to_uint8,
    write_error,
)
from ganlib.data.toy_faces import FACTOR_NAMES, FACTOR_SIZES, toy_faces


class _Extractor:
    """Shared batching: images in any value range -> float32 features (n, d)."""

    feature_dim: int

    def __init__(self, batch_size=64, value_range=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.value_range = value_range
        self._forward = None

    def _build_forward(self):
        """Return a function uint8 batch (b, h, w, 3) -> features tensor (b, d)."""
        raise NotImplementedError

    def __call__(self, images, value_range=None):
        """images: array (n, h, w, c) or one image (h, w, c), c in {1, 3}; uint8 [0, 255] or
        float [0, 1] / [-1, 1] (value_range says which; None guesses like plotting.to_uint8).
        Returns float32 features (n, d)."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"images must have shape (n, h, w, 1 or 3), got {images.shape}")
        if len(images) == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        # One conversion for the whole set, so the value range is guessed once, not per batch.
        images = to_uint8(images, value_range if value_range is not None else self.value_range)
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        if self._forward is None:
            self._forward = self._build_forward()
        features = [
            np.asarray(self._forward(images[start : start + self.batch_size]))
            for start in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(features).astype(np.float32)


INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


class InceptionFeatures(_Extractor):
    """2048 ImageNet features per image: InceptionV3 without its top, average-pooled (chapter 6).

    Images are resized to 299 x 299 with bilinear interpolation with
    antialiasing on (for the 32 and 64 px images of this book that is plain
    bilinear upsampling; antialiasing only matters when shrinking larger images)
    and scaled by keras.applications.inception_v3.preprocess_input to [-1, 1].
    Call it on images (n, h, w, 1 or 3), uint8 or float; it returns float32 (n, 2048).

    Not comparable with published FID/KID numbers: those use the TF-FID
    Inception graph (the 2015 network, not Keras's ImageNet weights) and resize
    with PIL's bicubic filter, while this uses Keras's ImageNet weights and a
    bilinear resize. Compare values measured with this class only with each other.

    weights: "imagenet" (downloaded by Keras once, into
    ~/.keras/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5),
    a path to that file, or None for random weights (tests only).
    """

    feature_dim = 2048
    image_size = 299

    def __init__(self, batch_size=32, weights="imagenet", value_range=None):
        super().__init__(batch_size, value_range)
        if weights not in ("imagenet", None):
            weights = Path(weights).expanduser()
            if not weights.is_file():
                raise FileNotFoundError(
                    f"no InceptionV3 weights file at {weights}; download "
                    f"{INCEPTION_WEIGHTS_FILE} and pass its path, or use DomainFeatures"
                )
            weights = str(weights)
        try:
            self.model = keras.applications.InceptionV3(
                include_top=False, weights=weights, pooling="avg"
            )
        except Exception as err:
            if weights != "imagenet":
                raise
            target = _keras_cache_dir() / INCEPTION_WEIGHTS_FILE
            # The first line is one sentence a page can show as it is: what failed and what
            # to use instead, without the URL, the errno or a path; the details follow.
            raise FileNotFoundError(
                "The ImageNet weights for InceptionV3 could not be downloaded; measure with "
                "ganlib.metrics.DomainFeatures() instead.\n"
                f"To use InceptionV3 offline, copy {INCEPTION_WEIGHTS_FILE} "
                f"(from https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/) "
                f"to {target}, or pass InceptionFeatures(weights='path/to/{INCEPTION_WEIGHTS_FILE}').\n"
                f"Cause: {type(err).__name__}: {err}"
            ) from err

    def _build_forward(self):
        model, size = self.model, self.image_size

        @tf.function(reduce_retracing=True)
        def forward(batch):
            batch = tf.image.resize(
                tf.cast(batch, tf.float32), (size, size), method="bilinear", antialias=True
            )
            return model(keras.applications.inception_v3.preprocess_input(batch), training=False)

        return forward


class DomainFeatures(_Extractor):
    """Features from a small CNN trained to recognise the five toy-face factors (chapter 6).

    The network sees image_size x image_size inputs (32 or 64; other image sizes
    are resized, bilinear with antialiasing), learns hair colour, eye colour,
    hair style, skin tone and background with five softmax heads, and its
    penultimate layer (feature_dim ReLU units) is the feature vector: call it on
    images (n, h, w, 1 or 3), uint8 or float, to get float32 (n, feature_dim).
    Whatever distinguishes toy faces is what these features measure, which is
    what KID needs.

    The first use trains it (train_size faces, `epochs` epochs; with the defaults
    it reaches at least 98% held-out accuracy on every factor, which the tests
    check) and stores the weights in cache_dir (default $GANLIB_CACHE or
    ~/.cache/ganlib) under a name derived from the settings; later uses load
    them. Every random choice (initial weights, training order, the faces) comes
    from `seed`, whatever the global random state: the same settings give the
    same network in any process on one machine (another CPU may round differently).
    `.accuracy` holds the held-out accuracy per factor, `.classifier` the network
    with its five heads.
    """

    # Bump when the architecture or training changes, so old caches are ignored.
    # 3: every initializer and the training order seeded from config["seed"].
    _VERSION = 3

    def __init__(
        self,
        image_size=32,
        cache_dir=None,
        feature_dim=128,
        train_size=12000,
        test_size=2000,
        epochs=4,
        seed=0,
        batch_size=256,
        value_range=None,
        verbose=False,
    ):
        super().__init__(batch_size, value_range)
        self.image_size = check_image_size(image_size, IMAGE_SIZES)
        self.feature_dim = int(feature_dim)
        self.config = {
            "version": self._VERSION,
            "image_size": self.image_size,
            "feature_dim": self.feature_dim,
            "train_size": int(train_size),
            "test_size": int(test_size),
            "epochs": int(epochs),
            "seed": int(seed),
        }
        self.classifier = self._build()
        info, self.weights_path, self.info_path = load_or_train(
            self.classifier, self.config, "domain_features", lambda: self._train(verbose), cache_dir
        )
        self.accuracy = info["accuracy"]
        self.train_seconds = info["train_seconds"]
        self.model = keras.Model(
            self.classifier.input,
            self.classifier.get_layer("features").output,
            name="domain_features",
        )

    def _build(self):
        inputs = keras.Input((self.image_size, self.image_size, 3), name="image")
        # Steps of 100 keep the seeds of networks with neighbouring config seeds apart.
        seeds = itertools.count(self.config["seed"] * 100)
        features = toy_face_trunk(inputs, self.image_size, self.feature_dim, seeds, name="features")
        outputs = factor_heads(features, seeds)
        return keras.Model(inputs, outputs, name="toy_face_classifier")

    def _train(self, verbose):
        config = self.config
        start = time.perf_counter()
        images, factors = toy_faces(
            config["train_size"], image_size=self.image_size, seed=config["seed"]
        )
        test_images, test_factors = toy_faces(
            config["test_size"], image_size=self.image_size, seed=config["seed"] + 1_000_003
        )
        batch_size = 128
        steps = config["epochs"] * math.ceil(config["train_size"] / batch_size)
        self.classifier.compile(
            # Cosine decay: large steps first, small ones to settle the last errors.
            optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
            loss=["sparse_categorical_crossentropy"] * len(FACTOR_NAMES),
        )
        fit_in_seeded_order(
            self.classifier,
            images,
            tuple(factors.T),
            config["epochs"],
            batch_size,
            np.random.default_rng(config["seed"]),
            verbose,
        )
        seconds = time.perf_counter() - start
        predictions = self.classifier.predict(
            test_images.astype(np.float32) / 255.0, batch_size=512, verbose=0
        )
        accuracy = {
            name: float(np.mean(np.argmax(p, axis=1) == test_factors[:, i]))
            for i, (name, p) in enumerate(zip(FACTOR_NAMES, predictions, strict=True))
        }
        weak = {name: value for name, value in accuracy.items() if value < 0.98}
        if weak:
            warnings.warn(
                f"DomainFeatures reached only {weak} on held-out toy faces; "
                "train longer (epochs=, train_size=) before trusting its KID values.",
                stacklevel=3,
            )
        return {"config": config, "accuracy": accuracy, "train_seconds": round(seconds, 2)}

    def _build_forward(self):
        model, size = self.model, self.image_size

        @tf.function(reduce_retracing=True)
        def forward(batch):
            batch = tf.cast(batch, tf.float32) / 255.0
            if batch.shape[1] != size or batch.shape[2] != size:
                batch = tf.image.resize(batch, (size, size), method="bilinear", antialias=True)
            return model(batch, training=False)

        return forward


def load_or_train(network, config, prefix, train, cache_dir=None):
    """The cached weights of `network` for `config`, trained by `train()` on first use (chapter 6).

    The cache files are PREFIX_<hash of config>.weights.h5 and .json in cache_dir
    (default $GANLIB_CACHE or ~/.cache/ganlib): another config gets other files.
    train() fits `network` and returns a JSON-serialisable dict, stored beside the
    weights and returned on later uses. Returns (info, weights_path, info_path).
    Processes that need the same missing files at once (two notebooks, two test
    workers) train once: the first holds PREFIX_<hash>.lock while it trains, the
    others wait for it and load what it wrote.
    """
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_root(cache_dir)
    weights_path = root / f"{prefix}_{key}.weights.h5"
    info_path = root / f"{prefix}_{key}.json"
    if not (weights_path.is_file() and info_path.is_file()):
        with _training_lock(root / f"{prefix}_{key}.lock"):
            # Trained by another process while this one waited for the lock?
            if not (weights_path.is_file() and info_path.is_file()):
                info = train()
                # Renamed into place once complete: a reader never sees half a file,
                # and the .json last, so that both files present means both complete.
                atomic_save(weights_path, network.save_weights)
                with atomic_write(info_path, "w") as file:
                    file.write(json.dumps(info, indent=2))
                return info, weights_path, info_path
    network.load_weights(weights_path)
    return json.loads(info_path.read_text()), weights_path, info_path


@contextlib.contextmanager
def _training_lock(path):
    """Hold the operating system's lock (flock) on `path` while the block runs; wait for it.

    The lock goes with its holder, however that process ends, so a killed trainer never
    leaves the others waiting; the file itself stays (removing it would let a late
    process lock a new file while another still holds the old one). Where there are no
    such locks (Windows, some network file systems) the block runs unlocked, as if
    the processes had not met: each trains and the last rename wins.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise write_error(path, error) from error
    try:
        with contextlib.suppress(OSError):  # ENOLCK, EOPNOTSUPP: a file system without locks
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and with it the lock


def toy_face_trunk(inputs, image_size, feature_dim, seeds, name=None):
    """The convolutional trunk of the toy-face networks (DomainFeatures, CalibratedDecoder).

    inputs: a Keras tensor (n, image_size, image_size, 3) in [0, 1]; returns the (n,
    feature_dim) ReLU features. seeds: an iterator of integers, one per initializer: an
    unseeded initializer draws from Keras's global random state, which differs between
    processes, and the cached weights (hence every KID) would differ with it.
    """
    from keras import layers

    x = inputs
    # Strided convolutions keep it cheap: the factors are colours and large shapes, plus
    # the eyes, which the first layer still sees at 32 px. At 64 px the first layer
    # strides too, so both sizes cost about the same.
    for filters, stride in ((16, image_size // 32), (32, 2), (64, 2), (64, 2)):
        x = layers.Conv2D(
            filters,
            3,
            strides=stride,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed=next(seeds)),
        )(x)
        # Batch normalisation makes the short training reliable; momentum 0.9 lets its
        # running statistics settle within the few hundred steps it gets.
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
    x = layers.Flatten()(x)
    return layers.Dense(
        feature_dim,
        activation="relu",
        name=name,
        kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
    )(x)


def factor_heads(features, seeds):
    """One softmax head per toy-face factor, named after it, on `features`."""
    from keras import layers

    return [
        layers.Dense(
            size,
            activation="softmax",
            name=name,
            kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
        )(features)
        for name, size in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True)
    ]


def fit_in_seeded_order(network, images, targets, epochs, batch_size, rng, verbose=False):
    """Fit `network` on uint8 `images` (scaled to [0, 1]) and a tuple of target arrays,
    each epoch in an order drawn from the NumPy generator `rng`.

    Not Dataset.shuffle: tf.data mixes TensorFlow's global seed into its own, so the order
    (and the cached weights) would change with whatever the caller seeded before.
    """
    for epoch in range(epochs):
        order = rng.permutation(len(images))
        data = (
            tf.data.Dataset.from_tensor_slices((images[order], tuple(t[order] for t in targets)))
            .batch(batch_size)
            .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        )
        network.fit(
            data, initial_epoch=epoch, epochs=epoch + 1, shuffle=False, verbose=2 if verbose else 0
        )
