"""Recorded experiments read back: the results `python -m ganlib experiment` committed (chapter 3).

A recorded result is a folder (book/results/NAME) written by
`ganlib.experiments.run_experiment`: provenance.json, one history_<variant>.csv per
finished variant and a few sample grids samples/<variant>_epoch_XXXX.png. This module
reads such a folder with NumPy and json only, so a chapter can show a run that took
hours without TensorFlow and without training anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ganlib.training.history import read_history

__all__ = ["Result", "load_result", "provenance_caption", "summarise", "MEASURED"]

# The columns run_experiment's Measurements write every `measure_every` epochs (nan between);
# ganlib.experiments writes exactly these.
# A result recorded before a column existed simply lacks it (nan when read).
MEASURED = (
    "kid",
    "kid_std",
    "coverage",
    "unrecognised",
    "variety",
    "precision",
    "recall",
    "density",
    "nn_coverage",
    "blank_share",
    "strip_roughness",
)


class Result(NamedTuple):
    """A recorded result (chapter 3): provenance, histories and sample grids.

    provenance: provenance.json as a dict. histories: {variant: {column: array}},
    `epoch` an int array counted from 0, every other column float with nan where not
    measured. samples: {variant: {epoch (from 0): Path of the PNG grid}}.
    """

    provenance: dict
    histories: dict
    samples: dict


def _make_command(folder):
    name = folder.name or "NAME"
    return f"python -m ganlib experiment {name} --out {folder}"


def load_result(folder) -> Result:
    """The recorded result in `folder` (e.g. Path("results/seed-claim")) as a Result (chapter 3).

    Reads provenance.json, the history CSV of every variant it lists as finished, and
    the sample grids. FileNotFoundError, naming the command that makes it, when the
    folder, its provenance.json or a finished variant's history is missing;
    ValueError when provenance.json is not valid JSON.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no recorded result at {folder} (resolved: {folder.resolve()}); record it with "
            f"`{_make_command(folder)}`"
        )
    path = folder / "provenance.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} has no provenance.json, so it is not a recorded result; record it with "
            f"`{_make_command(folder)}`"
        )
    try:
        provenance = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); record the result again with "
            f"`{_make_command(folder)}`"
        ) from None
    histories = {}
    for variant in provenance.get("variants_finished") or []:
        csv = folder / f"history_{variant}.csv"
        if not csv.is_file():
            raise FileNotFoundError(
                f"{folder} lacks {csv.name} of the finished variant {variant!r}; record the "
                f"result again with `{_make_command(folder)}`"
            )
        histories[variant] = _columns(read_history(csv))
    samples = {variant: {} for variant in histories}
    for png in sorted((folder / "samples").glob("*_epoch_*.png")):
        variant, _, epoch = png.stem.rpartition("_epoch_")
        if variant in samples and epoch.isdigit():
            samples[variant][int(epoch)] = png
    return Result(provenance, histories, samples)


