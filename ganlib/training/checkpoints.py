"""Checkpoints that survive a killed process, and resuming from them (chapter 5)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np

from ganlib.common import atomic_write, write_error
from ganlib.training.callbacks import first_nonfinite_step, gan_metrics_finite

_CHECKPOINT_GLOB = "ckpt-*.npz"
_FORMAT = 1


def _state_groups(gan):
    """Every variable a resume needs, in named groups of fixed order."""
    gan.build_optimizers()
    groups = {
        "generator": gan.generator.variables,
        "discriminator": gan.discriminator.variables,
    }
    if gan.ema_generator is not None:
        groups["ema_generator"] = gan.ema_generator.variables
    if gan.augmenter is not None:
        groups["augmenter"] = gan.augmenter.variables
    # A loss-scaling wrapper's own scale is left out, so a run can move between a GPU
    # (mixed float16) and a CPU or TPU and back.
    groups["d_optimizer"] = _inner(gan.d_optimizer).variables
    groups["g_optimizer"] = _inner(gan.g_optimizer).variables
    groups["gan"] = [gan.noise_seed, gan.global_step]
    return groups


def _metric_state(gan):
    """{metric name: [its variables' values]} of the GAN's logged means (totals and counts)."""
    return {
        metric.name: [float(keras.ops.convert_to_numpy(v)) for v in metric.variables]
        for metric in gan.metrics
    }


def _restore_metric_state(gan, saved):
    """Put saved metric variables back (see `_metric_state`); False when they do not fit."""
    metrics = {metric.name: metric for metric in gan.metrics}
    if set(saved) != set(metrics) or any(
        len(values) != len(metrics[name].variables) for name, values in saved.items()
    ):
        return False
    for name, values in saved.items():
        for variable, value in zip(metrics[name].variables, values, strict=True):
            variable.assign(value)
    return True


def _inner(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def list_checkpoints(directory):
    """Checkpoint files (ckpt-STEP.npz paths) in `directory`, oldest first (chapter 5)."""
    directory = Path(directory)
    return sorted(directory.glob(_CHECKPOINT_GLOB)) if directory.is_dir() else []


def save_checkpoint(gan, directory, epoch, step_in_epoch=0, keep=3, steps_per_epoch=None):
    """Write the GAN's training state to directory/ckpt-STEP.npz atomically (chapter 5).

    Keeps the newest `keep` checkpoints.

    epoch: epochs finished; step_in_epoch: steps done in the unfinished one. The file is
    written under a temporary name, flushed to disk and renamed, so a process killed at
    any moment leaves either the old set of checkpoints or the new one, never half a file.
    steps_per_epoch: the epoch length, recorded so a resume can check it. Returns the path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    groups = _state_groups(gan)
    arrays, layout = {}, {}
    for group, variables in groups.items():
        layout[group] = []
        for i, variable in enumerate(variables):
            value = np.asarray(keras.ops.convert_to_numpy(variable))
            arrays[f"{group}:{i:04d}"] = value
            layout[group].append([variable.path, list(value.shape), str(value.dtype)])
    step = int(keras.ops.convert_to_numpy(gan.global_step))
    meta = {
        "format": _FORMAT,
        "epoch": int(epoch),
        "step_in_epoch": int(step_in_epoch),
        "step": step,
        "steps_per_epoch": None if steps_per_epoch is None else int(steps_per_epoch),
        "saved": datetime.datetime.now().isoformat(timespec="seconds"),
        "layout": layout,
    }
    if step_in_epoch:
        # The logged means of the unfinished epoch so far, so that a resumed run's row
        # of this epoch in history.csv covers all of its steps, not only the later ones.
        meta["epoch_metrics"] = _metric_state(gan)
    arrays["__meta__"] = np.array(json.dumps(meta))
    path = directory / f"ckpt-{step:09d}.npz"
    with atomic_write(path) as file:
        np.savez(file, **arrays)
    for old in list_checkpoints(directory)[: -max(1, int(keep))]:
        try:
            old.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            raise write_error(old, error) from error
    return path


def remove_stale_temporaries(directory):
    """Delete half-written checkpoint files left by processes that no longer run (chapter 5)."""
    for temporary in Path(directory).glob(".ckpt-*.tmp"):
        try:
            pid = int(temporary.suffixes[-3].lstrip("."))  # .ckpt-STEP.npz.PID.RANDOM.tmp
            os.kill(pid, 0)  # raises if no such process
            if pid != os.getpid():
                continue  # another live process is writing it
        except ProcessLookupError:
            pass
        except (ValueError, IndexError, PermissionError):
            continue
        with contextlib.suppress(OSError):  # a leftover that cannot go stays; it harms nothing
            temporary.unlink()


def _read_checkpoint(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}  # reads (and CRC-checks) everything
    meta = json.loads(str(arrays.pop("__meta__")))
    if meta.get("format") != _FORMAT:
        raise ValueError(f"unknown checkpoint format {meta.get('format')!r}")
    return meta, arrays


def latest_checkpoint(directory):
    """(path, meta, arrays) of the newest fully readable checkpoint in `directory` (chapter 5).

    None when there is none.

    A damaged or half-written file (a process killed while writing, a full disk) is
    skipped with a warning and the one before it is used.
    """
    for path in reversed(list_checkpoints(directory)):
        try:
            meta, arrays = _read_checkpoint(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            print(f"ganlib: skipping unreadable checkpoint {path}: {error}")
            continue
        return path, meta, arrays
    return None


def load_checkpoint(gan, directory):
    """Restore the newest readable checkpoint in `directory` into `gan` (chapter 5).

    Returns its counters {"epoch", "step_in_epoch", "step", "steps_per_epoch", "path", ...}
    (steps_per_epoch None in checkpoints that did not record it) or None when
    there is none. Raises ValueError when it was made by a differently shaped GAN.
    Learning rates are not restored: the ones the GAN was compiled with apply.
    """
    found = latest_checkpoint(directory)
    if found is None:
        return None
    path, meta, arrays = found
    groups = _state_groups(gan)
    extra = sorted(set(meta["layout"]) - set(groups))
    if extra:
        raise ValueError(
            f"checkpoint {path} does not fit this GAN: it also holds {', '.join(extra)}; "
            f"resume with the settings it was made with or use a new run folder"
        )
    assignments = []
    for group, variables in groups.items():
        saved = meta["layout"].get(group)
        if saved is None or len(saved) != len(variables):
            raise ValueError(
                f"checkpoint {path} does not fit this GAN: it has "
                f"{'no' if saved is None else len(saved)} {group} variables, the GAN has "
                f"{len(variables)}; resume with the settings it was made with or use a new run folder"
            )
        for i, variable in enumerate(variables):
            value = arrays[f"{group}:{i:04d}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"checkpoint {path} does not fit this GAN: {group} variable {variable.path} "
                    f"has shape {tuple(variable.shape)}, the checkpoint {tuple(value.shape)}"
                )
            if not variable.path.endswith("learning_rate"):
                assignments.append((variable, value))
    for variable, value in assignments:
        variable.assign(value)
    gan.nonfinite_step.assign(-1)  # a checkpoint is only ever written before a bad step
    # Keras zeroes the logged means when an epoch starts; the Checkpoints callback puts
    # the unfinished epoch's back then (checkpoints before ganlib recorded them have none).
    pending = None
    if meta.get("step_in_epoch") and meta.get("epoch_metrics"):
        pending = (int(meta["step"]), int(meta["step_in_epoch"]), meta["epoch_metrics"])
    object.__setattr__(gan, "_resumed_epoch_metrics", pending)
    return {
        **{k: v for k, v in meta.items() if k not in ("layout", "epoch_metrics")},
        "path": str(path),
    }


class Checkpoints(keras.callbacks.Callback):
    """Save the training state into `directory` each epoch, every `every_steps` steps (chapter 5).

    keep: how many checkpoints to keep. Nothing is written once a loss is NaN or infinite.
    `GAN.fit(..., resume=True)` restores from the same folder; in the rest of an
    interrupted epoch this callback also restores that epoch's logged means, so its
    history row covers all its steps. every_steps must be a multiple of the model's
    steps_per_execution (Keras calls back only between calls): otherwise training
    stops with a ValueError before the first step, rather than checkpoint less often.
    """

    def __init__(self, directory, every_steps=None, keep=3):
        super().__init__()
        if every_steps is not None and every_steps < 1:
            raise ValueError(
                f"every_steps must be a positive number of steps or None, got {every_steps}"
            )
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.every_steps = every_steps
        self.keep = int(keep)
        self.last_path = None
        # Saving between steps needs the steps to wait; epoch-end saves do not.
        self.async_safe = every_steps is None

    def _steps_per_epoch(self):
        steps = self.params.get("steps") if self.params else None
        return None if steps is None else steps + getattr(self.model, "_step_offset", 0)

    def on_train_begin(self, logs=None):
        self._last_step = int(keras.ops.convert_to_numpy(self.model.global_step))
        per_call = int(getattr(self.model, "steps_per_execution", 1) or 1)
        if self.every_steps and (self.every_steps % per_call or self._last_step % per_call):
            raise ValueError(
                f"cannot checkpoint every {self.every_steps} steps while the model runs "
                f"{per_call} steps per call (steps_per_execution) from step {self._last_step}: "
                f"Keras stops only between calls. Checkpoint every multiple of {per_call} "
                f"steps, or compile with a steps_per_execution that divides {self.every_steps}"
            )
        remove_stale_temporaries(self.directory)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        pending = getattr(self.model, "_resumed_epoch_metrics", None)
        if pending is None:
            return
        object.__setattr__(self.model, "_resumed_epoch_metrics", None)
        step, done, saved = pending
        now = int(keras.ops.convert_to_numpy(self.model.global_step))
        if now == step and getattr(self.model, "_step_offset", 0) == done:
            if not _restore_metric_state(self.model, saved):
                print(
                    f"ganlib: the logged means of the resumed epoch {epoch} do not fit this "
                    f"GAN's; its history row covers only the steps after step {done}",
                    file=sys.stderr,
                )

    def on_train_batch_end(self, batch, logs=None):
        if (
            not self.every_steps
            or not gan_metrics_finite(logs)
            or first_nonfinite_step(self.model) is not None
        ):
            return
        step = int(keras.ops.convert_to_numpy(self.model.global_step))
        crossed = step // self.every_steps > self._last_step // self.every_steps
        self._last_step = step  # (with steps_per_execution > 1 the count jumps)
        done = getattr(self.model, "_step_offset", 0) + batch + 1
        if crossed and done != self._steps_per_epoch():
            self.last_path = save_checkpoint(
                self.model, self.directory, self._epoch, done, self.keep, self._steps_per_epoch()
            )

    def on_epoch_end(self, epoch, logs=None):
        if gan_metrics_finite(logs) and first_nonfinite_step(self.model) is None:
            self.last_path = save_checkpoint(
                self.model, self.directory, epoch + 1, 0, self.keep, self._steps_per_epoch()
            )
