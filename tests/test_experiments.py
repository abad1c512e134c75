"""Tests for ganlib/experiments.py and the `experiment` command."""

import json
import math

import keras
import numpy as np
import pytest

from ganlib import cli, experiments, models, recorded
from ganlib.data import toy_faces
from ganlib.experiments import (
    EXPERIMENTS,
    MAX_RESULT_BYTES,
    PROVENANCE_KEYS,
    Measurements,
    check_provenance,
    run_experiment,
)
from ganlib.recorded import MEASURED  # noqa: E402  (the columns the callback must write)
from ganlib.training import PRESETS, load_run, read_history


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    """`python -m ganlib experiment seed-claim --quick --no-kid`, two seeds of two variants."""
    root = tmp_path_factory.mktemp("experiment")
    out, work = root / "out", root / "work"
    argv = ["experiment", "seed-claim", "--quick", "--no-kid", "--out", str(out)]
    argv += ["--variants", "baseline,improved_notebook", "--seeds", "0,1"]
    code = cli.main([*argv, "--work", str(work)])
    return code, out, work


RUNS = ("baseline_seed0", "improved_notebook_seed0", "baseline_seed1", "improved_notebook_seed1")


def test_the_command_writes_every_runs_history_with_the_measurement_columns(quick_result):
    code, out, _ = quick_result
    assert code == 0
    for run in RUNS:
        rows = read_history(out / f"history_{run}.csv")
        assert [row["epoch"] for row in rows] == [0, 1]  # quick: 2 epochs, measured every epoch
        for row in rows:
            assert set(MEASURED) <= set(row)
            assert 0.0 <= row["blank_share"] <= 1.0
            assert math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])
            assert math.isnan(row["kid"])  # --no-kid: KID and coverage not measured
            assert math.isfinite(row["strip_roughness"])  # measured without features


def test_each_seed_trains_its_own_network(quick_result):
    _, out, work = quick_result
    first, second = (read_history(out / f"history_baseline_seed{s}.csv") for s in (0, 1))
    assert first[0]["d_loss"] != second[0]["d_loss"]
    assert json.loads((work / "baseline_seed1" / "run.json").read_text())["spec"]["seed"] == 1
    notebook = json.loads((work / "improved_notebook_seed0" / "run.json").read_text())["spec"]
    assert notebook["update_scheme"] == "notebook"


def test_the_command_keeps_a_few_small_grids_and_stays_under_the_limit(quick_result):
    _, out, _ = quick_result
    grids = sorted(path.name for path in (out / "samples").glob("*.png"))
    assert grids == sorted(f"{run}_epoch_{e:04d}.png" for run in RUNS for e in (0, 1))
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    assert size <= MAX_RESULT_BYTES
    assert not list(out.rglob("*.npz"))  # checkpoints stay in the work folder
    assert list((quick_result[2] / "baseline_seed0" / "checkpoints").glob("*.npz"))


def test_the_provenance_is_complete_and_says_quick(quick_result):
    _, out, _ = quick_result
    assert check_provenance(out) == []
    record = json.loads((out / "provenance.json").read_text())
    for key in PROVENANCE_KEYS:
        assert record[key] not in (None, "", [], {}), key
    assert record["command"].startswith("python -m ganlib experiment seed-claim --out ")
    assert "--quick" in record["command"]
    assert record["quick"] is True and record["full"] is False
    assert record["runs_finished"] == list(RUNS)  # seed by seed
    assert record["runs"]["improved_notebook_seed1"] == {"variant": "improved_notebook", "seed": 1}
    assert record["variants_finished"] == ["baseline", "improved_notebook"]
    assert record["settings"]["epochs"] == 2 and record["settings"]["image_size"] == 32
    assert record["settings"]["seeds"] == [0, 1]
    assert record["wall_seconds"] >= 0
    assert record["grid_epochs"] == [0, 1]
    assert set(record["run_seconds"]) == set(record["run_shared"]) == set(RUNS)
    (process,) = record["processes"]
    assert process["runs_trained"] == list(RUNS)
    assert len(process["load_at_start"]) == len(process["load_at_end"]) == 3
    assert process["command"] == record["command"] and "--seeds 0,1" in process["command"]
    assert record["device"].startswith(("CPU: ", "GPU: "))
    assert "Quick run" in (out / "README.md").read_text()


