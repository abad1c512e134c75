"""The command line: `python -m ganlib COMMAND ...` (or `ganlib COMMAND ...`).

Commands:
  data SOURCE [--preview grid.png] [--image-size 32|64] [--n N]
      load a data source, print how many images of what size were read and
      which files were skipped, and write a grid of the first N images.
  train --data SOURCE --run FOLDER [--model NAME] [--epochs N] [--batch-size B] ...
      train a GAN preset into a run folder (grids, checkpoints, history.csv);
      the same command again resumes from the newest checkpoint.
  sample --run FOLDER --out grid.png [--n N] [--seed S]
      draw a grid of samples from a run's newest checkpoint.

Each command is a pair of functions, `_add_X(subparsers)` which declares its
arguments and sets `run=_run_X`, and `_run_X(args) -> int`; add the pair to
COMMANDS. Bad arguments and the library's ValueError / FileNotFoundError end
the program with exit code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

PROG = "ganlib"


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


def _writable_file(text: str) -> Path:
    """argparse type for an output file: its folder must exist (or be creatable) and be writable."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name such as grid.png")
    from PIL import Image

    Image.init()
    if path.suffix.lower() not in Image.registered_extensions():
        raise argparse.ArgumentTypeError(f"{text}: unknown image type {path.suffix!r}; use .png")
    parent = path.parent
    while not parent.exists():  # the nearest existing folder must let us create the rest
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: {parent} is not a writable folder")
    return path


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
        "--image-size", type=int, choices=(32, 64), default=64, help="side in pixels (default 64)"
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
    from ganlib.data.sources import _load_source
    from ganlib.grids import save_grid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped files are printed below instead
        images, description, report = _load_source(args.source, args.image_size)
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
    "preset: baseline, improved or cifar (also improved_as_run and mlp); default improved"
)


def _number(text: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _batch_size(text: str) -> int:
    value = _number(text, int)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be at least 2 (each update needs real and generated images), got {value}"
        )
    return value


def _non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _decay(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (e.g. 0.99), got {text}")
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
        choices=(32, 64),
        default=64,
        help="image side in pixels (default 64)",
    )
    parser.add_argument(
        "--epochs", type=_positive_int, default=10, metavar="N", help="epochs in total (default 10)"
    )
    parser.add_argument(
        "--batch-size",
        type=_batch_size,
        metavar="B",
        help="real images per update (default: the preset's)",
    )
    parser.add_argument(
        "--run",
        dest="run_dir",
        type=Path,
        required=True,
        metavar="FOLDER",
        help="run folder, e.g. runs/faces",
    )
    parser.add_argument(
        "--steps-per-epoch", type=_positive_int, metavar="K", help="default: images // batch size"
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="initial weights, noise and data order (default 0)",
    )
    parser.add_argument(
        "--width",
        type=_positive_float,
        default=1.0,
        metavar="W",
        help="filter count multiplier (default 1.0, the published model)",
    )
    parser.add_argument(
        "--lr",
        type=_positive_float,
        metavar="LR",
        help="discriminator learning rate; the generator keeps the preset's ratio",
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
        "--ema", type=_decay, metavar="DECAY", help="keep an EMA copy of the generator, e.g. 0.99"
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
    parser.set_defaults(run=_run_train)


def _span(names) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"


def _run_train(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines are noise here
    from ganlib.training import list_checkpoints, train

    try:
        _, history = train(
            args.data,
            model=args.model,
            image_size=args.image_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            run_dir=args.run_dir,
            steps_per_epoch=args.steps_per_epoch,
            seed=args.seed,
            width=args.width,
            learning_rate=args.lr,
            mixed_precision=args.mixed_precision,
            xla=args.xla,
            ema=args.ema,
            ada=args.ada,
            kid_every=args.kid_every,
            checkpoint_every=args.checkpoint_every,
            verbose=1,
        )
    except FloatingPointError as error:
        print(f"{PROG}: training stopped: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
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


def _add_sample(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="draw a grid of samples from a run's newest checkpoint",
        description="Draw samples from the newest checkpoint of a run folder (the EMA "
        "generator when the run has one) and save them as one grid.",
    )
    parser.add_argument(
        "--run",
        dest="run_dir",
        type=Path,
        required=True,
        metavar="FOLDER",
        help="run folder made by train",
    )
    parser.add_argument(
        "--n", type=_positive_int, default=64, metavar="N", help="number of samples (default 64)"
    )
    parser.add_argument(
        "--out", type=_writable_file, required=True, metavar="PNG", help="where to write the grid"
    )
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="noise seed (default 0)")
    parser.set_defaults(run=_run_sample)


def _run_sample(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ganlib.grids import save_grid
    from ganlib.training import load_run

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

COMMANDS = [_add_data, _add_train, _add_sample]


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="The GAN book's library: data, training and sampling from the shell."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None) -> int:
    """Run one command; returns the exit code (0 ok, 2 bad arguments or data)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        return _fail(error)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    try:
        return args.run(args)
    except (ValueError, OSError, ImportError) as error:
        return _fail(error)
