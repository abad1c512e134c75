"""Fault injection for run folders (ganlib/training/runs.py, checkpoints.py, export.py, cli.py).

Each test makes one of the mistakes or faults a reader meets (a second process, a
killed one, a deleted or damaged file, a full disk, a read-only folder, a command
with a bad setting) and checks that it ends in one clear message or the right
answer, and that the run folder stays whole: it resumes, and nothing done is lost.
"""

import builtins
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from ganlib import common, training
from ganlib.cli import main
from ganlib.data import toy_faces
from ganlib.training import runs

from ._helpers import SUBPROCESS_ENV, flat_run_json

SMALL = dict(image_size=32, width=0.125, batch_size=8, verbose=0, grid=(1, 1))
# The same settings on the command line: toy-faces:16 gives 2 steps per epoch.
CLI_SMALL = [
    "train",
    "--data",
    "toy-faces:16",
    "--image-size",
    "32",
    "--width",
    "0.125",
    "--batch-size",
    "8",
]


def one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganlib: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def snapshot(run):
    """{relative path: bytes} of every file under a run folder."""
    return {
        str(path.relative_to(run)): path.read_bytes()
        for path in sorted(Path(run).rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def faces():
    return toy_faces(16, 32)[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder made by the command line: one epoch of 2 steps, checkpoint ckpt-2."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main([*CLI_SMALL, "--epochs", "1", "--run", str(run)]) == 0
    return run


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of `trained` this test may damage."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


# --------------------------------------------------------------------------- finding 1: export


@pytest.mark.parametrize(
    "name", ["run.keras", "history.keras", "checkpoints/g.keras", "samples/g.keras"]
)
def test_export_never_writes_the_runs_own_files(run_copy, capsys, name):
    before = snapshot(run_copy)
    out = run_copy / name
    code = main(["export", "--run", str(run_copy), "--out", str(out)])
    if name == "history.keras":  # history.json is not the run's: allowed
        assert code == 0
        capsys.readouterr()
        (run_copy / "history.keras").unlink()
        (run_copy / "history.json").unlink()
    else:
        assert code == 2
        line = one_error_line(capsys)
        assert "the run's own" in line and "Give another name" in line
    assert snapshot(run_copy) == before
    # the run still samples and resumes
    assert (
        main(["sample", "--run", str(run_copy), "--n", "4", "--out", str(run_copy / "s.png")]) == 0
    )
    assert runs.load_run(run_copy).checkpoint["epoch"] == 1


def test_export_refuses_to_overwrite_unless_told(trained, tmp_path, capsys):
    out = tmp_path / "generator.keras"
    out.write_text("someone's model")
    assert main(["export", "--run", str(trained), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert f"{out} already exists" in line and "--overwrite" in line
    assert out.read_text() == "someone's model"
    out.unlink()
    out.with_suffix(".json").write_text("{}")  # the metadata file alone is protected too
    assert main(["export", "--run", str(trained), "--out", str(out)]) == 2
    assert "generator.json already exists" in one_error_line(capsys)
    assert not out.exists() and out.with_suffix(".json").read_text() == "{}"
    assert main(["export", "--run", str(trained), "--out", str(out), "--overwrite"]) == 0
    assert keras.models.load_model(out).output_shape == (None, 32, 32, 3)
    with pytest.raises(ValueError, match="already exist.*overwrite=True"):
        training.export_generator(trained, out)
    assert training.export_generator(trained, out, overwrite=True)["epoch"] == 1


def test_sample_never_writes_the_runs_own_files(run_copy, capsys):
    before = snapshot(run_copy)
    out = run_copy / "samples" / "epoch_0000.png"
    assert main(["sample", "--run", str(run_copy), "--out", str(out)]) == 2
    assert "inside the run's own samples" in one_error_line(capsys)
    assert snapshot(run_copy) == before


# --------------------------------------------------------------------------- finding 2: checks first


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(width=float("inf")), "width must be a positive finite number"),
        (dict(width=float("nan")), "width must be a positive finite number"),
        (dict(model="mlp", minibatch_std=True), "minibatch_std"),
        (dict(learning_rate=float("inf")), "learning_rate must be a positive finite"),
        (dict(learning_rate=float("nan")), "learning_rate must be a positive finite"),
        (dict(learning_rate=0.0), "learning_rate must be a positive finite"),
        (dict(learning_rate=-1e-4), "learning_rate must be a positive finite"),
        (dict(steps_per_execution=3), "not a multiple of steps_per_execution 3"),
        (dict(checkpoint_every=3, steps_per_execution=2), "not a multiple of steps_per_execution"),
        (dict(grid=(0, 2)), "grid must be"),
        (dict(keep=0), "keep must be"),
    ],
)
def test_a_bad_setting_writes_nothing_and_the_corrected_call_works(faces, tmp_path, bad, message):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        training.train(faces, **{**SMALL, **bad}, epochs=1, run_dir=run)
    assert not run.exists()
    good = {key: value for key, value in bad.items() if key == "model"}
    _, history = training.train(faces, **{**SMALL, **good}, epochs=1, run_dir=run)
    assert history["epoch"] == [0]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--width", "inf"], "argument --width: width must be a positive finite number"),
        (["--lr", "inf"], "argument --lr: learning_rate must be a positive finite number"),
        (["--lr", "nan"], "argument --lr: learning_rate must be a positive finite number"),
        (["--model", "mlp", "--minibatch-std"], "minibatch_std"),
    ],
)
def test_the_command_line_checks_before_writing(tmp_path, capsys, arguments, message):
    run = tmp_path / "run"
    assert main([*CLI_SMALL, "--epochs", "1", "--run", str(run), *arguments]) == 2
    assert message in one_error_line(capsys)
    assert not run.exists()


