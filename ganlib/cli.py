"""The command line: `python -m ganlib COMMAND ...` or `ganlib COMMAND ...` (chapter 5).

Commands:
  data SOURCE [--preview grid.png] [--image-size 32|64] [--n N]
      load a data source, print how many images of what size were read and
      which files were skipped, and write a grid of the first N images.
  train --data SOURCE --run FOLDER [--model NAME] [--epochs N] [--batch-size B] ...
      train a GAN preset into a run folder (grids, checkpoints, history.csv);
      the same command again resumes from the newest checkpoint. One process at a
      time trains in a folder; --restart starts over in it, keeping the earlier
      run's files in FOLDER/set-aside/.
  sample --run FOLDER --out grid.png [--n N] [--seed S]
      draw a grid of samples from a run's newest checkpoint.
  export --run FOLDER --out generator.keras [--overwrite]
      write the run's generator as a .keras file that Keras loads without ganlib,
      with a generator.json beside it (latent size, value range); never over the
      run's own files, and over an existing file only with --overwrite.
  experiment NAME --out FOLDER [--quick] [--variants A,B] [--data SOURCE] [--image-size 32|64] ...
      run a named experiment (seed-claim, ablation), or some of its variants, and
      record its small result with provenance; the same command again resumes.

Each command is a pair of functions, `_add_X(subparsers)` which declares its
arguments and sets `run=_run_X`, and `_run_X(args) -> int`; add the pair to
COMMANDS.

Exit codes and what is printed on stderr:
  0  done.
  2  bad arguments, or an error that ganlib raised itself (ValueError, OSError such
     as FileNotFoundError, ImportError): one line, `ganlib: error: MESSAGE`, since
     ganlib's messages say what to do.
  1  any other error (one line naming it, e.g. a ValueError raised inside Keras), out
     of memory (one line suggesting a smaller --batch-size or --width), or a training
     stopped by a NaN loss.
  130  interrupted with Ctrl-C; `train` says which checkpoint the same command resumes from.
`--traceback` (before or after the command) lets every error through with its full
traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import warnings
from pathlib import Path

from ganlib.common import IMAGE_SIZES

PROG = "ganlib"
_PACKAGE_DIR = Path(__file__).resolve().parent
# The errors ganlib raises for bad input or a missing file, with a message that says what to do.
_OWN_ERRORS = (ValueError, OSError, ImportError)


class _UsageError(Exception):
    """A bad command line, reported as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and returns to main()."""

    def error(self, message):
        raise _UsageError(message)


def _fail(message) -> int:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return 2


def _describe(error) -> str:
    """`Type: first line of the message`, cut to a length that fits one line."""
    lines = str(error).strip().splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) > 200:  # TensorFlow's messages can run to thousands of characters
        first = first[:200] + " ..."
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _raised_by_ganlib(error: BaseException) -> bool:
    """True when the innermost frame of `error`'s traceback is a file of the ganlib package.

    ganlib raises plain ValueError / FileNotFoundError whose messages say what to do
    (a bad --data spec, a folder that is not a run), so for those one line is enough.
    The same types raised inside Keras, TensorFlow or NumPy mean a bug or a situation
    nobody planned for, and there the traceback is what shows where it came from; the
    type alone cannot tell the two apart, the place where it was raised can.
    """
    frame = error.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    try:
        return Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE_DIR)
    except (OSError, ValueError):  # "<frozen ...>", "<string>" and the like
        return False


@contextlib.contextmanager
def _quiet_stderr_fd():
    """Send what C++ code writes to file descriptor 2 to /dev/null while the block runs.

    TensorFlow's C++ code logs a few lines while it loads (oneDNN, CUDA probing) before
    its log level applies; a Python error raised in the block still prints, after it.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (an embedding host): nothing to quiet
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _tensorflow_settings(needed: bool):
    """Quiet TensorFlow's C++ log and turn off Keras's and TensorFlow's traceback filtering.

    The log level only counts if set before TensorFlow is imported, hence here. Keras
    and TensorFlow both cut their own frames out of the tracebacks of errors that pass
    through them: a ValueError raised deep inside Keras while ganlib's code called it
    would end its traceback in ganlib's file, and `_raised_by_ganlib` would take a Keras
    error for one of ganlib's. Only for commands that use TensorFlow, so that `data`
    does not import it; the previous settings come back when the command ends.
    """
    if not needed:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # its C++ log lines are noise here
    with _quiet_stderr_fd():  # the lines TensorFlow's C++ code writes while it loads
        import keras
        import tensorflow as tf

    keras_on = keras.config.is_traceback_filtering_enabled()
    tf_on = tf.debugging.is_traceback_filtering_enabled()
    keras.config.disable_traceback_filtering()
    tf.debugging.disable_traceback_filtering()
    try:
        yield
    finally:
        if keras_on:
            keras.config.enable_traceback_filtering()
        if tf_on:
            tf.debugging.enable_traceback_filtering()