def _columns(rows):
    """History rows (dicts) as {column: array}: epoch int, the rest float with nan."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    columns = {}
    for key in keys:
        values = [row.get(key, math.nan) for row in rows]
        columns[key] = np.asarray(values, dtype=int if key == "epoch" else float)
    return columns


def _duration(seconds):
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {minutes % 60:02.0f} min"


def provenance_caption(provenance) -> str:
    """One paragraph that says where a recorded result came from (chapter 3).

    provenance: the dict of provenance.json (Result.provenance). Names the
    experiment, whether it is the full registered schedule, a reduced one or a quick
    check, its settings, the command, commit, device, TensorFlow version, date and
    wall time, and the variants not run with their reasons.
    """
    if not isinstance(provenance, dict):
        raise ValueError(
            f"provenance must be the dict of a provenance.json (load_result(...).provenance), "
            f"got {type(provenance).__name__}"
        )
    get = provenance.get
    settings = get("settings") or {}
    if get("quick"):
        kind = "a quick check of the machinery, not the experiment's schedule"
    elif get("full"):
        kind = "the full registered schedule"
    else:
        kind = "a reduced schedule (not the registered one)"
    parts = []
    if settings:
        steps = settings.get("steps_per_epoch")
        parts.append(
            f"{settings.get('data', '?')} at {settings.get('image_size', '?')} px, width "
            f"{settings.get('width', '?')}, {settings.get('epochs', '?')} epochs"
            + (f" of {steps} updates" if steps else "")
            + f" of batch {settings.get('batch_size', '?')}, measured "
            + (
                "every epoch"
                if settings.get("measure_every") == 1
                else f"every {settings.get('measure_every', '?')} epochs"
            )
            + (" (blank share only: no KID or coverage)" if settings.get("kid") is False else "")
        )
    commit = str(get("commit") or "unknown")
    dirty = get("dirty")
    commit_text = commit[:12] + (" with uncommitted changes" if dirty is True else "")
    text = (
        f"Recorded run of experiment `{get('experiment', '?')}`, {kind}"
        + (f": {parts[0]}" if parts else "")
        + f". Command: `{get('command', '?')}`; commit {commit_text}; {get('device', 'device unknown')}; "
        f"TensorFlow {get('tensorflow', '?')}; started {get('date', '?')}; wall time "
        + (_duration(get("wall_seconds")) if get("wall_seconds") is not None else "unknown")
        + "."
    )
    finished = get("variants_finished") or []
    text += f" Finished variants: {', '.join(finished) if finished else 'none'}."
    not_run = get("not_run") or {}
    if not_run:
        text += " Not run: " + "; ".join(f"{v} ({why})" for v, why in not_run.items()) + "."
    return text


def summarise(history) -> dict:
    """What a run's history says at the end and at its best: a dict of numbers (chapter 3).

    history: {column: sequence} with `epoch` (from 0) and some of MEASURED, e.g. a
    Result's histories[variant] or the history `ganlib.train` returns. Only epochs
    where blank_share was measured count. Returns last_epoch (from 0), kid, coverage,
    unrecognised, blank_share (all at the last measured epoch, nan when that column
    is absent), peak_coverage and peak_epoch (the epoch of the highest coverage, -1
    without coverage), max_blank_share, and first_blank_epoch: the first measured
    epoch where at least half the samples are blank (-1 if never).
    """
    if "epoch" not in history:
        raise ValueError("history needs an 'epoch' column (as history.csv and ganlib.train give)")
    epochs = np.asarray(history["epoch"], dtype=int)

    def column(key):
        if key not in history:
            return np.full(len(epochs), np.nan)
        values = np.asarray(history[key], dtype=float)
        if values.shape != epochs.shape:
            raise ValueError(f"column {key!r} has {len(values)} values for {len(epochs)} epochs")
        return values

    anchor = "blank_share" if "blank_share" in history else "kid"
    measured = np.isfinite(column(anchor))
    if not measured.any():
        raise ValueError(
            "no measured epoch in this history (blank_share and kid are nan throughout); "
            "train with ganlib.experiments.Measurements or metrics.KIDMonitor"
        )
    last = np.flatnonzero(measured)[-1]
    summary = {"last_epoch": int(epochs[last])}
    for key in MEASURED:
        summary[key] = float(column(key)[last])
    coverage = column("coverage")
    if np.isfinite(coverage).any():
        best = int(np.nanargmax(coverage))
        summary.update(peak_coverage=float(coverage[best]), peak_epoch=int(epochs[best]))
    else:
        summary.update(peak_coverage=math.nan, peak_epoch=-1)
    blank = column("blank_share")
    summary["max_blank_share"] = float(np.nanmax(blank)) if np.isfinite(blank).any() else math.nan
    half = np.flatnonzero(blank >= 0.5)
    summary["first_blank_epoch"] = int(epochs[half[0]]) if len(half) else -1
    return summary
