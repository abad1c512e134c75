"""A calibrated toy-face decoder for generated images: reads blurred, noisy faces, refuses non-faces (chapter 6).

`decode_toy_faces` is exact on real faces but refuses almost every generated one,
whose colours and edges are a little off. `CalibratedDecoder` is a small network
trained on real faces degraded the way generated ones are, with a sixth output
that says "face or not", trained on noise, blank images, blobs, stripes and
shuffled tiles of faces; its thresholds are set on held-out data.
"""

from __future__ import annotations

import io
import itertools
import math
import time
import warnings

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from ganlib.common import (
    IMAGE_SIZES,
    check_image_size,
    to_uint8,
)
from ganlib.data.toy_faces import (
    BACKGROUND_RGB,
    EYE_RGB,
    FACTOR_NAMES,
    FACTOR_SIZES,
    HAIR_RGB,
    SKIN_RGB,
    toy_faces,
)
from ganlib.metrics.features import factor_heads, fit_in_seeded_order, load_or_train, toy_face_trunk

# The kinds of non-face images the face output learns to refuse (see `non_faces`).
NEGATIVE_KINDS = ("noise", "blank", "colour", "blobs", "stripes", "tiles", "mixture")


# --------------------------------------------------------------------------- degradations


def _gaussian_blur(images: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Blur float images (n, s, s, 3) with one Gaussian sigma (pixels) per image.

    Separable, as two matrix products per image; each kernel row is renormalised at
    the border so that edges keep their colour instead of fading to black.
    """
    size = images.shape[1]
    positions = np.arange(size, dtype=np.float32)
    offsets = positions[None, :, None] - positions[None, None, :]  # (1, s, s)
    sig = np.maximum(np.asarray(sigmas, np.float32), 1e-3)[:, None, None]
    kernels = np.exp(-0.5 * (offsets / sig) ** 2)
    kernels /= kernels.sum(axis=2, keepdims=True)
    n = len(images)
    # Rows: K @ image; columns: the same with the image transposed (batched matmuls).
    rows = np.matmul(kernels, images.reshape(n, size, size * 3)).reshape(n, size, size, 3)
    columns = np.matmul(kernels, rows.transpose(0, 2, 1, 3).reshape(n, size, size * 3))
    return columns.reshape(n, size, size, 3).transpose(0, 2, 1, 3)


def _jpeg(images: np.ndarray, qualities) -> np.ndarray:
    """Round-trip uint8 images (n, s, s, 3) through JPEG at one quality per image."""
    out = np.empty_like(images)
    for i, (image, quality) in enumerate(zip(images, qualities, strict=True)):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
        out[i] = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return out


def _shift(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move each image by (dy, dx) whole pixels, repeating the edge pixels into the gap."""
    n, size = images.shape[:2]
    reach = int(np.abs(shifts).max()) if len(shifts) else 0
    if reach == 0:
        return images
    padded = np.pad(images, ((0, 0), (reach, reach), (reach, reach), (0, 0)), mode="edge")
    out = np.empty_like(images)
    for i, (dy, dx) in enumerate(shifts):
        out[i] = padded[i, reach - dy : reach - dy + size, reach - dx : reach - dx + size]
    return out


def degrade(images, rng, strength=1.0) -> np.ndarray:
    """Real toy faces made to look generated: uint8 (n, s, s, 3) -> uint8 (n, s, s, 3) (chapter 6).

    Each image independently gets, with some probability, a colour change (per-channel
    gain, contrast, brightness), a shift of up to s/16 pixels, a Gaussian blur with
    sigma up to 1.3 px at 32 px (scaled with s), Gaussian noise with sigma up to 0.14
    in [-1, 1] units, and a JPEG round trip at quality 30 to 95. `rng` is a NumPy
    Generator; `strength` scales the blur, noise and colour ranges.
    """
    images = np.asarray(images, np.uint8)
    if len(images) > 1024:  # in chunks: small arrays stay in the CPU's cache
        return np.concatenate(
            [degrade(images[i : i + 1024], rng, strength) for i in range(0, len(images), 1024)]
        )
    n, size = images.shape[:2]
    scale = size / 32
    x = images.astype(np.float32)
    # Colour: generators drift a little in hue, contrast and brightness.
    colour = rng.random(n) < 0.7
    on = colour[:, None, None, None]
    gain = (1 + strength * rng.uniform(-0.08, 0.08, (n, 1, 1, 3)) * on).astype(np.float32)
    contrast = (1 + strength * rng.uniform(-0.2, 0.2, (n, 1, 1, 1)) * on).astype(np.float32)
    offset = (strength * rng.uniform(-18, 18, (n, 1, 1, 1)) * on).astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x * gain - mean) * contrast + mean + offset
    # Position: generated faces are not always where real ones are.
    reach = max(1, round(2 * scale))
    moved = rng.random(n) < 0.5
    shifts = rng.integers(-reach, reach + 1, (n, 2)) * moved[:, None]
    x = _shift(x, shifts)
    blurred = rng.random(n) < 0.6
    sigmas = rng.uniform(0.3, 1.3 * strength, n) * scale
    if blurred.any():
        x[blurred] = _gaussian_blur(x[blurred], sigmas[blurred])
    noisy = rng.random(n) < 0.6
    noise_sigma = (rng.uniform(0.0, 0.14 * strength, n) * noisy * 127.5).astype(np.float32)
    x = x + rng.standard_normal(x.shape, dtype=np.float32) * noise_sigma[:, None, None, None]
    x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    # JPEG's halved colour resolution is what makes small irises hard: often.
    compressed = rng.random(n) < 0.6
    if compressed.any():
        x[compressed] = _jpeg(x[compressed], rng.integers(30, 96, int(compressed.sum())))
    return x


