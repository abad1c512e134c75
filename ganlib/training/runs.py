"""Run folders: `train()` and `load_run()` (chapter 5).

`train()` (and `python -m ganlib train`) ties a dataset, a preset and a run folder
together: sample grids every epoch, checkpoints that survive a killed process,
`history.csv`, and resuming where the last run stopped. The GAN itself is `GAN`
(gan.py), a `keras.Model` whose `train_step` updates both networks.

A run folder holds::

    RUN/run.json              what was trained (model, size, width, latent size, model
                              options, loss and its penalties) and the settings that fix
                              the data order (data, seed, batch size, steps per epoch):
                              a resume must use the same ones
    RUN/history.csv           one row per finished epoch, `epoch` counted from 0
    RUN/samples/epoch_XXXX.png  a fixed-noise grid per epoch
    RUN/checkpoints/ckpt-STEP.npz  the last `keep` checkpoints (weights, optimizer states, counters)
    RUN/training.lock         while a process trains: its pid, host and start (see `lock_run`)
    RUN/set-aside/TIME-WHY/   files a run had to move out of the way, never deleted: the
                              earlier run's files after `restart=True` (--restart), or
                              checkpoints none of which could be read

These are the run's own files: `export` and `sample` never write them. Everything
`train` is given is checked (and the models are built) before run.json is written, so
a mistake in a command leaves the folder as it was and the corrected command works.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import math
import numbers
import os
import socket
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganlib import models as _models
from ganlib.common import (
    IMAGE_SIZES,
    WriteError,
    atomic_write,
    check_image_size,
    check_int,
    check_writable,
    write_error,
)
from ganlib.training.callbacks import HistoryCSV, SampleGrid, StopOnNonFinite
from ganlib.training.checkpoints import Checkpoints, list_checkpoints, load_checkpoint
from ganlib.training.devices import (
    _accelerator,
    _dtype_policy,
    fit_across_workers,
    mixed_precision_policy,
    strategy,
    use_xla,
    worker_run_dir,
)
from ganlib.training.gan import GAN, check_loss_options, check_update_scheme
from ganlib.training.presets import PRESETS

RUN_KEYS = (
    "model",
    "image_size",
    "width",
    "latent_dim",
    "ema",
    "ada",
    "spectral_norm",
    "minibatch_std",
    "model_options",
    "loss",
    "gp_weight",
    "r1_gamma",
    "label_smoothing",
    "update_scheme",
)
# What a run.json written before a key was recorded (or was compared) stands for: the
# default then in force. train() records label_smoothing as given (None: the preset's).
RUN_KEY_DEFAULTS = {
    "spectral_norm": False,
    "minibatch_std": False,
    "model_options": {},
    "loss": "bce",
    "gp_weight": 10.0,
    "r1_gamma": 0.0,
    "label_smoothing": None,
    "update_scheme": "ganlib",
}
# train() keywords of their own, so never among its model_options.
_OWN_MODEL_KEYWORDS = ("spectral_norm", "minibatch_std")

LOCK_FILE = "training.lock"
SET_ASIDE = "set-aside"
# What a run folder owns: `export` and `sample` refuse to write any of these.
RUN_FILES = ("run.json", "history.csv", LOCK_FILE)
RUN_FOLDERS = ("checkpoints", "samples", SET_ASIDE)
# The largest GAN (generator and discriminator parameters together) `train` builds: a
# width far above 1 makes models of gigabytes that take minutes per step on a CPU.
MAX_PARAMETERS = 50_000_000
# The keys load_run needs from run.json.
_REQUIRED_KEYS = ("model", "image_size", "width", "latent_dim")


class RunInUseError(OSError):
    """Another live process is training in the run folder; names the holder (`lock_run`, chapter 5)."""

    def __str__(self):
        return str(self.args[0]) if self.args else super().__str__()


def _restart_hint(run):
    return (
        f"or start over in this folder with --restart (train(..., restart=True)), which "
        f"moves the earlier files to {Path(run) / SET_ASIDE}/ first"
    )


def read_run_info(run_dir):
    """The settings a run folder was made with: RUN/run.json as a dict (chapter 5).

    FileNotFoundError when there is no run.json; ValueError naming the file when it
    cannot be read or is not a run record (a damaged or hand-edited file).
    """
    run = Path(run_dir)
    info = run / "run.json"
    if not info.is_file():
        raise FileNotFoundError(
            f"{run} is not a run folder (no run.json); train one with "
            f"python -m ganlib train ... --run {run}"
        )
    try:
        config = json.loads(info.read_text())
    except (OSError, ValueError) as error:  # ValueError: bad JSON, or bytes that are no text
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(
            f"{info} cannot be read ({reason}); restore it from a copy, train into "
            f"another --run, {_restart_hint(run)}"
        ) from None
    missing = [key for key in _REQUIRED_KEYS if not isinstance(config, dict) or key not in config]
    if missing:
        raise ValueError(
            f"{info} is not a ganlib run record (it lacks {', '.join(missing)}); restore it "
            f"from a copy, train into another --run, {_restart_hint(run)}"
        )
    return config


def _holder_of(text):
    """The holder record of a lock file's text, or None for an empty or foreign file."""
    try:
        holder = json.loads(text)
    except ValueError:
        return None
    return holder if isinstance(holder, dict) and "pid" in holder else None


