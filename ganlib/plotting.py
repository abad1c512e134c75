"""Pictures: image grids for samples and data previews.

Every function takes images in any of the value ranges the book uses
(uint8 [0, 255], float [0, 1] or float [-1, 1]) and says which one it assumes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def to_uint8(images, value_range=None) -> np.ndarray:
    """Convert images to uint8 [0, 255].

    images: array (..., h, w, c), uint8 or float. value_range: (low, high) of the
    input; None guesses it: uint8 is (0, 255), floats with a negative value are
    (-1, 1), other floats (0, 1).
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    if value_range is None:
        value_range = (-1.0, 1.0) if images.size and images.min() < 0 else (0.0, 1.0)
    low, high = value_range
    if high <= low:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    scaled = (images.astype(np.float32) - low) / (high - low)
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def image_grid(images, rows=None, cols=None, value_range=None, padding=2, pad_value=255) -> np.ndarray:
    """Tile images into one uint8 RGB picture of rows x cols cells.

    images: array (n, h, w, c) with c in {1, 3}. With neither rows nor cols, the
    grid is as square as n allows. Empty cells are filled with pad_value.
    """
    images = to_uint8(images, value_range)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (n, h, w, 1 or 3), got {images.shape}")
    n, h, w, _ = images.shape
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if rows is None and cols is None:
        cols = math.ceil(math.sqrt(n))
    if cols is None:
        cols = math.ceil(n / rows)
    if rows is None:
        rows = math.ceil(n / cols)
    grid = np.full(
        (rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding, 3), pad_value, np.uint8
    )
    for i, image in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top : top + h, left : left + w] = image
    return grid


def save_grid(path, images, rows=None, cols=None, value_range=None, scale=1) -> Path:
    """Write image_grid(...) as a PNG, enlarged `scale` times (nearest) so small faces stay visible."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image_grid(images, rows, cols, value_range))
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
    return path


def show_grid(images, rows=None, cols=None, value_range=None, title=None, ax=None, size=6.0):
    """Draw image_grid(...) with matplotlib; returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(image_grid(images, rows, cols, value_range), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def _history_columns(history) -> dict:
    """dict of lists from a run folder, a history.csv path, a Keras History, a dict or a DataFrame."""
    from os import PathLike

    if isinstance(history, (str, PathLike)):
        from ganlib.training import read_history

        path = Path(history)
        if path.is_dir():
            path = path / "history.csv"
        if not path.is_file():
            raise FileNotFoundError(f"no history at {path}; train a run first")
        rows = read_history(path)
        return {key: [row.get(key, math.nan) for row in rows] for key in (rows[0] if rows else {})}
    if isinstance(getattr(history, "history", None), dict):  # keras.callbacks.History
        return {key: list(values) for key, values in history.history.items()}
    if hasattr(history, "to_dict"):  # pandas.DataFrame
        return {key: list(values) for key, values in history.to_dict("list").items()}
    if isinstance(history, dict):
        return {key: list(np.ravel(values)) for key, values in history.items()}
    raise ValueError(
        "plot_history takes a run folder, a history.csv path, a Keras History, a dict of lists "
        f"or a DataFrame, got {type(history).__name__}"
    )


def plot_history(history, ax=None):
    """Draw the losses (left) and the discriminator's accuracies (right) per epoch.

    history: a run folder or its history.csv, a keras.callbacks.History, a dict of
    lists (e.g. from ganlib.train or train_on_batch_loop) or a DataFrame. Uses the
    `epoch` column for the x axis when there is one, else the row number ("step").
    ax: a pair of Axes, or None for a new figure. Returns the pair of Axes.
    """
    import matplotlib.pyplot as plt

    columns = _history_columns(history)
    losses = [key for key in ("d_loss", "g_loss") if key in columns]
    accuracies = [
        key for key in ("d_real_accuracy", "d_fake_accuracy", "d_acc", "aug_p") if key in columns
    ]
    if not losses and not accuracies:
        raise ValueError(f"no GAN losses or accuracies in the history (columns: {sorted(columns)})")
    n = max(len(values) for values in columns.values())
    x = columns.get("epoch", list(range(n)))
    x_label = "epoch" if "epoch" in columns else "step"
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    loss_ax, accuracy_ax = ax
    labels = {
        "d_loss": "discriminator",
        "g_loss": "generator",
        "d_real_accuracy": "on real images",
        "d_fake_accuracy": "on generated images",
        "d_acc": "both halves",
        "aug_p": "augmentation p",
    }
    for key in losses:
        loss_ax.plot(x, columns[key], label=labels[key])
    loss_ax.set(xlabel=x_label, ylabel="binary cross-entropy", title="Losses")
    for key in accuracies:
        accuracy_ax.plot(x, columns[key], label=labels[key], linestyle="--" if key == "aug_p" else "-")
    accuracy_ax.set(xlabel=x_label, ylabel="share correct", title="Discriminator accuracy", ylim=(-0.02, 1.02))
    from matplotlib.ticker import MaxNLocator

    for axes in (loss_ax, accuracy_ax):
        if axes.lines:
            axes.legend()
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    return loss_ax, accuracy_ax
