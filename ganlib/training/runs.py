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
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganlib import models as _models
from ganlib.common import IMAGE_SIZES, atomic_write, check_image_size, check_int
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
from ganlib.training.gan import GAN, check_loss_options, check_update_scheme, steps_per_call
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
    settings (POSITION_KEYS) only when there are checkpoints to resume from.
    """
    info = run / "run.json"
    record = {**config, **details}
    if info.is_file():
        saved = json.loads(info.read_text())
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
                f"another run folder"
            )
        if list_checkpoints(run / "checkpoints"):
            if not resume:
                raise ValueError(
                    f"run folder {run} already has checkpoints; resume it or choose another run folder"
                )
            _position_changes(run, saved, record)
            return saved  # an older run.json stays as it is: what it lacks stays unknown
    run.mkdir(parents=True, exist_ok=True)
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
    width = float(width)
    if not width > 0:
        raise ValueError(f"width must be positive (1.0 is the published model), got {width!r}")
    return preset, image_size, epochs, batch_size, steps_per_epoch, kid_every, width


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
    model, image_size, *, width, latent_dim, learning_rate, ema, ada, seed, devices, **cures
):
    """The compiled GAN under the run's dtype policy and strategy, seeded with `seed`.

    cures: loss, gp_weight, r1_gamma, label_smoothing, update_scheme (for `GAN.compile`) and the
    discriminator's spectral_norm and minibatch_std, passed only when on (not every
    family has them). model_options go to `build_pair` as well.
    """
    for key in ("spectral_norm", "minibatch_std"):
        if not cures.get(key):
            cures.pop(key, None)
    cures.update(cures.pop("model_options", None) or {})
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


def _resume(gan, run, steps):
    """(epochs done, steps done in the next epoch) from the run's newest checkpoint, or (0, 0)."""
    state = load_checkpoint(gan, run / "checkpoints") if run is not None else None
    if state is None:
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
    kid_every: KID (and mode coverage for toy faces) every N epochs, 0 for never.
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

    Seeds Python, NumPy and TensorFlow with `seed` (keras.utils.set_random_seed).
    history: dict of lists, `epoch` plus one list per logged value, all epochs of the
    run (also those of earlier sessions). A NaN or infinite loss raises
    FloatingPointError naming the step; the last good checkpoint stays in place.
    """
    preset, image_size, epochs, batch_size, steps_per_epoch, kid_every, width = _check_settings(
        model, image_size, epochs, batch_size, steps_per_epoch, kid_every, ema, width
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
    # First: across machines the strategy must exist before any TensorFlow op runs.
    distribute = distribute or strategy()
    images, description = _load_data(data, image_size)
    if len(images) < batch_size:
        raise ValueError(
            f"{len(images)} images are fewer than one batch of {batch_size}; lower the batch size"
        )
    steps = steps_per_epoch or len(images) // batch_size

    policy, jit_compile, distribute = _devices(distribute, batch_size, mixed_precision, xla)
    run = None if run_dir is None else Path(run_dir)
    write = worker_run_dir(run, distribute)  # where this worker's files go: run on the chief
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
        _prepare_run(write, config, details, resume)

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
        spectral_norm=bool(spectral_norm),
        minibatch_std=bool(minibatch_std),
        model_options=model_options,
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

    epoch, done = _resume(gan, run, steps) if resume else (0, 0)
    if epoch >= epochs:
        if verbose != 0:
            print(
                f"run {run} already has {epoch} epoch{'s' * (epoch != 1)}; nothing to train "
                f"(ask for more epochs to continue)"
            )
        return gan, _columns(history_callback.rows)
    if steps_per_execution == "auto":
        # One step per call on several replicas: see GAN._use_steps_per_execution.
        several = distribute.num_replicas_in_sync > 1
        steps_per_execution = 1 if several else steps_per_call(steps, done if done < steps else 0)
    gan.steps_per_execution = check_int(steps_per_execution, "steps_per_execution", 1)
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
    return gan, _columns(history_callback.rows)


def load_run(run_dir):
    """The GAN of a run folder with its newest checkpoint loaded, e.g. to draw samples (chapter 5).

    Built from RUN/run.json (model_options included) with this machine's default dtype
    policy; `gan.checkpoint`
    holds the checkpoint's counters (epoch, step, path). FileNotFoundError when the
    folder has no run.json or no checkpoint yet.
    """
    run = Path(run_dir)
    info = run / "run.json"
    if not info.is_file():
        raise FileNotFoundError(
            f"{run} is not a run folder (no run.json); train one with "
            f"python -m ganlib train ... --run {run}"
        )
    config = json.loads(info.read_text())
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