def test_a_width_that_makes_huge_models_is_refused(faces, tmp_path, capsys):
    run = tmp_path / "run"
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"width 10 makes .* million parameters.*up to \d"):
        training.train(faces, **{**SMALL, "width": 10.0}, epochs=1, run_dir=run)
    assert time.monotonic() - started < 60 and not run.exists()
    assert main([*CLI_SMALL, "--width", "10", "--run", str(run)]) == 2
    assert "million parameters" in one_error_line(capsys)


# --------------------------------------------------------------------------- finding 3: no run.json


def test_checkpoints_without_run_json_are_refused_until_restart(run_copy, faces, capsys):
    (run_copy / "run.json").unlink()
    before = snapshot(run_copy)
    # other data, batch size, seed and loss: it must not resume the old checkpoints
    other = [
        *CLI_SMALL[:2],
        "toy-faces:32",
        *CLI_SMALL[3:-1],
        "4",
        "--seed",
        "3",
        "--loss",
        "hinge",
    ]
    assert main([*other, "--epochs", "1", "--run", str(run_copy)]) == 2
    line = one_error_line(capsys)
    assert "no run.json" in line and "checkpoints" in line and "--restart" in line
    assert snapshot(run_copy) == before
    with pytest.raises(ValueError, match="no run.json"):
        training.train(faces, **SMALL, epochs=1, run_dir=run_copy)  # the same settings too
    assert main([*other, "--epochs", "1", "--run", str(run_copy), "--restart"]) == 0
    captured = capsys.readouterr()
    assert f"starting over in {run_copy}" in captured.err
    kept = list((run_copy / "set-aside").iterdir())
    assert len(kept) == 1 and kept[0].name.endswith("-restart")
    # nothing was lost: the old files are all there, byte for byte
    assert snapshot(kept[0]) == {
        name: data for name, data in before.items() if not name.startswith("set-aside")
    }
    info = json.loads((run_copy / "run.json").read_text())["spec"]
    assert (info["loss"], info["seed"], info["batch_size"]) == ("hinge", 3, 4)
    assert training.latest_checkpoint(run_copy / "checkpoints")[1]["step"] == 8


def test_a_damaged_run_json_is_named(run_copy, capsys):
    (run_copy / "run.json").write_text('{"model": "improved", "image_si')
    info = run_copy / "run.json"
    assert main([*CLI_SMALL, "--epochs", "2", "--run", str(run_copy)]) == 2
    line = one_error_line(capsys)
    assert f"{info} cannot be read" in line and "--restart" in line
    assert main(["sample", "--run", str(run_copy), "--out", str(run_copy.parent / "g.png")]) == 2
    assert f"{info} cannot be read" in one_error_line(capsys)
    info.write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not a ganlib run record"):
        training.load_run(run_copy)


