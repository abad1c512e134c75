"""Recorded experiments: named, resumable runs whose small results are committed (chapter 3).

`run_experiment(name, out)` (and `python -m ganlib experiment NAME --out FOLDER`) trains
every variant of EXPERIMENTS[name] with the same schedule and seed. The training run
folders, with their checkpoints, live in `work` (default runs/experiments/NAME/...);
the same call again resumes each variant from its newest checkpoint and skips the
finished ones. What is committed goes into `out` (at most 2 MB)::

    OUT/history_<variant>.csv            one row per epoch: losses, accuracies and, every
                                         `measure_every` epochs, kid, kid_std, coverage,
                                         unrecognised and blank_share (nan in between)
    OUT/samples/<variant>_epoch_XXXX.png  fixed-noise grids at a few epochs (those over
                                         120 kB with a 256-colour palette)
    OUT/provenance.json                  the command, commit, device, versions, dates,
                                         wall time, settings, each variant's preset and
                                         model options, the finished variants and the
                                         ones not run (with the reason)
    OUT/README.md                        a table of the last measurements

Experiments: "seed-claim" (the baseline against the improved model as its notebook ran)
and "ablation" (the improved model with one of its changes undone at a time: learning
rates, output range, upsampling, generator BatchNormalization, discriminator pooling,
discriminator dropout). A variant is a preset of ganlib.training.PRESETS plus
`ganlib.models.build_pair` options (`train(model_options=...)`); one that would train
the same network as another at the chosen image size is skipped with the reason.

`check_provenance(folder)` lists what a recorded result lacks.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from ganlib.common import atomic_write
from ganlib.recorded import MEASURED
from ganlib.training.history import read_history

__all__ = [
    "EXPERIMENTS",
    "run_experiment",
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

EXPERIMENTS = {
    "seed-claim": {
        "description": "the anime-face DCGAN project's claim on its own schedule: the baseline "
        "against the improved model with the learning rates its notebook used",
        **_ANIME_SCHEDULE,
        "variants": {
            "baseline": {"model": "baseline"},
            "improved_as_run": {"model": "improved_as_run"},
        },
    },
    "ablation": {
        "description": "the improved model with one of its changes undone at a time, on the "
        "anime-face DCGAN project's schedule; besides the two end points (baseline, "
        "improved_as_run) each variant differs from improved_as_run in one respect",
        **_ANIME_SCHEDULE,
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
    "variants_finished",
    "quick",
    "full",
)
# Grids larger than this are stored with a 256-colour palette.
_GRID_BYTES = 120_000


class Measurements(keras.callbacks.Callback):
    """Keras callback: KID, coverage and blank share of fresh samples every `every` epochs (chapter 3).

    real_features: float (m, d) features of real images from `extractor` (None: no
    KID). extractor: images, value_range= -> features, e.g. DomainFeatures(...).
    decoder: mode_coverage's decoder ("calibrated", "strict", a CalibratedDecoder)
    or None for no coverage. At the end of every `every`-th epoch, and of epoch
    `final_epoch` (counted from 0; None: none), it draws
    model.generate(n_samples, seed=seed) and writes logs["kid"], ["kid_std"],
    ["coverage"], ["unrecognised"] (share the decoder refused) and ["blank_share"]
    (ganlib.metrics.blank_share); other epochs, and what is not measured, get nan,
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
    ):
        super().__init__()
        if every < 1 or n_samples < 2:
            raise ValueError(
                f"every must be at least 1 and n_samples at least 2, got {every} and {n_samples}"
            )
        if (real_features is None) != (extractor is None):
            raise ValueError("give both real_features and extractor for KID, or neither")
        self.every, self.n_samples = int(every), int(n_samples)
        self.real_features, self.extractor, self.decoder = real_features, extractor, decoder
        self.seed, self.final_epoch = seed, final_epoch
        self.history = []

    def measure(self):
        """The measurements of self.model's samples now: dict of floats, nan where not measured."""
        from ganlib import metrics

        images = np.asarray(self.model.generate(self.n_samples, seed=self.seed))
        value_range = getattr(self.model, "value_range", None)
        values = dict.fromkeys(MEASURED, float("nan"))
        values["blank_share"] = metrics.blank_share(images, value_range)
        if self.extractor is not None:
            fake = self.extractor(images, value_range=value_range)
            size = min(1000, len(fake), len(self.real_features))
            values["kid"], values["kid_std"] = metrics.kid(
                self.real_features, fake, 10, size, seed=self.seed
            )
        if self.decoder is not None:
            result = metrics.mode_coverage(images, value_range, decoder=self.decoder)
            values["coverage"] = result["coverage"]
            values["unrecognised"] = result["unrecognised"]
        return {key: float(value) for key, value in values.items()}

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


def _settings(name, *, data, image_size, width, epochs, measure_every, quick, kid):
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
    settings["width"] = float(settings["width"])
    settings.update(experiment=name, quick=bool(quick), kid=bool(kid))
    # A full run is the registered schedule on as many images (toy or real), measured.
    schedule = [key for key in _ANIME_SCHEDULE if key != "data"]
    same_count = settings["data"].rpartition(":")[2] == entry["data"].rpartition(":")[2]
    settings["full"] = bool(
        not quick and kid and same_count and all(settings[k] == entry[k] for k in schedule)
    )
    return settings


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


