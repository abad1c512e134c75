"""Quality per CPU minute: recipes for a quick toy-face run on a CPU, trained and scored.

    python bench/recipes.py [--recipes NAME,...] [--samples 1000] [--record]
                            [--results-file PATH] [--json PATH] [--quick]

Each recipe is a `ganlib.train` call (the options of `python -m ganlib train`) on the toy
faces at 32 px, trained from scratch in a temporary run folder, some in stages: a recipe
that lists epochs (5, 10) trains 5 epochs, is scored, then resumes to 10 (a resumed run
continues exactly where it stopped, so its 10-epoch figures are those of a 10-epoch run)
and is scored again. A recipe with an EMA generator is scored twice at each stage: the
live generator (the EMA copy does not change training, so these are the figures of the
same recipe without --ema) and the EMA copy.

Per row:
  - wall (s) and CPU (min): of the training only (ru_utime + ru_stime of this process,
    resource.getrusage, before and after `ganlib.train`; scoring excluded). On a shared
    machine the CPU time is the fair figure; on 2 quiet cores the wall time is about half
    of it when TensorFlow keeps both busy.
  - faces ("read as faces", fidelity): share of `--samples` generated images (seed 1)
    that the calibrated decoder (ganlib.metrics.CalibratedDecoder, via
    mode_coverage(decoder="calibrated")) reads as faces, i.e. 1 - unrecognised.
  - coverage / real: the samples' mode coverage divided by that of as many real faces
    (data.toy_faces(samples, 32, seed=123)) read by the same decoder. It mixes "is it a
    face" with "how varied are the faces": it falls when fewer samples are read as faces
    even if those that are stay as varied.
  - variety (diversity): distinct combinations among the recognised samples over what as
    many real faces reach (mode_coverage's variety); about 1 when the faces drawn are as
    varied as the data, whatever share of the samples they are; "-" when none is read.
  - precision (fidelity) and recall (diversity): metrics.prdc with k=5 on the
    DomainFeatures of the samples against those of the real faces.
  - KID: against those real faces, DomainFeatures(image_size=32).
A drop in faces or precision is a loss of fidelity; only variety and recall say whether
the samples lost variety (a collapse).
Goals of a quick recipe: CPU <= 10 min (5 min wall on 2 cores), faces >= 50 %, coverage /
real >= 50 %. Prints a table; --record writes its rows into the "Quality per CPU minute"
section of bench/RESULTS.md (rows of the same recipe and stage are replaced).
--quick: tiny recipes (64 faces, a few steps, 64 samples) that check the script in
seconds; --record is refused with it. A table recorded before variety, precision and
recall were measured keeps its rows, with "-" in those columns.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_description, write_table_section

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Quality per CPU minute (bench/recipes.py)"
SECTION_TEXT = (
    "Recipes for a quick toy-face run on a CPU: `ganlib.train` on the toy faces at 32 px, "
    "each from scratch with seed 0, then 1,000 samples scored. wall and CPU: the training "
    "only (CPU = user + system time of the process; on 2 quiet cores the wall time is about "
    "half of it, on a shared machine the wall time is inflated by the load given in the "
    "device column). read as faces = share of the samples the calibrated decoder reads as "
    "a face; coverage / real = their mode coverage over that of 1,000 real faces read by "
    "the same decoder (it falls with the faces read as well as with their variety); "
    "variety = distinct factor combinations among the faces read over what as many real "
    "faces reach (about 1 when they are as varied as the data, whatever their share; - "
    "when none is read); precision and recall = ganlib.metrics.prdc (k=5) on DomainFeatures "
    "against the real faces. read as faces and precision measure fidelity, variety and "
    "recall diversity: a drop in faces read is not a collapse. KID against those real "
    "faces with DomainFeatures (lower is better; real against real scatters around 0). "
    "(live) = the generator being trained, the figures of the same recipe without --ema; "
    "(EMA) = its EMA copy. Goals: CPU <= 10 min, read as faces >= 50 %, coverage / real "
    ">= 50 %. Rows recorded before variety, precision and recall were measured show - there."
)
TABLE_HEADER = (
    "| date | device | recipe | options | steps | wall (s) | CPU (min) | read as faces | "
    "coverage / real | variety | precision | recall | KID | goals |"
)
TABLE_RULE = "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
# The table as recorded before variety, precision and recall: its rows get "-" there.
OLD_TABLE_HEADER = (
    "| date | device | recipe | options | steps | wall (s) | CPU (min) | faces | "
    "coverage / real | KID | goals |"
)
NEW_COLUMNS_AFTER = 9  # "coverage / real" is the 9th column
NEW_COLUMNS = 3

# name: (what it is, run_spec() settings, epochs at which it is scored). Every recipe trains
# the toy faces at 32 px with seed 0; "data" is the SOURCE string.
# Chapter 4's hybrid pair as its quick mode trains it; variants change one thing.
HYBRID = dict(data="toy-faces", model="hybrid", width=0.25, batch_size=128)
RECIPES = {
    "improved-b32": (
        "the README's earlier main job: the improved preset at batch 32",
        dict(data="toy-faces", model="improved", width=0.25, batch_size=32, ema=0.999),
        (5, 10),
    ),
    "lr2x": (
        "the main job with both learning rates doubled (D 2e-4, G 4e-4)",
        dict(
            data="toy-faces",
            model="improved",
            width=0.25,
            batch_size=32,
            learning_rate=2e-4,
            ema=0.999,
        ),
        (5, 10, 15),
    ),
    "width-0.5": (
        "the main job at half the published width",
        dict(data="toy-faces", model="improved", width=0.5, batch_size=32, ema=0.999),
        (5,),
    ),
    "cifar": (
        "the cifar pair, which collapses on toy faces (chapter 4)",
        dict(data="toy-faces", model="cifar", width=0.25, batch_size=128),
        (2, 4),
    ),
    "hybrid": (
        "chapter 4's cure for the cifar pair: the improved generator against the cifar "
        "discriminator, batch 128",
        {**HYBRID, "ema": 0.999},
        (2, 4, 6, 8),
    ),
    "hybrid-r1": (
        "chapter 4's recipe as its quick mode trains it: the hybrid pair with R1 (gamma 0.1)",
        {**HYBRID, "r1_gamma": 0.1},
        (4,),
    ),
    "hybrid-smoothing": (
        "the hybrid pair with one-sided label smoothing 0.1",
        {**HYBRID, "label_smoothing": 0.1},
        (4,),
    ),
    "hybrid-sn": (
        "the hybrid pair with spectral normalisation in the discriminator",
        {**HYBRID, "spectral_norm": True},
        (4,),
    ),
    "hybrid-lr1e-4": (
        "the hybrid pair at half the learning rate (1e-4 for both networks)",
        {**HYBRID, "learning_rate": 1e-4},
        (4,),
    ),
    "hybrid-r1-gamma1": (
        "the hybrid pair with a ten times stronger R1 penalty (gamma 1)",
        {**HYBRID, "r1_gamma": 1.0},
        (4,),
    ),
    "main-job": (
        "the README's main job (4 epochs): chapter 4's recipe at half the published width",
        {**HYBRID, "width": 0.5, "r1_gamma": 0.1},
        (2, 4),
    ),
}
QUICK_RECIPES = {
    "tiny": (
        "a smoke test",
        dict(
            data="toy-faces:64",
            model="improved",
            width=0.125,
            batch_size=16,
            ema=0.99,
            steps_per_epoch=2,
        ),
        (1, 2),
    ),
}
DEFAULT_SAMPLES = 1000
PRDC_K = 5  # the neighbour that sets each ball's radius in metrics.prdc
GOALS = {"cpu_min": 10.0, "faces": 0.5, "coverage_ratio": 0.5}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def options_text(options: dict, epochs: int) -> str:
    """The command-line options of `python -m ganlib train` for these train() keywords."""
    flags = {
        "batch_size": "--batch-size",
        "learning_rate": "--lr",
        "steps_per_epoch": "--steps-per-epoch",
    }
    parts = [f"--data {options['data']}", f"--model {options['model']}", "--image-size 32"]
    for key, value in options.items():
        if key in ("data", "model"):
            continue
        flag = flags.get(key, "--" + key.replace("_", "-"))
        parts.append(
            flag
            if value is True
            else f"{flag} {value:g}"
            if isinstance(value, float)
            else f"{flag} {value}"
        )
    parts.append(f"--epochs {epochs}")
    return " ".join(parts)


class Scorer:
    """Faces read, coverage relative to real faces, variety, prdc and KID of generated images
    (n, 32, 32, 3): a ganlib.metrics.Evaluator with the calibrated decoder, k=PRDC_K and
    kid()'s default subsets (chapters 3 and 6)."""

    def __init__(self, samples: int):
        from ganlib import data, metrics

        self.real, _ = data.toy_faces(samples, 32, seed=123)
        real = metrics.mode_coverage(self.real, decoder="calibrated")
        self.real_coverage, self.real_variety = real["coverage"], real["variety"]
        features = metrics.DomainFeatures(image_size=32)
        self.evaluator = metrics.Evaluator(
            features(self.real), features, decoder="calibrated", k=PRDC_K
        )

    def __call__(self, images, value_range) -> dict:
        values = self.evaluator.measure(images, value_range)
        histograms = self.evaluator.last_coverage["histograms"]
        variety = values["variety"]
        return {
            "faces": 1.0 - values["unrecognised"],
            "coverage": values["coverage"],
            "coverage_ratio": values["coverage"] / self.real_coverage,
            # None (null in JSON, "-" in the tables) when no sample is read as a face
            "variety": None if math.isnan(variety) else variety,
            "precision": values["precision"],
            "recall": values["recall"],
            "density": values["density"],
            "nn_coverage": values["nn_coverage"],
            "kid": values["kid"],
            "kid_std": values["kid_std"],
            "histograms": {k: v.tolist() for k, v in histograms.items()},
        }


