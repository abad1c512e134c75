"""Tests for `python -m ganlib train` and `python -m ganlib sample` (ganlib/cli.py)."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from ganlib.cli import main
from ganlib.training import read_history

TINY = ["--model", "improved", "--width", "0.125", "--image-size", "32", "--batch-size", "16"]


def one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganlib: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--data", "toy-faces:16", "--model", "dcgan"], "unknown model 'dcgan'"),
        (["--data", "toy-faces:16", "--batch-size", "1"], "at least 2"),
        (["--data", "toy-faces:16", "--image-size", "48"], "invalid choice: 48"),
        (["--data", "toy-faces:8", "--batch-size", "16"], "fewer than one batch"),
        (["--data", "toy-faces:16", "--epochs", "0"], "at least 1"),
        (
            ["--data", "toy-faces:16", "--ema", "2"],
            "argument --ema: ema must be a number in (0, 1)",
        ),
        (["--data", "cifar100:cat"], "unknown source"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, arguments, message):
    assert main(["train", "--run", str(tmp_path / "run"), *arguments]) == 2
    assert message in one_error_line(capsys)


def test_missing_data_folder_exits_2(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert main(["train", "--data", str(missing), "--run", str(tmp_path / "run")]) == 2
    assert "does not exist" in one_error_line(capsys)


def test_a_run_folder_of_another_model_exits_2(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    made = {
        "model": "baseline",
        "image_size": 32,
        "width": 0.125,
        "latent_dim": 128,
        "ema": None,
        "ada": False,
    }
    (run / "run.json").write_text(json.dumps(made))
    assert main(["train", "--data", "toy-faces:32", "--run", str(run), *TINY, "--epochs", "1"]) == 2
    line = one_error_line(capsys)
    assert "model: the run has 'baseline', this call asks for 'improved'" in line
    assert "another run folder" in line


def test_sample_without_a_run_exits_2(tmp_path, capsys):
    assert main(["sample", "--run", str(tmp_path), "--out", str(tmp_path / "grid.png")]) == 2
    assert "not a run folder" in one_error_line(capsys)


def test_the_entry_point_reports_bad_arguments_in_one_line(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganlib",
            "train",
            "--data",
            "toy-faces",
            "--run",
            str(tmp_path),
            "--batch-size",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ganlib: error: argument --batch-size: batch size must be an integer of at least 2, got 1"
    ]


def test_train_writes_grids_checkpoints_history_and_resumes(tmp_path, capsys):
    run = tmp_path / "runs" / "faces"
    command = ["train", "--data", "toy-faces:64", *TINY, "--run", str(run)]
    assert main([*command, "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"samples: {run / 'samples'}" in out and f"checkpoints: {run / 'checkpoints'}" in out
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "epoch_0000.png",
        "epoch_0001.png",
    ]
    assert [p.name for p in sorted((run / "checkpoints").glob("*.npz"))] == [
        "ckpt-000000004.npz",
        "ckpt-000000008.npz",
    ]
    assert [row["epoch"] for row in read_history(run / "history.csv")] == [0, 1]

    # the same command with more epochs resumes: epoch 2 is added, nothing is repeated
    assert main([*command, "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "Epoch 1/3" not in out
    rows = read_history(run / "history.csv")
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy"} <= set(rows[0])
    assert (run / "samples" / "epoch_0002.png").is_file()
    assert json.loads((run / "run.json").read_text())["spec"]["data"] == "toy-faces:64"

    # the same command once more: nothing left to train, and it says so
    assert main([*command, "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert f"run {run} already has 3 epochs; nothing to train" in out and "Epoch" not in out

    # another batch size would continue at the wrong place in the data order
    assert main([*command, "--epochs", "4", "--batch-size", "8"]) == 2
    line = one_error_line(capsys)
    assert "batch_size: the run has 16, this call asks for 8" in line
    assert "another --run" in line
    assert [row["epoch"] for row in read_history(run / "history.csv")] == [0, 1, 2]

    grid = tmp_path / "grid.png"
    assert main(["sample", "--run", str(run), "--n", "9", "--out", str(grid)]) == 0
    assert "after 3 epochs, step 12" in capsys.readouterr().out
    with Image.open(grid) as picture:
        # 3 x 3 cells of 32 px with 2 px padding, drawn twice as large
        assert picture.size == (2 * (3 * 32 + 4 * 2),) * 2