def _sample_epochs(epochs):
    """The epochs whose grids are kept: the first, a quarter, half way and the last."""
    return sorted({0, max(0, epochs // 4 - 1), max(0, epochs // 2 - 1), epochs - 1})


def _folder_bytes(folder):
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def _finished(run, epochs):
    """True when run/history.csv holds every epoch up to `epochs`."""
    history = run / "history.csv"
    if not history.is_file():
        return False
    rows = read_history(history)
    return bool(rows) and rows[-1]["epoch"] >= epochs - 1


def _copy_results(run, out, variant, epochs):
    """history_<variant>.csv and a few grids from the run folder into `out`; grids left out."""
    shutil.copyfile(run / "history.csv", out / f"history_{variant}.csv")
    left_out = []
    for epoch in _sample_epochs(epochs):
        grid = run / "samples" / f"epoch_{epoch:04d}.png"
        target = out / "samples" / f"{variant}_epoch_{epoch:04d}.png"
        if not grid.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file():
            target.unlink()
        room = MAX_RESULT_BYTES * 0.9 - _folder_bytes(out)
        if grid.stat().st_size > _GRID_BYTES:
            _save_with_palette(grid, target)  # noisy grids: 256 colours, a third of the bytes
        else:
            shutil.copyfile(grid, target)
        if target.stat().st_size > room:
            target.unlink()
            left_out.append(target.name)
    return left_out


def _save_with_palette(source, target):
    from PIL import Image

    with Image.open(source) as picture:
        picture.convert("RGB").quantize(256).save(target, optimize=True)


def _last_measured(rows):
    for row in reversed(rows):
        if not math.isnan(row.get("blank_share", float("nan"))):
            return row
    return rows[-1] if rows else {}


def _write_readme(out, settings, finished, not_run):
    """README.md: which run this is, then a table of each variant's last measurements."""
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
        "| variant | " + " | ".join(columns) + " |",
    ]
    lines.append("|---" * (len(columns) + 1) + "|")
    for variant in finished:
        row = _last_measured(read_history(out / f"history_{variant}.csv"))
        cells = [
            str(row.get(key, "")) if key == "epoch" else f"{row.get(key, float('nan')):.4g}"
            for key in columns
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += ["", "Measured on the last measured epoch (counted from 0); provenance.json says how."]
    for variant, reason in not_run.items():
        lines.append(f"- `{variant}`: {reason}")
    with atomic_write(out / "README.md", "w") as file:
        file.write("\n".join(lines) + "\n")


def _real_features(settings, kid):
    """(real features, extractor, decoder) for the measurements; toy faces get coverage too."""
    if not kid:
        return None, None, None
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
    return extractor(images[chosen]), extractor, ("calibrated" if toy else None)


def _not_run(registry, image_size):
    """{variant: why it is not trained}: those that duplicate another at this image size."""
    return {
        variant: spec["skip_at"][image_size]
        for variant, spec in registry.items()
        if image_size in spec.get("skip_at", {})
    }


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
    command=None,
    verbose=0,
):
    """Train every variant of EXPERIMENTS[name] and record the result in `out` (chapter 3).

    out: the folder to commit (book/results/NAME). work: where the run folders with
    their checkpoints go (default runs/experiments/NAME/<data>_<size>px_w<width>, with
    _quick for quick runs); the same call again resumes each unfinished variant and
    skips the finished ones. data, image_size, width, epochs, measure_every: override
    the registry's (e.g. data="anime-faces:4992", or image_size=32, width=0.25 for
    a CPU). quick: 2 epochs of 4 steps at 32 px, width 0.125, measured every epoch,
    for tests and smoke runs; provenance.json and README.md say so. kid: False
    measures only the blank share (KID and coverage stay nan), for cheap tests.
    variants: names to train now (default every available one). command: the
    command line to record (default: this call written out). verbose: Keras's
    progress output (0 silent, 1 a bar per epoch).

    Experiments: "seed-claim" trains "baseline" and "improved_as_run" (presets of
    ganlib.training.PRESETS). "ablation" trains the two end points "baseline" and
    "improved_as_run", and variants of improved_as_run that each undo one change:
    "lr_ratio" (the "improved" preset, the generator at twice the discriminator's
    rate), "value_range" (sigmoid output, pixels in [0, 1]), "transposed"
    (Conv2DTranspose upsampling), "batchnorm" (no BatchNormalization in the
    generator), "flatten" (Flatten instead of average pooling in the discriminator)
    and "dropout" (no Dropout in the discriminator), passed to `ganlib.train` as
    model_options. At 32 px "flatten" is the same network as improved_as_run and is
    not trained; provenance.json's not_run and README.md say so. Returns the
    provenance dict, whose variant_models names each variant's preset and options.
    """
    from ganlib.training import train

    started = time.monotonic()
    settings = _settings(
        name,
        data=data,
        image_size=image_size,
        width=width,
        epochs=epochs,
        measure_every=measure_every,
        quick=quick,
        kid=kid,
    )
    registry = EXPERIMENTS[name]["variants"]
    not_run = _not_run(registry, settings["image_size"])
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
            ),
        )

    previous = {}
    provenance_path = out / "provenance.json"
    if provenance_path.is_file():
        previous = json.loads(provenance_path.read_text())
        old = {k: v for k, v in previous.get("settings", {}).items() if k not in ("epochs", "full")}
        new = {k: v for k, v in settings.items() if k not in ("epochs", "full")}
        if old != new:
            changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
            raise ValueError(
                f"{out} holds a result of {name!r} with other settings ({', '.join(changed)}); "
                f"use the same settings to continue it, or another --out folder"
            )
    out.mkdir(parents=True, exist_ok=True)

    import tensorflow as tf

    real_features, extractor, decoder = _real_features(settings, kid)
    finished = [v for v in previous.get("variants_finished", []) if v in registry]
    finished = [v for v in finished if _finished(work / v, settings["epochs"])]
    left_out = []
    record = {
        "experiment": name,
        "description": EXPERIMENTS[name]["description"],
        "command": command,
        "commit": _git("rev-parse", "HEAD") or "unknown (not a git checkout)",
        "dirty": _dirty(),
        "device": _device(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "date": previous.get("date")
        or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
        "quick": settings["quick"],
        "full": settings["full"],
        "not_run": not_run,
        # What each variant trains: a preset of ganlib.training.PRESETS and build_pair options.
        "variant_models": {
            v: {"model": spec["model"], "model_options": spec.get("model_options", {})}
            for v, spec in registry.items()
            if "model" in spec
        },
    }
    earlier_seconds = float(previous.get("wall_seconds", 0.0))

    def write_provenance():
        record["wall_seconds"] = round(earlier_seconds + time.monotonic() - started, 1)
        record["variants_finished"] = [v for v in registry if v in finished]
        record["samples_left_out"] = left_out
        sessions = previous.get("sessions", [])
        this = {key: record[key] for key in ("command", "commit", "dirty", "device")}
        this["seconds"] = round(time.monotonic() - started, 1)
        record["sessions"] = sessions + [this]
        with atomic_write(provenance_path, "w") as file:
            file.write(json.dumps(record, indent=2) + "\n")

    for variant in chosen:
        run = work / variant
        spec = registry[variant]
        if not _finished(run, settings["epochs"]):
            if verbose:
                print(f"{name}: training {variant} in {run}")
            train(
                settings["data"],
                model=spec["model"],
                image_size=settings["image_size"],
                epochs=settings["epochs"],
                batch_size=settings["batch_size"],
                run_dir=run,
                steps_per_epoch=settings["steps_per_epoch"],
                seed=settings["seed"],
                width=settings["width"],
                model_options=spec.get("model_options"),
                callbacks=[
                    Measurements(
                        settings["measure_every"],
                        settings["kid_samples"],
                        real_features,
                        extractor,
                        decoder,
                        seed=settings["seed"],
                        final_epoch=settings["epochs"] - 1,
                    )
                ],
                verbose=verbose,
            )
        left_out += _copy_results(run, out, variant, settings["epochs"])
        if variant not in finished:
            finished.append(variant)
        write_provenance()
    _write_readme(out, settings, [v for v in registry if v in finished], not_run)
    write_provenance()
    size = _folder_bytes(out)
    if size > MAX_RESULT_BYTES:
        raise ValueError(
            f"{out} holds {size / 1e6:.2f} MB, more than the {MAX_RESULT_BYTES / 1e6:g} MB a "
            f"committed result may; remove sample grids from {out / 'samples'} before committing"
        )
    if left_out:
        warnings.warn(
            f"left {len(left_out)} sample grid(s) out of {out} to stay under "
            f"{MAX_RESULT_BYTES / 1e6:g} MB: {', '.join(left_out)}",
            stacklevel=2,
        )
    return record


def check_provenance(folder) -> list[str]:
    """What a recorded result in `folder` lacks, as a list of sentences; empty when complete (chapter 3).

    Checks that provenance.json exists and holds every key of PROVENANCE_KEYS with a
    non-empty value, that each finished variant has its history_<variant>.csv, that a
    result marked full is not quick, and that the folder weighs at most 2 MB.
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
    for key in PROVENANCE_KEYS:
        value = record.get(key)
        if value is None or value == "" or value == [] or value == {}:
            problems.append(f"{path} lacks {key!r}")
    for variant in record.get("variants_finished") or []:
        if not (folder / f"history_{variant}.csv").is_file():
            problems.append(f"{folder} lacks history_{variant}.csv of finished variant {variant!r}")
    if record.get("full") and record.get("quick"):
        problems.append(f"{path} says the run is both quick and full; a quick run is never full")
    size = _folder_bytes(folder)
    if size > MAX_RESULT_BYTES:
        problems.append(f"{folder} holds {size} bytes, more than {MAX_RESULT_BYTES}")
    return problems