def test_killed_and_rerun_it_resumes_and_skips_finished_variants(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    options = dict(work=work, quick=True, kid=False)
    # A run killed after its first variant: only baseline finished.
    options["variants"] = ["baseline", "improved_as_run"]
    first = run_experiment("seed-claim", out, epochs=1, seeds=[0], **options)
    assert first["runs_finished"] == ["baseline_seed0", "improved_as_run_seed0"]
    history = work / "baseline_seed0" / "history.csv"
    stamp = history.stat().st_mtime_ns
    # A later process adds a seed: the first seed's runs are not trained again.
    second = run_experiment("seed-claim", out, epochs=1, seeds=[1], **options)
    assert second["runs_finished"] == [f"{v}_seed{s}" for s in (0, 1) for v in options["variants"]]
    assert second["settings"]["seeds"] == [0, 1]
    assert history.stat().st_mtime_ns == stamp  # not trained again
    variants = ("baseline_seed0", "improved_as_run_seed1")
    before = {v: (out / f"history_{v}.csv").read_text().splitlines() for v in variants}
    # Asked for more epochs, each variant goes on from its checkpoint.
    third = run_experiment("seed-claim", out, epochs=2, seeds=[0, 1], **options)
    for variant, lines in before.items():
        after = (out / f"history_{variant}.csv").read_text().splitlines()
        assert len(lines) == 2 and len(after) == 3  # header and one row, then two rows
        assert after[:2] == lines  # the first epoch's row unchanged
        assert [row["epoch"] for row in read_history(out / f"history_{variant}.csv")] == [0, 1]
    assert len(third["processes"]) == 3  # one entry per call, with its command and commit
    assert [p["runs_trained"] for p in third["processes"]] == [
        ["baseline_seed0", "improved_as_run_seed0"],
        ["baseline_seed1", "improved_as_run_seed1"],
        [f"{v}_seed{s}" for s in (0, 1) for v in options["variants"]],
    ]
    assert third["date"] == first["date"]
    assert third["wall_seconds"] >= second["wall_seconds"]


def test_continuing_with_other_settings_is_refused(tmp_path):
    run_experiment(
        "seed-claim",
        tmp_path / "out",
        work=tmp_path / "w",
        quick=True,
        kid=False,
        epochs=1,
        variants=["baseline"],
        seeds=[0],
    )
    with pytest.raises(ValueError, match="other settings.*width"):
        run_experiment(
            "seed-claim",
            tmp_path / "out",
            work=tmp_path / "w",
            quick=True,
            kid=False,
            epochs=1,
            width=0.25,
            variants=["baseline"],
        )


def test_unknown_experiment_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="ablation, seed-claim"):
        run_experiment("seed-claims", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_ablation_variant_is_available_and_undoes_one_change(tmp_path):
    variants = EXPERIMENTS["ablation"]["variants"]
    assert not [name for name, spec in variants.items() if "unavailable" in spec]
    assert list(variants) == [
        "baseline",
        "improved_as_run",
        "lr_ratio",
        "value_range",
        "transposed",
        "batchnorm",
        "flatten",
        "dropout",
        "full_view",
    ]
    expected = {
        "value_range": {"output": "sigmoid"},
        "transposed": {"upsample": "transposed"},
        "batchnorm": {"batchnorm": False},
        "flatten": {"pooling": "flatten"},
        "dropout": {"dropout": False},
        "full_view": {"padding": "same"},
    }
    for name, options in expected.items():
        assert variants[name]["model"] == "improved_as_run"
        assert variants[name]["model_options"] == options
    assert variants["lr_ratio"] == {"model": "improved"}  # only the learning rates differ
    with pytest.raises(ValueError, match="no variant 'nope'"):
        run_experiment("ablation", tmp_path / "out", quick=True, variants=["nope"])


def test_flatten_is_skipped_at_32_px_where_it_is_the_same_network(tmp_path):
    # The claim behind the skip: at 32 px the two discriminators compute the same function.
    pooled = models.improved_discriminator(32, width=0.125)
    flat = models.improved_discriminator(32, width=0.125, pooling="flatten")
    assert flat.count_params() == pooled.count_params()
    flat.set_weights(pooled.get_weights())
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(flat(images, training=False)), np.asarray(pooled(images, training=False))
    )
    with pytest.raises(ValueError, match="'flatten'.*identical to improved_as_run at 32 px"):
        run_experiment("ablation", tmp_path / "out", quick=True, kid=False, variants=["flatten"])
    assert not (tmp_path / "out").exists()
    variants = EXPERIMENTS["ablation"]["variants"]
    assert "flatten" not in experiments._not_run(variants, 64)  # a different network at 64 px
    assert experiments._not_run(variants, 32) == {"flatten": variants["flatten"]["skip_at"][32]}