def _out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    tf = sys.modules.get("tensorflow")  # an out-of-memory error from TensorFlow means it is loaded
    return tf is not None and isinstance(error, tf.errors.ResourceExhaustedError)


def _writable_file(text: str) -> Path:
    """argparse type for an output file: its folder must exist (or be creatable) and be writable."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name such as grid.png")
    from PIL import Image

    Image.init()
    if path.suffix.lower() not in Image.registered_extensions():
        raise argparse.ArgumentTypeError(f"{text}: unknown image type {path.suffix!r}; use .png")
    return _check_folder(path, text)


def _check_folder(path: Path, text: str) -> Path:
    parent = path.parent
    while not parent.exists():  # the nearest existing folder must let us create the rest
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: {parent} is not a writable folder")
    return path


def _keras_file(text: str) -> Path:
    """argparse type for the export's output: a writable file name ending in .keras."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text} is a folder; give a file name such as generator.keras"
        )
    if path.suffix != ".keras":
        raise argparse.ArgumentTypeError(
            f"{text} does not end in .keras; give a file name such as generator.keras"
        )
    return _check_folder(path, text)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def _add_data(subparsers) -> None:
    from ganlib.data import SOURCES_HELP

    parser = subparsers.add_parser(
        "data",
        help="load a data source, report it and write a preview grid",
        description="Load a data source, print how many images of what size were read "
        "and which files were skipped, and optionally write a preview grid.",
    )
    parser.add_argument("source", metavar="SOURCE", help=SOURCES_HELP)
    parser.add_argument(
        "--preview", type=_writable_file, metavar="PNG", help="write a grid of the first images"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        choices=IMAGE_SIZES,
        default=64,
        help="side in pixels (default 64)",
    )
    parser.add_argument(
        "--n", type=_positive_int, default=64, metavar="N", help="preview images (default 64)"
    )
    parser.set_defaults(run=_run_data)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run_data(args) -> int:
    from ganlib.data import load_source
    from ganlib.grids import save_grid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped files are printed below instead
        images, description, report = load_source(args.source, args.image_size, with_report=True)
    n, height, width, channels = images.shape
    print(f"source: {description}")
    print(f"images: {n}")
    print(f"size: {height}x{width}x{channels} {images.dtype}")
    skipped = report.skipped if report is not None else ()
    print(f"skipped: {len(skipped)} file(s)")
    for name, reason in skipped[:20]:
        print(f"  {name}: {reason}")
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more")
    if args.preview is not None:
        shown = images[: args.n]
        save_grid(args.preview, shown, scale=2 if height <= 32 else 1)
        print(f"preview: {args.preview} ({len(shown)} images)")
    return 0


# ---------------------------------------------------------------------------
# train and sample
# ---------------------------------------------------------------------------

_MODELS_HELP = (
    "preset: baseline, improved, cifar or hybrid (chapter 4's quick recipe; also "
    "improved_as_run and mlp); default improved"
)