def _describe_holder(holder):
    if holder is None:
        return "another process"
    return (
        f"process {holder.get('pid')} on host {holder.get('host')} "
        f"(started {holder.get('started')}: {holder.get('command')})"
    )


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # it exists but is someone else's, or we cannot tell: assume it runs
    return True


def _read_fd(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _in_use(run, holder, *, certain):
    said = (
        f"run folder {run} is in use: {_describe_holder(holder)} is training in it. Wait for "
        f"it to finish (or stop it), or train into another --run"
    )
    if not certain:
        said += f"; if that process no longer runs, delete {Path(run) / LOCK_FILE}"
    error = RunInUseError(said)
    error.errno = errno.EBUSY
    return error


def _try_flock(fd):
    """True when this process now holds fd's lock; None when the file system has no locks."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EOPNOTSUPP, ...: e.g. a FUSE mount without locks
    return True


@contextlib.contextmanager
def lock_run(run_dir):
    """Hold RUN/training.lock while the block runs: one training process per run folder (chapter 5).

    The lock is the operating system's (flock), which it drops when the holding process
    ends in any way, kill -9 included; the file records the holder's pid, host, start
    and command. A second process gets RunInUseError (an OSError) naming the holder. A
    file left by a process that no longer runs is a stale lock: it is taken over with a
    line on stderr. On a file system without locks the recorded pid decides (a live
    process on this host, or any process on another host, holds the folder). The file
    is removed when the block ends.
    """
    run = Path(run_dir)
    path = run / LOCK_FILE
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:300] or "python",
    }
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise write_error(path, error) from error
        try:
            locked = _try_flock(fd)
            previous = _holder_of(_read_fd(fd))
            if locked is False:
                raise _in_use(run, previous, certain=True)
            if locked and not _same_file(fd, path):
                os.close(fd)  # its holder removed it while we waited: lock the new one
                continue
            if locked is None and previous is not None and previous.get("pid") != me["pid"]:
                here = previous.get("host") == me["host"]
                if not here or _alive(previous.get("pid")):
                    raise _in_use(run, previous, certain=False)
            if previous is not None and previous.get("pid") != me["pid"]:
                print(
                    f"ganlib: taking over the stale lock of run folder {run}: "
                    f"{_describe_holder(previous)} no longer runs",
                    file=sys.stderr,
                )
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(me) + "\n").encode())
            os.fsync(fd)
        except OSError as error:
            os.close(fd)
            if isinstance(error, RunInUseError):
                raise
            raise write_error(path, error) from error
        except BaseException:
            os.close(fd)
            raise
        break
    try:
        yield me
    finally:
        try:
            if _same_file(fd, path):
                path.unlink()
        except OSError:
            pass
        os.close(fd)  # and with it the lock


def _same_file(fd, path):
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _set_aside(run, names, why):
    """Move those of RUN/names that exist into RUN/set-aside/TIME-why/; that folder, or None."""
    present = [run / name for name in names if (run / name).exists()]
    if not present:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = run / SET_ASIDE / f"{stamp}-{why}"
    number = 1
    while target.exists():
        number += 1
        target = run / SET_ASIDE / f"{stamp}-{why}-{number}"
    try:
        target.mkdir(parents=True)
        for path in present:
            os.replace(path, target / path.name)  # within one folder: a rename, nothing copied
    except OSError as error:
        raise write_error(target, error) from error
    return target


def _unrecorded_files(run):
    """What a run folder without run.json holds of a run: checkpoints, history, grids."""
    found = []
    if list_checkpoints(run / "checkpoints"):
        found.append(f"checkpoints ({run / 'checkpoints'})")
    if (run / "history.csv").exists():
        found.append(f"a history ({run / 'history.csv'})")
    if (run / "samples").is_dir() and any((run / "samples").iterdir()):
        found.append(f"sample grids ({run / 'samples'})")
    return found


def _load_data(data, image_size):
    """(uint8 images (n, s, s, 3), description) from a SOURCE string or a uint8 array."""
    from ganlib.data import load_source

    if isinstance(data, (str, os.PathLike)):
        return load_source(str(data), image_size)
    images = np.asarray(data)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"data must be a SOURCE string or uint8 RGB images (n, h, w, 3), got {images.dtype} {images.shape}"
        )
    if images.shape[1:3] != (image_size, image_size):
        raise ValueError(
            f"the images are {images.shape[1]}x{images.shape[2]} but image_size is {image_size}; "
            f"resize them (ganlib.data.resize_images) or pass image_size={images.shape[1]}"
        )
    return images, f"array of {len(images)} images"


def _describe(config):
    parts = [
        f"model {config.get('model')!r}",
        f"{config.get('image_size')} px",
        f"width {config.get('width')}",
    ]
    parts.append(f"latent_dim {config.get('latent_dim')}")
    if config.get("ema"):
        parts.append(f"ema {config['ema']}")
    if config.get("ada"):
        parts.append("ada")
    if config.get("spectral_norm"):
        parts.append("spectral norm")
    if config.get("minibatch_std"):
        parts.append("minibatch std")
    if config.get("model_options"):
        parts.append(f"model_options {config['model_options']}")
    if config.get("loss", "bce") != "bce":
        parts.append(f"loss {config['loss']!r}")
    if config.get("update_scheme", "ganlib") != "ganlib":
        parts.append(f"update_scheme {config['update_scheme']!r}")
    return ", ".join(parts)


def _model_options(options, family):
    """`train`'s model_options as a JSON-safe dict, checked against `family`'s builders."""
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        raise ValueError(
            f"model_options must be a dict of build_pair options, e.g. "
            f"{{'upsample': 'transposed'}}, got {options!r}"
        )
    own = [key for key in options if key in _OWN_MODEL_KEYWORDS]
    if own:
        raise ValueError(
            f"{own[0]} is train()'s own keyword (--{own[0].replace('_', '-')}); "
            f"pass it as {own[0]}=True, not in model_options"
        )
    _models._split_options(family, options)  # unknown names and bad values: ValueError
    try:
        # run.json holds them: tuples come back as lists, so compare the JSON form.
        return json.loads(json.dumps(options))
    except (TypeError, ValueError):
        raise ValueError(
            f"model_options must hold plain values (str, number, bool, lists) that run.json "
            f"can record, got {options!r}"
        ) from None


def _fingerprint(images):
    """A short hash of the pixels: a run resumed on other images would train on another order."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


# Settings that fix where in the data order a run stands: a resume must use the same ones.
# run.json key: (label, how to set it in `train` and on the command line)
POSITION_KEYS = {
    "batch_size": ("batch size", "batch_size or --batch-size"),
    "steps_per_epoch": ("steps per epoch", "steps_per_epoch or --steps-per-epoch"),
    "seed": ("seed", "seed or --seed"),
    "data_fingerprint": ("data", "data or --data"),
}


def _position_changes(run, saved, record):
    """ValueError listing the position settings that differ from the run's (missing: unknown)."""
    changes = []
    for key, (label, option) in POSITION_KEYS.items():
        old, new = saved.get(key), record[key]
        if old is None or old == new:
            continue  # a run.json written before these were recorded: nothing to compare
        if key == "data_fingerprint":
            old = f"{saved.get('data')} (fingerprint {old})"
            new = f"{record['data']} (fingerprint {new})"
        changes.append(f"{label} (the run has {old}, this call asks for {new}; {option})")
    if changes:
        raise ValueError(
            f"run folder {run} cannot resume with another {'; another '.join(changes)}: it "
            f"would continue at the wrong place in the data order. Resume with the run's "
            f"settings, or start a fresh run in another run folder (another --run)"
        )


def _prepare_run(run, config, details, resume):
    """Create run/run.json, or check that an existing run was made with the same settings.

    Model settings (RUN_KEYS) must match whenever run.json exists; the data position
    settings (POSITION_KEYS) only when there are checkpoints to resume from. A folder
    with checkpoints, a history or grids but no run.json is refused: nothing says which
    settings made them.
    """
    info = run / "run.json"
    record = {**config, **details}
    if info.is_file():
        saved = read_run_info(run)
        changes = []
        for key in RUN_KEYS:
            old = saved.get(key, RUN_KEY_DEFAULTS.get(key))
            new = config.get(key, RUN_KEY_DEFAULTS.get(key))
            if old != new:
                changes.append(f"{key}: the run has {old!r}, this call asks for {new!r}")
        if changes:
            raise ValueError(
                f"run folder {run} was made with {_describe(saved)}, not {_describe(config)} "
                f"({'; '.join(changes)}); use the same settings to resume it or choose "
                f"another run folder ({_restart_hint(run)})"
            )
        if list_checkpoints(run / "checkpoints"):
            if not resume:
                raise ValueError(
                    f"run folder {run} already has checkpoints; resume it or choose another "
                    f"run folder ({_restart_hint(run)})"
                )
            _position_changes(run, saved, record)
            return saved  # an older run.json stays as it is: what it lacks stays unknown
    else:
        found = _unrecorded_files(run)
        if found:
            raise ValueError(
                f"run folder {run} holds {', '.join(found)} but no run.json saying which "
                f"settings made them, so it cannot be resumed safely: restore its run.json, "
                f"train into another --run, {_restart_hint(run)}"
            )
    with atomic_write(info, "w") as file:
        file.write(json.dumps(record, indent=2) + "\n")
    return record


def _kid_monitor(images, data, image_size, every, seed):
    """KIDMonitor against up to 2,000 real images: domain features for toy faces, Inception otherwise."""
    from ganlib import metrics

    toy = isinstance(data, str) and data.strip().startswith("toy-faces")
    extractor = (
        metrics.DomainFeatures(image_size=image_size) if toy else metrics.InceptionFeatures()
    )
    rng = np.random.default_rng(seed)
    real = images[np.sort(rng.choice(len(images), min(len(images), 2000), replace=False))]
    return metrics.KIDMonitor(real, extractor, every=every, n_samples=1000, coverage=toy, seed=seed)


def _columns(rows):
    keys = [key for row in rows for key in row]
    return {key: [row.get(key, float("nan")) for row in rows] for key in dict.fromkeys(keys)}


def _stream(images, batch_size, value_range, seed, position):
    """A run's endless batch stream (same seed, same order) from batch `position` on."""
    from ganlib.data import image_dataset

    return image_dataset(
        images, batch_size, value_range, shuffle=True, seed=seed, repeat=True, skip_batches=position
    )


def _check_settings(model, image_size, epochs, batch_size, steps_per_epoch, kid_every, ema, width):
    """`train`'s checked arguments: preset, image_size, epochs, batch_size, steps, ..."""
    if model not in PRESETS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(PRESETS)}")
    image_size = check_image_size(image_size, IMAGE_SIZES)
    preset = PRESETS[model]
    epochs = check_int(epochs, "epochs", 1)
    batch_size = check_int(
        preset["batch_size"] if batch_size is None else batch_size, "batch size", 2
    )
    if steps_per_epoch is not None:
        steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", 1)
    kid_every = check_int(kid_every, "kid_every", 0)
    if ema is not None and not 0.0 < ema < 1.0:
        raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.99, got {ema!r}")
    if not _positive_finite(width):
        raise ValueError(
            f"width must be a positive finite number (1.0 is the published model), got {width!r}"
        )
    return preset, image_size, epochs, batch_size, steps_per_epoch, kid_every, float(width)