def run_recipe(name, recipe, scorer, samples, folder, verbose=0) -> list[dict]:
    """Train `recipe` stage by stage; one result per stage and generator (live, EMA)."""
    import keras

    from ganlib import training

    what, options, stages = recipe
    spec = training.run_spec(image_size=32, seed=0, **options)  # checked before any training
    results, wall, cpu = [], 0.0, 0.0
    for epochs in stages:
        keras.backend.clear_session()
        start_wall, start_cpu = time.perf_counter(), cpu_seconds()
        gan, _ = training.train(spec=spec.replace(epochs=epochs), run_dir=folder, verbose=verbose)
        wall += time.perf_counter() - start_wall
        cpu += cpu_seconds() - start_cpu
        steps = int(keras.ops.convert_to_numpy(gan.global_step))
        kinds = ["live"] + ["EMA"] * (gan.ema_generator is not None)
        for kind in kinds:
            images = gan.generate(samples, seed=1, batch_size=250, ema=kind == "EMA")
            score = scorer(images, gan.value_range)
            options_used = dict(options)
            if kind == "live":
                options_used.pop("ema", None)
            result = {
                "recipe": name,
                "what": what,
                "generator": kind,
                "epochs": epochs,
                "steps": steps,
                "options": options_text(options_used, epochs),
                "wall_s": wall,
                "cpu_min": cpu / 60.0,
                **score,
            }
            result["goals_met"] = (
                result["cpu_min"] <= GOALS["cpu_min"]
                and result["faces"] >= GOALS["faces"]
                and result["coverage_ratio"] >= GOALS["coverage_ratio"]
            )
            results.append(result)
            print(line(result), flush=True)
    return results