def _number(text: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _integer(text: str) -> int:
    """An integer, parsed only: a run setting's range is RunSpec's to check."""
    return _number(text, int)


def _non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if not 0 < value < float("inf"):  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _add_train(subparsers) -> None:
    from ganlib.data import SOURCES_HELP

    parser = subparsers.add_parser(
        "train",
        help="train a GAN into a run folder; the same command again resumes it",
        description="Train a GAN preset on a data source. Sample grids, checkpoints and "
        "history.csv go into the run folder; running the same command again continues "
        "from the newest checkpoint up to --epochs in total.",
    )
    parser.add_argument("--data", required=True, metavar="SOURCE", help=SOURCES_HELP)
    parser.add_argument("--model", default="improved", metavar="NAME", help=_MODELS_HELP)
    parser.add_argument(
        "--image-size",
        type=int,
        choices=IMAGE_SIZES,
        default=64,
        help="image side in pixels (default 64)",
    )
    parser.add_argument(
        "--epochs", type=_integer, default=10, metavar="N", help="epochs in total (default 10)"
    )
    parser.add_argument(
        "--batch-size",
        type=_integer,
        metavar="B",
        help="real images per update (default: the preset's)",
    )
    _add_run(parser, "run folder, e.g. runs/faces")
    parser.add_argument(
        "--steps-per-epoch", type=_integer, metavar="K", help="default: images // batch size"
    )
    parser.add_argument(
        "--seed",
        type=_integer,
        default=0,
        help="initial weights, noise and data order (default 0)",
    )
    parser.add_argument(
        "--width",
        type=_number,
        default=1.0,
        metavar="W",
        help="filter count multiplier (default 1.0, the published model)",
    )
    parser.add_argument(
        "--lr",
        type=_number,
        metavar="LR",
        help="discriminator learning rate (default: the preset's); without --g-lr the "
        "generator keeps the preset's ratio to it",
    )
    parser.add_argument(
        "--g-lr",
        type=_number,
        metavar="LR",
        help="generator learning rate (default: the preset's, or its ratio to --lr)",
    )
    parser.add_argument(
        "--beta-1",
        type=_number,
        metavar="B",
        help="Adam's beta_1 for both networks (default: the preset's)",
    )
    parser.add_argument(
        "--d-steps",
        type=_integer,
        default=1,
        metavar="K",
        help="discriminator updates per generator update (default 1)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        default="auto",
        help="default auto: on for GPUs and TPUs",
    )
    parser.add_argument(
        "--xla",
        choices=("auto", "on", "off"),
        default="auto",
        help="default auto: on for GPUs and TPUs",
    )
    parser.add_argument(
        "--ema", type=_number, metavar="DECAY", help="keep an EMA copy of the generator, e.g. 0.99"
    )
    parser.add_argument("--ada", action="store_true", help="adaptive discriminator augmentation")
    parser.add_argument(
        "--kid-every",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="log KID every N epochs (default 0: never)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="STEPS",
        help="also checkpoint every STEPS steps",
    )
    # The cures of mode collapse (chapter 4), as in ganlib.train.
    parser.add_argument(
        "--loss",
        choices=("bce", "hinge", "wgan-gp"),
        default="bce",
        help="the GAN loss (default bce, the non-saturating cross-entropy)",
    )
    parser.add_argument(
        "--gp-weight",
        type=_number,
        default=10.0,
        metavar="W",
        help="gradient penalty weight of --loss wgan-gp (default 10)",
    )
    parser.add_argument(
        "--r1-gamma",
        type=_number,
        default=0.0,
        metavar="G",
        help="R1 penalty on real images, (G/2) * mean squared gradient (default 0: off)",
    )
    parser.add_argument(
        "--spectral-norm",
        action="store_true",
        help="spectral normalisation of the discriminator's layers",
    )
    parser.add_argument(
        "--minibatch-std",
        action="store_true",
        help="a minibatch standard deviation feature map in the discriminator",
    )
    parser.add_argument(
        "--label-smoothing",
        type=_number,
        metavar="S",
        help="label real images 1 - S (bce only; default: the preset's)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start over in this run folder: its earlier run.json, history.csv, samples and "
        "checkpoints are first moved to FOLDER/set-aside/TIME-restart/ (nothing is deleted)",
    )
    parser.set_defaults(run=_run_train, tensorflow=True, out_of_memory=_train_out_of_memory)


def _span(names) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"


def _train_out_of_memory(args) -> str:
    from ganlib.training import PRESETS, list_checkpoints

    batch_size = args.batch_size or PRESETS[args.model].batch_size
    half_batch = f"--batch-size (e.g. {batch_size // 2})" if batch_size >= 4 else None
    half_width = f"--width (e.g. {args.width / 2:g})"
    said = f"out of memory training with batch size {batch_size} and width {args.width:g}"
    # A run folder keeps its width from the start (run.json), and its batch size once a
    # checkpoint exists (the data order depends on it), so say where each change can go.
    if list_checkpoints(args.run_dir / "checkpoints"):
        smaller = " or ".join(option for option in (half_batch, half_width) if option)
        return (
            f"{said}; start again in a new --run folder with a smaller {smaller}: "
            f"{args.run_dir} resumes only with the batch size and width it was made with"
        )
    if half_batch is None:
        return f"{said}; run again with a smaller {half_width} in a new --run folder"
    return (
        f"{said}; run again with a smaller {half_batch}, or with a smaller {half_width} "
        f"in a new --run folder (a run folder keeps its width)"
    )


def _train_spec(args):
    """The RunSpec a `train` command asks for (ValueError naming a bad setting)."""
    from ganlib.training import run_spec

    given = {
        "batch_size": args.batch_size,
        "steps_per_epoch": args.steps_per_epoch,
        "g_learning_rate": args.g_lr,
        "beta_1": args.beta_1,
        "ema": args.ema,
        "label_smoothing": args.label_smoothing,
    }
    try:
        return run_spec(
            args.data,
            model=args.model,
            image_size=args.image_size,
            epochs=args.epochs,
            seed=args.seed,
            width=args.width,
            learning_rate=args.lr,
            d_steps=args.d_steps,
            ada=args.ada,
            loss=args.loss,
            gp_weight=args.gp_weight,
            r1_gamma=args.r1_gamma,
            spectral_norm=args.spectral_norm,
            minibatch_std=args.minibatch_std,
            **{key: value for key, value in given.items() if value is not None},
        )
    except ValueError as error:
        # RunSpec names the setting; the command line's user typed its flag.
        text = str(error)
        for setting, flag in _SPEC_FLAGS.items():
            if text.startswith((setting + " ", setting.replace("_", " ") + " ")):
                raise ValueError(f"argument {flag}: {text}") from None
        raise


# RunSpec settings and the train flags that set them (the error of a bad value names both).
_SPEC_FLAGS = {
    "model": "--model",
    "image_size": "--image-size",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "steps_per_epoch": "--steps-per-epoch",
    "seed": "--seed",
    "width": "--width",
    "learning_rate": "--lr",
    "d_learning_rate": "--lr",
    "g_learning_rate": "--g-lr",
    "beta_1": "--beta-1",
    "d_steps": "--d-steps",
    "ema": "--ema",
    "gp_weight": "--gp-weight",
    "r1_gamma": "--r1-gamma",
    "label_smoothing": "--label-smoothing",
}


def _run_train(args) -> int:
    from ganlib.training import list_checkpoints, train

    spec = _train_spec(args)
    try:
        _, history = train(
            spec=spec,
            run_dir=args.run_dir,
            mixed_precision=args.mixed_precision,
            xla=args.xla,
            kid_every=args.kid_every,
            checkpoint_every=args.checkpoint_every,
            restart=args.restart,
            verbose=1,
        )
    except FloatingPointError as error:
        print(f"{PROG}: training stopped: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        saved = list_checkpoints(args.run_dir / "checkpoints")
        if saved:
            message = f"interrupted; the same command resumes from {saved[-1]}"
        else:
            message = "interrupted; no checkpoint was written yet; the same command starts again"
        print(f"{PROG}: {message}", file=sys.stderr)
        if args.traceback:
            raise
        return 130
    run = args.run_dir
    grids = sorted(path.name for path in (run / "samples").glob("epoch_*.png"))
    saved = list_checkpoints(run / "checkpoints")
    epochs = history.get("epoch", [])
    print(f"run folder: {run}")
    if grids:
        print(
            f"samples: {run / 'samples'} ({_span(grids)}, {len(grids)} grid{'s' * (len(grids) != 1)})"
        )
    if saved:
        print(f"checkpoints: {run / 'checkpoints'} (newest {saved[-1].name}, {len(saved)} kept)")
    if epochs:
        print(f"history: {run / 'history.csv'} (epochs {epochs[0]} to {epochs[-1]})")
    print("the same command again resumes; raise --epochs to train longer")
    return 0


def _add_run(parser, help_text) -> None:
    parser.add_argument(
        "--run", dest="run_dir", type=Path, required=True, metavar="FOLDER", help=help_text
    )


def _add_sample(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="draw a grid of samples from a run's newest checkpoint",
        description="Draw samples from the newest checkpoint of a run folder (the EMA "
        "generator when the run has one) and save them as one grid.",
    )
    _add_run(parser, "run folder made by train")
    parser.add_argument(
        "--n", type=_positive_int, default=64, metavar="N", help="number of samples (default 64)"
    )
    parser.add_argument(
        "--out", type=_writable_file, required=True, metavar="PNG", help="where to write the grid"
    )
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="noise seed (default 0)")
    parser.set_defaults(run=_run_sample, tensorflow=True)


# The widest sample grid `sample` writes, in pixels a side: --n 100000 would make a PNG
# of 21,560 x 21,560 pixels (and draw 100,000 samples first).
MAX_GRID_SIDE = 4096


def _grid_side(n, image_size) -> int:
    """Pixels a side of `sample`'s grid of n images (as square as n allows, 2 px padding)."""
    cols, scale = math.ceil(math.sqrt(n)), 2 if image_size <= 32 else 1
    return scale * (cols * image_size + (cols + 1) * 2)


def _run_sample(args) -> int:
    from ganlib.grids import save_grid
    from ganlib.training import load_run, run_info_spec
    from ganlib.training.runs import read_run_info, run_files

    own = run_files(args.run_dir, args.out)
    if own is not None:
        raise ValueError(
            f"--out {args.out} is inside the run's own {own.name}; give a file outside "
            f"{own}, e.g. {args.run_dir / 'sampled.png'}"
        )
    image_size = run_info_spec(read_run_info(args.run_dir)).image_size
    side = _grid_side(args.n, image_size)
    if side > MAX_GRID_SIDE:
        most = 1
        while _grid_side((most + 1) ** 2, image_size) <= MAX_GRID_SIDE:
            most += 1
        raise ValueError(
            f"--n {args.n} would make one PNG of {side:,} x {side:,} pixels; a grid of "
            f"{image_size} px samples holds at most {most * most:,} samples within "
            f"{MAX_GRID_SIDE:,} pixels a side: draw several grids with smaller --n and "
            f"different --seed values"
        )
    gan = load_run(args.run_dir)
    images = gan.generate(args.n, seed=args.seed)
    save_grid(
        args.out, images, value_range=gan.value_range, scale=2 if images.shape[1] <= 32 else 1
    )
    state = gan.checkpoint
    source = "EMA generator" if gan.ema_generator is not None else "generator"
    print(
        f"wrote {args.out}: {args.n} samples from the {source} of {args.run_dir} "
        f"(after {state['epoch']} epochs, step {state['step']})"
    )
    return 0


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


def _add_export(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a run's generator as a .keras file that Keras loads without ganlib",
        description="Write the generator of a run's newest checkpoint (the EMA generator "
        "when the run has one) as a .keras file, and next to it a .json file with the "
        "latent size and the output value range, which the .keras file does not keep.",
    )
    _add_run(parser, "run folder made by train")
    parser.add_argument(
        "--out",
        type=_keras_file,
        required=True,
        metavar="FILE",
        help="where to write the model, e.g. generator.keras",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace FILE and its .json if they exist (never the run's own files)",
    )
    parser.set_defaults(run=_run_export, tensorflow=True)


def _run_export(args) -> int:
    from ganlib.training import export_generator

    meta = export_generator(args.run_dir, args.out, overwrite=args.overwrite)
    source = "EMA generator" if meta["generator"] == "ema_generator" else "generator"
    shape = ", ".join(str(size) for size in meta["image_shape"])
    value_range = meta["value_range"]
    values = "unbounded" if value_range is None else f"in [{value_range[0]:g}, {value_range[1]:g}]"
    print(
        f"wrote {args.out}: the {source} of {args.run_dir} "
        f"(after {meta['epoch']} epochs, step {meta['step']})"
    )
    print(
        f"it maps float32 noise (n, {meta['latent_dim']}) from a standard normal "
        f"to float32 images (n, {shape}) {values}"
    )
    print(f"wrote {args.out.with_suffix('.json')}: latent_dim and value_range for the model")
    print("load it with keras.models.load_model; ganlib is not needed")
    return 0


# ---------------------------------------------------------------------------
# experiment
# ---------------------------------------------------------------------------


def _add_experiment(subparsers) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="run a named experiment and record its small result; the same command resumes",
        description="Train every variant of a named experiment (seed-claim, ablation) with "
        "the same schedule. Run folders with checkpoints go into --work; histories, a few "
        "sample grids and provenance.json go into --out (at most 2 MB, to commit). The "
        "same command again resumes each unfinished variant and skips finished ones.",
    )
    parser.add_argument("name", metavar="NAME", help="seed-claim or ablation")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FOLDER", help="e.g. book/results/NAME"
    )
    parser.add_argument(
        "--work",
        type=Path,
        metavar="FOLDER",
        help="run folders (default runs/experiments/NAME/...)",
    )
    parser.add_argument("--data", metavar="SOURCE", help="e.g. anime-faces:4992 for real data")
    parser.add_argument("--image-size", type=int, choices=IMAGE_SIZES, help="default 64")
    parser.add_argument(
        "--width", type=_positive_float, metavar="W", help="default 1.0 (0.25 on a CPU)"
    )
    parser.add_argument("--epochs", type=_positive_int, metavar="N", help="default the schedule's")
    parser.add_argument(
        "--measure-every", type=_positive_int, metavar="N", help="default every 10 epochs"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings that check the machinery in seconds"
    )
    parser.add_argument(
        "--no-kid", action="store_true", help="measure only the blank share (no KID, coverage)"
    )
    parser.add_argument(
        "--variants",
        type=_variant_list,
        metavar="A,B,...",
        help="train only these variants now, e.g. value_range,batchnorm (default: all)",
    )
    parser.add_argument(
        "--record-only",
        action="store_true",
        help="record what the run folders hold (finished runs, epochs of unfinished ones); train nothing",
    )
    parser.add_argument(
        "--seeds",
        type=_seed_list,
        metavar="0,1,...",
        help="train only these seeds now (default: the experiment's, 0,1,2 for seed-claim)",
    )
    parser.set_defaults(run=_run_experiment, tensorflow=True)


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(seed < 0 for seed in seeds):
        raise argparse.ArgumentTypeError(
            f"expected whole numbers >= 0 separated by commas, e.g. 0,1,2; got {text!r}"
        )
    return seeds