def _positive_finite(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _check_learning_rate(learning_rate):
    if learning_rate is None:
        return None
    if not _positive_finite(learning_rate):
        raise ValueError(
            f"learning_rate must be a positive finite number (e.g. 2e-4), got {learning_rate!r}"
        )
    return float(learning_rate)


def _check_schedule(checkpoint_every, keep, grid, steps_per_execution):
    """(checkpoint_every, keep, grid, steps_per_execution) of `train`, checked."""
    if checkpoint_every is not None:
        checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
    keep = check_int(keep, "keep", 1)
    try:
        rows, cols = grid
    except (TypeError, ValueError):
        rows = cols = None
    if not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in (rows, cols)
    ):
        raise ValueError(f"grid must be (rows, cols) of whole numbers >= 1, got {grid!r}")
    if steps_per_execution != "auto":
        steps_per_execution = check_int(steps_per_execution, "steps_per_execution", 1)
        if checkpoint_every and checkpoint_every % steps_per_execution:
            raise ValueError(
                f"checkpoint_every {checkpoint_every} is not a multiple of steps_per_execution "
                f"{steps_per_execution}: Keras stops only between calls, so it could not "
                f"checkpoint every {checkpoint_every} steps. Choose a checkpoint_every that "
                f"{steps_per_execution} divides, or leave steps_per_execution at 'auto'"
            )
    return checkpoint_every, keep, (int(rows), int(cols)), steps_per_execution