def test_ablation_variants_train_with_their_model_options(tmp_path):
    """`python -m ganlib experiment ablation --quick --no-kid --variants value_range,batchnorm`."""
    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["experiment", "ablation", "--quick", "--no-kid", "--epochs", "1"]
    argv += ["--variants", "value_range,batchnorm", "--out", str(out), "--work", str(work)]
    assert cli.main(argv) == 0
    for variant, options in (
        ("value_range", {"output": "sigmoid"}),
        ("batchnorm", {"batchnorm": False}),
    ):
        info = json.loads((work / variant / "run.json").read_text())["spec"]
        assert info["preset"] == "improved_as_run" and info["model_options"] == options
    gan = load_run(work / "value_range")
    assert gan.value_range == (0.0, 1.0)
    images = np.asarray(gan.generate(64, seed=1))
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.min() < 0.5 < images.max()
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in load_run(work / "batchnorm").generator.layers
    )
    record = json.loads((out / "provenance.json").read_text())
    assert check_provenance(out) == []
    assert record["variants_finished"] == ["value_range", "batchnorm"]
    assert record["command"].endswith("--variants value_range,batchnorm")
    assert record["variant_models"]["value_range"] == {
        "model": "improved_as_run",
        "model_options": {"output": "sigmoid"},
        "update_scheme": "ganlib",
    }
    assert record["runs_finished"] == ["value_range", "batchnorm"]  # one seed: named by variant
    assert record["not_run"]["flatten"].startswith("identical to improved_as_run at 32 px")
    readme = (out / "README.md").read_text()
    assert "| value_range |" in readme and "| batchnorm |" in readme
    assert "- `flatten`: identical to improved_as_run at 32 px" in readme


def test_the_variants_option_refuses_an_empty_name(tmp_path, capsys):
    code = cli.main(["experiment", "ablation", "--variants", "a,,b", "--out", str(tmp_path)])
    assert code == 2
    assert "variant names separated by commas" in capsys.readouterr().err


def test_seed_claim_follows_the_anime_face_schedule():
    entry = EXPERIMENTS["seed-claim"]
    assert entry["data"] == "toy-faces:4992"
    assert entry["batch_size"] == 32 and entry["steps_per_epoch"] == 4992 // 32 == 156
    assert entry["epochs"] * entry["steps_per_epoch"] == 31_200
    assert entry["measure_every"] == 10
    assert (entry["image_size"], entry["width"]) == (64, 1.0)
    variants = entry["variants"]
    assert list(variants) == [
        "baseline",
        "improved_as_run",
        "improved_full_view",
        "improved_notebook",
    ]
    assert variants["improved_full_view"]["model_options"] == {"padding": "same"}
    assert variants["improved_notebook"]["update_scheme"] == "notebook"
    assert len(entry["seeds"]) >= 3  # a GAN comparison is over seeds
    models = [spec["model"] for spec in variants.values()]
    for model in models:  # the notebook's rates: 1e-4 for both networks
        assert PRESETS[model].d_learning_rate == PRESETS[model].g_learning_rate == 1e-4
    lr_ratio = PRESETS[EXPERIMENTS["ablation"]["variants"]["lr_ratio"]["model"]]
    assert lr_ratio.g_learning_rate == 2 * lr_ratio.d_learning_rate