def _variant_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected variant names separated by commas, e.g. value_range,batchnorm; got {text!r}"
        )
    return names


def _run_experiment(args) -> int:
    import shlex

    from ganlib.experiments import run_experiment

    words = ["python", "-m", "ganlib", "experiment", args.name, "--out", str(args.out)]
    for option in ("work", "data", "image_size", "width", "epochs", "measure_every"):
        value = getattr(args, option)
        if value is not None:
            words += [f"--{option.replace('_', '-')}", str(value)]
    words += ["--quick"] * args.quick + ["--no-kid"] * args.no_kid
    if args.variants is not None:
        words += ["--variants", ",".join(args.variants)]
    if args.seeds is not None:
        words += ["--seeds", ",".join(map(str, args.seeds))]
    words += ["--record-only"] * args.record_only
    record = run_experiment(
        args.name,
        args.out,
        work=args.work,
        data=args.data,
        image_size=args.image_size,
        width=args.width,
        epochs=args.epochs,
        measure_every=args.measure_every,
        quick=args.quick,
        kid=not args.no_kid,
        variants=args.variants,
        seeds=args.seeds,
        train_now=not args.record_only,
        command=shlex.join(words),
        verbose=1,
    )
    kind = (
        "quick run, not the full experiment"
        if record["quick"]
        else ("full schedule" if record["full"] else "not the full schedule")
    )
    finished = ", ".join(record["runs_finished"]) or "no run"
    print(f"{args.out}: {finished} finished ({kind})")
    for run, epochs in record["runs_in_progress"].items():
        print(f"  {run}: {epochs} of {record['settings']['epochs']} epochs so far")
    for variant, reason in record["not_run"].items():
        print(f"  {variant}: {reason}")
    print(f"table: {args.out / 'README.md'}; provenance: {args.out / 'provenance.json'}")
    return 0


