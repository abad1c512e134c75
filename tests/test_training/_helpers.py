"""Small models and data shared by the training tests."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from ganlib.models import build_pair
from ganlib.training import (
    GAN,
)
from ganlib.training.checkpoints import _state_groups

SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def mlp_gan(seed=0, **kwargs):
    """The smallest GAN: dense layers, 8x8 images, 8 noise dimensions."""
    keras.utils.set_random_seed(seed)
    generator, discriminator = build_pair("mlp", 8, latent_dim=8, width=0.125)
    gan = GAN(generator, discriminator, seed=seed, **kwargs)
    gan.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
    return gan


def conv_gan(seed=0, **kwargs):
    """The improved pair at 32 px, width 0.125: BatchNorm in G, Dropout in D."""
    keras.utils.set_random_seed(seed)
    return GAN.from_preset("improved", 32, width=0.125, seed=seed, **kwargs)


def images(n, size=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def dataset(x, batch_size):
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size, drop_remainder=True)


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def moved(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables, strict=True)]


def run_script(source, *args, timeout=240):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=SUBPROCESS_ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def all_state(gan):
    return [v.numpy() for group in _state_groups(gan).values() for v in group]


def flat_run_json(run):
    """RUN/run.json rewritten in the flat layout train() wrote before RunSpec; returns it.

    The layout of the run folders made then (for example the seed-claim experiment's):
    the preset's name and optimizer settings, build flags, cures and the data position,
    side by side. Tests delete keys from it to stand for still older files.
    """
    from pathlib import Path

    from ganlib.training import PRESETS

    path = Path(run) / "run.json"
    info = json.loads(path.read_text())
    spec = info["spec"]
    preset = PRESETS[spec["preset"]]
    options = dict(spec["model_options"])
    flags = {flag: bool(options.pop(flag, False)) for flag in ("spectral_norm", "minibatch_std")}
    flat = {
        "model": spec["preset"],
        **{key: spec[key] for key in ("image_size", "width", "latent_dim", "ema", "ada")},
        **flags,
        "model_options": options,
        **{key: spec[key] for key in ("loss", "gp_weight", "r1_gamma", "update_scheme")},
        "label_smoothing": None
        if spec["label_smoothing"] == preset.label_smoothing
        else spec["label_smoothing"],
        "family": spec["model"],
        "preset": {
            "model": preset.model,
            **{
                key: getattr(preset, key)
                for key in (
                    "d_learning_rate",
                    "g_learning_rate",
                    "beta_1",
                    "batch_size",
                    "label_smoothing",
                    "label_noise",
                )
            },
        },
        "data": info["data"],
        "data_spec": spec["data"],
        "data_fingerprint": info["data_fingerprint"],
        **{key: spec[key] for key in ("seed", "batch_size", "steps_per_epoch")},
        "ada_options": None,
    }
    path.write_text(json.dumps(flat))
    return flat