# --------------------------------------------------------------------------- finding 4: one process


HOLD = """
    import pathlib, sys, time, keras
    from ganlib import training
    run, gate = sys.argv[1], pathlib.Path(sys.argv[2])

    class Hold(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            print("training", flush=True)
            while not gate.exists():
                time.sleep(0.05)

    training.train("toy-faces:16", image_size=32, width=0.125, batch_size=8, epochs=1,
                   run_dir=run, verbose=0, grid=(1, 1), callbacks=[Hold()])
    print("done", flush=True)
"""


def _start_holder(run, gate):
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), str(run), str(gate)],
        env=SUBPROCESS_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert line.strip() == "training", process.stderr.read()[-3000:]
    return process


def test_a_second_process_is_refused_with_the_holders_name(tmp_path):
    run, gate = tmp_path / "run", tmp_path / "go"
    holder = _start_holder(run, gate)
    try:
        lock = json.loads((run / "training.lock").read_text())
        assert lock["pid"] == holder.pid and lock["host"] == socket.gethostname()
        second = subprocess.run(
            [sys.executable, "-m", "ganlib", *CLI_SMALL, "--epochs", "1", "--run", str(run)],
            env=SUBPROCESS_ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2, second.stderr[-3000:]
        # TensorFlow's C++ log may add lines of its own; ganlib's is one line
        lines = [line for line in second.stderr.splitlines() if line.startswith("ganlib")]
        assert "Traceback" not in second.stderr
        assert len(lines) == 1 and lines[0].startswith(f"ganlib: error: run folder {run} is in use")
        assert (
            f"process {holder.pid} on host {socket.gethostname()} (started {lock['started']}"
            in lines[0]
        )
        assert "another --run" in lines[0]
    finally:
        gate.touch()
        out, err = holder.communicate(timeout=300)
    assert holder.returncode == 0, err[-3000:]
    assert out.strip() == "done"
    assert not (run / "training.lock").exists()  # released when it finished
    assert [p.name for p in training.list_checkpoints(run / "checkpoints")] == [
        "ckpt-000000002.npz"
    ]
    assert [row["epoch"] for row in training.read_history(run / "history.csv")] == [0]


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path, capsys):
    run, gate = tmp_path / "run", tmp_path / "never"
    holder = _start_holder(run, gate)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    assert (run / "training.lock").exists()  # kill -9 leaves the file behind
    _, history = training.train("toy-faces:16", **SMALL, epochs=1, run_dir=run)
    err = capsys.readouterr().err
    assert f"taking over the stale lock of run folder {run}: process {holder.pid}" in err
    assert history["epoch"] == [0] and not (run / "training.lock").exists()


