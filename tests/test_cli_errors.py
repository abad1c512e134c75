"""How the command line (ganlib.cli) reports errors: ganlib's own in one line (exit 2),
anything else as an internal error (exit 1) unless --traceback, Ctrl-C (exit 130) and
running out of memory (exit 1)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import ganlib.training
from ganlib.cli import main
from ganlib.models import build_pair
from ganlib.training import GAN

TRAIN = ["train", "--data", "toy-faces:64", "--image-size", "32", "--width", "0.5"]


def _stderr_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# Stand-ins for the train function the CLI calls. They live here, in tests/, so the
# frame that raises is outside the ganlib package, like an error from inside Keras.


def _raise_value_error(*args, **kwargs):
    raise ValueError("Input 0 of layer 'dense' is incompatible with the layer\nmore detail")


def _interrupt_after_a_checkpoint(data=None, *, run_dir, **kwargs):
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True)
    for step in (40, 42):
        (folder / f"ckpt-{step:09d}.npz").write_bytes(b"")
    raise KeyboardInterrupt


def _interrupt_at_once(*args, **kwargs):
    raise KeyboardInterrupt


def _run_out_of_memory(*args, **kwargs):
    raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")


def _run_out_of_memory_after_a_checkpoint(data=None, *, run_dir, **kwargs):
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt-000000042.npz").write_bytes(b"")
    _run_out_of_memory()


def _run_out_of_host_memory(*args, **kwargs):
    raise MemoryError


def _keras_error_through_ganlib(*args, **kwargs):
    """A Keras ValueError raised while ganlib's code (GAN.generate) called Keras, inside a
    Keras layer call: with Keras's traceback filtering the last frame left is ganlib's."""
    generator, discriminator = build_pair("mlp", 8, latent_dim=8, width=0.125)
    gan = GAN(generator, discriminator, latent_dim=5)  # noise of the wrong size
    keras.layers.Lambda(lambda x: gan.generate(2))(np.zeros((1, 1), np.float32))


# ---------------------------------------------------------------------------


def test_a_ganlib_error_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "--data", "toy-faces:abc", "--run", str(tmp_path / "run")]) == 2
    line = _stderr_line(capsys)
    assert line.startswith("ganlib: error: ") and "positive integer" in line


def test_an_error_from_outside_ganlib_is_an_internal_error_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ganlib.training, "train", _raise_value_error)
    assert main([*TRAIN, "--run", str(tmp_path / "run")]) == 1
    line = _stderr_line(capsys)
    assert line == (
        "ganlib: internal error (ValueError: Input 0 of layer 'dense' is incompatible with "
        "the layer); run again with --traceback to see where it came from"
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_traceback_flag_lets_the_error_through(tmp_path, monkeypatch, where):
    monkeypatch.setattr(ganlib.training, "train", _raise_value_error)
    args = [*TRAIN, "--run", str(tmp_path / "run")]
    args = ["--traceback", *args] if where == "before" else [*args, "--traceback"]
    with pytest.raises(ValueError, match="is incompatible"):
        main(args)


def test_traceback_flag_also_lets_ganlib_errors_through(tmp_path):
    with pytest.raises(ValueError, match="positive integer"):
        main(["--traceback", "data", "toy-faces:abc"])


def test_a_keras_error_inside_code_ganlib_called_is_still_internal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ganlib.training, "train", _keras_error_through_ganlib)
    filtering = keras.config.is_traceback_filtering_enabled()
    assert main([*TRAIN, "--run", str(tmp_path / "run")]) == 1
    line = _stderr_line(capsys)
    assert line.startswith("ganlib: internal error (ValueError: ") and "--traceback" in line
    # The CLI turns Keras's filtering off only while the command runs.
    assert keras.config.is_traceback_filtering_enabled() == filtering


def test_ctrl_c_in_train_names_the_checkpoint_to_resume_from(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ganlib.training, "train", _interrupt_after_a_checkpoint)
    run = tmp_path / "run"
    assert main([*TRAIN, "--run", str(run)]) == 130
    newest = run / "checkpoints" / "ckpt-000000042.npz"
    assert _stderr_line(capsys) == f"ganlib: interrupted; the same command resumes from {newest}"


def test_ctrl_c_in_train_before_any_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ganlib.training, "train", _interrupt_at_once)
    assert main([*TRAIN, "--run", str(tmp_path / "run")]) == 130
    assert _stderr_line(capsys) == (
        "ganlib: interrupted; no checkpoint was written yet; the same command starts again"
    )


def test_ctrl_c_with_traceback_still_says_how_to_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ganlib.training, "train", _interrupt_at_once)
    with pytest.raises(KeyboardInterrupt):
        main([*TRAIN, "--run", str(tmp_path / "run"), "--traceback"])
    assert "the same command starts again" in capsys.readouterr().err


def test_out_of_accelerator_memory_suggests_smaller_batch_or_width(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ganlib.training, "train", _run_out_of_memory)
    assert main([*TRAIN, "--batch-size", "64", "--run", str(tmp_path / "run")]) == 1
    line = _stderr_line(capsys)
    assert line == (
        "ganlib: out of memory training with batch size 64 and width 0.5; run again with a "
        "smaller --batch-size (e.g. 32), or with a smaller --width (e.g. 0.25) in a new --run "
        "folder (a run folder keeps its width)"
    )


def test_out_of_memory_in_a_run_with_checkpoints_asks_for_a_new_run_folder(
    tmp_path, capsys, monkeypatch
):
    # Once a checkpoint exists the run resumes only with its own batch size and width.
    monkeypatch.setattr(ganlib.training, "train", _run_out_of_memory_after_a_checkpoint)
    run = tmp_path / "run"
    assert main([*TRAIN, "--batch-size", "2", "--run", str(run)]) == 1
    assert _stderr_line(capsys) == (
        "ganlib: out of memory training with batch size 2 and width 0.5; start again in a new "
        f"--run folder with a smaller --width (e.g. 0.25): {run} resumes only with the batch "
        "size and width it was made with"
    )


def test_out_of_memory_names_the_presets_batch_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ganlib.training, "train", _run_out_of_host_memory)
    assert main([*TRAIN, "--run", str(tmp_path / "run")]) == 1
    batch_size = ganlib.training.PRESETS["improved"].batch_size
    assert f"batch size {batch_size} and width 0.5" in _stderr_line(capsys)


def _raise_without_a_message(*args, **kwargs):
    raise RuntimeError


def test_an_internal_error_without_a_message_names_its_type(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ganlib.training, "train", _raise_without_a_message)
    assert main([*TRAIN, "--run", str(tmp_path / "run")]) == 1
    assert _stderr_line(capsys).startswith("ganlib: internal error (RuntimeError); run again")