# --------------------------------------------------------------------------- measurements


def colour_features(images, value_range=None):
    """A cheap stand-in extractor: mean colour and spread per channel."""
    pixels = np.asarray(images, np.float32).reshape(len(images), -1, 3)
    return np.concatenate([pixels.mean(axis=1), pixels.std(axis=1)], axis=1)


class HalfBlank:
    """A stand-in GAN: generate() gives toy faces in [-1, 1], every second one a flat grey."""

    value_range = (-1.0, 1.0)

    def generate(self, n, seed=None):
        images = toy_faces(n, 32, seed=seed or 0)[0].astype(np.float32) / 127.5 - 1.0
        images[1::2] = 0.0
        return images


def test_measurements_fill_the_logs_on_measured_epochs_only():
    real = toy_faces(64, 32, seed=5)[0].astype(np.float32) / 127.5 - 1.0
    callback = Measurements(2, 32, colour_features(real), colour_features, "strict", seed=1)
    callback.set_model(HalfBlank())
    logs = {}
    callback.on_epoch_end(0, logs)
    assert set(logs) == set(MEASURED) and all(math.isnan(v) for v in logs.values())
    logs = {}
    callback.on_epoch_end(1, logs)
    assert logs["blank_share"] == 0.5
    assert logs["unrecognised"] == 0.5  # the strict decoder reads the faces, not the flat ones
    assert 0 < logs["coverage"] <= 16 / 2304
    assert logs["kid"] > 0.01  # half the samples flat: far from the real set
    assert logs["kid_std"] > 0  # subsets of half the samples: a spread that means something
    assert logs["variety"] > 0.8  # the faces it draws are as varied as real ones...
    assert logs["precision"] < 0.75  # ...but half the samples lie off the real features
    assert callback.history == [(1, logs)]
    logs = {}
    callback.on_epoch_end(2, logs)
    assert math.isnan(logs["blank_share"])
    callback.final_epoch = 2  # the last epoch is measured whatever `every` says
    callback.on_epoch_end(2, logs)
    assert logs["blank_share"] == 0.5


def test_measurements_without_extractor_or_decoder_measure_the_blank_share_only():
    callback = Measurements(1, 8)
    callback.set_model(HalfBlank())
    values = callback.measure()
    assert values["blank_share"] == 0.5
    keys = ("kid", "kid_std", "coverage", "unrecognised", "variety", "precision", "recall")
    assert all(math.isnan(values[key]) for key in keys)
    with pytest.raises(ValueError, match="both real_features and extractor"):
        Measurements(1, 8, extractor=colour_features)
    with pytest.raises(ValueError, match="every must be at least 1"):
        Measurements(0, 8)


def test_measurements_keep_their_settings_kid_over_10_halves_and_prdc_with_k_5():
    """What the recorded experiments measure, pinned: resumed runs must go on alike."""
    from ganlib import metrics

    real = toy_faces(64, 32, seed=5)[0].astype(np.float32) / 127.5 - 1.0
    real_features = colour_features(real)
    callback = Measurements(1, 40, real_features, colour_features, "strict", seed=3)
    callback.set_model(HalfBlank())
    values = callback.measure()
    assert tuple(values) == MEASURED
    images = HalfBlank().generate(40, seed=3)
    fake = colour_features(images)
    assert (values["kid"], values["kid_std"]) == metrics.kid(real_features, fake, 10, 20, seed=3)
    scores = metrics.prdc(real_features, fake, k=5)
    assert (values["precision"], values["nn_coverage"]) == (scores["precision"], scores["coverage"])
    coverage = metrics.mode_coverage(images, (-1.0, 1.0), decoder="strict")
    assert values["variety"] == coverage["variety"]


