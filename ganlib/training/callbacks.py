"""Callbacks that every run uses: stop at a NaN loss, the history CSV, sample grids (chapter 5)."""

from __future__ import annotations

import math
from pathlib import Path

import keras

from ganlib.common import atomic_save, to_uint8
from ganlib.grids import save_grid
from ganlib.training.history import METRIC_NAMES, read_history, write_history


def _finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def gan_metrics_finite(logs):
    """Whether the GAN's own logged values (METRIC_NAMES) in `logs` are finite (chapter 5).

    Values other callbacks add (KID, ...) are not checked; missing `logs` count as finite.
    """
    return all(_finite(v) for k, v in (logs or {}).items() if k in METRIC_NAMES)


def first_nonfinite_step(model):
    """The first non-finite step of a GAN (from 0), or None (also for other models) (chapter 5)."""
    variable = getattr(model, "nonfinite_step", None)
    if variable is None:
        return None
    step = int(keras.ops.convert_to_numpy(variable))
    return step if step >= 0 else None


class StopOnNonFinite(keras.callbacks.Callback):
    """Raise FloatingPointError once a GAN's loss has been NaN or infinite, naming it (chapter 5).

    The GAN's train_step records the first bad step on the device; this callback
    checks that record after the steps (in Keras's background thread when no other
    callback needs each step's results, so the GPU never waits for it) and at the end
    of the epoch, before the callbacks after it: no checkpoint, history row or sample
    grid is written after a bad step.
    """

    async_safe = True

    def on_train_begin(self, logs=None):
        if hasattr(self.model, "nonfinite_step"):
            self.model.nonfinite_step.assign(-1)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = int(keras.ops.convert_to_numpy(self.model.global_step))

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def _check(self):
        bad = first_nonfinite_step(self.model)
        if bad is None:
            return
        offset = getattr(self.model, "_step_offset", 0)
        total = self.params.get("steps") if self.params else None
        of = f" of {total + offset}" if total else ""
        in_epoch = bad - self._epoch_start + offset + 1
        raise FloatingPointError(
            f"a loss became NaN or infinite at epoch {self._epoch} (counting from 0), "
            f"step {in_epoch}{of} (training step {bad + 1}); training stopped and no "
            f"checkpoint was written after it. Lower the learning rate or check the data, "
            f"then resume from the last checkpoint."
        )


class HistoryCSV(keras.callbacks.Callback):
    """Keep `path` as a CSV with one row per finished epoch (`epoch` column, from 0) (chapter 5).

    When an epoch starts, rows for it and later epochs (left by an interrupted run)
    are dropped, so a resumed run has no gap and no duplicate. Rewritten atomically
    after every epoch. `.rows` holds the same rows as dicts; path=None keeps only those.
    """

    def __init__(self, path):
        super().__init__()
        self.path = None if path is None else Path(path)
        self.rows = read_history(self.path) if self.path is not None and self.path.is_file() else []

    def on_epoch_begin(self, epoch, logs=None):
        self.rows = [row for row in self.rows if row["epoch"] < epoch]

    def on_epoch_end(self, epoch, logs=None):
        if not gan_metrics_finite(logs):
            return
        row = {"epoch": epoch}
        row.update({k: float(v) for k, v in (logs or {}).items() if _is_number(v)})
        self.rows.append(row)
        if self.path is not None:
            write_history(self.path, self.rows)


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class SampleGrid(keras.callbacks.Callback):
    """A rows x cols grid from the same noise at the end of every `every`-th epoch (chapter 5).

    Kept in memory as `.grids`, a list of (epoch, uint8 images (rows*cols, h, w, c)),
    and, with a run_dir, saved as run_dir/samples/epoch_XXXX.png (epoch from 0).
    Uses `model.generate`, so the EMA generator when there is one.
    """

    def __init__(self, run_dir=None, rows=5, cols=5, seed=1234, every=1, scale=1):
        super().__init__()
        if rows < 1 or cols < 1 or every < 1:
            raise ValueError(
                f"rows, cols and every must be at least 1, got {rows}, {cols}, {every}"
            )
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.rows, self.cols, self.seed, self.every, self.scale = rows, cols, seed, every, scale
        self.grids = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or not gan_metrics_finite(logs):
            return
        images = self.model.generate(self.rows * self.cols, seed=self.seed)
        value_range = getattr(self.model, "value_range", None)
        self.grids.append((epoch, to_uint8(images, value_range)))
        if self.run_dir is not None:
            # Written under a temporary name and renamed: a killed process or a full disk
            # never leaves half a picture, and a failed write names the file.
            atomic_save(
                self.run_dir / "samples" / f"epoch_{epoch:04d}.png",
                lambda name: save_grid(
                    name, images, self.rows, self.cols, value_range=value_range, scale=self.scale
                ),
            )
