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

from ganlib.metrics.evaluator import KEYS as EVALUATOR_KEYS
from ganlib.training.history import read_history

__all__ = [
    "Result",
    "load_result",
    "provenance_caption",
    "summarise",
    "finished_runs",
    "window_mean",
    "over_seeds",
    "seeds_better",
    "MEASURED",
]

# The columns run_experiment's Measurements write every `measure_every` epochs (nan between);
# ganlib.experiments writes exactly these.
# A result recorded before a column existed simply lacks it (nan when read).
# Evaluator.measure's columns less kl_from_uniform, which the experiments do not record.
MEASURED = tuple(key for key in EVALUATOR_KEYS if key != "kl_from_uniform")


class Result(NamedTuple):
    """A recorded result (chapter 3): provenance, histories, sample grids and runs.

    provenance: provenance.json as a dict. histories: {run: {column: array}}, `epoch`
    an int array counted from 0, every other column float with nan where not measured.
    samples: {run: {epoch (from 0): Path of the PNG grid}}. runs: {run: {"variant": name,
    "seed": int}} for the finished runs (a run is a variant trained with one seed; in a
    single-seed experiment the run is named after its variant).
    """

    provenance: dict
    histories: dict
    samples: dict
    runs: dict


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
    runs = finished_runs(provenance)
    histories = {}
    for run in runs:
        csv = folder / f"history_{run}.csv"
        if not csv.is_file():
            raise FileNotFoundError(
                f"{folder} lacks {csv.name} of the finished run {run!r}; record the "
                f"result again with `{_make_command(folder)}`"
            )
        histories[run] = _columns(read_history(csv))
    samples = {run: {} for run in histories}
    for png in sorted((folder / "samples").glob("*_epoch_*.png")):
        run, _, epoch = png.stem.rpartition("_epoch_")
        if run in samples and epoch.isdigit():
            samples[run][int(epoch)] = png
    return Result(provenance, histories, samples, runs)


def finished_runs(provenance) -> dict:
    """{run: {"variant": name, "seed": int}} of a provenance.json's finished runs (chapter 3).

    A result recorded before runs were listed (only `variants_finished`) has one seed,
    settings["seed"], and each run is named after its variant.
    """
    if "runs" in provenance:
        runs = provenance["runs"]
        return {
            run: dict(runs[run]) for run in provenance.get("runs_finished") or [] if run in runs
        }
    # Recorded before runs were listed: one seed, each run named after its variant.
    seed = (provenance.get("settings") or {}).get("seed", 0)
    return {v: {"variant": v, "seed": seed} for v in provenance.get("variants_finished") or []}


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
    runs = finished_runs(provenance)
    variants = list(dict.fromkeys(entry["variant"] for entry in runs.values()))
    seeds = sorted({entry["seed"] for entry in runs.values()})
    text += (
        f" Finished: {len(runs)} run{'s' * (len(runs) != 1)} ("
        + (", ".join(variants) if variants else "none")
        + f"; seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds)) or 'none'})."
    )
    in_progress = get("runs_in_progress") or {}
    if in_progress:
        epochs = settings.get("epochs", "?")
        text += (
            " Still training: "
            + ", ".join(f"{run} ({done} of {epochs} epochs)" for run, done in in_progress.items())
            + "."
        )
    processes = get("processes") or get("sessions") or []
    if len(processes) > 1:
        text += f" Recorded by {len(processes)} processes one after the other."
    shared = [run for run, flag in (get("run_shared") or {}).items() if flag and run in runs]
    if shared:
        text += (
            f" Other work shared the machine while {len(shared)} of the runs trained "
            f"({', '.join(shared)}), so their times are not clean timings."
        )
    elif get("run_shared"):
        text += " No other work shared the machine while the runs trained."
    untimed = [run for run in get("runs_untimed") or [] if run in runs]
    if untimed:
        text += (
            f" The process that finished {', '.join(untimed)} was stopped before it recorded "
            "its time, so the wall time is a lower bound."
        )
    grids = get("grid_epochs")
    if grids:
        text += f" Sample grids kept at epochs {', '.join(str(e + 1) for e in grids)} (from 1)."
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


def window_mean(history, column, last=3) -> float:
    """Mean of `column` over the last `last` measured checkpoints of one run (chapter 3).

    history: {column: array} with `epoch` (a Result's histories[run]). Checkpoints are
    the epochs where `column` is finite. nan when the run never measured it. One
    checkpoint is one draw of a noisy number (KID swings by a factor of several from
    one to the next); the mean over a window is the run's value.
    """
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise ValueError(f"last must be a whole number of checkpoints >= 1, got {last!r}")
    if column not in history:
        return math.nan
    values = np.asarray(history[column], dtype=float)
    values = values[np.isfinite(values)]
    return float(values[-last:].mean()) if len(values) else math.nan


def over_seeds(result, column, last=3) -> dict:
    """{variant: {"seeds": {seed: window mean}, "mean", "min", "max", "n"}} for one column (chapter 3).

    result: a Result. Each run is read with `window_mean(history, column, last)`, then
    the runs of a variant are gathered by seed; mean, min and max are over the seeds
    whose value is finite (nan, with n = 0, when none is).
    """
    table = {}
    for run, entry in result.runs.items():
        value = window_mean(result.histories[run], column, last)
        table.setdefault(entry["variant"], {"seeds": {}})["seeds"][entry["seed"]] = value
    for row in table.values():
        finite = [v for v in row["seeds"].values() if math.isfinite(v)]
        row["n"] = len(finite)
        row["mean"] = float(np.mean(finite)) if finite else math.nan
        row["min"] = float(min(finite)) if finite else math.nan
        row["max"] = float(max(finite)) if finite else math.nan
    return table


def seeds_better(first, second, higher_is_better) -> tuple:
    """(k, n): in how many of the n seeds both rows share `first` beat `second` (chapter 3).

    first, second: rows of `over_seeds` (their "seeds" dicts are compared seed by seed;
    a seed missing or nan on either side does not count). higher_is_better: True for
    e.g. variety or precision, False for KID. A tie is not a win.
    """
    a, b = first["seeds"], second["seeds"]
    common = [s for s in a if s in b and math.isfinite(a[s]) and math.isfinite(b[s])]
    wins = sum((a[s] > b[s]) if higher_is_better else (a[s] < b[s]) for s in common)
    return int(wins), len(common)
