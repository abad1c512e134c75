"""Tests for ganlib/training/checkpoints.py."""

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from ganlib import common
from ganlib.training import (
    GAN,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from ganlib.training.checkpoints import _state_groups, remove_stale_temporaries

from ._helpers import SUBPROCESS_ENV, all_state, conv_gan, dataset, images, mlp_gan


def test_checkpoint_round_trip_restores_everything_but_the_learning_rate(tmp_path):
    gan = conv_gan(ema=0.99)
    gan.fit(dataset(images(16, 32), 8), epochs=1, verbose=0)
    path = save_checkpoint(gan, tmp_path, epoch=1)
    assert path.name == "ckpt-000000002.npz"
    other = GAN.from_preset("improved", 32, width=0.125, seed=7, ema=0.99, learning_rate=3e-4)
    state = load_checkpoint(other, tmp_path)
    assert state["epoch"] == 1 and state["step_in_epoch"] == 0 and state["step"] == 2
    for group, variables in _state_groups(gan).items():
        for saved, restored in zip(variables, _state_groups(other)[group], strict=True):
            if not saved.path.endswith("learning_rate"):  # learning rates stay as compiled
                np.testing.assert_array_equal(saved.numpy(), restored.numpy(), err_msg=saved.path)
    assert float(other.d_optimizer.learning_rate.numpy()) == pytest.approx(3e-4)
    assert int(other.noise_seed.numpy()) == int(gan.noise_seed.numpy())
    np.testing.assert_array_equal(other.generate(3, seed=0), gan.generate(3, seed=0))


def test_checkpoint_of_another_model_is_refused(tmp_path):
    save_checkpoint(conv_gan(), tmp_path, epoch=0)
    wider = GAN.from_preset("improved", 32, width=0.25)
    with pytest.raises(ValueError, match="does not fit this GAN"):
        load_checkpoint(wider, tmp_path)
    with pytest.raises(ValueError, match="ema_generator"):
        load_checkpoint(conv_gan(ema=0.9), tmp_path)
    save_checkpoint(conv_gan(ema=0.9), tmp_path / "ema", epoch=0)
    with pytest.raises(ValueError, match="also holds ema_generator"):
        load_checkpoint(conv_gan(), tmp_path / "ema")


def test_checkpoints_keep_the_last_k_and_survive_a_broken_write(tmp_path, monkeypatch, capsys):
    gan = mlp_gan()
    for step in range(1, 5):
        gan.global_step.assign(step)
        save_checkpoint(gan, tmp_path, epoch=step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "ckpt-000000003.npz",
        "ckpt-000000004.npz",
    ]
    good = all_state(gan)

    # The write fails between writing the temporary file and renaming it: the old
    # checkpoints stay as they were and the temporary file is removed.
    def crash(*args):
        raise KeyboardInterrupt("killed")

    gan.global_step.assign(5)
    with monkeypatch.context() as patch:
        patch.setattr(common.os, "replace", crash)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(gan, tmp_path, epoch=5, keep=2)
    assert not list(tmp_path.glob(".ckpt-*.tmp"))
    assert [p.name for p in list_checkpoints(tmp_path)][-1] == "ckpt-000000004.npz"
    # A process killed outright leaves its temporary file behind: .NAME.PID.RANDOM.tmp
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    leftover = tmp_path / f".ckpt-000000005.npz.{int(dead.stdout)}.0123abcd.tmp"
    leftover.write_bytes(b"half a file")
    # A newest file that is cut short (a copy that did not finish) is skipped too.
    newest = tmp_path / "ckpt-000000006.npz"
    newest.write_bytes((tmp_path / "ckpt-000000004.npz").read_bytes()[:1000])
    fresh = mlp_gan(seed=1)
    state = load_checkpoint(fresh, tmp_path)
    assert state["step"] == 4 and "skipping unreadable checkpoint" in capsys.readouterr().out
    for saved, restored in zip(good, all_state(fresh), strict=True):
        np.testing.assert_array_equal(saved, restored)
    # the next run clears what a dead process left half-written (this process counts as dead
    # for its own leftovers: it is not writing them any more)
    remove_stale_temporaries(tmp_path)
    assert not list(tmp_path.glob(".ckpt-*.tmp"))


def test_a_process_killed_while_saving_leaves_a_loadable_checkpoint(tmp_path):
    script = f"""
        import sys, keras
        from ganlib.training import GAN, save_checkpoint
        gan = GAN.from_preset("improved", 32, seed=0)  # full width: each file is ~18 MB
        step = 0
        while True:
            step += 1
            gan.global_step.assign(step)
            save_checkpoint(gan, {str(tmp_path)!r}, epoch=step, keep=2)
            print(step, flush=True)
    """
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=SUBPROCESS_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for _ in range(3):  # wait for a few complete saves, then kill it in the middle of one
            assert process.stdout.readline(), "the saving process died"
        time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    gan = GAN.from_preset("improved", 32, seed=1)
    state = load_checkpoint(gan, tmp_path)
    assert state is not None and state["step"] >= 3


def test_checkpoints_refuse_a_step_count_keras_cannot_stop_at(tmp_path):
    """Keras calls back only between calls of steps_per_execution steps: every_steps=3 with
    2 steps per call would checkpoint at steps 4, 6, ... instead; that is an error."""
    from ganlib.training import Checkpoints

    gan = conv_gan(steps_per_execution=2)
    with pytest.raises(ValueError, match="cannot checkpoint every 3 steps.*2 steps per call"):
        gan.fit(
            dataset(images(32, 32), 8),
            epochs=1,
            verbose=0,
            callbacks=[Checkpoints(tmp_path, every_steps=3)],
        )
    assert int(gan.global_step.numpy()) == 0 and not list_checkpoints(tmp_path)
    gan.fit(
        dataset(images(32, 32), 8).repeat(),
        epochs=1,
        steps_per_epoch=4,
        verbose=0,
        callbacks=[Checkpoints(tmp_path, every_steps=2, keep=5)],
    )
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "ckpt-000000002.npz",
        "ckpt-000000004.npz",
    ]
