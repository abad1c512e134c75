"""Training: the GAN model, its presets, the first design's loop, callbacks, checkpoints and runs.

`GAN` is a `keras.Model` whose `train_step` makes one discriminator update and one
generator update, so `fit()`, its callbacks, progress bar and `tf.distribute` all work.
`train()` (and `python -m ganlib train`) ties a dataset, a preset and a run folder
together: sample grids every epoch, checkpoints that survive a killed process,
`history.csv`, and resuming where the last run stopped.

A run folder holds::

    RUN/run.json              what was trained (model, size, width, latent size, data, seed)
    RUN/history.csv           one row per finished epoch, `epoch` counted from 0
    RUN/samples/epoch_XXXX.png  a fixed-noise grid per epoch
    RUN/checkpoints/ckpt-STEP.npz  the last `keep` checkpoints (weights, optimizer states, counters)
"""

from __future__ import annotations

import datetime
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
    mixed_precision_policy,
    strategy,
    use_xla,
)
from ganlib.training.gan import GAN
from ganlib.training.presets import PRESETS

RUN_KEYS = ("model", "image_size", "width", "latent_dim", "ema", "ada")


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
    return ", ".join(parts)


def _prepare_run(run, config, details, resume):
    """Create run/run.json, or check that an existing run was made with the same model."""
    info = run / "run.json"
    if info.is_file():
        saved = json.loads(info.read_text())
        if any(saved.get(key) != config[key] for key in RUN_KEYS):
            raise ValueError(
                f"run folder {run} was made with {_describe(saved)}, not {_describe(config)}; "
                f"use the same settings to resume it or choose another run folder"
            )
        if not resume and list_checkpoints(run / "checkpoints"):
            raise ValueError(
                f"run folder {run} already has checkpoints; resume it or choose another run folder"
            )
        return saved
    run.mkdir(parents=True, exist_ok=True)
    record = {**config, **details}
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


def steps_per_call(steps_per_epoch, done=0, limit=8):
    """How many training steps one call into TensorFlow runs (Keras's steps_per_execution).

    The largest number up to `limit` that divides both the epoch length and the
    epoch's unfinished part, so calls never run past an epoch's end. Handing Keras
    several steps per call spares it most of its per-step Python work: on 2 CPU cores
    that made fit about 15% faster for the improved model at 32 px, width 0.25.
    """
    return max(k for k in range(1, limit + 1) if steps_per_epoch % k == 0 and done % k == 0)


def _columns(rows):
    keys = [key for row in rows for key in row]
    return {key: [row.get(key, float("nan")) for row in rows] for key in dict.fromkeys(keys)}


