"""Tests for ganlib/training/spec.py: one checked description of a run, saved in run.json."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import ganlib
from ganlib import experiments
from ganlib.cli import main
from ganlib.training import (
    PRESETS,
    RunSpec,
    load_run,
    preset_spec,
    read_run_info,
    run_info_spec,
    run_spec,
)

from ._helpers import flat_run_json

SMALL = dict(image_size=32, width=0.125)
RECORDS = json.loads((Path(__file__).parent / "seed_claim_run_records.json").read_text())


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"width": math.inf}, "width must be a positive finite number"),
        ({"width": 0}, "width must be a positive finite number"),
        ({"width": 10.0}, "million parameters"),
        ({"image_size": 48}, "image_size"),
        ({"model": "dcgan"}, "unknown model 'dcgan'"),
        ({"model_options": {"colour": 1}}, "unknown option 'colour'"),
        ({"model_options": {"upsample": object()}}, "upsample"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"batch_size": 1}, "batch size"),
        ({"d_learning_rate": 0.0}, "d_learning_rate must be a positive finite number"),
        ({"g_learning_rate": math.inf}, "g_learning_rate must be a positive finite number"),
        ({"g_learning_rate": math.nan}, "g_learning_rate must be a positive finite number"),
        ({"beta_1": 1.0}, "beta_1 must be a number in"),
        ({"d_steps": 0}, "d_steps"),
        ({"loss": "l2"}, "unknown loss 'l2'"),
        ({"r1_gamma": -1.0}, "r1_gamma must be a number >= 0"),
        ({"loss": "hinge", "label_noise": 0.05}, "apply to the 'bce' loss only"),
        ({"label_noise": 0.6}, "label_noise must be in"),
        ({"update_scheme": "notebook", "d_steps": 2}, "d_steps=2 applies to"),
        ({"update_scheme": "notebook", "ada": True}, "without another loss, R1 or an augmenter"),
        ({"ema": 1.0}, "ema must be a number in"),
        ({"ada_target": 0.6}, "only apply with ada=True"),
        ({"ada": "yes"}, "ada must be True or False"),
        ({"epochs": 0}, "epochs"),
        ({"steps_per_epoch": 0}, "steps_per_epoch"),
        ({"seed": -1}, "seed"),
        ({"data": 3}, "data must be a string"),
    ],
)
def test_a_bad_setting_is_refused_when_the_spec_is_made(changes, message):
    with pytest.raises(ValueError, match=message):
        PRESETS["improved"].replace(**changes)


def test_replace_refuses_a_setting_the_spec_does_not_have():
    with pytest.raises(TypeError, match="RunSpec has no setting 'learning_rat'"):
        PRESETS["improved"].replace(learning_rat=1e-3)


def test_values_are_normalised_so_equal_runs_compare_equal():
    spec = RunSpec(width=1, batch_size=np.int64(32), d_learning_rate=1)
    assert spec.width == 1.0 and isinstance(spec.width, float)
    assert type(spec.batch_size) is int and spec.latent_dim == 100  # the family's
    other = RunSpec(model="mlp", image_size=16, model_options={"hidden": (8,)})
    assert other.model_options == {"hidden": [8]}  # as run.json gives it back


def test_from_preset_reads_learning_rate_loss_and_flags_as_train_always_did():
    faster = preset_spec("improved", learning_rate=5e-5)
    assert faster.d_learning_rate == 5e-5
    assert faster.g_learning_rate == pytest.approx(1e-4)  # the ratio 2 kept
    both = preset_spec("improved", learning_rate=5e-5, g_learning_rate=3e-4)
    assert (both.d_learning_rate, both.g_learning_rate) == (5e-5, 3e-4)
    hinge = preset_spec("baseline", loss="hinge")
    assert hinge.label_noise == 0.0 and PRESETS["baseline"].label_noise == 0.05
    kept = preset_spec("baseline", label_smoothing=None)
    assert kept == PRESETS["baseline"]
    flagged = preset_spec("cifar", spectral_norm=True, model_options={"minibatch_std": True})
    assert flagged.model_options == {"minibatch_std": True, "spectral_norm": True}
    assert flagged.preset == "cifar" and flagged.model == "cifar"
    with pytest.raises(ValueError, match="unknown model 'dcgan'; choose one of the presets"):
        preset_spec("dcgan")


def test_differences_name_every_compared_setting_and_skip_epochs_data_and_name():
    a = PRESETS["improved"]
    b = a.replace(g_learning_rate=1e-4, beta_1=0.9, d_steps=2, epochs=99, data="toy-faces:64")
    assert a.differences(b) == [
        ("g_learning_rate", 2e-4, 1e-4),
        ("beta_1", 0.5, 0.9),
        ("d_steps", 1, 2),
    ]
    assert (
        PRESETS["improved_as_run"].differences(PRESETS["improved"].replace(g_learning_rate=1e-4))
        == []
    )


def test_a_spec_survives_run_json():
    spec = preset_spec(
        "hybrid",
        image_size=32,
        width=0.25,
        r1_gamma=0.1,
        ema=0.999,
        ada=True,
        ada_target=0.7,
        model_options={"generator_output": "sigmoid"},
        data="toy-faces:64",
        seed=3,
    )
    text = json.dumps(spec.to_json())
    assert RunSpec.from_json(json.loads(text)) == spec
    assert run_info_spec({"spec": json.loads(text)}) == spec
    with pytest.raises(ValueError, match="unknown run setting 'colour'"):
        RunSpec.from_json({**spec.to_json(), "colour": 1})


@pytest.mark.parametrize("run", sorted(RECORDS))
def test_run_json_from_before_specs_reads_as_the_spec_the_experiment_trains(run):
    """The seed-claim experiment's half-trained run folders (copies of their run.json) resume."""
    variant, _, seed = run.rpartition("_seed")
    settings = experiments._settings(
        "seed-claim",
        data=None,
        image_size=32,
        width=0.25,
        epochs=None,
        measure_every=None,
        quick=False,
        kid=True,
        seeds=None,
    )
    entry = experiments.EXPERIMENTS["seed-claim"]["variants"][variant]
    expected = experiments.variant_spec(entry, settings, int(seed))
    legacy = run_info_spec(RECORDS[run])  # the flat layout recorded no epochs
    assert legacy.differences(expected) == [] and legacy.data == expected.data


