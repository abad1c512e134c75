"""Measuring generated images: KID, FID, feature extractors, mode coverage and a KID callback.

KID and FID compare two sets of feature vectors, one from real and one from
generated images; a feature extractor turns images into those vectors.
`InceptionFeatures` is the standard ImageNet network (it needs its weights
file); `DomainFeatures` is a small network trained on the toy faces in under
a minute, which makes the same measurements possible offline and in tests.
`mode_coverage` counts which of the toy faces' 2,304 factor combinations a
generator produces, the direct measure of mode collapse.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganlib.data import FACTOR_NAMES, FACTOR_SIZES, decode_toy_faces, toy_faces
from ganlib.plotting import to_uint8

# 8 hair colours x 6 eye colours x 4 hair styles x 3 skin tones x 4 backgrounds
NUM_COMBINATIONS = 2304


# --------------------------------------------------------------------------- distances


def _check_features(real_features, fake_features):
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2:
        raise ValueError(
            f"features must be 2-D arrays (n, d), got shapes {real.shape} and {fake.shape}"
        )
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake features must have the same dimension, got {real.shape[1]} and {fake.shape[1]}"
        )
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(
            f"need at least 2 feature vectors on each side, got {len(real)} and {len(fake)}"
        )
    return real, fake


def _cubic_kernel(a, b):
    """k(a_i, b_j) = (a_i . b_j / d + 1)^3 for all pairs: float64 (len(a), len(b))."""
    k = a @ b.T
    k /= a.shape[1]
    k += 1.0
    cube = k * k
    cube *= k  # in place, and faster than ** 3
    return cube


def kid(real_features, fake_features, num_subsets=100, subset_size=1000, seed=0):
    """Kernel Inception Distance: the unbiased squared MMD with a cubic polynomial kernel.

    real_features (n, d), fake_features (m, d): float arrays from one extractor.
    With k(x, y) = (x . y / d + 1)^3 and subsets X, Y of size s drawn without
    replacement (s = min(subset_size, n, m))::

        MMD^2 = sum_{i != j} k(x_i, x_j) / (s (s - 1))
              + sum_{i != j} k(y_i, y_j) / (s (s - 1))
              - 2 sum_{i, j} k(x_i, y_j) / s^2

    Returns (mean, std) over num_subsets subsets as floats (one subset, std 0,
    when s covers both sets entirely). The estimate is unbiased, so for two
    samples of one distribution it scatters around zero and can be negative.
    Each subset costs three (s, d) x (d, s) matrix products in
    float64; the subsets are drawn from a generator seeded with `seed`.
    """
    real, fake = _check_features(real_features, fake_features)
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be at least 1, got {num_subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2, got {subset_size}")
    s = min(subset_size, len(real), len(fake))
    if s == len(real) == len(fake):
        num_subsets = 1  # every "subset" is the whole of both sets: the same value each time
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for t in range(num_subsets):
        x = real[rng.choice(len(real), s, replace=False)]
        y = fake[rng.choice(len(fake), s, replace=False)]
        k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
        # The diagonal holds k(x_i, x_i); the unbiased estimate leaves it out.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (s * (s - 1))
        values[t] = within - 2.0 * k_xy.mean()
    return float(values.mean()), float(values.std())


def fid(real_features, fake_features):
    """Fréchet distance between Gaussians fitted to two feature sets (FID with Inception features).

    ``FID = |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))``. The trace of the
    matrix square root is computed as the sum of square roots of the
    eigenvalues of S_r^(1/2) S_f S_r^(1/2), a symmetric positive semi-definite
    matrix, so no complex residue appears and singular covariances are fine
    (tiny negative eigenvalues from round-off are clipped to zero). With fewer
    samples than dimensions the covariances are singular and FID is strongly
    biased; a warning says so. Returns a float >= 0.
    """
    real, fake = _check_features(real_features, fake_features)
    d = real.shape[1]
    if min(len(real), len(fake)) <= d:
        warnings.warn(
            f"FID with {min(len(real), len(fake))} samples of {d}-dimensional features: the "
            "covariances are singular and the value is biased upwards; use more samples than "
            "dimensions (10,000 is usual for Inception features) or compare with KID.",
            stacklevel=2,
        )
    mu_r, mu_f = real.mean(axis=0), fake.mean(axis=0)
    cov_r = np.atleast_2d(np.cov(real, rowvar=False))
    cov_f = np.atleast_2d(np.cov(fake, rowvar=False))
    eigenvalues, eigenvectors = np.linalg.eigh(cov_r)
    root_r = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    middle = root_r @ cov_f @ root_r
    middle = (middle + middle.T) / 2.0  # symmetric up to round-off; make it exactly so
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    diff = mu_r - mu_f
    value = diff @ diff + np.trace(cov_r) + np.trace(cov_f) - 2.0 * trace_root
    return float(max(value, 0.0))


# --------------------------------------------------------------------------- feature extractors


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
    """2048 ImageNet features per image: InceptionV3 without its top, average-pooled.

    Images are resized to 299 x 299 with bilinear interpolation with
    antialiasing on (for the 32 and 64 px images of this book that is plain
    bilinear upsampling; antialiasing only matters when shrinking larger images)
    and scaled by keras.applications.inception_v3.preprocess_input to [-1, 1].

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
            raise FileNotFoundError(
                "could not download the ImageNet weights for InceptionV3 "
                f"({type(err).__name__}: {err}). Either copy {INCEPTION_WEIGHTS_FILE} "
                f"(from https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/) "
                f"to {target}, or pass InceptionFeatures(weights='path/to/{INCEPTION_WEIGHTS_FILE}'), "
                "or measure offline with ganlib.metrics.DomainFeatures() instead."
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


def _cache_root(cache_dir=None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("GANLIB_CACHE", Path.home() / ".cache" / "ganlib")).expanduser()


class DomainFeatures(_Extractor):
    """Features from a small CNN trained to recognise the five toy-face factors.

    The network sees image_size x image_size inputs (other sizes are resized,
    bilinear with antialiasing), learns hair colour, eye colour, hair style, skin
    tone and background with five softmax heads, and its penultimate layer
    (feature_dim ReLU units) is the feature vector. Whatever distinguishes toy
    faces is what these features measure, which is what KID needs.

    The first use trains it (12,000 faces, 4 epochs: 15 to 30 s on 2 CPU cores,
    100% held-out accuracy on four factors and 99.9% on hair style) and stores the
    weights in cache_dir (default $GANLIB_CACHE or ~/.cache/ganlib) under a name
    derived from the settings; later uses load them. `.accuracy` holds the
    held-out accuracy per factor, `.classifier` the network with its five heads.
    """

    _VERSION = 2  # bump when the architecture or training changes, so old caches are ignored

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
        if image_size not in (32, 64):
            raise ValueError(f"image_size must be 32 or 64, got {image_size}")
        self.image_size = int(image_size)
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
        key = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:12]
        root = _cache_root(cache_dir)
        self.weights_path = root / f"domain_features_{key}.weights.h5"
        self.info_path = root / f"domain_features_{key}.json"
        self.classifier = self._build()
        if self.weights_path.is_file() and self.info_path.is_file():
            self.classifier.load_weights(self.weights_path)
            info = json.loads(self.info_path.read_text())
        else:
            info = self._train(verbose)
            root.mkdir(parents=True, exist_ok=True)
            # Write under temporary names, then rename: a parallel run never sees half a file.
            tmp_weights = root / f".{self.weights_path.name}.{os.getpid()}.weights.h5"
            self.classifier.save_weights(tmp_weights)
            tmp_weights.replace(self.weights_path)
            tmp_info = root / f".{self.info_path.name}.{os.getpid()}"
            tmp_info.write_text(json.dumps(info, indent=2))
            tmp_info.replace(self.info_path)
        self.accuracy = info["accuracy"]
        self.train_seconds = info["train_seconds"]
        self.model = keras.Model(
            self.classifier.input,
            self.classifier.get_layer("features").output,
            name="domain_features",
        )

    def _build(self):
        from keras import layers

        inputs = keras.Input((self.image_size, self.image_size, 3), name="image")
        x = inputs
        # Strided convolutions keep it cheap: the factors are colours and large
        # shapes, plus the eyes, which the first layer still sees at 32 px. At
        # 64 px the first layer strides too, so both sizes cost about the same.
        first_stride = self.image_size // 32
        for i, (filters, stride) in enumerate(((16, first_stride), (32, 2), (64, 2), (64, 2))):
            x = layers.Conv2D(
                filters,
                3,
                strides=stride,
                padding="same",
                use_bias=False,
                kernel_initializer=keras.initializers.HeNormal(seed=self.config["seed"] + i),
            )(x)
            # Batch normalisation makes the short training reliable; momentum 0.9 lets
            # its running statistics settle within the few hundred steps it gets.
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
        x = layers.Flatten()(x)
        features = layers.Dense(self.feature_dim, activation="relu", name="features")(x)
        outputs = [
            layers.Dense(size, activation="softmax", name=name)(features)
            for name, size in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True)
        ]
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
        data = (
            tf.data.Dataset.from_tensor_slices((images, tuple(factors.T)))
            .shuffle(len(images), seed=config["seed"])
            .batch(batch_size)
            .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        )
        self.classifier.fit(
            data, epochs=config["epochs"], shuffle=False, verbose=2 if verbose else 0
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


# --------------------------------------------------------------------------- mode coverage


def mode_coverage(images, value_range=None) -> dict:
    """How many of the toy faces' 2,304 factor combinations a set of images shows.

    images: toy-face-like images (n, h, w, 3), uint8 or float (value_range as in
    plotting.to_uint8), decoded with ganlib.data.decode_toy_faces. Returns

    - coverage: share of the 2,304 combinations seen at least once among the
      recognised images;
    - kl_from_uniform: KL(p || uniform) = log(2304) - H(p) in nats, p the
      combinations' frequencies among the recognised images; 0 for a perfectly
      even spread, log(2304) = 7.74 for a single combination (nan if none is
      recognised);
    - unrecognised: share of images with at least one undecodable factor;
    - histograms: {factor name: counts per value} over the recognised images;
    - recognised: how many images were recognised.

    Even a perfect generator does not reach coverage 1 with few samples: n
    uniform draws cover 1 - (1 - 1/2304)^n of the cells on average, and their
    KL from uniform is positive from sampling noise alone. Reference values for
    real toy faces (expected: the formula, and the KL's mean over 200 simulated
    uniform draws; measured: toy_faces(n, 32 or 64, seed=0, 1, 2), all recognised):

    ======  =================  ===============  ============  ===============
    n       expected coverage  measured         expected KL   measured KL
    ======  =================  ===============  ============  ===============
    2,000   0.5803             0.574 .. 0.585   0.651         0.642 .. 0.661
    10,000  0.9870             0.987 .. 0.990   0.122         0.119 .. 0.122
    ======  =================  ===============  ============  ===============

    A generator that always draws the same face scores 1/2304 = 0.000434.
    """
    images = to_uint8(images, value_range)
    if images.ndim == 3:
        images = images[None]
    codes = np.asarray(decode_toy_faces(images)).reshape(len(images), len(FACTOR_SIZES))
    recognised = codes[(codes >= 0).all(axis=1)]
    cells = np.ravel_multi_index(tuple(recognised.T), FACTOR_SIZES)
    counts = np.bincount(cells, minlength=NUM_COMBINATIONS)
    if len(recognised):
        p = counts[counts > 0] / len(recognised)
        kl = math.log(NUM_COMBINATIONS) + float(np.sum(p * np.log(p)))
    else:
        kl = float("nan")
    return {
        "coverage": float(np.count_nonzero(counts)) / NUM_COMBINATIONS,
        "kl_from_uniform": max(kl, 0.0) if kl == kl else kl,
        "unrecognised": float(1.0 - len(recognised) / len(codes)) if len(codes) else float("nan"),
        "histograms": {
            name: np.bincount(recognised[:, i], minlength=size)
            for i, (name, size) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))
        },
        "recognised": int(len(recognised)),
    }