def train(
    data,
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
):
    """Train PRESETS[model] on `data` and return (gan, history).

    data: a SOURCE string for ganlib.data.load_source ("toy-faces:2000", "cifar10:cat",
    "anime-faces", a folder) or uint8 images (n, image_size, image_size, 3).
    epochs: the total; with run_dir and resume=True a run continues from its newest
    checkpoint and stops at the same epoch as an uninterrupted one. batch_size: global
    real images per update (default the preset's), split across replicas.
    steps_per_epoch: default len(images) // batch_size. The data order is drawn from
    `seed`, and a resumed run takes up the same order where it stopped.
    mixed_precision, xla: "auto", "on" or "off" (see mixed_precision_policy, use_xla).
    ema: EMA decay of a generator copy (e.g. 0.99). ada: adaptive augmentation.
    kid_every: KID (and mode coverage for toy faces) every N epochs, 0 for never.
    callbacks run before the run's own history and checkpoint callbacks, so what they
    put into `logs` lands in history.csv. checkpoint_every: also checkpoint every N steps.
    distribute: a tf.distribute strategy (default `strategy()`). steps_per_execution:
    training steps per call into TensorFlow, "auto" for `steps_per_call(...)`.

    Seeds Python, NumPy and TensorFlow with `seed` (keras.utils.set_random_seed).
    history: dict of lists, `epoch` plus one list per logged value, all epochs of the
    run (also those of earlier sessions). A NaN or infinite loss raises
    FloatingPointError naming the step; the last good checkpoint stays in place.
    """
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
    latent_dim = (
        _models.DEFAULT_LATENT_DIM[preset["model"]] if latent_dim is None else int(latent_dim)
    )
    images, description = _load_data(data, image_size)
    if len(images) < batch_size:
        raise ValueError(
            f"{len(images)} images are fewer than one batch of {batch_size}; lower the batch size"
        )
    steps = steps_per_epoch or len(images) // batch_size

    distribute = distribute or strategy()
    replicas = distribute.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch size {batch_size} does not split evenly over {replicas} replicas")
    accelerator = _accelerator()
    policy = mixed_precision_policy(mixed_precision, accelerator)
    jit_compile = use_xla(xla, accelerator)

    run = None if run_dir is None else Path(run_dir)
    config = {
        "model": model,
        "image_size": int(image_size),
        "width": width,
        "latent_dim": latent_dim,
        "ema": ema,
        "ada": bool(ada),
    }
    if run is not None:
        details = {
            "family": preset["model"],
            "preset": dict(preset),
            "data": description,
            "data_spec": data if isinstance(data, str) else None,
            "seed": seed,
            "batch_size": batch_size,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        }
        _prepare_run(run, config, details, resume)

    keras.utils.set_random_seed(seed)
    with _dtype_policy(policy), distribute.scope():
        augmenter = None
        if ada:
            from ganlib.augment import AdaptiveAugmenter

            augmenter = AdaptiveAugmenter(seed=seed)
        gan = GAN.from_preset(
            model,
            image_size,
            width=width,
            latent_dim=latent_dim,
            learning_rate=learning_rate,
            ema=ema,
            augmenter=augmenter,
            seed=seed,
            jit_compile=jit_compile,
        )
    gan.preset.update(
        batch_size=batch_size,
        steps_per_epoch=steps,
        mixed_precision=policy,
        xla=jit_compile,
        replicas=replicas,
        data=description,
    )

    history_callback = HistoryCSV(None if run is None else run / "history.csv")
    own = [SampleGrid(run, *grid, seed=seed, scale=2 if image_size <= 32 else 1)]
    if kid_every:
        own.insert(0, _kid_monitor(images, data, image_size, kid_every, seed))
    own.append(history_callback)
    if run is not None:
        own.append(Checkpoints(run / "checkpoints", every_steps=checkpoint_every, keep=keep))
    all_callbacks = [StopOnNonFinite(), *callbacks, *own]
    gan.sample_grid = next(c for c in own if isinstance(c, SampleGrid))

    from ganlib.data import image_dataset

    def stream(position):
        """The run's endless batch stream (same seed, same order), from batch `position` on."""
        dataset = image_dataset(images, batch_size, gan.value_range, shuffle=True, seed=seed)
        return dataset.repeat().skip(position)

    state = load_checkpoint(gan, run / "checkpoints") if run is not None and resume else None
    epoch, done = (state["epoch"], state["step_in_epoch"]) if state else (0, 0)
    if steps_per_execution == "auto":
        steps_per_execution = steps_per_call(steps, done if done < steps else 0)
    gan.steps_per_execution = check_int(steps_per_execution, "steps_per_execution", 1)
    fit_options = {"verbose": verbose, "shuffle": False}
    try:
        if done and epoch < epochs and done < steps:
            gan._fit_part(
                stream(epoch * steps + done),
                None,
                all_callbacks,
                dict(
                    fit_options, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps - done
                ),
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
                callbacks=all_callbacks,
                **fit_options,
            )
    except FloatingPointError as error:
        last = list_checkpoints(run / "checkpoints")[-1:] if run is not None else []
        where = f" The last good checkpoint is {last[0]}." if last else " There is no checkpoint."
        raise FloatingPointError(f"{error}{where}") from None
    return gan, _columns(history_callback.rows)


def load_run(run_dir):
    """The GAN of a run folder with its newest checkpoint loaded, e.g. to draw samples.

    Built from RUN/run.json with this machine's default dtype policy; `gan.checkpoint`
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

        augmenter = AdaptiveAugmenter()
    gan = GAN.from_preset(
        config["model"],
        config["image_size"],
        width=config["width"],
        latent_dim=config["latent_dim"],
        ema=config.get("ema"),
        augmenter=augmenter,
        jit_compile=False,
    )
    state = load_checkpoint(gan, run / "checkpoints")
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {run / 'checkpoints'} yet; train the run first")
    object.__setattr__(gan, "checkpoint", state)
    return gan