# --------------------------------------------------------------------------- provenance


def test_check_provenance_names_what_a_result_lacks(quick_result, tmp_path):
    _, out, _ = quick_result
    record = json.loads((out / "provenance.json").read_text())
    assert check_provenance(tmp_path) == [
        f"{tmp_path} has no provenance.json; record results with python -m ganlib experiment"
    ]
    broken = dict(record, commit="", quick=True, full=True)
    del broken["device"]
    (tmp_path / "provenance.json").write_text(json.dumps(broken))
    problems = " | ".join(check_provenance(tmp_path))
    assert "lacks 'commit'" in problems and "lacks 'device'" in problems
    assert "history_baseline_seed0.csv" in problems  # finished, but no history beside it
    assert "both quick and full" in problems
    (tmp_path / "big.bin").write_bytes(b"\0" * (MAX_RESULT_BYTES + 1))
    assert "more than" in " | ".join(check_provenance(tmp_path))


def test_the_command_with_an_unknown_name_is_one_line_exit_2(tmp_path, capsys):
    code = cli.main(["experiment", "nope", "--quick", "--out", str(tmp_path / "out")])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("ganlib: error: unknown experiment 'nope'; choose one of ablation")
    assert error.count("\n") == 1


# --------------------------------------------------------------------------- grids, old results


def test_grid_epochs_spreads_the_kept_epochs_evenly():
    assert experiments.grid_epochs(range(200), 5) == [0, 50, 100, 149, 199]
    assert experiments.grid_epochs(range(200), 1) == [199]
    assert experiments.grid_epochs([0, 4, 9, 19], 21) == [0, 4, 9, 19]
    assert experiments.grid_epochs([0, 4, 9, 19], 0) == []


def test_grids_are_thinned_alike_for_every_run_to_fit_the_cap(tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    work, out = tmp_path / "work", tmp_path / "out"
    runs = ["a_seed0", "b_seed0", "a_seed1"]
    for run in runs:
        (work / run / "samples").mkdir(parents=True)
        for epoch in range(30):
            noise = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8).repeat(2, 0).repeat(2, 1)
            Image.fromarray(noise).save(work / run / "samples" / f"epoch_{epoch:04d}.png")
    out.mkdir()
    experiments._save_grid(work / "a_seed0" / "samples" / "epoch_0000.png", tmp_path / "one.png")
    one = (tmp_path / "one.png").stat().st_size
    # Room for about 13 halved grids: 3 runs x 4 epochs fit, 3 x 5 do not.
    monkeypatch.setattr(experiments, "MAX_RESULT_BYTES", int(13 * one / 0.9))
    kept = experiments._copy_grids(work, out, runs)
    assert kept == [0, 10, 19, 29]
    names = sorted(p.name for p in (out / "samples").iterdir())
    assert names == sorted(f"{r}_epoch_{e:04d}.png" for r in runs for e in kept)
    with Image.open(out / "samples" / f"a_seed0_epoch_{kept[0]:04d}.png") as picture:
        assert picture.size == (40, 40)  # the nearest 2x enlargement undone, losslessly


def test_a_grid_of_trained_samples_is_stored_with_a_palette_close_to_its_colours(tmp_path):
    """A 5x5 grid of 32 px faces with the grain of generated ones takes a palette, not 70 kB.

    Twelve runs of a seed claim then keep four epochs of grids each within the cap instead
    of one; the palette moves a pixel by a few grey levels on average.
    """
    from PIL import Image

    from ganlib import data, grids

    faces, _ = data.toy_faces(25, image_size=32, seed=0)
    grain = np.random.default_rng(0).normal(0, 12, faces.shape)
    faces = np.clip(faces + grain, 0, 255).astype(np.uint8)
    grid = grids.image_grid(faces, 5, 5)
    grids.save_grid(tmp_path / "grid.png", faces, 5, 5)
    lossless = (tmp_path / "grid.png").stat().st_size
    experiments._save_grid(tmp_path / "grid.png", tmp_path / "kept.png")
    kept = tmp_path / "kept.png"
    assert kept.stat().st_size < lossless / 2
    with Image.open(kept) as picture:
        assert picture.mode == "P"
        stored = np.asarray(picture.convert("RGB"), dtype=float)
    assert np.abs(stored - grid).mean() < 6


