"""Figures for the chapters: sample grids and training curves with matplotlib (chapter 1).

Every function takes images in any of the value ranges the book uses (uint8 [0, 255],
float [0, 1] or float [-1, 1]; see `ganlib.common.value_range_of`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ganlib.common import to_uint8
from ganlib.grids import image_grid, save_grid

__all__ = ["show_grid", "plot_history", "image_grid", "save_grid", "to_uint8"]


def show_grid(images, rows=None, cols=None, value_range=None, title=None, ax=None, size=6.0):
    """Draw image_grid(...) with matplotlib; returns the Axes (chapter 1)."""
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
        from ganlib.training.history import read_history

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
    """Draw the losses (left) and the discriminator's accuracies (right) per epoch (chapter 5).

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
        accuracy_ax.plot(
            x, columns[key], label=labels[key], linestyle="--" if key == "aug_p" else "-"
        )
    accuracy_ax.set(
        xlabel=x_label, ylabel="share correct", title="Discriminator accuracy", ylim=(-0.02, 1.02)
    )
    from matplotlib.ticker import MaxNLocator

    for axes in (loss_ax, accuracy_ax):
        if axes.lines:
            axes.legend()
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    return loss_ax, accuracy_ax