def header() -> str:
    return (
        f"{'recipe':<22} {'steps':>6} {'wall s':>7} {'CPU min':>8} {'as faces':>8} "
        f"{'cov/real':>8} {'variety':>7} {'prec':>6} {'recall':>6} {'KID':>8}  goals"
    )


def variety_text(result) -> str:
    return "-" if result["variety"] is None else f"{result['variety']:.2f}"


def label(result) -> str:
    return f"{result['recipe']}, {result['epochs']} ep ({result['generator']})"


def line(result) -> str:
    return (
        f"{label(result):<22} {result['steps']:>6} {result['wall_s']:7.0f} "
        f"{result['cpu_min']:8.2f} {result['faces']:8.1%} {result['coverage_ratio']:8.1%} "
        f"{variety_text(result):>7} {result['precision']:6.1%} {result['recall']:6.1%} "
        f"{result['kid']:8.1f}  {'met' if result['goals_met'] else 'not met'}"
    )


def row(result, today, dev) -> str:
    return (
        f"| {today} | {dev} | {label(result)} | `{result['options']}` | {result['steps']} "
        f"| {result['wall_s']:.0f} | {result['cpu_min']:.2f} | {100 * result['faces']:.1f} % "
        f"| {100 * result['coverage_ratio']:.1f} % | {variety_text(result)} "
        f"| {100 * result['precision']:.1f} % | {100 * result['recall']:.1f} % | {result['kid']:.1f} "
        f"| {'met' if result['goals_met'] else 'not met'} |"
    )