# --------------------------------------------------------------------------- callback


class KIDMonitor(keras.callbacks.Callback):
    """Keras callback: KID of freshly generated images against real ones every `every` epochs.

    real_images: images (n, h, w, c) in any value range (value_range as in
    plotting.to_uint8); their features are computed once, here. extractor:
    InceptionFeatures() or DomainFeatures(...). At the end of every `every`-th
    epoch it draws self.model.generate(n_samples, seed=seed) (the GAN's EMA
    generator when there is one), writes logs["kid"] (and logs["coverage"],
    logs["kl_from_uniform"] from mode_coverage when coverage=True) and appends
    (epoch, values) to .history. Other epochs get nan, so a CSV history keeps
    one column per metric from the first epoch on.
    """

    def __init__(
        self,
        real_images,
        extractor,
        every=1,
        n_samples=1000,
        coverage=False,
        value_range=None,
        num_subsets=100,
        subset_size=1000,
        seed=0,
    ):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        if n_samples < 2:
            raise ValueError(f"n_samples must be at least 2, got {n_samples}")
        self.extractor = extractor
        self.every = int(every)
        self.n_samples = int(n_samples)
        self.coverage = bool(coverage)
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.seed = seed
        self.real_features = extractor(real_images, value_range=value_range)
        self.history = []

    def measure(self):
        """KID (and coverage) of self.model's samples now: dict of floats."""
        images = np.asarray(self.model.generate(self.n_samples, seed=self.seed))
        value_range = getattr(self.model, "value_range", None)
        fake_features = self.extractor(images, value_range=value_range)
        mean, std = kid(
            self.real_features, fake_features, self.num_subsets, self.subset_size, seed=self.seed
        )
        values = {"kid": mean, "kid_std": std}
        if self.coverage:
            result = mode_coverage(images, value_range=value_range)
            values["coverage"] = result["coverage"]
            values["kl_from_uniform"] = result["kl_from_uniform"]
        return values

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        keys = ["kid"] + (["coverage", "kl_from_uniform"] if self.coverage else [])
        if (epoch + 1) % self.every:
            for key in keys:
                logs.setdefault(key, float("nan"))
            return
        values = self.measure()
        self.history.append((epoch, values))
        for key in keys:
            logs[key] = values[key]
