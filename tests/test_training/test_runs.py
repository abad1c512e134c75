"""Tests for ganlib/training/runs.py."""

import json
import re
import shutil

import keras
import numpy as np
import pytest

from ganlib import training
from ganlib.data import toy_faces

from ._helpers import (
    flat_run_json,
    run_script,
)


def test_train_checks_its_arguments(tmp_path):
    faces = np.zeros((8, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown model"):
        training.train(faces, model="big", image_size=32)
    with pytest.raises(ValueError, match="batch size"):
        training.train(faces, image_size=32, batch_size=1)
    with pytest.raises(ValueError, match="image_size"):
        training.train(faces, image_size=48)
    with pytest.raises(ValueError, match="32x32 but image_size is 64"):
        training.train(faces, image_size=64)
    with pytest.raises(ValueError, match="fewer than one batch"):
        training.train(faces, image_size=32, batch_size=16)
    with pytest.raises(ValueError, match="uint8"):
        training.train(faces.astype(np.float32), image_size=32)


def test_train_writes_a_run_and_refuses_another_model_in_it(tmp_path, monkeypatch):
    from ganlib import metrics

    class Flat:  # a stand-in feature extractor: the KID plumbing, not the features, is tested here
        def __call__(self, images, value_range=None):
            return np.asarray(images, np.float32).reshape(len(images), -1)[:, :32]

    monkeypatch.setattr(metrics, "DomainFeatures", lambda image_size: Flat())
    run = tmp_path / "run"
    gan, history = training.train(
        "toy-faces:32",
        model="improved",
        image_size=32,
        width=0.125,
        epochs=1,
        batch_size=8,
        run_dir=run,
        verbose=0,
        kid_every=1,
        grid=(2, 2),
    )
    assert history["epoch"] == [0] and np.isfinite(history["kid"][0])
    assert "kid" in (run / "history.csv").read_text().splitlines()[0]
    info = json.loads((run / "run.json").read_text())["spec"]
    assert (info["model"], info["image_size"], info["width"], info["latent_dim"]) == (
        "improved",
        32,
        0.125,
        100,
    )
    assert info["data"] == "toy-faces:32" and info["seed"] == 0
    assert gan.spec.steps_per_epoch == 4 and gan.sample_grid.grids[0][1].shape == (
        4,
        32,
        32,
        3,
    )
    with pytest.raises(
        ValueError, match="model: the run has 'improved', this call asks for 'cifar'"
    ):
        training.train(
            "toy-faces:32",
            model="cifar",
            image_size=32,
            width=0.125,
            epochs=1,
            batch_size=8,
            run_dir=run,
        )
    with pytest.raises(ValueError, match="already has checkpoints"):
        training.train(
            "toy-faces:32",
            image_size=32,
            width=0.125,
            epochs=1,
            batch_size=8,
            run_dir=run,
            resume=False,
        )
    loaded = training.load_run(run)
    np.testing.assert_array_equal(loaded.generate(2, seed=0), gan.generate(2, seed=0))

    class Poison(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.discriminator.get_layer("logit").bias.assign([np.inf])

    with pytest.raises(
        FloatingPointError,
        match=r"epoch 1 .*step 2 of 4 \(training step 6\).*checkpoint is .*ckpt-000000004",
    ):
        training.train(
            "toy-faces:32",
            image_size=32,
            width=0.125,
            epochs=2,
            batch_size=8,
            run_dir=run,
            verbose=0,
            steps_per_execution=1,  # the poison acts between single steps
            callbacks=[Poison()],
            grid=(2, 2),
        )
    assert [row["epoch"] for row in training.read_history(run / "history.csv")] == [0]


def test_resumed_runs_end_where_an_uninterrupted_one_does(tmp_path):
    """Op determinism is process-wide, so this runs in its own process."""
    result = run_script(
        """
        import json, shutil, sys
        import numpy as np, tensorflow as tf
        tf.config.experimental.enable_op_determinism()
        from ganlib import training
        from ganlib.data import toy_faces

        faces, _ = toy_faces(64, image_size=32)
        root = sys.argv[1]
        options = dict(model="improved", image_size=32, width=0.125, batch_size=16, ema=0.9,
                       ada=True, checkpoint_every=2, steps_per_execution=2, verbose=0,
                       grid=(2, 2))

        def state(gan):
            return [v.numpy() for v in gan.generator.weights + gan.discriminator.weights
                    + gan.ema_generator.weights + [gan.augmenter.probability]]

        def largest_difference(a, b):
            return max(float(np.max(np.abs(x - y))) for x, y in zip(state(a), state(b)))

        a, history_a = training.train(faces, epochs=3, run_dir=f"{root}/a", **options)
        training.train(faces, epochs=2, run_dir=f"{root}/b", **options)  # stopped after 2 epochs
        shutil.copytree(f"{root}/b", f"{root}/c")
        b, history_b = training.train(faces, epochs=3, run_dir=f"{root}/b", **options)
        # c was killed before epoch 1 ended: its newest checkpoint is at step 2 of that epoch
        training.list_checkpoints(f"{root}/c/checkpoints")[-1].unlink()
        _, meta, _ = training.latest_checkpoint(f"{root}/c/checkpoints")
        c, history_c = training.train(faces, epochs=3, run_dir=f"{root}/c", **options)
        print(json.dumps({
            "b": largest_difference(a, b), "c": largest_difference(a, c),
            "epochs": [history_a["epoch"], history_b["epoch"], history_c["epoch"]],
            "same_history": history_a == history_b,
            # c resumed in the middle of epoch 1: its row still averages all 4 steps
            "same_history_c": history_a == history_c,
            "steps": [int(g.global_step.numpy()) for g in (a, b, c)],
            "p": float(a.augmenter.probability.numpy()),
            "resumed_from": [meta["epoch"], meta["step_in_epoch"]],
        }))
        """,
        tmp_path,
    )
    assert result["epochs"] == [[0, 1, 2]] * 3
    assert result["steps"] == [12, 12, 12]
    assert result["b"] == 0.0 and result["same_history"]
    assert result["resumed_from"] == [1, 2] and result["c"] == 0.0  # in the middle of epoch 1
    assert result["same_history_c"]
    assert result["p"] > 0  # the augmenter did move, and was resumed along with the rest


def test_train_takes_its_settings_by_name():
    faces = np.zeros((8, 32, 32, 3), np.uint8)
    with pytest.raises(TypeError):
        training.train(faces, "improved", 32)  # a positional model or size is easy to misplace


def test_ada_settings_reach_the_augmenter():
    faces = toy_faces(16, 32)[0]
    with pytest.raises(ValueError, match="ada_target only apply with ada=True"):
        training.train(faces, image_size=32, width=0.125, batch_size=8, ada_target=0.6)
    gan, _ = training.train(
        faces,
        image_size=32,
        width=0.125,
        epochs=1,
        batch_size=8,
        verbose=0,
        grid=(1, 1),
        ada=True,
        ada_target=0.7,
        ada_integration_steps=50,
    )
    assert (gan.augmenter.target_accuracy, gan.augmenter.integration_steps) == (0.7, 50)


SMALL = dict(image_size=32, width=0.125, batch_size=8, verbose=0, grid=(1, 1))


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A run folder with one finished epoch of 2 steps (16 faces, batches of 8)."""
    faces = toy_faces(16, 32)[0]
    run = tmp_path_factory.mktemp("runs") / "run"
    training.train(faces, **SMALL, epochs=1, run_dir=run)
    return faces, run


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(batch_size=4),
            r"batch_size: the run has 8, this call asks for 4",
        ),
        (dict(steps_per_epoch=1), r"steps_per_epoch: the run has 2, this call asks for 1"),
        (dict(seed=1), r"seed: the run has 0, this call asks for 1"),
        (dict(reverse=True), r"data: the run has array of 16 images \(fingerprint \w+\)"),
    ],
)
def test_resuming_with_another_data_position_is_refused(one_epoch_run, change, message):
    faces, run = one_epoch_run
    change = dict(change)
    if change.pop("reverse", False):
        faces = faces[::-1]  # the same images in another order: other data
    before = json.loads((run / "run.json").read_text())
    with pytest.raises(ValueError, match=message) as error:
        training.train(faces, **{**SMALL, **change}, epochs=2, run_dir=run)
    assert "or choose another run folder" in str(error.value)
    assert json.loads((run / "run.json").read_text()) == before
    assert len(training.read_history(run / "history.csv")) == 1  # nothing was trained


def test_a_run_with_all_its_epochs_says_there_is_nothing_to_train(one_epoch_run, capsys):
    faces, run = one_epoch_run
    step = training.latest_checkpoint(run / "checkpoints")[1]["step"]
    gan, history = training.train(faces, **{**SMALL, "verbose": "auto"}, epochs=1, run_dir=run)
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        f"run {run} already has 1 epoch; nothing to train (ask for more epochs to continue)"
    ]
    assert history["epoch"] == [0] and int(gan.global_step.numpy()) == step


def test_a_run_json_from_before_the_position_keys_still_resumes(tmp_path):
    faces = toy_faces(16, 32)[0]
    run = tmp_path / "run"
    training.train(faces, **SMALL, epochs=1, run_dir=run)
    info = flat_run_json(run)
    for key in ("steps_per_epoch", "data_fingerprint", "ada_options"):
        del info[key]  # what run.json held before these were recorded
    (run / "run.json").write_text(json.dumps(info))
    # the checkpoint still knows the epoch length
    with pytest.raises(ValueError, match="another steps per epoch"):
        training.train(faces, **SMALL, steps_per_epoch=1, epochs=2, run_dir=run)
    _, history = training.train(faces[::-1], **SMALL, epochs=2, run_dir=run)  # data: unknown
    assert history["epoch"] == [0, 1]


# --------------------------------------------------------------------------- model options


def test_model_options_reach_the_models_and_run_json_and_load_run(tmp_path):
    faces = toy_faces(16, 32)[0]
    run = tmp_path / "run"
    options = {"output": "sigmoid", "batchnorm": False, "dropout": False}
    gan, _ = training.train(faces, **SMALL, epochs=1, run_dir=run, model_options=options)
    assert gan.generator.name == "improved_generator_32_sigmoid_nobn"
    assert gan.discriminator.name == "improved_discriminator_32_nodropout"
    assert gan.value_range == (0.0, 1.0)  # so the real images were scaled to [0, 1] too
    images = np.asarray(gan.generate(8, seed=0))
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert json.loads((run / "run.json").read_text())["spec"]["model_options"] == options
    loaded = training.load_run(run)
    assert loaded.generator.name == gan.generator.name and loaded.value_range == (0.0, 1.0)
    np.testing.assert_array_equal(loaded.generate(2, seed=0), gan.generate(2, seed=0))
    # the same options resume; other ones (or none) are refused like another model
    _, history = training.train(faces, **SMALL, epochs=2, run_dir=run, model_options=options)
    assert history["epoch"] == [0, 1]
    for other in ({}, {**options, "output": "tanh"}):
        with pytest.raises(
            ValueError, match=r"was made with .*model_options: the run has .*another run folder"
        ):
            training.train(faces, **SMALL, epochs=3, run_dir=run, model_options=other)
    assert len(training.read_history(run / "history.csv")) == 2  # nothing was trained


@pytest.mark.parametrize(
    "options, message",
    [
        ({"upsampling": "transposed"}, r"unknown option 'upsampling'.*valid options: batchnorm"),
        ({"output": "relu"}, r"unknown output 'relu'; choose one of .*tanh.*sigmoid"),
        ({"batchnorm": "off"}, "batchnorm must be True or False"),
        ([("output", "sigmoid")], "model_options must be a dict"),
    ],
)
def test_bad_model_options_are_refused_before_anything_is_written(tmp_path, options, message):
    faces = toy_faces(16, 32)[0]
    with pytest.raises(ValueError, match=message):
        training.train(faces, **SMALL, epochs=1, run_dir=tmp_path / "r", model_options=options)
    assert not (tmp_path / "r").exists()


def test_model_options_are_checked_against_the_presets_family(tmp_path):
    faces = toy_faces(16, 32)[0]
    with pytest.raises(ValueError, match="unknown option 'output' for 'baseline' models"):
        training.train(faces, **{**SMALL, "model": "baseline"}, model_options={"output": "tanh"})


def test_a_run_json_from_before_model_options_resumes_as_without_them(one_epoch_run, tmp_path):
    faces, original = one_epoch_run
    run = tmp_path / "run"
    shutil.copytree(original, run)
    info = flat_run_json(run)
    assert info["model_options"] == {}
    del info["model_options"]  # what run.json held before model options were recorded
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="model_options: the run has {}"):
        training.train(faces, **SMALL, epochs=2, run_dir=run, model_options={"dropout": False})
    _, history = training.train(faces, **SMALL, epochs=2, run_dir=run)
    assert history["epoch"] == [0, 1]


@pytest.mark.parametrize(
    "change, said",
    [
        (dict(loss="hinge"), "loss: the run has 'bce', this call asks for 'hinge'"),
        (dict(gp_weight=5.0), "gp_weight: the run has 10.0, this call asks for 5.0"),
        (dict(r1_gamma=1.0), "r1_gamma: the run has 0.0, this call asks for 1.0"),
        (dict(label_smoothing=0.1), "label_smoothing: the run has 0.0, this call asks for 0.1"),
    ],
)
def test_resuming_with_another_loss_or_penalty_is_refused(one_epoch_run, change, said):
    faces, run = one_epoch_run
    before = json.loads((run / "run.json").read_text())
    with pytest.raises(ValueError, match=re.escape(said)) as error:
        training.train(faces, **SMALL, **change, epochs=2, run_dir=run)
    assert str(error.value).startswith(f"run folder {run} was made with other settings (")
    assert json.loads((run / "run.json").read_text()) == before
    assert len(training.read_history(run / "history.csv")) == 1  # nothing was trained