def widen_old_table(text: str) -> str:
    """`text` with the section's table, if recorded before variety, precision and recall, in
    today's columns: its rows keep their figures, with "-" in the three new columns."""
    lines = text.split("\n")
    if SECTION not in lines:
        return text
    start = lines.index(SECTION)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    if OLD_TABLE_HEADER not in lines[start:end]:
        return text
    at = lines.index(OLD_TABLE_HEADER, start)
    lines[at], lines[at + 1] = TABLE_HEADER, TABLE_RULE
    for i in range(at + 2, end):
        if lines[i].startswith("|"):
            cells = lines[i].split("|")  # "", date, ..., goals, ""
            split = 1 + NEW_COLUMNS_AFTER
            lines[i] = "|".join(cells[:split] + [" - "] * NEW_COLUMNS + cells[split:])
    return "\n".join(lines)


def record(rows: list[str], results: Path | None = None) -> None:
    """Put `rows` into the section's table; an older row of the same recipe label goes.

    A table recorded before variety, precision and recall is widened first, so that
    its rows stay (`write_table_section` drops the rows of a table with another header).
    """
    results = RESULTS if results is None else Path(results)
    if results.exists():
        text = results.read_text()
        widened = widen_old_table(text)
        if widened != text:
            results.write_text(widened)

    def key(table_row):
        return table_row.split("|")[3].strip()

    write_table_section(
        results, SECTION, SECTION_TEXT, TABLE_HEADER, TABLE_RULE, rows, key=key, before="## GPU"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", help="comma-separated names (default: all)")
    parser.add_argument("--samples", type=int, default=None, help="generated images scored")
    parser.add_argument("--record", action="store_true", help="write the rows to RESULTS.md")
    parser.add_argument("--results-file", type=Path, default=RESULTS)
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="tiny recipes (smoke test)")
    args = parser.parse_args(argv)
    catalogue = QUICK_RECIPES if args.quick else RECIPES
    names = args.recipes.split(",") if args.recipes else list(catalogue)
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {', '.join(catalogue)}")
    if args.quick and args.record and args.results_file == RESULTS:
        parser.error("--quick rows are not benchmark figures; pass --results-file to test --record")
    samples = args.samples or (64 if args.quick else DEFAULT_SAMPLES)
    if samples <= PRDC_K:
        parser.error(f"--samples must be more than {PRDC_K} (precision and recall need them)")
    dev = cpu_description()
    scorer = Scorer(samples)
    print(
        f"real faces: coverage {scorer.real_coverage:.4f}, variety {scorer.real_variety:.2f} "
        f"({samples} read by the calibrated decoder)"
    )
    print(header())
    results = []
    for name in names:
        with tempfile.TemporaryDirectory() as folder:
            results += run_recipe(name, catalogue[name], scorer, samples, Path(folder) / name)
    today = datetime.date.today().isoformat()
    if hasattr(os, "getloadavg"):
        dev += f" (at the end {os.getloadavg()[0]:.1f})"
    rows = [row(r, today, dev) for r in results]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "kind": "recipes",
            "quick": args.quick,
            "date": today,
            "device": dev,
            "samples": samples,
            "real_coverage": scorer.real_coverage,
            "real_variety": scorer.real_variety,
            "goals": GOALS,
            "results": results,
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    if args.record:
        record(rows, args.results_file)
        print(f"recorded in {args.results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