def _build_options(spectral_norm, minibatch_std, model_options):
    """build_pair's keywords: the discriminator's options when on, and model_options."""
    on = {"spectral_norm": spectral_norm, "minibatch_std": minibatch_std}
    return {**{key: True for key, value in on.items() if value}, **model_options}


def _check_parameters(family, image_size, width, latent_dim, options):
    """ValueError when `width` makes the pair larger than MAX_PARAMETERS (widths above 1 only).

    The count is estimated from the pairs at width 1 and 2, which are quick to build:
    filter counts scale with the width, so a layer's parameters grow at most with its
    square, a w^2 + b w.
    """
    if width <= 1.0:
        return
    counts = []
    for scale in (1.0, 2.0):
        generator, discriminator = _models.build_pair(
            family, image_size, latent_dim=latent_dim, width=scale, **options
        )
        counts.append(generator.count_params() + discriminator.count_params())
    a = max((counts[1] - 2 * counts[0]) / 2.0, 0.0)
    b = counts[0] - a
    estimate = a * width * width + b * width
    if estimate <= MAX_PARAMETERS:
        return
    limit = (
        (-b + math.sqrt(b * b + 4.0 * a * MAX_PARAMETERS)) / (2.0 * a)
        if a > 0
        else MAX_PARAMETERS / b
    )
    raise ValueError(
        f"width {width:g} makes a generator and discriminator of about "
        f"{estimate / 1e6:,.0f} million parameters (width 1.0, the published model, has "
        f"{counts[0] / 1e6:.1f} million): more than the {MAX_PARAMETERS / 1e6:,.0f} million "
        f"ganlib trains, which would take gigabytes and minutes per step. Choose a width "
        f"up to {math.floor(limit * 10) / 10:g}"
    )


