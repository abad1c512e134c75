"""Recorded experiments: named, resumable runs whose small results are committed (chapter 3).

`run_experiment(name, out)` (and `python -m ganlib experiment NAME --out FOLDER`) trains
every variant of EXPERIMENTS[name] with the same schedule, once per seed. The training
run folders, with their checkpoints, live in `work` (default runs/experiments/NAME/...);
the same call again, in this process or a later one, resumes each run from its newest
checkpoint and skips the finished ones. What is committed goes into `out` (at most 2 MB)::

    OUT/history_<run>.csv            one row per epoch: losses, accuracies and, every
                                     `measure_every` epochs, the columns of
                                     ganlib.recorded.MEASURED (nan in between)
    OUT/samples/<run>_epoch_XXXX.png  fixed-noise grids, the same epochs for every run,
                                     as many as fit (provenance.json's grid_epochs)
    OUT/provenance.json              the command, commit, device, versions, dates, wall
                                     time, settings, each variant's model, each run's
                                     variant, seed, seconds and whether other work
                                     shared the machine, and every process that worked
                                     on it; written by run_experiment only
    OUT/README.md                    a table of the last measurements

A run is named after its variant and, in an experiment of several seeds, its seed
(`run_name`): history_baseline_seed1.csv. Experiments: "seed-claim" (the baseline
against the improved model as its notebook ran, as published, with a discriminator that
sees every pixel, and with the notebook's own iteration; 3 seeds) and "ablation" (the
improved model with one of its changes undone at a time; one seed). A variant is a
preset of ganlib.training.PRESETS plus `ganlib.models.build_pair` options
(`train(model_options=...)`) and an update scheme; one that would train the same
network as another at the chosen image size is skipped with the reason.

`check_provenance(folder)` lists what a recorded result lacks.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import keras
import numpy as np

from ganlib.common import atomic_write
from ganlib.recorded import MEASURED, finished_runs
from ganlib.training.history import read_history

__all__ = [
    "EXPERIMENTS",
    "run_experiment",
    "run_name",
    "grid_epochs",
    "check_provenance",
    "Measurements",
    "MAX_RESULT_BYTES",
]

# What a committed result may weigh: histories, a few grids and provenance.json.
MAX_RESULT_BYTES = 2_000_000

# The anime-face DCGAN project's schedule: 4,992 images, batch 32, 156 updates per
# epoch, 200 epochs (31,200 updates per model), measured every 10 epochs.
_ANIME_SCHEDULE = {
    "data": "toy-faces:4992",
    "image_size": 64,
    "width": 1.0,
    "batch_size": 32,
    "steps_per_epoch": 156,
    "epochs": 200,
    "measure_every": 10,
    "seed": 0,
    "kid_samples": 1000,
    "kid_real": 2000,
}

# Small enough that a CPU finishes it in seconds; it shows that the machinery works,
# never what the full schedule would show.
_QUICK = {
    "data": "toy-faces:512",
    "image_size": 32,
    "width": 0.125,
    "steps_per_epoch": 4,
    "epochs": 2,
    "measure_every": 1,
    "kid_samples": 64,
    "kid_real": 256,
}

# At 32 px the improved discriminator's last feature map is 1x1, so Flatten and average
# pooling are the same network (same layers, same parameters, same outputs).
_SAME_AT_32 = (
    "identical to improved_as_run at 32 px (the discriminator's last feature map is 1x1, "
    "so Flatten and average pooling are the same network); it runs at 64 px"
)

# Same padding in all three of the improved discriminator's convolutions: it sees every
# pixel, where the published paddings leave the last 4 rows and columns unseen.
_FULL_VIEW = {"model": "improved_as_run", "model_options": {"padding": "same"}}

EXPERIMENTS = {
    "seed-claim": {
        "description": "the anime-face DCGAN project's claim on its own schedule: the baseline "
        "against the improved model with the learning rates its notebook used, as published, "
        "with a discriminator that sees every pixel, and trained with the notebook's own "
        "iteration, over several seeds",
        **_ANIME_SCHEDULE,
        "seeds": (0, 1, 2),
        "variants": {
            "baseline": {"model": "baseline"},
            "improved_as_run": {"model": "improved_as_run"},
            "improved_full_view": _FULL_VIEW,
            # The notebook's iteration: two discriminator updates (real, then generated
            # images drawn in inference mode), a generator update on 64 noise vectors.
            "improved_notebook": {"model": "improved_as_run", "update_scheme": "notebook"},
        },
    },
    "ablation": {
        "description": "the improved model with one of its changes undone at a time, on the "
        "anime-face DCGAN project's schedule; besides the two end points (baseline, "
        "improved_as_run) each variant differs from improved_as_run in one respect",
        **_ANIME_SCHEDULE,
        "seeds": (0,),
        "variants": {
            "baseline": {"model": "baseline"},
            "improved_as_run": {"model": "improved_as_run"},
            # The generator's learning rate twice the discriminator's, as the write-up says.
            "lr_ratio": {"model": "improved"},
            # The baseline's sigmoid output: pixels in [0, 1], real images scaled to match.
            "value_range": {"model": "improved_as_run", "model_options": {"output": "sigmoid"}},
            # Conv2DTranspose (kernel 4, stride 2) instead of nearest upsampling + Conv2D 3x3.
            "transposed": {
                "model": "improved_as_run",
                "model_options": {"upsample": "transposed"},
            },
            # The generator without its two BatchNormalization layers.
            "batchnorm": {"model": "improved_as_run", "model_options": {"batchnorm": False}},
            # Flatten instead of global average pooling before the discriminator's Dense 256.
            "flatten": {
                "model": "improved_as_run",
                "model_options": {"pooling": "flatten"},
                "skip_at": {32: _SAME_AT_32},
            },
            # The discriminator without its two Dropout layers.
            "dropout": {"model": "improved_as_run", "model_options": {"dropout": False}},
            # Not a change of the improved model but of what its discriminator sees.
            "full_view": _FULL_VIEW,
        },
    },
}

# Keys that provenance.json must hold, none of them empty.
PROVENANCE_KEYS = (
    "experiment",
    "command",
    "commit",
    "dirty",
    "device",
    "tensorflow",
    "keras",
    "python",
    "date",
    "wall_seconds",
    "settings",
    "runs",
    "runs_finished",
    "processes",
    "quick",
    "full",
)
# Grids larger than this are stored with a 256-colour palette: a 5x5 grid of generated
# 32 px faces takes about 70 kB without and 26 kB with one (a pixel moves by about 7 of
# 255 levels), so twelve runs keep four epochs of grids within MAX_RESULT_BYTES, not one.
_GRID_BYTES = 40_000
# The settings a continued result must share with the one it continues (not the epochs,
# which may grow, nor the seeds, which may be added).
_SAME_SETTINGS = (
    "data",
    "image_size",
    "width",
    "batch_size",
    "steps_per_epoch",
    "measure_every",
    "kid_samples",
    "kid_real",
    "quick",
    "kid",
)


class Measurements(keras.callbacks.Callback):
    """Keras callback: fidelity, diversity and KID of fresh samples every `every` epochs (chapter 3).

    real_features, extractor (both or neither), decoder ("calibrated", "strict", a
    CalibratedDecoder or None) and strip (bool (s, s) or None: chapter 3 passes the
    pixels the published improved discriminator cannot see) set up a
    `metrics.Evaluator` with KID over 10 subsets of half the samples (its spread is
    real) and prdc with k=5. At the end of every `every`-th epoch, and of epoch
    `final_epoch` (counted from 0; None: none), it measures
    model.generate(n_samples, seed=seed) and writes into logs every column of
    ganlib.recorded.MEASURED (nn_coverage is prdc's coverage; coverage, unrecognised
    and variety are mode_coverage's). Other epochs, and what is not measured, get nan,
    so history.csv keeps the same columns. `.history` holds (epoch, values).
    """

    def __init__(
        self,
        every,
        n_samples,
        real_features=None,
        extractor=None,
        decoder=None,
        seed=0,
        final_epoch=None,
        strip=None,
    ):
        super().__init__()
        from ganlib import metrics

        if every < 1 or n_samples < 2:
            raise ValueError(
                f"every must be at least 1 and n_samples at least 2, got {every} and {n_samples}"
            )
        self.every, self.n_samples = int(every), int(n_samples)
        self.evaluator = metrics.Evaluator(
            real_features,
            extractor,
            decoder=decoder,
            k=5,
            kid_subsets=10,
            kid_subset_size="half",
            strip=strip,
            seed=seed,
        )
        self.seed, self.final_epoch = seed, final_epoch
        self.history = []

    def measure(self):
        """The measurements of self.model's samples now: dict of floats, nan where not measured."""
        images = np.asarray(self.model.generate(self.n_samples, seed=self.seed))
        values = self.evaluator.measure(images, getattr(self.model, "value_range", None))
        return {key: values[key] for key in MEASURED}

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        if (epoch + 1) % self.every and epoch != self.final_epoch:
            for key in MEASURED:
                logs.setdefault(key, float("nan"))
            return
        values = self.measure()
        self.history.append((epoch, values))
        logs.update(values)


class _LoadSampler(keras.callbacks.Callback):
    """At each epoch's end: the 1-minute load average (was the timing shared?), then `then()`."""

    def __init__(self, then=None):
        super().__init__()
        self.loads, self.then = [], then

    def on_epoch_end(self, epoch, logs=None):
        self.loads.append(_load()[0])
        if self.then is not None:
            self.then()


def _load():
    """(1, 5, 15)-minute load averages, nan where the system does not say."""
    try:
        return tuple(round(value, 2) for value in os.getloadavg())
    except OSError:
        return (float("nan"),) * 3


def _shared(start_load, loads):
    """True when other work shared the machine: load before the process started, or above the cores.

    This process's own training keeps about one runnable thread per core, so the load
    it causes is at most the number of cores; more than half a core above that, or a
    load of half a core before the process started, is someone else's work. (The load
    when a later run starts still holds the runs this process trained before it.)
    """
    cores = os.cpu_count() or 1
    return bool(start_load >= 0.5 or any(load > cores + 0.5 for load in loads))


def _settings(name, *, data, image_size, width, epochs, measure_every, quick, kid, seeds):
    """The experiment's settings: its registry entry, the quick mode's, then the caller's."""
    if name not in EXPERIMENTS:
        raise ValueError(
            f"unknown experiment {name!r}; choose one of {', '.join(sorted(EXPERIMENTS))}"
        )
    entry = EXPERIMENTS[name]
    settings = {key: value for key, value in entry.items() if key not in ("variants",)}
    if quick:
        settings.update(_QUICK)
    given = {
        "data": data,
        "image_size": image_size,
        "width": width,
        "epochs": epochs,
        "measure_every": measure_every,
    }
    settings.update({key: value for key, value in given.items() if value is not None})
    for key in ("epochs", "measure_every"):
        if isinstance(settings[key], bool) or not isinstance(settings[key], int):
            raise ValueError(f"{key} must be a whole number of epochs, got {settings[key]!r}")
        if settings[key] < 1:
            raise ValueError(f"{key} must be at least 1, got {settings[key]}")
    seeds = list(entry["seeds"] if seeds is None else seeds)
    if not seeds or any(
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        for seed in seeds
    ):
        raise ValueError(f"seeds must be a non-empty list of whole numbers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat, got {seeds!r}")
    settings["seeds"] = [int(seed) for seed in seeds]
    settings["width"] = float(settings["width"])
    settings.update(experiment=name, quick=bool(quick), kid=bool(kid))
    # A full run is the registered schedule on as many images (toy or real), measured.
    schedule = [key for key in _ANIME_SCHEDULE if key not in ("data", "seed")]
    same_count = settings["data"].rpartition(":")[2] == entry["data"].rpartition(":")[2]
    settings["full"] = bool(
        not quick and kid and same_count and all(settings[k] == entry[k] for k in schedule)
    )
    return settings


def run_name(variant, seed, multi_seed):
    """The name of one training run of an experiment: `variant`, or `variant_seedN` (chapter 3).

    An experiment registered with several seeds names each run after its variant and
    seed (history_baseline_seed1.csv); a single-seed one after its variant alone.
    """
    return f"{variant}_seed{int(seed)}" if multi_seed else variant


def _slug(text):
    return "".join(c if c.isalnum() or c in "-." else "-" for c in str(text)).strip("-")


def _default_work(settings):
    """runs/experiments/NAME/DATA_SIZEpx_wWIDTH[_quick]: other settings, other run folders."""
    tag = f"{_slug(settings['data'])}_{settings['image_size']}px_w{settings['width']:g}"
    if settings["quick"]:
        tag += "_quick"
    return Path("runs") / "experiments" / settings["experiment"] / tag


def _git(*arguments):
    repository = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", *arguments], cwd=repository, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _dirty():
    """True when tracked files differ from the commit, "unknown" without git."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return "unknown" if status is None else bool(status)


def _device():
    """The GPU's name when TensorFlow sees one, else the CPU's model from /proc/cpuinfo."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if details.get("device_name"):
            return f"GPU: {details['device_name']}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model} ({os.cpu_count()} cores)"


def _call_text(name, out, options):
    given = ", ".join(
        f"{key}={value!r}" for key, value in options.items() if value not in (None, False)
    )
    return (
        f"ganlib.experiments.run_experiment({name!r}, {str(out)!r}{', ' if given else ''}{given})"
    )


def grid_epochs(available, count):
    """`count` of the epochs in `available` spread evenly, the first and last included (chapter 3)."""
    available = sorted(available)
    if count < 1 or not available:
        return []
    if count == 1:
        return [available[-1]]
    picks = np.linspace(0, len(available) - 1, min(count, len(available)))
    return sorted({available[int(round(i))] for i in picks})


def _folder_bytes(folder):
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def _finished(run, epochs):
    """True when run/history.csv (or `run` itself, a history file) holds every epoch up to `epochs`."""
    history = run if run.suffix == ".csv" else run / "history.csv"
    if not history.is_file():
        return False
    rows = read_history(history)
    return bool(rows) and rows[-1]["epoch"] >= epochs - 1


def _save_grid(source, target):
    """Copy a grid PNG, undoing SampleGrid's nearest enlargement and, if still large, with 256 colours."""
    from PIL import Image

    with Image.open(source) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    # Enlarged by 2 (nearest): every 2x2 block is one colour, so halving loses nothing.
    even = pixels[: pixels.shape[0] // 2 * 2, : pixels.shape[1] // 2 * 2]
    if even.shape[:2] == pixels.shape[:2] and all(
        np.array_equal(even[::2, ::2], even[i::2, j::2]) for i in (0, 1) for j in (0, 1)
    ):
        pixels = even[::2, ::2]
    picture = Image.fromarray(pixels)
    picture.save(target, optimize=True)
    if target.stat().st_size > _GRID_BYTES:
        picture.quantize(256).save(target, optimize=True)


def _copy_grids(work, out, runs):
    """The grids of every finished run at the same epochs, as many as fit: the epochs kept.

    A run's grids come from its run folder, or, for a run trained elsewhere, from those
    `out` already holds. Of the epochs every run has a grid for, 21, 11, 6, 5, 4, 3, 2
    or 1 spread evenly are kept: the most that leave the result folder within 90 % of
    MAX_RESULT_BYTES, so every run shows the same epochs. (A run recorded by an older
    ganlib whose grids were all left out shows none, and does not hold the others back.)
    """
    samples, kept = out / "samples", out / ".samples-before"
    shutil.rmtree(kept, ignore_errors=True)
    if samples.is_dir():
        samples.rename(kept)
    sources = {}
    for run in runs:
        grids = {}
        for folder, pattern in (
            (kept, f"{run}_epoch_*.png"),
            (work / run / "samples", "epoch_*.png"),
        ):
            for path in folder.glob(pattern) if folder.is_dir() else ():
                epoch = path.stem.rpartition("_")[2]
                if epoch.isdigit():
                    grids[int(epoch)] = path  # the run folder's, read last, win
        sources[run] = grids
    # A run trained by an older ganlib may have had its grids left out: it shows none.
    with_grids = [run for run in runs if sources[run]]
    available = (
        set.intersection(*(set(sources[run]) for run in with_grids)) if with_grids else set()
    )
    chosen = []
    for count in (21, 11, 6, 5, 4, 3, 2, 1, 0):
        shutil.rmtree(samples, ignore_errors=True)
        chosen = grid_epochs(available, count)
        if not chosen:
            break
        samples.mkdir(parents=True)
        for run in with_grids:
            for epoch in chosen:
                _save_grid(sources[run][epoch], samples / f"{run}_epoch_{epoch:04d}.png")
        if _folder_bytes(out) - _folder_bytes(kept) <= MAX_RESULT_BYTES * 0.9:
            break
    shutil.rmtree(kept, ignore_errors=True)
    return chosen


def _last_measured(rows):
    for row in reversed(rows):
        if not math.isnan(row.get("blank_share", float("nan"))):
            return row
    return rows[-1] if rows else {}


def _write_readme(out, settings, finished, not_run):
    """README.md: which run this is, then a table of each run's last measurements."""
    columns = ("epoch", "d_loss", "g_loss", *MEASURED)
    lines = [f"# Experiment `{settings['experiment']}`", ""]
    if settings["quick"]:
        lines += [
            "**Quick run**: tiny settings that check the machinery; not the full experiment.",
            "",
        ]
    elif not settings["full"]:
        lines += ["**Not the full schedule**: some settings differ from the registered ones.", ""]
    description = settings["description"]
    lines += [
        f"{description[0].upper()}{description[1:]}.",
        "",
        "| run | " + " | ".join(columns) + " |",
    ]
    lines.append("|---" * (len(columns) + 1) + "|")
    for run in finished:
        row = _last_measured(read_history(out / f"history_{run}.csv"))
        cells = [
            str(row.get(key, "")) if key == "epoch" else f"{row.get(key, float('nan')):.4g}"
            for key in columns
        ]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    lines += ["", "Measured on the last measured epoch (counted from 0); provenance.json says how."]
    for variant, reason in not_run.items():
        lines.append(f"- `{variant}`: {reason}")
    with atomic_write(out / "README.md", "w") as file:
        file.write("\n".join(lines) + "\n")


def _reference(settings, kid):
    """(real features, extractor, decoder, strip) for the measurements; toy faces get coverage too."""
    from ganlib import models

    # The pixels the improved discriminator as published never sees (chapter 3), measured
    # in every variant, the baseline's too, so their strips can be compared.
    strip = ~models.visible_pixels(models.improved_discriminator(settings["image_size"], 0.125))
    strip = strip if strip.any() else None
    if not kid:
        return None, None, None, strip
    from ganlib import metrics
    from ganlib.data import load_source

    images, _ = load_source(settings["data"], settings["image_size"])
    rng = np.random.default_rng(settings["seed"])
    chosen = np.sort(rng.choice(len(images), min(len(images), settings["kid_real"]), replace=False))
    toy = settings["data"].strip().startswith("toy-faces")
    if toy:
        extractor = metrics.DomainFeatures(image_size=settings["image_size"])
    else:
        extractor = metrics.InceptionFeatures()
    return extractor(images[chosen]), extractor, ("calibrated" if toy else None), strip


def _not_run(registry, image_size):
    """{variant: why it is not trained}: those that duplicate another at this image size."""
    return {
        variant: spec["skip_at"][image_size]
        for variant, spec in registry.items()
        if image_size in spec.get("skip_at", {})
    }


def _chosen_variants(name, registry, not_run, variants):
    """The variants to train now, checked: every available one when `variants` is None."""
    available = [v for v in registry if v not in not_run]
    chosen = list(available if variants is None else variants)
    for variant in chosen:
        if variant not in registry:
            raise ValueError(
                f"experiment {name!r} has no variant {variant!r}; choose from {', '.join(registry)}"
            )
        if variant in not_run:
            raise ValueError(
                f"variant {variant!r} of {name!r} is not run with these settings: "
                f"{not_run[variant]}; leave it out"
            )
    return chosen


def _previous(out, name, settings):
    """provenance.json of the result being continued in `out` ({} if none), checked to match."""
    path = out / "provenance.json"
    if not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); move the folder aside and record the result "
            "again, or choose another --out folder"
        ) from None
    old = previous.get("settings", {})
    changed = [k for k in _SAME_SETTINGS if k in old and old.get(k) != settings.get(k)]
    if changed:
        raise ValueError(
            f"{out} holds a result of {name!r} with other settings ({', '.join(changed)}); "
            f"use the same settings to continue it, or another --out folder"
        )
    return previous


