"""Tests for ganlib/experiments.py and the `experiment` command."""

import json
import math

import keras
import numpy as np
import pytest

from ganlib import cli, experiments, models
from ganlib.data import toy_faces
from ganlib.experiments import (
    EXPERIMENTS,
    MAX_RESULT_BYTES,
    PROVENANCE_KEYS,
    Measurements,
    check_provenance,
    run_experiment,
)
from ganlib.training import PRESETS, load_run, read_history

MEASURED = ("kid", "kid_std", "coverage", "unrecognised", "blank_share")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    """`python -m ganlib experiment seed-claim --quick --no-kid`, run once for the tests below."""
    root = tmp_path_factory.mktemp("experiment")
    out, work = root / "out", root / "work"
    argv = ["experiment", "seed-claim", "--quick", "--no-kid", "--out", str(out)]
    code = cli.main([*argv, "--work", str(work)])
    return code, out, work


def test_the_command_writes_both_histories_with_the_measurement_columns(quick_result):
    code, out, _ = quick_result
    assert code == 0
    for variant in ("baseline", "improved_as_run"):
        rows = read_history(out / f"history_{variant}.csv")
        assert [row["epoch"] for row in rows] == [0, 1]  # quick: 2 epochs, measured every epoch
        for row in rows:
            assert set(MEASURED) <= set(row)
            assert 0.0 <= row["blank_share"] <= 1.0
            assert math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])
            assert math.isnan(row["kid"])  # --no-kid: KID and coverage not measured


def test_the_command_keeps_a_few_small_grids_and_stays_under_the_limit(quick_result):
    _, out, _ = quick_result
    grids = sorted(path.name for path in (out / "samples").glob("*.png"))
    assert grids == [
        "baseline_epoch_0000.png",
        "baseline_epoch_0001.png",
        "improved_as_run_epoch_0000.png",
        "improved_as_run_epoch_0001.png",
    ]
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    assert size <= MAX_RESULT_BYTES
    assert not list(out.rglob("*.npz"))  # checkpoints stay in the work folder
    assert list((quick_result[2] / "baseline" / "checkpoints").glob("*.npz"))


def test_the_provenance_is_complete_and_says_quick(quick_result):
    _, out, _ = quick_result
    assert check_provenance(out) == []
    record = json.loads((out / "provenance.json").read_text())
    for key in PROVENANCE_KEYS:
        assert record[key] not in (None, "", [], {}), key
    assert record["command"].startswith("python -m ganlib experiment seed-claim --out ")
    assert "--quick" in record["command"]
    assert record["quick"] is True and record["full"] is False
    assert record["variants_finished"] == ["baseline", "improved_as_run"]
    assert record["settings"]["epochs"] == 2 and record["settings"]["image_size"] == 32
    assert record["wall_seconds"] >= 0
    assert record["device"].startswith(("CPU: ", "GPU: "))
    assert "Quick run" in (out / "README.md").read_text()


def test_killed_and_rerun_it_resumes_and_skips_finished_variants(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    options = dict(work=work, quick=True, kid=False)
    # A run killed after its first variant: only baseline finished.
    first = run_experiment("seed-claim", out, epochs=1, variants=["baseline"], **options)
    assert first["variants_finished"] == ["baseline"]
    history = work / "baseline" / "history.csv"
    stamp = history.stat().st_mtime_ns
    second = run_experiment("seed-claim", out, epochs=1, **options)
    assert second["variants_finished"] == ["baseline", "improved_as_run"]
    assert history.stat().st_mtime_ns == stamp  # not trained again
    variants = ("baseline", "improved_as_run")
    before = {v: (out / f"history_{v}.csv").read_text().splitlines() for v in variants}
    # Asked for more epochs, each variant goes on from its checkpoint.
    third = run_experiment("seed-claim", out, epochs=2, **options)
    for variant, lines in before.items():
        after = (out / f"history_{variant}.csv").read_text().splitlines()
        assert len(lines) == 2 and len(after) == 3  # header and one row, then two rows
        assert after[:2] == lines  # the first epoch's row unchanged
        assert [row["epoch"] for row in read_history(out / f"history_{variant}.csv")] == [0, 1]
    assert len(third["sessions"]) == 3  # one entry per call, with its command and commit
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
    ]
    expected = {
        "value_range": {"output": "sigmoid"},
        "transposed": {"upsample": "transposed"},
        "batchnorm": {"batchnorm": False},
        "flatten": {"pooling": "flatten"},
        "dropout": {"dropout": False},
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
        info = json.loads((work / variant / "run.json").read_text())
        assert info["model"] == "improved_as_run" and info["model_options"] == options
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
    }
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
    models = [spec["model"] for spec in entry["variants"].values()]
    assert models == ["baseline", "improved_as_run"]
    for model in models:  # the notebook's rates: 1e-4 for both networks
        assert PRESETS[model]["d_learning_rate"] == PRESETS[model]["g_learning_rate"] == 1e-4
    lr_ratio = PRESETS[EXPERIMENTS["ablation"]["variants"]["lr_ratio"]["model"]]
    assert lr_ratio["g_learning_rate"] == 2 * lr_ratio["d_learning_rate"]


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
    assert all(math.isnan(values[key]) for key in ("kid", "kid_std", "coverage", "unrecognised"))
    with pytest.raises(ValueError, match="both real_features and extractor"):
        Measurements(1, 8, extractor=colour_features)
    with pytest.raises(ValueError, match="every must be at least 1"):
        Measurements(0, 8)


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
    assert "history_baseline.csv" in problems  # finished, but no history beside it
    assert "both quick and full" in problems
    (tmp_path / "big.bin").write_bytes(b"\0" * (MAX_RESULT_BYTES + 1))
    assert "more than" in " | ".join(check_provenance(tmp_path))


def test_the_command_with_an_unknown_name_is_one_line_exit_2(tmp_path, capsys):
    code = cli.main(["experiment", "nope", "--quick", "--out", str(tmp_path / "out")])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("ganlib: error: unknown experiment 'nope'; choose one of ablation")
    assert error.count("\n") == 1