def _steps_per_execution(chosen, steps, done, checkpoint_every, replicas):
    """`train`'s steps per call: as given, or the largest up to 8 that keeps epochs and checkpoints exact.

    "auto" divides the epoch length, the steps already done in it and checkpoint_every,
    so that no call runs past an epoch's end or a checkpoint's step.
    """
    if chosen != "auto":
        return chosen
    if replicas > 1:
        return 1  # one step per call on several replicas: see GAN._use_steps_per_execution
    done = done if done < steps else 0
    return max(
        k
        for k in range(1, 9)
        if steps % k == 0 and done % k == 0 and (checkpoint_every or k) % k == 0
    )


def _ada_options(ada, ada_target, ada_integration_steps):
    """Keyword arguments of AdaptiveAugmenter beyond its defaults (chapter 7)."""
    given = {"ada_target": ada_target, "ada_integration_steps": ada_integration_steps}
    given = [name for name, value in given.items() if value is not None]
    if given and not ada:
        raise ValueError(
            f"{' and '.join(given)} only apply with ada=True (--ada); "
            f"turn adaptive augmentation on or leave them out"
        )
    options = {"target_accuracy": ada_target, "integration_steps": ada_integration_steps}
    options = {key: value for key, value in options.items() if value is not None}
    return options


def _devices(distribute, batch_size, mixed_precision, xla):
    """(dtype policy name, jit_compile, strategy) for this machine and the requested modes."""
    distribute = distribute or strategy()
    replicas = distribute.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch size {batch_size} does not split evenly over {replicas} replicas")
    accelerator = _accelerator()
    policy = mixed_precision_policy(mixed_precision, accelerator)
    return policy, use_xla(xla, accelerator), distribute


def _build_gan(
    model, image_size, *, width, latent_dim, learning_rate, ema, ada, seed, devices, build, **cures
):
    """The compiled GAN under the run's dtype policy and strategy, seeded with `seed`.

    cures: loss, gp_weight, r1_gamma, label_smoothing, update_scheme (for `GAN.compile`);
    build: `build_pair`'s keywords (`_build_options`).
    """
    policy, jit_compile, distribute = devices
    keras.utils.set_random_seed(seed)
    with _dtype_policy(policy), distribute.scope():
        augmenter = None
        if ada is not None:
            from ganlib.augment import AdaptiveAugmenter

            augmenter = AdaptiveAugmenter(seed=seed, **ada)
        return GAN.from_preset(
            model,
            image_size,
            width=width,
            latent_dim=latent_dim,
            learning_rate=learning_rate,
            ema=ema,
            augmenter=augmenter,
            seed=seed,
            jit_compile=jit_compile,
            **cures,
            **build,
        )


def _own_callbacks(run, images, data, *, image_size, seed, kid_every, grid, checkpoint_every, keep):
    """(the run's own callbacks, its HistoryCSV): KID, sample grid, history, checkpoints."""
    history = HistoryCSV(None if run is None else run / "history.csv")
    own = [SampleGrid(run, *grid, seed=seed, scale=2 if image_size <= 32 else 1)]
    if kid_every:
        own.insert(0, _kid_monitor(images, data, image_size, kid_every, seed))
    own.append(history)
    if run is not None:
        own.append(Checkpoints(run / "checkpoints", every_steps=checkpoint_every, keep=keep))
    return own, history


def _resume(gan, run, steps, write):
    """(epochs done, steps done in the next epoch) from the run's newest checkpoint, or (0, 0).

    When the folder has checkpoints but none can be read, the run starts over: it says
    so on stderr, and on the chief (write is run) the unreadable checkpoints, the
    history and the grids are first moved to RUN/set-aside/.
    """
    state = load_checkpoint(gan, run / "checkpoints") if run is not None else None
    if state is None:
        unreadable = list_checkpoints(run / "checkpoints") if run is not None else []
        if unreadable:
            kept = None
            if write == run:
                kept = _set_aside(run, ("checkpoints", "history.csv", "samples"), "unreadable")
            where = f"; they are kept in {kept}" if kept else ""
            print(
                f"ganlib: none of the {len(unreadable)} checkpoints in {run / 'checkpoints'} "
                f"could be read{where}; training starts over from epoch 0",
                file=sys.stderr,
            )
        return 0, 0
    saved_steps = state.get("steps_per_epoch")
    if saved_steps is not None and saved_steps != steps:
        # Runs whose run.json predates steps_per_epoch: the checkpoint recorded it.
        raise ValueError(
            f"run folder {run} cannot resume with another steps per epoch (the run has "
            f"{saved_steps}, this call asks for {steps}; steps_per_epoch or --steps-per-epoch): "
            f"it would continue at the wrong place in the data order. Resume with the run's "
            f"settings, or start a fresh run in another run folder (another --run)"
        )
    return state["epoch"], state["step_in_epoch"]


