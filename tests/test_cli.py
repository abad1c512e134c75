"""Tests for the command line (ganlib.cli). One section per command; tests of
a command are named test_<command>_..."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ganlib import data
from ganlib.cli import main


def _run(*args, cwd=None):
    """python -m ganlib ARGS in a fresh interpreter, as a reader would type it."""
    return subprocess.run(
        [sys.executable, "-m", "ganlib", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ganlib: error: ") and "Traceback" not in stderr
    return lines[0]


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def test_data_command_prints_counts_and_writes_a_preview(tmp_path):
    preview = tmp_path / "grid.png"
    result = _run("data", "toy-faces:50", "--preview", str(preview))
    assert result.returncode == 0, result.stderr
    assert "images: 50" in result.stdout and "size: 64x64x3 uint8" in result.stdout
    assert "skipped: 0" in result.stdout
    with Image.open(preview) as grid:
        assert grid.format == "PNG"
        # 50 faces: an 8 x 7 grid of 64 px cells with 2 px padding.
        assert grid.size == (8 * 64 + 9 * 2, 7 * 64 + 8 * 2)


def test_data_command_bad_source_exits_2_with_one_line():
    result = _run("data", "no-such-source")
    assert result.returncode == 2
    assert "unknown source" in _one_error_line(result.stderr)
    assert result.stdout == ""


def test_data_command_preview_count_and_size(tmp_path, capsys):
    preview = tmp_path / "nested" / "grid.png"  # missing folders are created
    assert (
        main(["data", "toy-faces:30", "--image-size", "32", "--n", "4", "--preview", str(preview)])
        == 0
    )
    out = capsys.readouterr().out
    assert "images: 30" in out and "size: 32x32x3" in out and "(4 images)" in out
    grid = np.asarray(Image.open(preview))
    assert grid.shape == (2 * (2 * 32 + 3 * 2), 2 * (2 * 32 + 3 * 2), 3)  # 2 x 2 cells, enlarged 2x


def test_data_command_reports_skipped_files(tmp_path, capsys):
    data.clear_image_cache()
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("text")
    assert main(["data", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "images: 1" in captured.out and "skipped: 2 file(s)" in captured.out
    assert "broken.jpg" in captured.out and "notes.png" in captured.out
    data.clear_image_cache()


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "toy-faces", "--image-size", "48"], "invalid choice"),
        (["data", "toy-faces", "--image-size", "big"], "invalid int"),
        (["data", "toy-faces:abc"], "positive integer"),
        (["data", "./no/such/folder"], "does not exist"),
        (["data", "cifar10:dragon"], "unknown CIFAR-10 class"),
        (["data", "toy-faces:5", "--n", "0"], "at least 1"),
        (["data", "toy-faces:5", "--bogus"], "unrecognized arguments"),
        (["data"], "required"),
        ([], "required"),
    ],
)
def test_data_command_bad_arguments(args, message, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in _one_error_line(captured.err)
    assert captured.out == ""


def test_data_command_unwritable_preview(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    for preview, message in [
        (blocker / "grid.png", "not a writable folder"),
        (tmp_path, "is a folder"),
        (tmp_path / "grid.xyz", "unknown image type"),
    ]:
        assert main(["data", "toy-faces:5", "--preview", str(preview)]) == 2
        captured = capsys.readouterr()
        assert message in _one_error_line(captured.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # nothing written


def test_data_command_missing_cifar_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANLIB_CIFAR10", str(tmp_path / "nowhere"))
    assert main(["data", "cifar10:cat"]) == 2
    assert "GANLIB_CIFAR10" in _one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------
# export (a successful export is tested with a trained run in
# tests/test_training/test_export.py)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, message",
    [
        ("generator.h5", "does not end in .keras"),
        ("generator", "does not end in .keras"),
        (".", "is a folder"),
    ],
)
def test_export_command_refuses_an_out_that_is_not_a_keras_file(tmp_path, capsys, name, message):
    out = tmp_path / name
    assert main(["export", "--run", str(tmp_path), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert message in line and "generator.keras" in line
    assert list(tmp_path.iterdir()) == []


def test_export_command_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    out = tmp_path / "generator.keras"
    assert main(["export", "--run", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "is not a run folder" in _one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
