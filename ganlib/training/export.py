"""Export a run's generator as a stand-alone `.keras` file (chapter 5).

A run folder's checkpoints hold the whole training state in ganlib's own format;
this writes just the generator in Keras's format, so that anyone with Keras (and
without ganlib) can draw samples with `keras.models.load_model`.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf

from ganlib.common import atomic_save, atomic_write
from ganlib.training.devices import dtype_policy
from ganlib.training.runs import load_run, run_files


def _check_out(out, run_dir, overwrite) -> Path:
    out = Path(out).expanduser()
    if out.suffix != ".keras":
        raise ValueError(
            f"{out} does not end in .keras; give a file name such as generator.keras "
            f"(Keras writes its model format only under that ending)"
        )
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give a file name such as generator.keras")
    for path in (out, out.with_suffix(".json")):
        own = run_files(run_dir, path)
        if own is not None:
            raise ValueError(
                f"{out} would write {path}, which is the run's own {own.name}; the run needs "
                f"it to resume and to sample. Give another name, e.g. "
                f"{Path(run_dir) / 'generator.keras'} or a file outside the run folder"
            )
    if not overwrite:
        existing = [str(path) for path in (out, out.with_suffix(".json")) if path.exists()]
        if existing:
            raise ValueError(
                f"{' and '.join(existing)} already exist{'s' * (len(existing) == 1)}; give "
                f"another name, or replace {'it' if len(existing) == 1 else 'them'} with "
                f"overwrite=True (--overwrite on the command line)"
            )
    return out


def export_generator(run_dir, out, overwrite=False):
    """Write the newest checkpoint's generator of a run to `out` (.keras); return its metadata.

    The EMA copy (`gan.ema_generator`) is written when the run keeps one, since that is
    what `load_run(run_dir).generate` draws from (chapter 5). The model maps float32
    noise (n, latent_dim) to float32 images (n, h, w, c) in the run's value range and
    needs only Keras: `keras.models.load_model(out)(noise)` equals
    `load_run(run_dir).generate(n, seed=s)` for
    `noise = np.random.default_rng(s).standard_normal((n, latent_dim), dtype=np.float32)`.

    The value range is a plain Python attribute of the generator, which a .keras file does
    not keep, so a JSON file next to `out` (generator.keras -> generator.json) records
    latent_dim, value_range, the image shape, which generator was written and the
    checkpoint it came from; the returned dict is that metadata. ValueError for an `out`
    that does not end in .keras, that (or whose .json) is one of the run folder's own
    files (run.json, history.csv, checkpoints/, samples/), or that already exists
    (unless overwrite=True); FileNotFoundError (from `load_run`) for a folder that is
    not a run or has no checkpoint yet.
    """
    out = _check_out(out, run_dir, overwrite)
    # Build in float32 whatever the global dtype policy is (a notebook may have set
    # mixed_float16): the file should compute like the run's float32 samples on any machine.
    with dtype_policy("float32"):
        gan = load_run(run_dir)
    use_ema = gan.ema_generator is not None
    if use_ema:  # BatchNorm statistics of the averaged weights, as generate() uses them
        gan.refresh_ema_statistics()
    generator = gan.ema_generator if use_ema else gan.generator
    low, high = gan.value_range if gan.value_range is not None else (None, None)
    state = gan.checkpoint
    meta = {
        "model_file": out.name,
        "run": str(run_dir),
        "checkpoint": Path(state["path"]).name,
        "epoch": int(state["epoch"]),
        "step": int(state["step"]),
        "generator": "ema_generator" if use_ema else "generator",
        "latent_dim": int(gan.latent_dim),
        "noise": "float32 (n, latent_dim) drawn from a standard normal",
        "image_shape": [int(size) for size in generator.outputs[0].shape[1:]],
        "value_range": None if low is None else [float(low), float(high)],
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
    }
    atomic_save(out, generator.save)
    with atomic_write(out.with_suffix(".json"), "w") as file:
        file.write(json.dumps(meta, indent=2) + "\n")
    return meta
