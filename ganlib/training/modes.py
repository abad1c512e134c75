"""How long a chapter trains: MODE "quick", "gpu-short" or "full", and what a GPU run costs (chapter 3).

Every chapter that trains starts with `MODE = training.book_mode()`: "quick" on a
CPU (minutes, small networks, toy faces), "gpu-short" when TensorFlow sees a GPU
(long enough for the chapter's claim, at the published sizes), and "full" only
when the reader writes it (the published schedule, hours on a T4).
`gpu_minutes` turns a number of updates into the minutes a reader should expect.

Two environment variables steer a whole chapter without editing it:
GANLIB_BOOK_MODE=quick|gpu-short|full overrides the automatic choice, and
GANLIB_SMOKE=1 makes `smoke_budget(value, smallest)` return `smallest`, so that
every code path of a mode runs once in seconds (`is_smoke_run`).
"""

from __future__ import annotations

import os

__all__ = [
    "MODES",
    "book_mode",
    "is_smoke_run",
    "smoke_budget",
    "gpu_minutes",
    "mode_table",
    "generator_updates",
    "check_updates",
    "A100_SECONDS_PER_UPDATE",
    "T4_SLOWDOWN",
]

MODES = ("quick", "gpu-short", "full")

# The anime-face project's notebook on a Colab A100: about 26 s per epoch of 156
# updates (improved pair, 64 px, batch 32, its train_on_batch loop), measured there.
A100_SECONDS_PER_UPDATE = 26.0 / 156
# A T4 is not measured anywhere in this book: its time is the A100's times the ratio
# of the two cards' float32 peaks (19.5 / 8.1 TFLOP/s), an estimate.
T4_SLOWDOWN = 19.5 / 8.1


def book_mode(mode="auto"):
    """The chapter's MODE: "quick", "gpu-short" or "full"; "auto" picks by device (chapter 3).

    "auto": the GANLIB_BOOK_MODE environment variable when it is set, else
    "gpu-short" when TensorFlow sees a GPU, else "quick". "full" is never chosen by
    the device: it runs the published schedule, which takes hours.
    """
    if mode == "auto":
        chosen = os.environ.get("GANLIB_BOOK_MODE", "").strip()
        if chosen:
            if chosen not in MODES:
                raise ValueError(
                    f"GANLIB_BOOK_MODE must be one of {', '.join(MODES)}, got {chosen!r}; "
                    "unset it to let the device choose"
                )
            return chosen
        import tensorflow as tf

        return "gpu-short" if tf.config.list_physical_devices("GPU") else "quick"
    if mode not in MODES:
        raise ValueError(
            f"MODE must be one of {', '.join(repr(m) for m in MODES)} or 'auto', got {mode!r}; "
            "'quick' runs on a CPU in minutes, 'gpu-short' and 'full' want a GPU"
        )
    return mode


_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def is_smoke_run() -> bool:
    """True when GANLIB_SMOKE asks for a smoke run: every budget cut to its least (chapter 3).

    A smoke run executes each code path of a chapter's mode once, at the mode's image
    sizes, widths, data sources and device settings, with a couple of updates per
    training run: it checks that the code runs, and decides nothing.
    """
    value = os.environ.get("GANLIB_SMOKE", "").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(f"GANLIB_SMOKE must be 1 or 0 (or unset), got {value!r}")


def smoke_budget(value, smallest):
    """`value`, or `smallest` in a smoke run (GANLIB_SMOKE=1): how chapters cut their budgets (chapter 3).

    value, smallest: numbers (epochs, steps, samples) or any values of the same kind,
    e.g. tuples of seeds; `smallest` is the least that still runs the code path
    (two epochs where a chapter compares epochs, a metric's minimum sample count).
    """
    return smallest if is_smoke_run() else value


def gpu_minutes(updates, cost=1.0):
    """Expected minutes for `updates` training updates: {"A100": ..., "T4": ...} (chapter 3).

    cost: one update's time relative to the improved pair at 64 px and batch 32 (e.g.
    2 for twice the images per update). Both figures scale the A100 time measured by
    the anime-face project's notebook; ganlib's `fit` loop is faster than that
    notebook's, so they are upper bounds, and the T4 figure is an estimate.
    """
    if updates < 0 or cost <= 0:
        raise ValueError(f"updates must be >= 0 and cost > 0, got {updates} and {cost}")
    a100 = updates * cost * A100_SECONDS_PER_UPDATE / 60
    return {"A100": a100, "T4": a100 * T4_SLOWDOWN}


def mode_table(updates_by_mode, cost=1.0):
    """A Markdown table: each GPU mode's updates and expected minutes on an A100 and a T4 (chapter 3).

    updates_by_mode: {"gpu-short": n, "full": m} (modes of MODES; "quick" runs on a
    CPU and is left out). cost as in `gpu_minutes`. Every figure is marked as an
    estimate, since none of them was measured on the reader's GPU.
    """
    unknown = [mode for mode in updates_by_mode if mode not in MODES]
    if unknown:
        raise ValueError(f"unknown modes {unknown}; use {', '.join(MODES)}")
    lines = [
        "| MODE | updates | A100 (estimate) | T4 (estimate) |",
        "|---|---:|---:|---:|",
    ]
    for mode, updates in updates_by_mode.items():
        if mode == "quick":
            continue
        minutes = gpu_minutes(updates, cost)
        lines.append(
            f"| `{mode}` | {updates:,} | about {minutes['A100']:.0f} min "
            f"| about {minutes['T4']:.0f} min |"
        )
    return "\n".join(lines)


def generator_updates(*gans):
    """How many generator updates these GANs have made, together (chapter 3).

    Read from each generator optimizer's own step counter, so it counts what training
    did, whatever the chapter believes it asked for.
    """
    return sum(int(gan.g_optimizer.iterations.numpy()) for gan in gans)


def check_updates(planned, done):
    """A sentence saying a chapter ran the updates it planned; ValueError if not (chapter 3).

    planned: the updates the chapter's parameters count for its MODE (the same
    arithmetic that its GPU estimates use for the other modes); done: what training
    made, e.g. `generator_updates(gan, ...)`. A mismatch means the estimates printed
    for the GPU modes count the wrong thing, so it stops the chapter.
    """
    planned, done = int(planned), int(done)
    if planned != done:
        raise ValueError(
            f"the chapter planned {planned:,} generator updates but training made {done:,}: "
            "the update count behind its GPU estimates does not match what it runs"
        )
    return f"{done:,} generator updates, as counted from the chapter's parameters."