def test_a_result_recorded_before_runs_were_listed_is_continued(tmp_path):
    """An older result names runs after variants; a new variant is added beside them."""
    out, work = tmp_path / "out", tmp_path / "work"
    run_experiment("ablation", out, work=work, quick=True, kid=False, variants=["baseline"])
    record = json.loads((out / "provenance.json").read_text())
    old = {k: v for k, v in record.items() if k not in ("runs", "runs_finished", "processes")}
    old["sessions"] = [{"command": "an older command", "seconds": 1.0}]
    (out / "provenance.json").write_text(json.dumps(old))
    import shutil

    shutil.rmtree(work / "baseline")  # trained on another machine: only the history is here
    new = run_experiment("ablation", out, work=work, quick=True, kid=False, variants=["full_view"])
    assert new["runs_finished"] == ["baseline", "full_view"]
    assert new["processes"][0]["command"] == "an older command"
    assert (out / "samples" / "baseline_epoch_0001.png").is_file()  # its grids are kept
    # A run whose grids were all left out by an older ganlib holds the others' grids back no more.
    for grid in (out / "samples").glob("baseline_*.png"):
        grid.unlink()
    again = run_experiment(
        "ablation", out, work=work, quick=True, kid=False, variants=["full_view"]
    )
    assert again["grid_epochs"] == [0, 1]
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "full_view_epoch_0000.png",
        "full_view_epoch_0001.png",
    ]
    assert check_provenance(out) == []


def test_a_stopped_experiment_is_recorded_as_far_as_it_got(tmp_path):
    """provenance.json says which runs are unfinished and how far; --record-only trains nothing."""
    out, work = tmp_path / "out", tmp_path / "work"
    options = dict(work=work, quick=True, kid=False, variants=["baseline"], seeds=[0])
    run_experiment("seed-claim", out, epochs=1, **options)
    # A later call asks for 3 epochs; this one is stopped after the second (only one more is asked here).
    run_experiment("seed-claim", out, epochs=2, **options)
    stamp = (work / "baseline_seed0" / "history.csv").stat().st_mtime_ns
    record = run_experiment("seed-claim", out, epochs=3, train_now=False, **options)
    assert (work / "baseline_seed0" / "history.csv").stat().st_mtime_ns == stamp  # nothing trained
    assert record["runs_finished"] == []  # 2 of 3 epochs: not finished
    assert record["runs_in_progress"] == {"baseline_seed0": 2}
    assert record["processes"][-1]["trains"] is False
    assert record["processes"][-1]["runs_trained"] == []
    assert check_provenance(out) == []  # recorded as far as it got
    stopped = json.loads((out / "provenance.json").read_text())
    (out / "provenance.json").write_text(json.dumps(dict(stopped, runs_in_progress={})))
    assert check_provenance(out) == [f"{out / 'provenance.json'} lacks 'runs_finished'"]
    (out / "provenance.json").write_text(json.dumps(stopped))
    caption = recorded.provenance_caption(json.loads((out / "provenance.json").read_text()))
    assert "Still training: baseline_seed0 (2 of 3 epochs)" in caption
    assert (
        cli.main(
            [
                "experiment",
                "seed-claim",
                "--quick",
                "--no-kid",
                "--out",
                str(out),
                "--work",
                str(work),
            ]
            + ["--epochs", "3", "--variants", "baseline", "--seeds", "0", "--record-only"]
        )
        == 0
    )
    assert json.loads((out / "provenance.json").read_text())["command"].endswith("--record-only")