def variant_spec(variant, settings, seed):
    """The RunSpec of one run of an experiment: its variant's preset and changes, at `settings` (chapter 3).

    variant: a registry entry ({"model": preset, "model_options": ..., "update_scheme":
    ...}); settings: the experiment's (`_settings`: data, image size, width, epochs,
    batch size, steps per epoch).
    """
    from ganlib.training import preset_spec

    return preset_spec(
        variant["model"],
        data=settings["data"],
        image_size=settings["image_size"],
        width=settings["width"],
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        steps_per_epoch=settings["steps_per_epoch"],
        seed=seed,
        model_options=variant.get("model_options"),
        update_scheme=variant.get("update_scheme", "ganlib"),
    )


def run_experiment(
    name,
    out,
    *,
    work=None,
    data=None,
    image_size=None,
    width=None,
    epochs=None,
    measure_every=None,
    quick=False,
    kid=True,
    variants=None,
    seeds=None,
    command=None,
    verbose=0,
    train_now=True,
):
    """Train every variant of EXPERIMENTS[name] with every seed and record the result in `out` (chapter 3).

    out: the folder to commit (book/results/NAME). work: where the run folders with
    their checkpoints go (default runs/experiments/NAME/<data>_<size>px_w<width>, with
    _quick for quick runs); the same call again resumes each unfinished run and skips
    the finished ones, in this process or a later one. data, image_size, width,
    epochs, measure_every: override the registry's (e.g. data="anime-faces:4992", or
    image_size=32, width=0.25 for a CPU). quick: 2 epochs of 4 steps at 32 px, width
    0.125, measured every epoch, for tests and smoke runs; provenance.json and
    README.md say so. kid: False measures only the blank share and the strip's
    roughness, for cheap tests. variants, seeds: what to train now (default every
    available variant, and the registry's seeds: 0, 1, 2 for "seed-claim"); runs are
    trained seed by seed, so an interrupted experiment has whole seeds first. A run is
    named `run_name(variant, seed, ...)`: history_<run>.csv. command: the command line
    to record (default: this call written out). verbose: Keras's progress output.
    train_now: False records what the run folders hold (finished runs, and how many
    epochs the unfinished ones have) and trains nothing, e.g. after a process was
    stopped. provenance.json is written when the call starts, after every epoch and
    after every run, so a stopped process leaves a result that says how far it got.

    Experiments: "seed-claim" trains "baseline", "improved_as_run" (presets of
    ganlib.training.PRESETS), "improved_full_view" (improved_as_run with
    `padding="same"` in the discriminator) and "improved_notebook" (improved_as_run
    with the notebook's `update_scheme`). "ablation" trains the end points and
    variants of improved_as_run that each undo one change ("lr_ratio", "value_range",
    "transposed", "batchnorm", "flatten", "dropout") or give its discriminator the
    full view ("full_view"). At 32 px "flatten" is the same network as improved_as_run
    and is not trained; provenance.json's not_run says so.

    provenance.json (returned as a dict) is written by this function only: the
    settings, each run's variant, seed, wall seconds and whether other work shared the
    machine while it trained (runs_untimed: runs found trained to the end whose last
    process left no record, so their seconds and the total are lower bounds), and one
    entry per process that worked on the result (command, commit, start, wall time,
    load averages at start and end).
    """
    from ganlib.training import train

    started = time.monotonic()
    start_load = _load()
    settings = _settings(
        name,
        data=data,
        image_size=image_size,
        width=width,
        epochs=epochs,
        measure_every=measure_every,
        quick=quick,
        kid=kid,
        seeds=seeds,
    )
    registry = EXPERIMENTS[name]["variants"]
    not_run = _not_run(registry, settings["image_size"])
    chosen = _chosen_variants(name, registry, not_run, variants)
    multi_seed = len(EXPERIMENTS[name]["seeds"]) > 1
    out = Path(out)
    work = _default_work(settings) if work is None else Path(work)
    if command is None:
        command = _call_text(
            name,
            out,
            dict(
                data=data,
                image_size=image_size,
                width=width,
                epochs=epochs,
                measure_every=measure_every,
                quick=quick,
                kid=None if kid else False,
                variants=variants,
                seeds=seeds,
            ),
        )
    previous = _previous(out, name, settings)
    out.mkdir(parents=True, exist_ok=True)

    import tensorflow as tf

    real_features, extractor, decoder, strip = (
        _reference(settings, kid) if train_now else (None, None, None, None)
    )
    # A result recorded before runs were listed names its runs after their variants.
    runs = dict(previous.get("runs") or finished_runs(previous))
    asked = settings["seeds"]
    for seed in asked:
        for variant in chosen:
            runs[run_name(variant, seed, multi_seed)] = {"variant": variant, "seed": seed}
    # Every seed the result holds, so that a later call with fewer seeds keeps them listed.
    settings["seeds"] = sorted({entry["seed"] for entry in runs.values()})
    finished = [r for r in finished_runs(previous) if r in runs]
    # A run whose folder is gone (another machine trained it) counts by its committed history.
    finished = [
        r
        for r in finished
        if _finished(work / r, settings["epochs"])
        or (not (work / r).exists() and _finished(out / f"history_{r}.csv", settings["epochs"]))
    ]
    run_seconds = dict(previous.get("run_seconds") or {})
    run_shared = dict(previous.get("run_shared") or {})
    untimed = list(previous.get("runs_untimed") or [])
    process = {
        "command": command,
        "commit": _git("rev-parse", "HEAD") or "unknown (not a git checkout)",
        "dirty": _dirty(),
        "device": _device(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_at_start": start_load,
        "runs_trained": [],
        "trains": bool(train_now),
    }
    record = {
        "experiment": name,
        "description": EXPERIMENTS[name]["description"],
        **{key: process[key] for key in ("command", "commit", "dirty", "device")},
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "date": previous.get("date") or process["started"],
        "settings": settings,
        "quick": settings["quick"],
        "full": settings["full"],
        "not_run": not_run,
        # What each variant trains: a preset of ganlib.training.PRESETS, build_pair options
        # and the update scheme.
        "variant_models": {
            v: {
                "model": spec["model"],
                "model_options": spec.get("model_options", {}),
                "update_scheme": spec.get("update_scheme", "ganlib"),
            }
            for v, spec in registry.items()
        },
        "runs": runs,
    }
    earlier_seconds = float(previous.get("wall_seconds", 0.0))
    processes = list(previous.get("processes") or previous.get("sessions") or [])
    grids = list(previous.get("grid_epochs") or [])

    def write_provenance():
        seconds = time.monotonic() - started
        record["wall_seconds"] = round(earlier_seconds + seconds, 1)
        record["runs_finished"] = [r for r in runs if r in finished]
        record["variants_finished"] = [
            v
            for v in registry
            if any(e["variant"] == v for e in runs.values())
            and all(r in finished for r, e in runs.items() if e["variant"] == v)
        ]
        record["run_seconds"], record["run_shared"] = run_seconds, run_shared
        record["runs_untimed"] = [r for r in runs if r in untimed]
        record["grid_epochs"] = grids
        # Unfinished runs and the epochs their run folders hold so far (from 1).
        record["runs_in_progress"] = {
            r: len(read_history(work / r / "history.csv"))
            for r in runs
            if r not in finished and (work / r / "history.csv").is_file()
        }
        this = dict(process, seconds=round(seconds, 1), load_at_end=_load())
        record["processes"] = processes + [this]
        with atomic_write(out / "provenance.json", "w") as file:
            file.write(json.dumps(record, indent=2) + "\n")

    def record_run_time(run, before, started, loads):
        run_seconds[run] = round(before + time.monotonic() - started, 1)
        # The load before this process started: when a later run starts, the load still
        # holds the runs this process trained before it.
        run_shared[run] = bool(run_shared.get(run) or _shared(start_load[0], loads.loads))
        write_provenance()

    # Run folders trained to the end whose history was never copied into `out`.
    lost = [
        r
        for r in runs
        if _finished(work / r, settings["epochs"])
        and not _finished(out / f"history_{r}.csv", settings["epochs"])
    ]
    write_provenance()
    order = [r for r, e in runs.items() if e["variant"] in chosen and e["seed"] in asked]
    for run in order:
        variant, seed = runs[run]["variant"], runs[run]["seed"]
        variant_entry = registry[variant]
        if run in lost:
            # Trained to the end by a process stopped before it recorded the run:
            # finished, but its time was not measured in full.
            if run not in untimed:
                untimed.append(run)
            if run in finished:
                finished.remove(run)  # copied again below, with every epoch
        elif run not in finished and not train_now:
            continue
        elif run not in finished:
            if verbose:
                print(f"{name}: training {run} in {work / run}")
            loads = _LoadSampler()
            progress = functools.partial(
                record_run_time, run, run_seconds.get(run, 0.0), time.monotonic(), loads
            )
            loads.then = progress  # after every epoch: a stopped process leaves the time so far
            train(
                spec=variant_spec(variant_entry, settings, seed),
                run_dir=work / run,
                callbacks=[
                    Measurements(
                        settings["measure_every"],
                        settings["kid_samples"],
                        real_features,
                        extractor,
                        decoder,
                        seed=settings["seed"],
                        final_epoch=settings["epochs"] - 1,
                        strip=strip,
                    ),
                    loads,
                ],
                verbose=verbose,
            )
            process["runs_trained"].append(run)
            progress()
        if run not in finished:
            shutil.copyfile(work / run / "history.csv", out / f"history_{run}.csv")
            finished.append(run)
            # After every run, so that a process stopped later leaves a whole result.
            grids = _copy_grids(work, out, [r for r in runs if r in finished])
        write_provenance()
    done = [r for r in runs if r in finished]
    grids = _copy_grids(work, out, done)
    _write_readme(out, settings, done, not_run)
    write_provenance()
    size = _folder_bytes(out)
    if size > MAX_RESULT_BYTES:
        raise ValueError(
            f"{out} holds {size / 1e6:.2f} MB, more than the {MAX_RESULT_BYTES / 1e6:g} MB a "
            f"committed result may; remove files that run_experiment did not write"
        )
    return record


def check_provenance(folder) -> list[str]:
    """What a recorded result in `folder` lacks, as a list of sentences; empty when complete (chapter 3).

    Checks that provenance.json exists and holds every key of PROVENANCE_KEYS with a
    non-empty value (a result recorded before runs and processes were listed needs
    `variants_finished` and `sessions` instead; one with no finished run yet needs
    `runs_in_progress`), that each finished run has its
    history_<run>.csv, that a result marked full is not quick, and that the folder
    weighs at most 2 MB.
    """
    folder = Path(folder)
    problems = []
    path = folder / "provenance.json"
    if not path.is_file():
        return [f"{folder} has no provenance.json; record results with python -m ganlib experiment"]
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        return [f"{path} is not valid JSON ({error})"]
    keys = PROVENANCE_KEYS
    if "runs" not in record and "variants_finished" in record:  # recorded by an older ganlib
        old = {"runs": "variants_finished", "runs_finished": "variants_finished"}
        keys = tuple(dict.fromkeys(old.get(k, "sessions" if k == "processes" else k) for k in keys))
    for key in keys:
        value = record.get(key)
        if key == "runs_finished" and value == [] and record.get("runs_in_progress"):
            continue  # a stopped experiment, recorded as far as it got
        if value is None or value == "" or value == [] or value == {}:
            problems.append(f"{path} lacks {key!r}")
    for run in record.get("runs_finished") or record.get("variants_finished") or []:
        if not (folder / f"history_{run}.csv").is_file():
            problems.append(f"{folder} lacks history_{run}.csv of finished run {run!r}")
    if record.get("full") and record.get("quick"):
        problems.append(f"{path} says the run is both quick and full; a quick run is never full")
    size = _folder_bytes(folder)
    if size > MAX_RESULT_BYTES:
        problems.append(f"{folder} holds {size} bytes, more than {MAX_RESULT_BYTES}")
    return problems
