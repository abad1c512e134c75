"""Post-processing generated images: upscale, denoise, sharpen, keep the best, super-resolve (chapter 8).

Chapter 8 finishes generated 32 px samples the way the CIFAR DCGAN project does
(a DCGAN trained on one CIFAR-10 class at 32x32): draw many,
keep the ones the discriminator likes best, enlarge them with bicubic
interpolation, remove speckles with a median filter, sharpen with Pillow's
SHARPEN filter, and compare with ESRGAN super-resolution.

Every function takes a batch (n, h, w, c) or a single image (h, w, c), uint8
[0, 255] or float [0, 1] / [-1, 1] (value_range as in plotting.to_uint8, None
guesses), and returns the same kind: same dtype, same value range, a single
image for a single image.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ganlib.common import to_uint8, value_range_of

__all__ = [
    "upscale",
    "median_denoise",
    "sharpen",
    "enhance",
    "select_best",
    "esrgan",
    "compare_grid",
]

ESRGAN_HANDLE = "https://tfhub.dev/captain-pool/esrgan-tf2/1"
# What to do when TensorFlow Hub can't be reached: the error and compare_grid's warning say it.
ESRGAN_OFFLINE_HELP = (
    "To use ESRGAN without internet, get the model as a SavedModel folder (one holding "
    "saved_model.pb and variables/) on a machine that has internet: pip install "
    'tensorflow-hub, then python -c "import tensorflow_hub as hub; '
    f"print(hub.resolve('{ESRGAN_HANDLE}'))\" downloads TF Hub's captain-pool/esrgan-tf2 "
    "and prints the folder. Copy that folder here and pass esrgan(images, "
    "model='path/to/folder') (compare_grid(..., esrgan_model='path/to/folder'))."
)


def _to_unit(images, value_range=None):
    """images -> (float32 batch (n, h, w, c) in [0, 1], restore function).

    restore(batch) takes a [0, 1] float batch of any h, w (values outside are
    clipped) back to the input's dtype, value range and batch-or-single shape.
    """
    images = np.asarray(images)
    single = images.ndim == 3
    batch = images[None] if single else images
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must have shape (n, h, w, c) or (h, w, c) with c 1 or 3, got {images.shape}"
        )
    dtype = images.dtype
    if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
        raise ValueError(f"images must be uint8 or float, got {dtype}")
    low, high = value_range_of(images, value_range)
    unit = (batch.astype(np.float32) - low) / (high - low)

    def restore(result):
        result = np.clip(np.asarray(result, np.float32), 0.0, 1.0) * (high - low) + low
        if dtype == np.uint8:
            result = np.round(result)
        result = result.astype(dtype)
        return result[0] if single else result

    return unit, restore


def upscale(images, factor=2, method="bicubic", value_range=None):
    """Enlarge images `factor` times with tf.image.resize (chapter 8; bicubic by default; also
    "bilinear", "lanczos3", "nearest", "area"). Bicubic overshoots at edges, so the
    result is clipped to the value range. Returns (n, h*factor, w*factor, c)."""
    import tensorflow as tf

    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    unit, restore = _to_unit(images, value_range)
    size = (round(unit.shape[1] * factor), round(unit.shape[2] * factor))
    try:
        resized = tf.image.resize(unit, size, method=method)
    except ValueError as err:
        raise ValueError(
            f"unknown method {method!r}; use 'bicubic', 'bilinear', 'lanczos3', 'nearest' or 'area'"
        ) from err
    return restore(resized.numpy())


def median_denoise(images, size=3, value_range=None):
    """Replace every pixel by the median of its size x size neighbourhood, channel by
    channel (scipy.ndimage.median_filter, edges mirrored; chapter 8). Removes isolated
    speckles while keeping edges, unlike a blur. Returns the same shape."""
    from scipy.ndimage import median_filter

    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    unit, restore = _to_unit(images, value_range)
    return restore(median_filter(unit, size=(1, size, size, 1), mode="reflect"))


def sharpen(images, value_range=None):
    """Pillow's ImageFilter.SHARPEN (3x3 kernel, centre 32, neighbours -2, divided by 16;
    chapter 8). Pillow filters 8-bit images, so float input passes through uint8 on the
    way. Returns the same shape."""
    from PIL import Image, ImageFilter

    unit, restore = _to_unit(images, value_range)
    out = np.empty_like(unit)
    for i, image in enumerate(np.round(unit * 255.0).astype(np.uint8)):
        mode_image = image[..., 0] if image.shape[-1] == 1 else image
        filtered = np.asarray(Image.fromarray(mode_image).filter(ImageFilter.SHARPEN))
        out[i] = filtered.reshape(image.shape) / 255.0
    return restore(out)


def select_best(gan, n, pool=1000, batch_size=256, seed=None):
    """Draw `pool` images from gan.generate and keep the n the discriminator finds most real (chapter 8).

    gan: anything with generate(count, seed=None) -> images and
    discriminator(images) -> scores (n, 1) or (n,), higher meaning "more real"
    (probabilities or logits), such as ganlib.training.GAN. seed: passed to
    gan.generate; the same seed and weights give the same selection, None a new
    one each call. Returns (images (n, h, w, c) best first, in the generator's
    value range; scores float32 (n,)).
    """
    if not 1 <= n <= pool:
        raise ValueError(f"need 1 <= n <= pool, got n={n}, pool={pool}")
    images = np.asarray(gan.generate(pool, seed=seed))
    scores = np.concatenate(
        [
            np.asarray(
                gan.discriminator(images[start : start + batch_size], training=False)
            ).reshape(-1)
            for start in range(0, len(images), batch_size)
        ]
    ).astype(np.float32)
    order = np.argsort(-scores, kind="stable")[:n]
    return images[order], scores[order]


@functools.lru_cache(maxsize=2)
def _load_esrgan(handle):
    """Load the ESRGAN SavedModel from a local folder or through TensorFlow Hub."""
    from pathlib import Path

    if Path(handle).expanduser().is_dir():
        import tensorflow as tf

        return tf.saved_model.load(str(Path(handle).expanduser()))
    try:
        import tensorflow_hub as hub
    except ImportError as err:
        raise ImportError(
            "ESRGAN is loaded through TensorFlow Hub: pip install tensorflow-hub "
            "(or pip install 'ganlib[hub]'), or pass model='path/to/unpacked/esrgan' or a loaded model"
        ) from err
    try:
        return hub.load(handle)
    except Exception as err:
        raise FileNotFoundError(
            f"could not load ESRGAN from {handle} ({type(err).__name__}: {err}). "
            f"{ESRGAN_OFFLINE_HELP}"
        ) from err


def esrgan(images, model=None, value_range=None):
    """Super-resolve images 4x with ESRGAN (captain-pool/esrgan-tf2 on TensorFlow Hub; chapter 8).

    model: None loads ESRGAN_HANDLE through tensorflow_hub (an optional extra);
    a string is a Hub handle or a local SavedModel folder (ESRGAN_OFFLINE_HELP
    says how to get one for a machine without internet); anything callable on
    a float32 batch (n, h, w, 3) in [0, 255] returning (n, 4h, 4w, 3) in
    [0, 255] is used as it is. Grey images are run as RGB and averaged back.
    Colab or any machine with internet: pip install tensorflow-hub, then esrgan(images).
    Returns images 4x larger, same dtype and value range as the input.
    """
    import tensorflow as tf

    if model is None or isinstance(model, str):
        model = _load_esrgan(model or ESRGAN_HANDLE)
    if not callable(model):
        raise ValueError(
            f"model must be None, a handle/path string or callable, got {type(model).__name__}"
        )
    unit, restore = _to_unit(images, value_range)
    channels = unit.shape[-1]
    rgb = np.repeat(unit, 3, axis=-1) if channels == 1 else unit
    outputs = [
        np.asarray(model(tf.constant(image[None] * 255.0, tf.float32)))[0] / 255.0 for image in rgb
    ]
    result = np.stack(outputs)
    if channels == 1:
        result = result.mean(axis=-1, keepdims=True)
    return restore(result)


def enhance(images, factor=2, size=3, value_range=None):
    """Chapter 8's clean-up chain: bicubic upscale by `factor`, size x size median
    denoise, sharpen. Returns images `factor` times larger, same dtype and value range."""
    images = upscale(images, factor, value_range=value_range)
    return sharpen(median_denoise(images, size, value_range=value_range), value_range=value_range)


def compare_grid(images, value_range=None, rounds=2, esrgan_model=None, size=2.0):
    """Show original, enhanced (upscale x2 + median + sharpen, `rounds` times) and ESRGAN x4
    versions side by side, one row per image (chapter 8); returns the matplotlib Figure.

    esrgan_model: None tries to load ESRGAN (see esrgan); False skips it; a
    string (Hub handle or local SavedModel folder) or a callable is used as the
    model. When ESRGAN is unavailable its column says so and a warning says why
    and how to get the model, instead of failing. ESRGAN gets the median-filtered
    image, as the CIFAR DCGAN project does (chapter 8).
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    # Decide the value range once, for the whole set, not per picture.
    value_range = value_range_of(images, value_range)
    columns = [("original", images)]
    current = images
    for r in range(rounds):
        current = enhance(current, value_range=value_range)
        columns.append((f"enhanced x{2 ** (r + 1)}", current))
    skipped = None
    if esrgan_model is False:
        skipped = "ESRGAN: skipped"
    else:
        try:
            denoised = median_denoise(images, value_range=value_range)
            columns.append(
                ("ESRGAN x4", esrgan(denoised, model=esrgan_model, value_range=value_range))
            )
        except ImportError as error:
            skipped = "ESRGAN: skipped\n(pip install tensorflow-hub)"
            warnings.warn(f"compare_grid left ESRGAN out: {error}", stacklevel=2)
        except FileNotFoundError as error:
            skipped = "ESRGAN: skipped\n(model not reachable:\nsee the warning)"
            warnings.warn(f"compare_grid left ESRGAN out: {error}", stacklevel=2)
    n_cols = len(columns) + (skipped is not None)
    figure, axes = plt.subplots(
        len(images), n_cols, figsize=(size * n_cols, size * len(images)), squeeze=False
    )
    for row in range(len(images)):
        for col, (title, column) in enumerate(columns):
            picture = to_uint8(column[row], value_range)
            grey = picture.shape[-1] == 1
            axes[row, col].imshow(
                picture[..., 0] if grey else picture,
                cmap="gray" if grey else None,
                interpolation="nearest",  # show the real pixels, not a smoothed view
            )
            if row == 0:
                axes[row, col].set_title(f"{title}\n{picture.shape[1]}x{picture.shape[0]}")
        if skipped is not None:
            axes[row, -1].text(0.5, 0.5, skipped if row == 0 else "", ha="center", va="center")
        for ax in axes[row]:
            ax.set_axis_off()
    figure.tight_layout()
    return figure