def test_a_stale_lock_file_is_taken_over_and_a_held_one_is_not(faces, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = {
        "pid": int(dead.stdout),
        "host": socket.gethostname(),
        "started": "2020-01-01T00:00:00",
        "command": "old",
    }
    (run / "training.lock").write_text(json.dumps(stale))
    _, history = training.train(faces, **SMALL, epochs=1, run_dir=run)
    assert history["epoch"] == [0]
    assert f"process {stale['pid']} on host {stale['host']}" in capsys.readouterr().err
    # held by this very process (another open of the file): refused, naming the holder
    with runs.lock_run(run) as me:
        with pytest.raises(runs.RunInUseError, match=f"process {me['pid']} on host"):
            training.train(faces, **SMALL, epochs=2, run_dir=run)
    assert len(training.read_history(run / "history.csv")) == 1


def test_without_os_locks_the_recorded_pid_decides(faces, tmp_path, monkeypatch, capsys):
    """A file system without flock (some network or FUSE mounts): the pid in the file decides."""
    monkeypatch.setattr(runs, "_try_flock", lambda fd: None)
    run = tmp_path / "run"
    run.mkdir()
    alive = {"pid": os.getppid(), "host": socket.gethostname(), "started": "x", "command": "y"}
    (run / "training.lock").write_text(json.dumps(alive))
    with pytest.raises(runs.RunInUseError, match=r"if that process no longer runs, delete"):
        training.train(faces, **SMALL, epochs=1, run_dir=run)
    elsewhere = dict(alive, host="another-machine")
    (run / "training.lock").write_text(json.dumps(elsewhere))
    with pytest.raises(runs.RunInUseError, match="on host another-machine"):
        training.train(faces, **SMALL, epochs=1, run_dir=run)
    (run / "training.lock").write_text(json.dumps(dict(alive, pid=2**22 + 12345)))
    _, history = training.train(faces, **SMALL, epochs=1, run_dir=run)
    assert history["epoch"] == [0] and "taking over the stale lock" in capsys.readouterr().err


# --------------------------------------------------------------------------- finding 5: faults


def test_run_naming_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main([*CLI_SMALL, "--run", str(target)]) == 2
    assert f"{target} is a file, not a folder" in one_error_line(capsys)
    assert target.read_text() == "mine"


def _refuse_writes_under(folder, error=errno.EACCES):
    """An `open` for ganlib.common that fails to write anything under `folder`."""

    def fake_open(file, mode="r", *args, **kwargs):
        writing = any(flag in mode for flag in "wax+")
        if writing and Path(file).resolve().is_relative_to(Path(folder).resolve()):
            raise OSError(error, os.strerror(error), str(file))
        return builtins.open(file, mode, *args, **kwargs)

    return fake_open


class Spy(keras.callbacks.Callback):
    began = False

    def on_train_begin(self, logs=None):
        Spy.began = True


def test_a_read_only_run_folder_is_found_before_the_first_step(
    run_copy, faces, monkeypatch, capsys
):
    before = snapshot(run_copy)
    monkeypatch.setattr(common, "open", _refuse_writes_under(run_copy), raising=False)
    Spy.began = False
    with pytest.raises(common.WriteError, match="Permission denied.*not writable"):
        training.train("toy-faces:16", **SMALL, epochs=3, run_dir=run_copy, callbacks=[Spy()])
    assert not Spy.began  # refused before training started, not after an epoch
    assert main([*CLI_SMALL, "--epochs", "3", "--run", str(run_copy)]) == 2
    line = one_error_line(capsys)
    assert f"could not write {run_copy}" in line and "make it writable" in line
    # only samples/ is read-only: also found before the first step
    monkeypatch.setattr(common, "open", _refuse_writes_under(run_copy / "samples"), raising=False)
    with pytest.raises(common.WriteError, match="samples"):
        training.train("toy-faces:16", **SMALL, epochs=3, run_dir=run_copy, callbacks=[Spy()])
    assert not Spy.began
    assert snapshot(run_copy) == before


class _FullDisk:
    """A file whose every write fails as on a full disk."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def test_a_full_disk_is_one_line_and_the_run_resumes(run_copy, monkeypatch, capsys):
    def full_for_checkpoints(file, mode="r", *args, **kwargs):
        opened = builtins.open(file, mode, *args, **kwargs)
        return _FullDisk(opened) if Path(file).name.startswith(".ckpt-") else opened

    monkeypatch.setattr(common, "open", full_for_checkpoints, raising=False)
    assert main([*CLI_SMALL, "--epochs", "2", "--run", str(run_copy)]) == 2
    line = one_error_line(capsys)
    newest = run_copy / "checkpoints" / "ckpt-000000002.npz"
    assert f"could not write {run_copy / 'checkpoints' / 'ckpt-000000004.npz'}" in line
    assert "No space left on device" in line and "free some space" in line
    assert f"the same command then resumes from {newest}" in line
    assert training.list_checkpoints(run_copy / "checkpoints") == [newest]
    assert not list((run_copy / "checkpoints").glob(".ckpt-*"))  # no half-written file left
    monkeypatch.undo()
    assert main([*CLI_SMALL, "--epochs", "2", "--run", str(run_copy)]) == 0
    assert [row["epoch"] for row in training.read_history(run_copy / "history.csv")] == [0, 1]
    assert training.latest_checkpoint(run_copy / "checkpoints")[1]["step"] == 4


def test_a_damaged_history_is_named(run_copy, capsys):
    history = run_copy / "history.csv"
    for damage in ("epoch,d_loss\n0,0.5\n1,not-a-number\n", "d_loss\n0.5\n", "epoch,d_loss\n0\n"):
        history.write_text(damage)
        assert main([*CLI_SMALL, "--epochs", "2", "--run", str(run_copy)]) == 2
        line = one_error_line(capsys)
        assert f"{history} is not a history ganlib can read" in line and "move it aside" in line
        assert history.read_text() == damage
    assert len(training.list_checkpoints(run_copy / "checkpoints")) == 1  # nothing trained


# --------------------------------------------------------------------------- finding 6


def test_checkpoint_every_is_honoured_below_the_steps_per_call(faces, tmp_path):
    run = tmp_path / "run"
    faces32 = toy_faces(32, 32)[0]  # 4 steps per epoch, 4 steps per call by default
    training.train(faces32, **SMALL, epochs=2, run_dir=run, checkpoint_every=3, keep=10)
    steps = [int(p.stem.split("-")[1]) for p in training.list_checkpoints(run / "checkpoints")]
    assert steps == [3, 4, 6, 8]


def test_when_no_checkpoint_can_be_read_training_says_so_and_keeps_them(run_copy, capsys):
    damaged = {}
    for path in training.list_checkpoints(run_copy / "checkpoints"):
        path.write_bytes(b"not a checkpoint")
        damaged[path.name] = path.read_bytes()
    old_history = (run_copy / "history.csv").read_bytes()
    assert main([*CLI_SMALL, "--epochs", "1", "--run", str(run_copy)]) == 0
    err = capsys.readouterr().err
    assert "none of the 1 checkpoints" in err and "training starts over from epoch 0" in err
    (kept,) = (run_copy / "set-aside").iterdir()
    assert f"they are kept in {kept}" in err and kept.name.endswith("-unreadable")
    assert {p.name: p.read_bytes() for p in (kept / "checkpoints").iterdir()} == damaged
    assert (kept / "history.csv").read_bytes() == old_history
    assert (kept / "samples" / "epoch_0000.png").is_file()
    assert training.latest_checkpoint(run_copy / "checkpoints")[1]["step"] == 2


# --------------------------------------------------------------------------- finding 7: sizes


def test_sample_refuses_a_grid_too_large_for_one_png(trained, tmp_path, capsys):
    out = tmp_path / "grid.png"
    started = time.monotonic()
    assert main(["sample", "--run", str(trained), "--n", "100000", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "21,560 x 21,560 pixels" in line and "at most 3,600 samples" in line
    assert not out.exists() and time.monotonic() - started < 30
    assert main(["sample", "--run", str(trained), "--n", "3600", "--out", str(out)]) == 0


# --------------------------------------------------------------------------- what must keep working


def test_a_run_json_without_the_new_keys_still_resumes(run_copy):
    """A run.json from before RunSpec, with fewer keys still, resumes and samples."""
    info = flat_run_json(run_copy)
    for key in ("steps_per_epoch", "data_fingerprint", "ada_options", "model_options", "loss"):
        info.pop(key, None)
    (run_copy / "run.json").write_text(json.dumps(info))
    assert main([*CLI_SMALL, "--epochs", "2", "--run", str(run_copy)]) == 0
    assert training.load_run(run_copy).checkpoint["epoch"] == 2


def test_a_checkpoint_without_the_epoch_means_still_resumes(faces, tmp_path):
    """Checkpoints written before the running means were recorded resume as before."""
    faces32 = toy_faces(32, 32)[0]
    run = tmp_path / "run"
    training.train(faces32, **SMALL, epochs=1, run_dir=run, checkpoint_every=2)
    newest = training.list_checkpoints(run / "checkpoints")[-1]
    newest.unlink()  # the mid-epoch one at step 2 is now the newest
    path, meta, arrays = training.latest_checkpoint(run / "checkpoints")
    assert meta["step_in_epoch"] == 2 and "epoch_metrics" in meta
    del meta["epoch_metrics"]
    arrays["__meta__"] = np.array(json.dumps(meta))
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    _, history = training.train(faces32, **SMALL, epochs=1, run_dir=run, checkpoint_every=2)
    assert history["epoch"] == [0] and np.isfinite(history["d_loss"][0])
