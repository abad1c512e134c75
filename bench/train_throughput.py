"""Training throughput: ganlib.train and GAN.fit against a bare loop and train_on_batch.

The bare loop is a Python loop calling a tf.function; train_on_batch is the loop of the
anime-face DCGAN project's notebook (ganlib.training.train_on_batch_loop).

All methods train the improved pair on the README's main-job data (the 20,000 toy
faces) in one process, with the same number of images through the discriminator per
update (batch_size real + batch_size generated) and the generator update on
batch_size noise vectors. Each method runs, in --rounds rounds that alternate the
methods, a warm-up window (tracing, first allocations) and --windows timed windows
of --steps updates; the figure is the median window's real images per second.
`train` is the command line's own path: ganlib.train into a run folder with its
default callbacks and the progress bar (verbose=1, to a discarded stdout), one
window per epoch; its epoch-end work (sample grid, history.csv, checkpoint) is timed
apart, since the main job's epochs are 625 steps long, not --steps.

    python bench/train_throughput.py                 # CPU defaults: 32 px, width 0.25
    python bench/train_throughput.py --image-size 64 --width 1.0 --mixed-precision on --xla on
    python bench/train_throughput.py --methods bare,fit_k --batch-size 128 --json out.json \
        --results-file /tmp/RESULTS.md          # what bench/gpu.sh runs, stage by stage

It prints a table with ratios and appends a row to bench/RESULTS.md (--no-record: don't;
--results-file: another file). --methods picks some of bare, fit, fit_k, train, tob (the
row shows "-" for the others); --model baseline times the baseline pair instead of the
improved one. --json writes the figures, the row and the ratios to a file, rewritten after
each round ("complete": false until the last), so a run stopped by a timeout still leaves
what it measured.
Goals: fit within 5% of the bare loop on any device; train within 10% of the best fit;
fit at least 5x train_on_batch on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_description

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Training throughput (bench/train_throughput.py)"
SECTION_TEXT = (
    "Real images per second of one training update (batch B real + B generated through the "
    "discriminator, B noise vectors through the generator update), median of the timed "
    "windows (the methods take turns in rounds, each run starting with an untimed warm-up "
    "window); improved model, Adam, the 20,000 toy faces of the README's main job. bare = "
    "Python loop calling a tf.function that takes the next batch and runs GAN.train_step; "
    "fit = GAN.fit with Keras's default one step per call; fit k = GAN.fit with k steps per "
    "call (steps_per_execution, what ganlib.train chooses); train = ganlib.train as the "
    "command line calls it (run folder, its own callbacks, progress bar), one window per "
    "epoch; epoch end = its sample grid, history.csv and checkpoint after each epoch, "
    "median seconds (the main job's epochs are 625 steps); tob = the anime-face DCGAN "
    "notebook's train_on_batch loop (ganlib.training.train_on_batch_loop).\n\n"
    "| date | device | TensorFlow | settings | bare (img/s) | fit (img/s) "
    "| fit, k steps/call (img/s) (k) | train (img/s) | train epoch end (s) | tob (img/s) "
    "| fit / bare | fit k / bare | train / best fit | best fit / tob |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def device_description(tf) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    return f"CPU {cpu_description()}"


METHODS = ("bare", "fit", "fit_k", "train", "tob")
# the anime-face project's whole run: 31,200 updates of the improved pair (200 epochs of 156)
FULL_RUN_UPDATES = 31_200


def record(row: str, results: Path | None = None) -> None:
    """Add `row` at the end of this script's table in RESULTS.md, creating file or section as needed.

    A new section goes before any other, so scripts that append to the last section keep doing so.
    """
    results = RESULTS if results is None else Path(results)
    text = results.read_text() if results.exists() else ""
    if not text.strip():
        text = "# Benchmark results\n\nRows are appended by the scripts in bench/.\n"
    lines = text.rstrip("\n").split("\n")
    if SECTION not in lines:
        first = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        block = [SECTION, "", *SECTION_TEXT.rstrip("\n").split("\n"), ""]
        lines[first:first] = block if first < len(lines) else ["", *block[:-1]]
    start = lines.index(SECTION)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    last_row = max(i for i in range(start, end) if lines[i].startswith("|"))
    lines.insert(last_row + 1, row)
    results.write_text("\n".join(lines) + "\n")


def median_rate(times, images_per_window):
    return images_per_window / statistics.median(times)


def main(argv=None) -> int:
    import tensorflow as tf

    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, choices=(32, 64), default=64 if on_gpu else 32)
    parser.add_argument("--width", type=float, default=1.0 if on_gpu else 0.25)
    parser.add_argument("--batch-size", type=int, default=32)
    # 25 and 50 both make 5 steps per call, as the main job's 625-step epochs do; shorter
    # windows would weigh each epoch's fixed work (train's epochs are the windows) 60x more
    # than the main job does.
    parser.add_argument(
        "--steps", type=int, default=50 if on_gpu else 25, help="updates per timed window"
    )
    parser.add_argument("--windows", type=int, default=3, help="timed windows per method and round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, each running every method once"
    )
    parser.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--xla", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--skip-tob", action="store_true", help="leave out the train_on_batch loop")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated, some of {', '.join(METHODS)} (default: all)",
    )
    parser.add_argument(
        "--model", choices=("improved", "baseline"), default="improved", help="the pair to time"
    )
    parser.add_argument("--note", default="", help="words put before the row's settings")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument(
        "--results-file", type=Path, default=RESULTS, help="the Markdown file the row goes to"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown or not chosen:
        parser.error(
            f"--methods: unknown {', '.join(unknown) or 'empty list'}; choose from {METHODS}"
        )
    if args.skip_tob:
        chosen = [m for m in chosen if m != "tob"]

    import keras
    import numpy as np

    from ganlib import training
    from ganlib.data import image_dataset, load_source
    from ganlib.models import build_pair
    from ganlib.training.devices import dtype_policy

    keras.utils.set_random_seed(0)
    batch, steps, windows = args.batch_size, args.steps, args.windows
    policy = training.mixed_precision_policy(args.mixed_precision)
    jit = training.use_xla(args.xla)
    faces, _ = load_source("toy-faces", args.image_size)  # the README's main job's data
    per_window = batch * steps
    settings = (
        f"{args.note + ', ' if args.note else ''}"
        f"{'' if args.model == 'improved' else args.model + ' pair, '}"
        f"{args.image_size} px, width {args.width:g}, batch {batch}, "
        f"{args.rounds}x{windows}x{steps} steps, "
        f"{policy}, XLA {'on' if jit else 'off'}"
    )
    device = device_description(tf)
    print(f"device: {device}; TensorFlow {tf.__version__}; {settings}", flush=True)

    per_call = training.steps_per_call(steps)
    with dtype_policy(policy):
        # Two identical GANs: fit one step per call (Keras's default) and fit `per_call`
        # steps per call (what ganlib.train and the CLI use).
        gan, gan_k = (
            training.GAN.from_preset(
                args.model,
                args.image_size,
                width=args.width,
                seed=0,
                jit_compile=jit,
                steps_per_execution=k,
            )
            for k in (1, per_call)
        )
    data = image_dataset(faces, batch, gan.value_range, shuffle=True, seed=0, repeat=True)

    # (c) bare loop: a Python loop calling a tf.function that takes the next batch and runs
    # the same train_step (jit-compiled like fit's when XLA is on)
    train_step = tf.function(gan.train_step, jit_compile=jit)

    @tf.function
    def step(iterator):
        return train_step(next(iterator))

    iterator = iter(data)

    def time_bare():
        times = []
        for _ in range(windows + 1):
            start = time.perf_counter()
            for _ in range(steps):
                logs = step(iterator)
            float(logs["d_loss"])  # wait for the device
            times.append(time.perf_counter() - start)
        return times[1:]  # the first window is the warm-up

    # (a) GAN.fit: one epoch per window, timed by a callback with epoch hooks only
    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    def time_fit(model):
        def measure():
            timer = EpochTimes()
            model.fit(data, epochs=windows + 1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
            return timer.times[1:]

        return measure

    # (d) ganlib.train as the command line calls it: a run folder, the run's own callbacks
    # and the progress bar (to a discarded stdout); one window per epoch
    class TrainTimes(keras.callbacks.Callback):
        """Epoch windows, and the gaps between them (the other callbacks' epoch-end work)."""

        def on_train_begin(self, logs=None):
            self.times, self.ends, self.stamp = [], [], None

        def on_epoch_begin(self, epoch, logs=None):
            if self.stamp is not None:
                self.ends.append(time.perf_counter() - self.stamp)
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.stamp = time.perf_counter()
            self.times.append(self.stamp - self.start)

        def on_train_end(self, logs=None):
            self.ends.append(time.perf_counter() - self.stamp)

    epoch_ends = []

    def time_train():
        timer = TrainTimes()
        with tempfile.TemporaryDirectory() as folder, open(os.devnull, "w") as quiet:
            with contextlib.redirect_stdout(quiet):
                training.train(
                    faces,
                    model=args.model,
                    image_size=args.image_size,
                    width=args.width,
                    epochs=windows + 1,
                    batch_size=batch,
                    run_dir=Path(folder) / "run",
                    steps_per_epoch=steps,
                    mixed_precision=args.mixed_precision,
                    xla=args.xla,
                    verbose=1,
                    callbacks=[timer],
                )
        epoch_ends.extend(timer.ends[1:])
        return timer.times[1:]

    # (b) the notebook's loop with the same batch sizes: one call, timed per window of iterations
    with dtype_policy(policy):
        generator, discriminator = build_pair(args.model, args.image_size, width=args.width)
    low, high = gan.value_range
    real = faces.astype(np.float32) / 255.0 * (high - low) + low

    def time_tob():
        stamps = []
        training.train_on_batch_loop(
            generator,
            discriminator,
            real,
            iterations=(windows + 1) * steps,
            batch_size=batch,
            generator_batch=batch,
            callback=lambda i, logs: stamps.append(time.perf_counter()),
        )
        ends = stamps[steps - 1 :: steps]
        return [b - a for a, b in zip(ends[:-1], ends[1:], strict=False)]

    measures = {
        "bare": time_bare,
        "fit": time_fit(gan),
        "fit_k": time_fit(gan_k),
        "train": time_train,
        "tob": time_tob,
    }
    methods = {name: measures[name] for name in METHODS if name in chosen}
    labels = {
        "bare": "bare loop",
        "fit": "GAN.fit, 1 step/call",
        "fit_k": f"GAN.fit, {per_call} steps/call",
        "train": f"ganlib.train, {per_call} steps/call",
        "tob": "train_on_batch",
    }
    date = datetime.date.today().isoformat()

    def summary(rates, complete):
        """Ratios (None where a method is missing), the table row, and the JSON record."""

        def ratio(a, b):
            return rates[a] / rates[b] if a in rates and b in rates else None

        fits = [rates[name] for name in ("fit", "fit_k") if name in rates]
        best = max(fits) if fits else None
        ratios = {
            "fit_over_bare": ratio("fit", "bare"),
            "fit_k_over_bare": ratio("fit_k", "bare"),
            "train_over_best_fit": rates["train"] / best if best and "train" in rates else None,
            "best_fit_over_tob": best / rates["tob"] if best and "tob" in rates else None,
        }
        fastest = max(rates.values()) if rates else None
        end = statistics.median(epoch_ends) if epoch_ends else None
        # other processes on the machine slow every method; the load says how busy it was
        end_load = f" (at the end {os.getloadavg()[0]:.1f})" if hasattr(os, "getloadavg") else ""
        end_load = "" if on_gpu else end_load

        def cell(value, form):
            return "-" if value is None else format(value, form)

        fit_k = f"{rates['fit_k']:.1f} ({per_call})" if "fit_k" in rates else "-"
        vs_tob = ratios["best_fit_over_tob"]
        row = (
            f"| {date} | {device}{end_load} | {tf.__version__} "
            f"| {settings} | {cell(rates.get('bare'), '.1f')} | {cell(rates.get('fit'), '.1f')} "
            f"| {fit_k} | {cell(rates.get('train'), '.1f')} | {cell(end, '.2f')} "
            f"| {cell(rates.get('tob'), '.1f')} "
            f"| {cell(ratios['fit_over_bare'], '.3f')} | {cell(ratios['fit_k_over_bare'], '.3f')} "
            f"| {cell(ratios['train_over_best_fit'], '.3f')} "
            f"| {'-' if vs_tob is None else f'{vs_tob:.2f}x'} |"
        )
        return {
            "kind": "train_throughput",
            "complete": complete,
            "date": date,
            "device": device,
            "on_gpu": on_gpu,
            "tensorflow": tf.__version__,
            "settings": settings,
            "model": args.model,
            "image_size": args.image_size,
            "width": args.width,
            "batch_size": batch,
            "policy": policy,
            "xla": bool(jit),
            "steps": steps,
            "windows": windows,
            "rounds": args.rounds,
            "steps_per_call": per_call,
            "methods": list(methods),
            "rates": rates,
            "epoch_end_s": end,
            "ratios": ratios,
            # the anime-face project's whole run at this batch size and the fastest method's rate
            "full_run_updates": FULL_RUN_UPDATES,
            "full_run_s": FULL_RUN_UPDATES * batch / fastest if fastest else None,
            "fastest_method": max(rates, key=rates.get) if rates else None,
            "row": row,
        }

    def write_json(record_):
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            partial = args.json.with_name(args.json.name + ".tmp")
            partial.write_text(json.dumps(record_, indent=1) + "\n")
            partial.replace(args.json)

    times = {name: [] for name in methods}
    for round_ in range(args.rounds):  # rounds alternate the methods, so a slow spell hits all
        for name, measure in methods.items():
            times[name] += measure()
            rate = per_window / statistics.median(times[name])
            print(f"round {round_ + 1}: {name:<5} {rate:9.1f} images/s", flush=True)
        done = {name: median_rate(values, per_window) for name, values in times.items() if values}
        write_json(summary(done, complete=round_ + 1 == args.rounds))
    rates = {name: median_rate(values, per_window) for name, values in times.items()}
    result = summary(rates, complete=True)
    ratios = result["ratios"]

    print(f"\n{'method':<24}{'images/s':>10}{'s/update':>10}{'vs bare':>9}")
    for name, label in labels.items():
        if name in rates:
            relative = f"{rates[name] / rates['bare']:9.2f}" if "bare" in rates else f"{'-':>9}"
            print(f"{label:<24}{rates[name]:10.1f}{batch / rates[name]:10.3f}{relative}")
    if ratios["fit_over_bare"] is not None or ratios["fit_k_over_bare"] is not None:
        parts = []
        if ratios["fit_over_bare"] is not None:
            parts.append(f"{ratios['fit_over_bare']:.3f} at 1 step per call")
        if ratios["fit_k_over_bare"] is not None:
            parts.append(f"{ratios['fit_k_over_bare']:.3f} at {per_call}")
        print(f"\nfit / bare loop: {', '.join(parts)} (goal: at least 0.95)")
    if ratios["train_over_best_fit"] is not None:
        print(
            f"train / best fit: {ratios['train_over_best_fit']:.3f} (goal: at least 0.90); "
            f"its epoch-end work took {result['epoch_end_s']:.2f} s "
            "(sample grid, history.csv, checkpoint)"
        )
    if ratios["best_fit_over_tob"] is not None:
        print(
            f"fit / train_on_batch: {ratios['best_fit_over_tob']:.2f}x (goal on a GPU: at least 5x)"
        )
    print(
        f"{FULL_RUN_UPDATES:,} updates at batch {batch} at the fastest rate "
        f"({result['fastest_method']}): {result['full_run_s']:.0f} s "
        "(goal for the improved pair at batch 32 on an H100-class GPU: at most 120 s)"
    )
    write_json(result)

    if not args.no_record:
        record(result["row"], args.results_file)
        print(f"appended to {args.results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
