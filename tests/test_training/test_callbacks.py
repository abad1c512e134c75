"""Tests for ganlib/training/callbacks.py."""

import keras
import numpy as np
import pytest

from ganlib import training
from ganlib.models import build_pair
from ganlib.training import (
    GAN,
    Checkpoints,
    HistoryCSV,
    SampleGrid,
    list_checkpoints,
    load_checkpoint,
)

from ._helpers import all_state, dataset, images, mlp_gan, run_script


def test_sample_grid_saves_the_same_noise_every_epoch(tmp_path):
    gan = mlp_gan()
    grid = SampleGrid(tmp_path, rows=2, cols=3)
    gan.fit(dataset(images(16), 8), epochs=2, verbose=0, callbacks=[grid])
    assert [epoch for epoch, _ in grid.grids] == [0, 1]
    assert grid.grids[0][1].shape == (6, 8, 8, 3) and grid.grids[0][1].dtype == np.uint8
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_0000.png",
        "epoch_0001.png",
    ]
    grid.on_epoch_end(2)  # same weights, same noise: the same picture
    np.testing.assert_array_equal(grid.grids[-1][1], grid.grids[-2][1])


def test_history_csv_drops_rows_of_an_interrupted_run(tmp_path):
    path = tmp_path / "history.csv"
    training.write_history(path, [{"epoch": e, "d_loss": 0.5, "g_loss": 1.0} for e in range(5)])
    callback = HistoryCSV(path)
    callback.on_epoch_begin(2)
    callback.on_epoch_end(2, {"d_loss": 0.25, "g_loss": 2.0, "kid": 0.1})
    rows = training.read_history(path)
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[2]["kid"] == 0.1 and np.isnan(rows[0]["kid"])
    assert path.read_text().splitlines()[0] == "epoch,d_loss,g_loss,kid"


def test_nan_in_the_data_stops_training_at_its_step(tmp_path):
    keras.utils.set_random_seed(0)
    generator, _ = build_pair("mlp", 8, latent_dim=8, width=0.125)
    x = keras.Input((8, 8, 3))
    logit = keras.layers.Dense(1, name="logit")(keras.layers.Flatten()(x))
    discriminator = keras.Model(x, keras.layers.Activation("sigmoid")(logit))
    gan = GAN(generator, discriminator, seed=0)
    gan.compile()
    data = images(32)
    data[16:24] = np.nan  # the third batch of the first epoch
    folder = tmp_path / "checkpoints"
    # Only epoch-end callbacks: Keras checks the steps in its background thread.
    callbacks = [Checkpoints(folder), HistoryCSV(tmp_path / "history.csv"), SampleGrid(tmp_path)]
    with pytest.raises(FloatingPointError, match=r"epoch 0 .*step 3 of 4 \(training step 3\)"):
        gan.fit(dataset(data, 8), epochs=2, verbose=0, callbacks=callbacks)
    assert int(gan.nonfinite_step.numpy()) == 2
    assert not list_checkpoints(folder) and not (tmp_path / "history.csv").exists()
    assert not (tmp_path / "samples").exists()


def test_nan_stops_training_and_names_the_step(tmp_path):
    gan = mlp_gan()

    class Poison(keras.callbacks.Callback):
        """After step 2 the discriminator's logit turns NaN (as after an overflow)."""

        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.discriminator.get_layer("logit").bias.assign([np.nan])

    folder = tmp_path / "checkpoints"
    callbacks = [
        Checkpoints(folder, every_steps=1, keep=10),
        HistoryCSV(tmp_path / "history.csv"),
        Poison(),
    ]
    with pytest.raises(FloatingPointError, match=r"epoch 0 .*step 3 of 4 \(training step 3\)"):
        gan.fit(dataset(images(32), 8), epochs=2, verbose=0, callbacks=callbacks)
    assert [p.name for p in list_checkpoints(folder)] == [
        "ckpt-000000001.npz",
        "ckpt-000000002.npz",
    ]
    assert not (tmp_path / "history.csv").exists()
    fresh = mlp_gan(seed=1)
    assert load_checkpoint(fresh, folder)["step"] == 2
    assert all(np.isfinite(v).all() for v in all_state(fresh))


def test_plot_history_from_a_dict_and_a_run(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from ganlib.plotting import plot_history

    history = {
        "epoch": [0, 1, 2],
        "d_loss": [0.7, 0.6, 0.5],
        "g_loss": [0.8, 0.9, 1.0],
        "d_real_accuracy": [0.5, 0.6, 0.7],
        "d_fake_accuracy": [0.4, 0.5, 0.6],
    }
    loss_ax, accuracy_ax = plot_history(history)
    assert len(loss_ax.lines) == 2 and len(accuracy_ax.lines) == 2
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), [0, 1, 2])
    training.write_history(
        tmp_path / "history.csv",
        [dict(zip(history, row, strict=True)) for row in zip(*history.values(), strict=True)],
    )
    loss_ax, _ = plot_history(tmp_path)
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(), history["g_loss"])
    with pytest.raises(FileNotFoundError):
        plot_history(tmp_path / "missing")


def test_reading_and_plotting_a_history_needs_no_tensorflow(tmp_path):
    """A run's history.csv can be read and drawn without importing TensorFlow."""
    result = run_script(
        """
        import json, sys
        import matplotlib
        matplotlib.use("Agg")
        from ganlib.training.history import read_history, write_history
        from ganlib.plotting import plot_history

        run = sys.argv[1]
        write_history(f"{run}/history.csv", [
            {"epoch": 0, "d_loss": 0.7, "g_loss": 1.1, "d_real_accuracy": 0.6},
            {"epoch": 1, "d_loss": 0.6, "g_loss": 1.3, "d_real_accuracy": 0.7},
        ])
        loss_ax, accuracy_ax = plot_history(run)
        print(json.dumps({
            "epochs": [row["epoch"] for row in read_history(f"{run}/history.csv")],
            "lines": [len(loss_ax.get_lines()), len(accuracy_ax.get_lines())],
            "imported": sorted({"tensorflow", "keras"} & set(sys.modules)),
        }))
        """,
        tmp_path,
    )
    assert result == {"epochs": [0, 1], "lines": [2, 1], "imported": []}