def _fit(gan, stream, *, epoch, done, epochs, steps, callbacks, verbose):
    """Train from (epoch, done steps in it) up to `epochs`: first the unfinished epoch's rest."""
    fit_options = {"verbose": verbose, "shuffle": False}
    if done and epoch < epochs and done < steps:
        gan._fit_part(
            stream(epoch * steps + done),
            None,
            callbacks,
            dict(fit_options, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps - done),
            done,
        )
        epoch += 1
    elif done:  # more steps done than this epoch length allows: go on with the next epoch
        epoch += 1
    if epoch < epochs:
        gan.fit(
            stream(epoch * steps),
            epochs=epochs,
            initial_epoch=epoch,
            steps_per_epoch=steps,
            callbacks=callbacks,
            **fit_options,
        )


def train(
    data,
    *,
    model="improved",
    image_size=64,
    epochs=10,
    batch_size=None,
    run_dir=None,
    steps_per_epoch=None,
    seed=0,
    width=1.0,
    learning_rate=None,
    mixed_precision="auto",
    xla="auto",
    ema=None,
    ada=False,
    ada_target=None,
    ada_integration_steps=None,
    kid_every=0,
    callbacks=(),
    resume=True,
    verbose="auto",
    latent_dim=None,
    checkpoint_every=None,
    keep=3,
    grid=(5, 5),
    distribute=None,
    steps_per_execution="auto",
    loss="bce",
    gp_weight=10.0,
    r1_gamma=0.0,
    spectral_norm=False,
    minibatch_std=False,
    label_smoothing=None,
    model_options=None,
    update_scheme="ganlib",
    restart=False,
):
    """Train PRESETS[model] on `data` and return (gan, history) (chapter 5).

    data: a SOURCE string for ganlib.data.load_source ("toy-faces:2000", "cifar10:cat",
    "anime-faces", a folder) or uint8 images (n, image_size, image_size, 3).
    epochs: the total; with run_dir and resume=True a run continues from its newest
    checkpoint and stops at the same epoch as an uninterrupted one (a run that already
    has `epochs` says so and trains nothing). batch_size: global real images per update
    (default the preset's), split across replicas. steps_per_epoch: default
    len(images) // batch_size. The data order is drawn from `seed`, and a resumed run
    takes up the same order where it stopped; resuming with another batch size, steps
    per epoch, seed or data is a ValueError naming the setting.
    mixed_precision, xla: "auto", "on" or "off" (see mixed_precision_policy, use_xla).
    ema: EMA decay of a generator copy (e.g. 0.99). ada: adaptive augmentation
    (chapter 7); ada_target and ada_integration_steps set the AdaptiveAugmenter's
    target_accuracy and integration_steps (None: its defaults).
    kid_every: KID (and, for toy faces, mode coverage read by the strict decoder, see
    KIDMonitor) every N epochs, 0 for never.
    callbacks run before the run's own history and checkpoint callbacks, so what they
    put into `logs` lands in history.csv. checkpoint_every: also checkpoint every N steps.
    distribute: a tf.distribute strategy (default `strategy()`). Across machines
    (TF_CONFIG, chapter 5) every worker resumes from run_dir's checkpoints, so run_dir
    must be on a file system all workers share; only the chief writes into it.
    steps_per_execution: training steps per call into TensorFlow, "auto" for
    `steps_per_call(...)`.
    The cures of mode collapse (chapter 4): loss ("bce", "hinge" or "wgan-gp"),
    gp_weight (WGAN-GP's penalty weight), r1_gamma (R1 penalty on real images, 0: off)
    and label_smoothing (None: the preset's; "bce" only), as in `GAN.compile`;
    update_scheme: "ganlib" or "notebook" (the anime-face notebook's iteration, chapter 3),
    as in `GAN.compile`;
    spectral_norm and minibatch_std change the discriminator (ganlib.models).
    model_options: a dict for `ganlib.models.build_pair`, e.g. {"output": "sigmoid"} or
    {"upsample": "transposed", "dropout": False} (chapter 3's ablation); an option
    neither builder takes, or a bad value, is a ValueError before anything is written.
    All of these are recorded in run.json, and a run folder resumes only with the values
    it was made with (a run.json from before model_options resumes as {}).

    The run folder (see the module's docstring): every argument is checked and the models
    are built before anything is written, so a bad call leaves the folder as it was.
    While training, the folder is locked (`lock_run`): a second process gets
    RunInUseError naming the first. A folder with checkpoints but no readable run.json
    is refused, since nothing says which settings made them; restart=True (--restart)
    starts over in any run folder, moving the earlier run's files to
    RUN/set-aside/TIME-restart/ first. resume=False refuses a folder that has
    checkpoints instead. When no checkpoint can be read, training starts over from
    epoch 0, says so on stderr and moves the unreadable files to RUN/set-aside/.
    A file that cannot be written (read-only folder, full disk) is a WriteError (an
    OSError) naming it; the folder is checked for writing before the first step.
    After a resume in the middle of an epoch, that epoch's history row covers all of
    its steps (checkpoints written before ganlib recorded the running means: only the
    steps after the resume). Size guards: a width whose models would exceed
    MAX_PARAMETERS, or a learning rate that is not a positive finite number, is a
    ValueError. checkpoint_every is honoured exactly: "auto" steps_per_execution
    divides it, and a given steps_per_execution that does not is a ValueError.

    Seeds Python, NumPy and TensorFlow with `seed` (keras.utils.set_random_seed).
    history: dict of lists, `epoch` plus one list per logged value, all epochs of the
    run (also those of earlier sessions). A NaN or infinite loss raises
    FloatingPointError naming the step; the last good checkpoint stays in place.
    """
    preset, image_size, epochs, batch_size, steps_per_epoch, kid_every, width = _check_settings(
        model, image_size, epochs, batch_size, steps_per_epoch, kid_every, ema, width
    )
    learning_rate = _check_learning_rate(learning_rate)
    checkpoint_every, keep, grid, steps_per_execution = _check_schedule(
        checkpoint_every, keep, grid, steps_per_execution
    )
    ada_options = _ada_options(ada, ada_target, ada_integration_steps)
    # Checked before run.json is written; with another loss the preset's label tricks go.
    check_loss_options(loss, gp_weight, r1_gamma, label_smoothing or 0.0)
    check_update_scheme(update_scheme, loss, r1_gamma, augmented=bool(ada))
    cures = dict(
        loss=loss,
        gp_weight=gp_weight,
        r1_gamma=r1_gamma,
        label_smoothing=label_smoothing,
        update_scheme=update_scheme,
    )
    model_options = _model_options(model_options, preset["model"])
    latent_dim = (
        _models.DEFAULT_LATENT_DIM[preset["model"]] if latent_dim is None else int(latent_dim)
    )
    build = _build_options(bool(spectral_norm), bool(minibatch_std), model_options)
    # First: across machines the strategy must exist before any TensorFlow op runs.
    distribute = distribute or strategy()
    _check_parameters(preset["model"], image_size, width, latent_dim, build)
    images, description = _load_data(data, image_size)
    if len(images) < batch_size:
        raise ValueError(
            f"{len(images)} images are fewer than one batch of {batch_size}; lower the batch size"
        )
    steps = steps_per_epoch or len(images) // batch_size
    if steps_per_execution != "auto" and steps % steps_per_execution:
        raise ValueError(
            f"steps per epoch {steps} is not a multiple of steps_per_execution "
            f"{steps_per_execution}, so Keras would run past each epoch's end; choose "
            f"steps_per_execution='auto' or one that divides {steps}"
        )

    policy, jit_compile, distribute = _devices(distribute, batch_size, mixed_precision, xla)
    # Built before anything is written: a setting no model takes fails here.
    gan = _build_gan(
        model,
        image_size,
        width=width,
        latent_dim=latent_dim,
        learning_rate=learning_rate,
        ema=ema,
        ada=ada_options if ada else None,
        seed=seed,
        devices=(policy, jit_compile, distribute),
        build=build,
        **cures,
    )
    gan.preset.update(
        batch_size=batch_size,
        steps_per_epoch=steps,
        mixed_precision=policy,
        xla=jit_compile,
        replicas=distribute.num_replicas_in_sync,
        data=description,
    )
    run = None if run_dir is None else Path(run_dir)
    write = worker_run_dir(run, distribute)  # where this worker's files go: run on the chief
    record = None
    if run is not None:
        config = {
            "model": model,
            "image_size": int(image_size),
            "width": width,
            "latent_dim": latent_dim,
            "ema": ema,
            "ada": bool(ada),
            "spectral_norm": bool(spectral_norm),
            "minibatch_std": bool(minibatch_std),
            "model_options": model_options,
            **cures,
        }
        details = {
            "family": preset["model"],
            "preset": dict(preset),
            "data": description,
            "data_spec": data if isinstance(data, str) else None,
            "data_fingerprint": _fingerprint(images),
            "seed": seed,
            "batch_size": batch_size,
            "steps_per_epoch": steps,
            "ada_options": ada_options or None,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        }
        record = (config, details)
    session = dict(
        gan=gan,
        images=images,
        data=data,
        run=run,
        write=write,
        record=record,
        resume=resume,
        restart=restart,
        image_size=image_size,
        epochs=epochs,
        batch_size=batch_size,
        steps=steps,
        seed=seed,
        kid_every=kid_every,
        grid=grid,
        checkpoint_every=checkpoint_every,
        keep=keep,
        steps_per_execution=steps_per_execution,
        distribute=distribute,
        callbacks=callbacks,
        verbose=verbose,
    )
    if write is None:
        return _train_session(**session)
    check_writable(write)  # a path that names a file, a read-only folder: before anything else
    with lock_run(write):
        return _train_session(**session)