def _train_tiny(run_dir, **settings):
    options = dict(SMALL, epochs=1, steps_per_epoch=2, batch_size=16, verbose=0)
    options.update(settings)
    return ganlib.train("toy-faces:64", run_dir=run_dir, **options)


def test_resume_names_every_difference_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    _train_tiny(run)
    before = (run / "run.json").read_text()
    with pytest.raises(ValueError) as error:
        _train_tiny(run, epochs=2, g_learning_rate=1e-3, beta_1=0.9, d_steps=2, seed=1)
    text = str(error.value)
    for said in (
        "g_learning_rate: the run has 0.0002, this call asks for 0.001",
        "beta_1: the run has 0.5, this call asks for 0.9",
        "d_steps: the run has 1, this call asks for 2",
        "seed: the run has 0, this call asks for 1",
    ):
        assert said in text
    assert (run / "run.json").read_text() == before


def test_more_epochs_resume_and_run_json_says_the_new_total(tmp_path):
    run = tmp_path / "run"
    _train_tiny(run)
    gan, history = _train_tiny(run, epochs=2)
    assert history["epoch"] == [0, 1]
    saved = read_run_info(run)
    assert saved["spec"]["epochs"] == 2
    assert run_info_spec(saved) == gan.spec
    assert load_run(run).spec == gan.spec


def test_a_run_folder_from_before_specs_resumes_and_is_rewritten_as_a_spec(tmp_path):
    run = tmp_path / "run"
    gan, _ = _train_tiny(run)
    spec = gan.spec
    legacy = flat_run_json(run)  # the layout train() wrote before RunSpec
    assert run_info_spec(legacy) == spec.replace(epochs=10)  # the layout has no epochs
    gan, history = _train_tiny(run, epochs=2)
    assert history["epoch"] == [0, 1]
    assert read_run_info(run)["spec"] == spec.replace(epochs=2).to_json()


def test_d_steps_and_both_learning_rates_reach_the_optimizers(tmp_path):
    gan, _ = _train_tiny(
        tmp_path / "run", d_steps=2, d_learning_rate=3e-4, g_learning_rate=5e-5, beta_1=0.6
    )
    assert (
        int(gan.d_optimizer.iterations.numpy()) == 2 * int(gan.g_optimizer.iterations.numpy()) == 4
    )
    assert float(gan.d_optimizer.learning_rate.numpy()) == pytest.approx(3e-4)
    assert float(gan.g_optimizer.learning_rate.numpy()) == pytest.approx(5e-5)
    assert float(gan.g_optimizer.beta_1) == pytest.approx(0.6)
    assert read_run_info(tmp_path / "run")["spec"]["d_steps"] == 2


def test_train_takes_a_spec_and_images(tmp_path):
    images, _ = ganlib.data.toy_faces(32, 32)
    spec = run_spec(model="improved_as_run", epochs=1, steps_per_epoch=2, batch_size=16, **SMALL)
    gan, _ = ganlib.train(images, spec=spec, verbose=0)
    assert gan.spec == spec and gan.run_details["data"] == "array of 32 images"
    with pytest.raises(ValueError, match="no data"):
        ganlib.train(spec=spec, verbose=0)
    with pytest.raises(TypeError, match="spec must be a RunSpec"):
        ganlib.train(images, spec=spec.to_json(), verbose=0)


def test_the_command_line_sets_both_learning_rates_beta_1_and_d_steps(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        "toy-faces:64",
        "--image-size",
        "32",
        "--width",
        "0.125",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--steps-per-epoch",
        "2",
        "--run",
        str(run),
    ]
    assert main([*args, "--lr", "3e-4", "--g-lr", "1e-4", "--beta-1", "0.6", "--d-steps", "2"]) == 0
    spec = read_run_info(run)["spec"]
    assert (spec["d_learning_rate"], spec["g_learning_rate"]) == (3e-4, 1e-4)
    assert (spec["beta_1"], spec["d_steps"]) == (0.6, 2)
    capsys.readouterr()
    assert main([*args, "--lr", "3e-4", "--g-lr", "2e-4", "--beta-1", "0.6", "--d-steps", "2"]) == 2
    assert (
        "g_learning_rate: the run has 0.0001, this call asks for 0.0002" in capsys.readouterr().err
    )