# --------------------------------------------------------------------------- non-faces


def _smooth_noise(rng, n, size, cells):
    """Random colours on a coarse grid (cells x cells), bicubically enlarged: smooth blobs."""
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        grid = rng.integers(0, 256, (int(cells[i]), int(cells[i]), 3), dtype=np.uint8)
        out[i] = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC))
    return out


def _stripes(rng, n, size):
    """Stripes at a random angle and frequency between two random colours, sharp or sinusoidal."""
    angle = rng.uniform(0, np.pi, (n, 1, 1))
    cycles = rng.uniform(1, size / 3, (n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    wave = np.sin(2 * np.pi * cycles * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    sharp = rng.random((n, 1, 1)) < 0.5
    t = np.where(sharp, wave > 0, (wave + 1) / 2)[..., None]
    a, b = rng.uniform(0, 255, (2, n, 1, 1, 3))
    return np.round(a * t + b * (1 - t)).astype(np.uint8)


def _shuffled_tiles(faces, rng):
    """Faces cut into 2x2, 4x4 or 8x8 tiles and put back in an order that moves every tile."""
    n, size = faces.shape[:2]
    out = np.empty_like(faces)
    for i in range(n):
        grid = int(rng.choice([2, 4, 8]))
        step = size // grid
        tiles = [
            faces[i, r * step : (r + 1) * step, c * step : (c + 1) * step]
            for r in range(grid)
            for c in range(grid)
        ]
        # Every tile moves: with 8x8 tiles, swapping two background tiles would leave a face.
        order = rng.permutation(len(tiles))
        while np.any(order == np.arange(len(tiles))):
            order = rng.permutation(len(tiles))
        for k, j in enumerate(order):
            r, c = divmod(k, grid)
            out[i, r * step : (r + 1) * step, c * step : (c + 1) * step] = tiles[j]
    return out


def _assorted(n, size, rng, kinds):
    """n non-faces, each of a kind drawn evenly from `kinds`."""
    choice = rng.integers(0, len(kinds), n)
    out = np.empty((n, size, size, 3), np.uint8)
    for k, name in enumerate(kinds):
        chosen = np.flatnonzero(choice == k)
        if len(chosen):
            out[chosen] = non_faces(len(chosen), size, rng, name)
    return out


def non_faces(n, image_size, rng, kind=None) -> np.ndarray:
    """Images that are not toy faces, uint8 (n, image_size, image_size, 3) (chapter 6).

    kind: one of NEGATIVE_KINDS, or None for an even mix. "colour" includes the
    palettes' own colours; "tiles" are real faces in shuffled tiles; "mixture"
    blends two of the other kinds. These train and calibrate the face output of
    CalibratedDecoder.
    """
    size = check_image_size(image_size)
    if kind is None:
        return _assorted(n, size, rng, NEGATIVE_KINDS)
    if kind not in NEGATIVE_KINDS:
        raise ValueError(f"kind must be one of {NEGATIVE_KINDS} or None, got {kind!r}")
    if kind == "noise":
        # Pixel noise, or blocky noise at a lower resolution, or noise around one colour.
        block = rng.choice([1, 1, 2, 4], n)
        out = np.empty((n, size, size, 3), np.uint8)
        for i in range(n):
            cells = size // int(block[i])
            coarse = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
            out[i] = coarse.repeat(block[i], 0).repeat(block[i], 1)
        around = rng.random(n) < 0.3
        centre = rng.uniform(0, 255, (n, 1, 1, 3))
        spread = rng.uniform(10, 80, (n, 1, 1, 1))
        tinted = centre + spread * rng.standard_normal((n, size, size, 3))
        out[around] = np.clip(tinted[around], 0, 255).astype(np.uint8)
        return out
    if kind == "blank":
        values = rng.integers(0, 256, n).astype(np.uint8)
        return np.broadcast_to(values[:, None, None, None], (n, size, size, 3)).copy()
    if kind == "colour":
        palette = np.concatenate([BACKGROUND_RGB, EYE_RGB, HAIR_RGB, SKIN_RGB])
        colours = rng.uniform(0, 255, (n, 3))
        from_palette = rng.random(n) < 0.4
        colours[from_palette] = palette[rng.integers(0, len(palette), int(from_palette.sum()))]
        return np.broadcast_to(
            np.round(colours).astype(np.uint8)[:, None, None], (n, size, size, 3)
        ).copy()
    if kind == "blobs":
        return _smooth_noise(rng, n, size, rng.integers(2, 9, n))
    if kind == "stripes":
        return _stripes(rng, n, size)
    if kind == "tiles":
        faces, _ = toy_faces(n, size, seed=int(rng.integers(2**31)))
        return _shuffled_tiles(faces, rng)
    # mixture: two of the other kinds blended
    first = _assorted(n, size, rng, NEGATIVE_KINDS[:-1])
    second = _assorted(n, size, rng, NEGATIVE_KINDS[:-1])
    weight = rng.uniform(0.3, 0.7, (n, 1, 1, 1))
    return np.round(first * weight + second * (1 - weight)).astype(np.uint8)


# --------------------------------------------------------------------------- the decoder


class CalibratedDecoder:
    """Reads the five toy-face factors from generated images and refuses non-faces (chapter 6).

    Call it like ganlib.data.decode_toy_faces: images (n, h, w, 3), uint8 or float
    (value_range as in common.to_uint8; other sizes are resized to image_size)
    -> int64 (n, 5) factor codes in the order of FACTOR_NAMES, a row of -1 for
    each refused image. `.predict` also returns the scores behind the decision.

    The network (four strided convolutions, five softmax heads and a sigmoid
    "face" head) trains on first use on real faces degraded by `degrade` (blur,
    noise, colour shifts, small moves, JPEG) and on `non_faces`; an image is
    accepted when its face score is at least `.thresholds["face"]` and every
    head's largest probability at least `.thresholds["confidence"]`, both chosen
    on held-out images (other seeds) and stored with the weights in cache_dir
    (default $GANLIB_CACHE or ~/.cache/ganlib). `.calibration` holds the
    held-out acceptance of degraded faces, refusal of non-faces and accuracy per
    factor. Every random choice comes from `seed`.
    """

    # Bump when the architecture, data or training changes, so old caches are ignored.
    # 2: shuffled tiles all move; the face threshold bounds the non-faces let through.
    _VERSION = 2

    def __init__(
        self,
        image_size=32,
        cache_dir=None,
        seed=0,
        train_faces=12000,
        train_non_faces=3000,
        calibration_size=3000,
        epochs=4,
        batch_size=512,
        value_range=None,
        verbose=False,
    ):
        self.image_size = check_image_size(image_size, IMAGE_SIZES)
        self.batch_size = int(batch_size)
        self.value_range = value_range
        self.config = {
            "version": self._VERSION,
            "image_size": self.image_size,
            "seed": int(seed),
            "train_faces": int(train_faces),
            "train_non_faces": int(train_non_faces),
            "calibration_size": int(calibration_size),
            "epochs": int(epochs),
        }
        if min(train_faces, train_non_faces, calibration_size, epochs) < 1:
            raise ValueError(f"sizes and epochs must be at least 1, got {self.config}")
        self.network = self._build()
        self._forward = None
        info, self.weights_path, self.info_path = load_or_train(
            self.network, self.config, "calibrated_decoder", lambda: self._train(verbose), cache_dir
        )
        self.thresholds = info["thresholds"]
        self.calibration = info["calibration"]
        self.train_seconds = info["train_seconds"]

    def _build(self):
        from keras import layers

        inputs = keras.Input((self.image_size, self.image_size, 3), name="image")
        seeds = itertools.count(self.config["seed"] * 100 + 50)
        # The same trunk and heads as DomainFeatures, plus the face head.
        x = toy_face_trunk(inputs, self.image_size, 128, seeds)
        outputs = factor_heads(x, seeds)
        outputs.append(
            layers.Dense(
                1,
                activation="sigmoid",
                name="face",
                kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
            )(x)
        )
        return keras.Model(inputs, outputs, name="calibrated_decoder")

    def _data(self, faces_n, non_faces_n, seed):
        """Degraded faces then non-faces, with targets: softmax targets per factor (one-hot
        for faces, uniform for non-faces, so the heads learn to be unsure of them) and
        the face label."""
        size = self.image_size
        rng = np.random.default_rng(seed)
        faces, factors = toy_faces(faces_n, size, seed=seed)
        faces = degrade(faces, rng)
        negatives = non_faces(non_faces_n, size, rng)
        # Half the non-faces are degraded too, so that blur or JPEG artefacts
        # alone never tell a face from a non-face.
        half = rng.random(non_faces_n) < 0.5
        if half.any():
            negatives[half] = degrade(negatives[half], rng)
        images = np.concatenate([faces, negatives])
        targets = []
        for i, k in enumerate(FACTOR_SIZES):
            target = np.full((len(images), k), 1.0 / k, np.float32)
            target[:faces_n] = np.eye(k, dtype=np.float32)[factors[:, i]]
            targets.append(target)
        is_face = np.concatenate([np.ones(faces_n), np.zeros(non_faces_n)]).astype(np.float32)
        targets.append(is_face[:, None])
        return images, targets, factors

    def _train(self, verbose):
        config = self.config
        seed = config["seed"]
        start = time.perf_counter()
        images, targets, _ = self._data(config["train_faces"], config["train_non_faces"], seed)
        batch_size = 128
        steps = config["epochs"] * math.ceil(len(images) / batch_size)
        self.network.compile(
            optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
            loss=["categorical_crossentropy"] * len(FACTOR_NAMES) + ["binary_crossentropy"],
        )
        fit_in_seeded_order(
            self.network,
            images,
            tuple(targets),
            config["epochs"],
            batch_size,
            np.random.default_rng(seed + 7),
            verbose,
        )
        seconds = time.perf_counter() - start
        # Calibration on images no training step saw: other faces, other draws.
        n = config["calibration_size"]
        cal_images, _, cal_factors = self._data(n, n, seed + 1_000_003)
        probabilities, face = self._scores(cal_images)
        confidence = np.min([p.max(axis=1) for p in probabilities], axis=0)
        thresholds = _calibrate(face[:n], confidence[:n], face[n:], confidence[n:])
        accepted = (face >= thresholds["face"]) & (confidence >= thresholds["confidence"])
        codes = np.stack([p.argmax(axis=1) for p in probabilities], axis=1)[:n]
        calibration = {
            "face_acceptance": float(accepted[:n].mean()),
            "non_face_refusal": float(1 - accepted[n:].mean()),
            "accuracy": {
                name: float(np.mean(codes[accepted[:n], i] == cal_factors[accepted[:n], i]))
                for i, name in enumerate(FACTOR_NAMES)
            },
        }
        if calibration["face_acceptance"] < 0.95 or calibration["non_face_refusal"] < 0.99:
            warnings.warn(
                f"CalibratedDecoder calibrated to {calibration}; train longer "
                "(epochs=, train_faces=) before trusting its coverage.",
                stacklevel=3,
            )
        return {
            "config": config,
            "thresholds": thresholds,
            "calibration": calibration,
            "train_seconds": round(seconds, 2),
        }

    def _scores(self, images):
        """uint8 images at image_size -> (five softmax arrays (n, k), face scores (n,))."""
        if self._forward is None:
            network, size = self.network, self.image_size

            @tf.function(reduce_retracing=True)
            def forward(batch):
                batch = tf.cast(batch, tf.float32) / 255.0
                if batch.shape[1] != size or batch.shape[2] != size:
                    batch = tf.image.resize(batch, (size, size), method="bilinear", antialias=True)
                return network(batch, training=False)

            self._forward = forward
        parts = [
            [np.asarray(o) for o in self._forward(images[i : i + self.batch_size])]
            for i in range(0, len(images), self.batch_size)
        ]
        outputs = [np.concatenate(column) for column in zip(*parts, strict=True)]
        return outputs[:-1], outputs[-1][:, 0]

    def predict(self, images, value_range=None) -> dict:
        """codes int64 (n, 5) (-1 rows refused), accepted bool (n,), face float (n,) in [0, 1],
        confidence float (n,): the smallest of the five heads' largest probabilities,
        guesses int64 (n, 5): each head's most likely value, refused images included
        (chapter 4 reads a collapse from them; only `codes` are readings to trust)."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must have shape (n, h, w, 3), got {images.shape}")
        n = len(images)
        if n == 0:
            return {
                "codes": np.zeros((0, len(FACTOR_NAMES)), np.int64),
                "accepted": np.zeros(0, bool),
                "face": np.zeros(0, np.float32),
                "confidence": np.zeros(0, np.float32),
                "guesses": np.zeros((0, len(FACTOR_NAMES)), np.int64),
            }
        images = to_uint8(images, value_range if value_range is not None else self.value_range)
        probabilities, face = self._scores(images)
        confidence = np.min([p.max(axis=1) for p in probabilities], axis=0)
        accepted = (face >= self.thresholds["face"]) & (confidence >= self.thresholds["confidence"])
        guesses = np.stack([p.argmax(axis=1) for p in probabilities], axis=1).astype(np.int64)
        codes = np.where(accepted[:, None], guesses, -1)
        return {
            "codes": codes,
            "accepted": accepted,
            "face": face,
            "confidence": confidence,
            "guesses": guesses,
        }

    def __call__(self, images, value_range=None) -> np.ndarray:
        """int64 (n, 5) factor codes, -1 rows for refused images (as decode_toy_faces)."""
        return self.predict(images, value_range)["codes"]


def _logit(p):
    # Clipped: float32 sigmoids saturate at exactly 0 and 1.
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _calibrate(face_pos, conf_pos, face_neg, conf_neg) -> dict:
    """Thresholds on the face score and the heads' confidence from held-out scores.

    The confidence threshold keeps 99.5% of the degraded faces. The face threshold
    must let through at most 0.1% of the non-faces (counting all of them, also
    those the confidence threshold refuses); where that still keeps 99% of the
    faces, it sits halfway (in logits) between the two, a margin on both sides for
    images a little unlike either.
    """
    confidence = float(min(np.quantile(conf_pos, 0.005), 0.9))
    kept = conf_pos >= confidence
    low_face = np.quantile(_logit(face_pos[kept]), 0.01)
    passing = np.sort(_logit(face_neg[conf_neg >= confidence]))[::-1]
    allowed = int(0.001 * len(face_neg))  # non-faces that may score above the threshold
    high_non_face = passing[allowed] if len(passing) > allowed else -16.0
    cut = (low_face + high_non_face) / 2 if low_face > high_non_face else high_non_face
    return {"face": float(1 / (1 + np.exp(-cut))), "confidence": confidence}