@pytest.mark.parametrize("train_now", [False, True])
def test_a_run_finished_by_a_process_that_left_no_record_counts_with_its_time_a_lower_bound(
    tmp_path, train_now
):
    """A process trains a run to its end and is stopped before it writes provenance.json."""
    out, work = tmp_path / "out", tmp_path / "work"
    options = dict(work=work, quick=True, kid=False, variants=["baseline"], seeds=[0])
    run_experiment("seed-claim", out, epochs=1, **options)
    kept = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    run_experiment("seed-claim", out, epochs=2, **options)
    for path in out.iterdir():  # the second process's record is lost; its run folder is not
        if path.is_file():
            path.unlink()
    for name, content in kept.items():
        (out / name).write_bytes(content)
    history = work / "baseline_seed0" / "history.csv"
    stamp = history.stat().st_mtime_ns
    record = run_experiment("seed-claim", out, epochs=2, train_now=train_now, **options)
    assert history.stat().st_mtime_ns == stamp  # not trained again
    assert record["runs_finished"] == ["baseline_seed0"]
    assert record["runs_in_progress"] == {}
    assert record["runs_untimed"] == ["baseline_seed0"]
    assert (out / "history_baseline_seed0.csv").read_bytes() == history.read_bytes()
    assert check_provenance(out) == []
    caption = recorded.provenance_caption(record)
    assert "stopped before it recorded its time, so the wall time is a lower bound" in caption
    # Trained further by a process that records its time, the run stays marked: the
    # seconds of the lost process are still missing from its total.
    again = run_experiment("seed-claim", out, epochs=3, **options)
    assert again["runs_untimed"] == ["baseline_seed0"]


def test_a_process_stopped_mid_run_leaves_the_runs_time_so_far(tmp_path, monkeypatch):
    out, work = tmp_path / "out", tmp_path / "work"
    options = dict(work=work, quick=True, kid=False, variants=["baseline"], seeds=[0])
    epoch_end = experiments._LoadSampler.on_epoch_end

    def stopped_after_the_first_epoch(self, epoch, logs=None):
        epoch_end(self, epoch, logs)
        raise KeyboardInterrupt  # the process is stopped here

    monkeypatch.setattr(experiments._LoadSampler, "on_epoch_end", stopped_after_the_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("seed-claim", out, epochs=2, **options)
    stopped = json.loads((out / "provenance.json").read_text())
    assert stopped["runs_finished"] == []
    first = stopped["run_seconds"]["baseline_seed0"]
    assert 0 < first <= stopped["processes"][-1]["seconds"]
    monkeypatch.undo()
    record = run_experiment("seed-claim", out, epochs=2, **options)
    assert record["runs_finished"] == ["baseline_seed0"]
    second = record["processes"][-1]["seconds"]
    assert first < record["run_seconds"]["baseline_seed0"] <= first + second
    assert record["runs_untimed"] == []


@pytest.mark.parametrize(
    "before, during, shared",
    [
        (0.0, "cores", False),  # only this process's own training: no run is shared
        (1.5, "cores", True),  # someone else's work was running when the process started
        (0.0, "above", True),  # more than the cores' worth of load while it trained
    ],
)
def test_a_run_is_marked_shared_by_other_work_not_by_the_runs_before_it(
    tmp_path, monkeypatch, before, during, shared
):
    """The load a process's own earlier run leaves behind is not someone else's work."""
    import os

    cores = os.cpu_count() or 1
    own = float(cores) if during == "cores" else cores + 1.5
    calls = []

    def load_average():
        calls.append(None)
        return (before,) * 3 if len(calls) == 1 else (own,) * 3  # the first: process start

    monkeypatch.setattr(experiments, "_load", load_average)
    record = run_experiment(
        "seed-claim",
        tmp_path / "out",
        work=tmp_path / "work",
        quick=True,
        kid=False,
        variants=["baseline", "improved_as_run"],
        seeds=[0],
    )
    assert record["run_shared"] == {"baseline_seed0": shared, "improved_as_run_seed0": shared}