# ---------------------------------------------------------------------------

COMMANDS = [_add_data, _add_train, _add_sample, _add_export, _add_experiment]


def _out_of_memory_advice(args) -> str:
    return (
        f"out of memory in {args.command}; close other programs that use the memory, "
        "or run with CUDA_VISIBLE_DEVICES= to use the CPU"
    )


_TRACEBACK_HELP = "let errors through with their full traceback instead of one line"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="The GAN book's library from the shell: data, training, sampling and "
        "exporting a generator (chapter 5).",
    )
    parser.add_argument("--traceback", action="store_true", help=_TRACEBACK_HELP)
    parser.set_defaults(tensorflow=False, out_of_memory=_out_of_memory_advice)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    for command in subparsers.choices.values():
        # Also after the command; SUPPRESS keeps a subcommand from resetting it to False.
        command.add_argument(
            "--traceback", action="store_true", default=argparse.SUPPRESS, help=_TRACEBACK_HELP
        )
    return parser


def main(argv=None) -> int:
    """Run one command; returns the exit code: 0 ok, 1 failed, 2 bad input, 130 Ctrl-C."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        return _fail(error)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    try:
        with _tensorflow_settings(args.tensorflow):
            return args.run(args)
    except KeyboardInterrupt:
        if args.traceback:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.traceback:
            raise
        if _out_of_memory(error):
            print(f"{PROG}: {args.out_of_memory(args)}", file=sys.stderr)
            return 1
        if isinstance(error, _OWN_ERRORS) and _raised_by_ganlib(error):
            return _fail(error)
        print(
            f"{PROG}: internal error ({_describe(error)}); "
            "run again with --traceback to see where it came from",
            file=sys.stderr,
        )
        return 1
