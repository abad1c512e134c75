"""Tests for exporting a run's generator (ganlib/training/export.py, `python -m ganlib export`)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow

import ganlib
from ganlib.cli import main
from ganlib.training import export_generator, load_run

N, SEED = 6, 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run with an EMA generator: 2 steps of the improved model at 32 px."""
    run_dir = tmp_path_factory.mktemp("export") / "run"
    ganlib.train(
        "toy-faces:64",
        model="improved",
        image_size=32,
        width=0.125,
        epochs=1,
        batch_size=32,
        run_dir=run_dir,
        ema=0.9,
        verbose=0,
    )
    return run_dir


def _load_without_ganlib(model_file, noise_file, out_file, cwd):
    """Load the model in a fresh Python that cannot import ganlib and run it on the noise.

    -I ignores PYTHONPATH and the current folder; -S skips site-packages and its .pth
    files, among them the one that makes the editable ganlib importable. Only the
    folders that hold Keras, TensorFlow and NumPy go back on the path.
    """
    folders = {
        str(Path(module.__file__).resolve().parents[1]) for module in (keras, np, tensorflow)
    }
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.extend({sorted(folders)!r})
        import importlib.util
        assert importlib.util.find_spec("ganlib") is None, "ganlib is importable"
        import keras, numpy as np
        model = keras.models.load_model({str(model_file)!r})
        noise = np.load({str(noise_file)!r})
        np.save({str(out_file)!r}, keras.ops.convert_to_numpy(model(noise, training=False)))
        """
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHON") and key != "VIRTUAL_ENV"
    }
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_export_loads_without_ganlib_and_draws_the_runs_samples(run, tmp_path):
    out = tmp_path / "models" / "generator.keras"
    meta = export_generator(run, out)
    assert out.is_file() and meta["generator"] == "ema_generator"
    assert json.loads(out.with_suffix(".json").read_text()) == meta
    assert meta["latent_dim"] == 100 and meta["image_shape"] == [32, 32, 3]
    assert meta["value_range"] == [-1.0, 1.0]
    assert sorted(p.name for p in out.parent.iterdir()) == ["generator.json", "generator.keras"]

    # The noise GAN.generate(N, seed=SEED) draws.
    noise = np.random.default_rng(SEED).standard_normal((N, meta["latent_dim"]), dtype=np.float32)
    np.save(tmp_path / "noise.npy", noise)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _load_without_ganlib(out, tmp_path / "noise.npy", tmp_path / "images.npy", elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    images = np.load(tmp_path / "images.npy")

    gan = load_run(run)
    expected = gan.generate(N, seed=SEED)
    assert images.shape == expected.shape == (N, 32, 32, 3)
    np.testing.assert_allclose(images, expected, atol=1e-5)
    # It is the EMA copy that was written, not the generator being trained.
    trained = keras.ops.convert_to_numpy(gan.generator(noise, training=False))
    assert np.abs(images - trained).max() > 1e-3


def test_export_refuses_a_name_without_keras_ending(run, tmp_path):
    for name in ("generator.h5", "generator", "generator.keras.zip"):
        with pytest.raises(ValueError, match=r"does not end in \.keras"):
            export_generator(run, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        export_generator(tmp_path, tmp_path / "generator.keras")
    assert list(tmp_path.iterdir()) == []


def test_export_command_writes_the_model_and_says_what_it_takes(run, tmp_path, capsys):
    out = tmp_path / "generator.keras"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: the EMA generator of {run} (after 1 epochs, step 2)" in printed
    assert "float32 noise (n, 100)" in printed and "(n, 32, 32, 3) in [-1, 1]" in printed
    assert f"wrote {tmp_path / 'generator.json'}" in printed
    assert keras.models.load_model(out).output_shape == (None, 32, 32, 3)


@pytest.mark.parametrize("family", ["mlp", "baseline", "improved", "cifar"])
def test_every_generator_is_made_of_layers_keras_loads_on_its_own(family):
    """An export opens without ganlib only while generators use Keras's own layers
    (no ganlib layer classes, no Lambda, whose code a .keras file refuses to load)."""
    from ganlib.models import build_pair

    generator, _ = build_pair(family, 32, width=0.125)
    for layer in generator.layers:
        assert type(layer).__module__.startswith("keras."), (family, type(layer))
        assert not isinstance(layer, keras.layers.Lambda), (family, layer.name)
