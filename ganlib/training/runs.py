"""Run folders: `train()` and `load_run()` (chapter 5).

`train()` (and `python -m ganlib train`) ties a dataset, a RunSpec and a run folder
together: sample grids every epoch, checkpoints that survive a killed process,
`history.csv`, and resuming where the last run stopped. The GAN itself is `GAN`
(gan.py), a `keras.Model` whose `train_step` updates both networks.

A run folder holds::

    RUN/run.json              what was trained: its RunSpec ("spec": models, optimizers,
                              loss and its tricks, schedule, seed, data), the data's
                              fingerprint, versions and date; a resume must use the
                              same settings (more epochs excepted)
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
import numbers
import os
import socket
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganlib.common import (
    WriteError,
    atomic_write,
    check_int,
    check_writable,
    write_error,
)
from ganlib.training.callbacks import HistoryCSV, SampleGrid, StopOnNonFinite
from ganlib.training.checkpoints import Checkpoints, list_checkpoints, load_checkpoint
from ganlib.training.devices import (
    accelerator_kind,
    dtype_policy,
    fit_across_workers,
    mixed_precision_policy,
    strategy,
    use_xla,
    worker_run_dir,
)
from ganlib.training.gan import GAN
from ganlib.training.presets import preset_spec, run_info_spec
from ganlib.training.spec import FIELD_NAMES, POSITION_FIELDS, UNCOMPARED_FIELDS, RunSpec

LOCK_FILE = "training.lock"
SET_ASIDE = "set-aside"
# What a run folder owns: `export` and `sample` refuse to write any of these.
RUN_FILES = ("run.json", "history.csv", LOCK_FILE)
RUN_FOLDERS = ("checkpoints", "samples", SET_ASIDE)
# The keys load_run needs from run.json.
# run.json holds a "spec" (RunSpec.to_json); one written before specs holds these flat.
_REQUIRED_FLAT_KEYS = ("model", "image_size", "width", "latent_dim")


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
    if isinstance(config, dict) and "spec" in config:
        try:
            run_info_spec(config)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{info} is not a ganlib run record ({error}); restore it from a copy, train "
                f"into another --run, {_restart_hint(run)}"
            ) from None
        return config
    missing = [
        key for key in _REQUIRED_FLAT_KEYS if not isinstance(config, dict) or key not in config
    ]
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


def _fingerprint(images):
    """A short hash of the pixels: a run resumed on other images would train on another order."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


def _settings_changes(saved, spec, record, has_checkpoints):
    """The settings of `spec` (and the data) that differ from the run folder's, described."""
    old = run_info_spec(saved)
    fields = [n for n in FIELD_NAMES if n not in UNCOMPARED_FIELDS]
    if not has_checkpoints:
        fields = [n for n in fields if n not in POSITION_FIELDS]
    elif "spec" not in saved:  # a run.json from before a position setting was recorded
        fields = [n for n in fields if n not in POSITION_FIELDS or n in saved]
    changes = [
        f"{name}: the run has {a!r}, this call asks for {b!r}"
        for name, a, b in old.differences(spec, fields)
    ]
    fingerprint = saved.get("data_fingerprint")
    if has_checkpoints and fingerprint is not None and fingerprint != record["data_fingerprint"]:
        changes.append(
            f"data: the run has {saved.get('data')} (fingerprint {fingerprint}), this call "
            f"asks for {record['data']} (fingerprint {record['data_fingerprint']})"
        )
    return changes


def _prepare_run(run, spec, record, resume):
    """The record RUN/run.json must hold now (None: it already does), once the folder is checked.

    Every setting of the spec but epochs must match whenever run.json exists; those that
    fix the data order (POSITION_FIELDS, and the data) only when there are checkpoints
    to resume from. Every difference is named. A folder with checkpoints, a history or
    grids but no run.json is refused: nothing says which settings made them. Writes
    nothing: the caller writes the record once every other check has passed.
    """
    info = run / "run.json"
    if info.is_file():
        saved = read_run_info(run)
        has_checkpoints = bool(list_checkpoints(run / "checkpoints"))
        changes = _settings_changes(saved, spec, record, has_checkpoints)
        if changes:
            raise ValueError(
                f"run folder {run} was made with other settings ({'; '.join(changes)}); use "
                f"the same settings to resume it (the data order would otherwise continue at "
                f"the wrong place, or the models differ), or choose another run folder "
                f"(another --run) {_restart_hint(run)}"
            )
        if has_checkpoints and not resume:
            raise ValueError(
                f"run folder {run} already has checkpoints; resume it or choose another "
                f"run folder ({_restart_hint(run)})"
            )
        if has_checkpoints:
            # The same run goes on: keep when it was made, record this call's spec (its
            # epochs are the run's total now; a run.json from before specs becomes one).
            record = {**record, "created": saved.get("created", record["created"])}
            if record == saved:
                return None
    else:
        found = _unrecorded_files(run)
        if found:
            raise ValueError(
                f"run folder {run} holds {', '.join(found)} but no run.json saying which "
                f"settings made them, so it cannot be resumed safely: restore its run.json, "
                f"train into another --run, {_restart_hint(run)}"
            )
    return record