def _train_session(
    *,
    gan,
    images,
    data,
    run,
    write,
    record,
    resume,
    restart,
    image_size,
    epochs,
    batch_size,
    steps,
    seed,
    kid_every,
    grid,
    checkpoint_every,
    keep,
    steps_per_execution,
    distribute,
    callbacks,
    verbose,
):
    """`train` once everything is checked and built (and, with a run folder, locked)."""
    if write is not None:
        if restart and write == run:
            kept = _set_aside(run, ("run.json", "history.csv", "samples", "checkpoints"), "restart")
            if kept is not None:
                print(
                    f"ganlib: starting over in {run}; the earlier run's files are kept in {kept}",
                    file=sys.stderr,
                )
        _prepare_run(write, *record, resume)
        for folder in ("checkpoints", "samples"):
            check_writable(write / folder)  # before the first step, not after an epoch
    epoch, done = _resume(gan, run, steps, write) if resume else (0, 0)
    own, history_callback = _own_callbacks(
        write,
        images,
        data,
        image_size=image_size,
        seed=seed,
        kid_every=kid_every,
        grid=grid,
        checkpoint_every=checkpoint_every,
        keep=keep,
    )
    gan.sample_grid = next(c for c in own if isinstance(c, SampleGrid))
    if epoch >= epochs:
        if verbose != 0:
            print(
                f"run {run} already has {epoch} epoch{'s' * (epoch != 1)}; nothing to train "
                f"(ask for more epochs to continue)"
            )
        return gan, _columns(history_callback.rows)
    gan.steps_per_execution = _steps_per_execution(
        steps_per_execution, steps, done, checkpoint_every, distribute.num_replicas_in_sync
    )
    gan._auto_steps_per_execution = False  # chosen here, for the resumed part too
    fit_across_workers(gan, distribute)
    try:
        _fit(
            gan,
            lambda position: _stream(images, batch_size, gan.value_range, seed, position),
            epoch=epoch,
            done=done,
            epochs=epochs,
            steps=steps,
            callbacks=[StopOnNonFinite(), *callbacks, *own],
            verbose=verbose,
        )
    except FloatingPointError as error:
        last = list_checkpoints(run / "checkpoints")[-1:] if run is not None else []
        where = f" The last good checkpoint is {last[0]}." if last else " There is no checkpoint."
        raise FloatingPointError(f"{error}{where}") from None
    except WriteError as error:
        last = list_checkpoints(run / "checkpoints")[-1:] if run is not None else []
        then = f"resumes from {last[0]}" if last else "starts again (no checkpoint was written)"
        failed = WriteError(f"{error}; the same command then {then}")
        failed.errno, failed.strerror, failed.filename = error.errno, error.strerror, error.filename
        raise failed from error
    return gan, _columns(history_callback.rows)