def _write_record(run, record):
    with atomic_write(run / "run.json", "w") as file:
        file.write(json.dumps(record, indent=2) + "\n")


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


def _devices(distribute, batch_size, mixed_precision, xla):
    """(dtype policy name, jit_compile, strategy) for this machine and the requested modes."""
    distribute = distribute or strategy()
    replicas = distribute.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch size {batch_size} does not split evenly over {replicas} replicas")
    accelerator = accelerator_kind()
    policy = mixed_precision_policy(mixed_precision, accelerator)
    return policy, use_xla(xla, accelerator), distribute


def _build_gan(spec, devices):
    """The compiled GAN of `spec` under the run's dtype policy and strategy, seeded with spec.seed."""
    policy, jit_compile, distribute = devices
    keras.utils.set_random_seed(spec.seed)
    with dtype_policy(policy), distribute.scope():
        return GAN.from_spec(spec, jit_compile=jit_compile)


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
        gan.fit_epoch_rest(
            stream(epoch * steps + done),
            epoch=epoch,
            done=done,
            steps_per_epoch=steps,
            callbacks=callbacks,
            **fit_options,
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


def run_spec(data=None, spec=None, **settings):
    """The RunSpec `train` trains: `spec` (or PRESETS[model]) with `settings` and `data` (chapter 5).

    settings: RunSpec settings; without a spec, `model` names the preset (default
    "improved") and learning_rate, spectral_norm, minibatch_std and label_smoothing=None
    are read as `preset_spec` reads them. data: a SOURCE string goes into the
    spec; images (an array) leave spec.data as it is.
    """
    if isinstance(data, (str, os.PathLike)):
        settings["data"] = str(data)
    if spec is None:
        return preset_spec(settings.pop("model", "improved"), **settings)
    if not isinstance(spec, RunSpec):
        raise TypeError(f"spec must be a RunSpec, got {type(spec).__name__}")
    return spec.replace(**settings) if settings else spec


def train(
    data=None,
    *,
    spec=None,
    run_dir=None,
    kid_every=0,
    callbacks=(),
    resume=True,
    restart=False,
    verbose="auto",
    checkpoint_every=None,
    keep=3,
    grid=(5, 5),
    steps_per_execution="auto",
    mixed_precision="auto",
    xla="auto",
    distribute=None,
    **settings,
):
    """Train a RunSpec on its data and return (gan, history) (chapter 5).

    What is trained is one `RunSpec`: `spec`, or the preset `model` (default "improved"),
    changed by `settings` (RunSpec settings such as image_size, epochs, batch_size, width,
    d_learning_rate, g_learning_rate, beta_1, d_steps, loss, r1_gamma, label_noise, ema,
    ada, seed, model_options; learning_rate sets the discriminator's and keeps the
    preset's ratio; see `run_spec`). data: a SOURCE string for ganlib.data.load_source
    ("toy-faces:2000", "cifar10:cat", "anime-faces", a folder), or uint8 images (n,
    image_size, image_size, 3); None trains on spec.data. The spec is checked completely
    before anything is built or written, and `gan.spec` is the spec as trained (its
    steps_per_epoch filled in: default len(images) // batch_size).

    epochs: the total; with run_dir and resume=True a run continues from its newest
    checkpoint and stops at the same epoch as an uninterrupted one (a run that already
    has `epochs` says so and trains nothing). The data order is drawn from spec.seed,
    and a resumed run takes up the same order where it stopped.

    How it runs (not part of the spec): mixed_precision, xla: "auto", "on" or "off" (see
    mixed_precision_policy, use_xla); distribute: a tf.distribute strategy (default
    `strategy()`; across machines, TF_CONFIG, chapter 5, every worker resumes from
    run_dir's checkpoints, so run_dir must be on a file system all workers share; only
    the chief writes into it); steps_per_execution: training steps per call into
    TensorFlow, "auto" for `steps_per_call(...)`. kid_every: KID (and, for toy faces,
    mode coverage read by the strict decoder, see KIDMonitor) every N epochs, 0 for
    never. callbacks run before the run's own history and checkpoint callbacks, so what
    they put into `logs` lands in history.csv. checkpoint_every: also checkpoint every N
    steps, honoured exactly ("auto" steps_per_execution divides it; a given one that
    does not is a ValueError). keep: checkpoints kept. grid: (rows, cols) of the sample
    grids. `gan.run_details` says what this machine ran: mixed precision, XLA, replicas,
    the data's description.

    The run folder (see the module's docstring): run.json holds the spec, and a folder
    resumes only with the same settings (all but epochs; those that fix the data order,
    and the data's pixels, once there are checkpoints), else a ValueError names every
    difference. While training, the folder is locked (`lock_run`): a second process gets
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
    steps after the resume).

    Seeds Python, NumPy and TensorFlow with the spec's seed (keras.utils.set_random_seed).
    history: dict of lists, `epoch` plus one list per logged value, all epochs of the
    run (also those of earlier sessions). A NaN or infinite loss raises
    FloatingPointError naming the step; the last good checkpoint stays in place.
    """
    spec = run_spec(data, spec, **settings)
    kid_every = check_int(kid_every, "kid_every", 0)
    checkpoint_every, keep, grid, steps_per_execution = _check_schedule(
        checkpoint_every, keep, grid, steps_per_execution
    )
    # First: across machines the strategy must exist before any TensorFlow op runs.
    distribute = distribute or strategy()
    if isinstance(data, (str, os.PathLike)) or data is None:
        if spec.data is None:
            raise ValueError("no data: pass a SOURCE string or images, or a spec with data")
        data = spec.data
    images, description = _load_data(data, spec.image_size)
    if len(images) < spec.batch_size:
        raise ValueError(
            f"{len(images)} images are fewer than one batch of {spec.batch_size}; "
            f"lower the batch size"
        )
    spec = spec.replace(steps_per_epoch=spec.steps_per_epoch or len(images) // spec.batch_size)
    steps = spec.steps_per_epoch
    if steps_per_execution != "auto" and steps % steps_per_execution:
        raise ValueError(
            f"steps per epoch {steps} is not a multiple of steps_per_execution "
            f"{steps_per_execution}, so Keras would run past each epoch's end; choose "
            f"steps_per_execution='auto' or one that divides {steps}"
        )
    devices = _devices(distribute, spec.batch_size, mixed_precision, xla)
    gan = _build_gan(spec, devices)  # before anything is written: a bad option fails here
    policy, jit_compile, distribute = devices
    object.__setattr__(
        gan,
        "run_details",
        {
            "mixed_precision": policy,
            "xla": jit_compile,
            "replicas": distribute.num_replicas_in_sync,
            "data": description,
        },
    )
    run = None if run_dir is None else Path(run_dir)
    write = worker_run_dir(run, distribute)  # where this worker's files go: run on the chief
    record = {
        "spec": spec.to_json(),
        "data": description,
        "data_fingerprint": _fingerprint(images),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    session = dict(
        gan=gan,
        images=images,
        data=data,
        run=run,
        write=write,
        record=record,
        resume=resume,
        restart=restart,
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
    spec = gan.spec
    image_size, epochs, batch_size, steps, seed = (
        spec.image_size,
        spec.epochs,
        spec.batch_size,
        spec.steps_per_epoch,
        spec.seed,
    )
    if write is not None:
        if restart and write == run:
            kept = _set_aside(run, ("run.json", "history.csv", "samples", "checkpoints"), "restart")
            if kept is not None:
                print(
                    f"ganlib: starting over in {run}; the earlier run's files are kept in {kept}",
                    file=sys.stderr,
                )
        record = _prepare_run(write, spec, record, resume)
        for folder in ("checkpoints", "samples"):
            check_writable(write / folder)  # before the first step, not after an epoch
    epoch, done = _resume(gan, run, steps, write) if resume else (0, 0)
    if write is not None and record is not None:
        _write_record(write, record)  # once the checkpoints agree too
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
    # Chosen here, for the resumed part too.
    gan.set_steps_per_execution(
        _steps_per_execution(
            steps_per_execution, steps, done, checkpoint_every, distribute.num_replicas_in_sync
        )
    )
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

    Built from the RunSpec in RUN/run.json with this machine's default dtype policy;
    `gan.checkpoint` holds the checkpoint's counters (epoch, step, path). FileNotFoundError when the
    folder has no run.json or no checkpoint yet; ValueError naming run.json when it
    cannot be read.
    """
    run = Path(run_dir)
    gan = GAN.from_spec(run_info_spec(read_run_info(run)), jit_compile=False)
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