def load_run(run_dir):
    """The GAN of a run folder with its newest checkpoint loaded, e.g. to draw samples (chapter 5).

    Built from RUN/run.json (model_options included) with this machine's default dtype
    policy; `gan.checkpoint`
    holds the checkpoint's counters (epoch, step, path). FileNotFoundError when the
    folder has no run.json or no checkpoint yet; ValueError naming run.json when it
    cannot be read.
    """
    run = Path(run_dir)
    config = read_run_info(run)
    augmenter = None
    if config.get("ada"):
        from ganlib.augment import AdaptiveAugmenter

        augmenter = AdaptiveAugmenter(**(config.get("ada_options") or {}))
    gan = GAN.from_preset(
        config["model"],
        config["image_size"],
        width=config["width"],
        latent_dim=config["latent_dim"],
        ema=config.get("ema"),
        augmenter=augmenter,
        jit_compile=False,
        **{key: config[key] for key in ("spectral_norm", "minibatch_std") if config.get(key)},
        **{
            key: config[key]
            for key in ("loss", "gp_weight", "r1_gamma", "update_scheme")
            if key in config
        },
        **(config.get("model_options") or {}),
    )
    state = load_checkpoint(gan, run / "checkpoints")
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {run / 'checkpoints'} yet; train the run first")
    object.__setattr__(gan, "checkpoint", state)
    return gan


def run_files(run_dir, path):
    """The run's own file or folder (RUN_FILES, RUN_FOLDERS) that `path` is or lies in, or None."""
    run = Path(run_dir).expanduser().resolve()
    path = Path(path).expanduser().resolve()
    for name in RUN_FILES:
        if path == run / name:
            return run / name
    for name in RUN_FOLDERS:
        if path == run / name or path.is_relative_to(run / name):
            return run / name
    return None
