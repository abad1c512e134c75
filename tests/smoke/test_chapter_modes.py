"""Chapters run top to bottom in "gpu-short" and in "full" on a CPU, as smoke runs.

No test of `pytest` runs the GPU modes otherwise, so their first run would be a reader's,
in Colab. Here each chapter that reads its budgets through `training.smoke_budget`
executes in its own
kernel (nbclient, with the book build's extension) under

- GANLIB_BOOK_MODE=gpu-short or full: the mode's image sizes, widths, data sources and
  model options;
- GANLIB_SMOKE=1: every budget the chapter reads through `training.smoke_budget` cut
  to its least, so each training run makes a couple of updates;
- GANLIB_ANIME_FACES and GANLIB_CIFAR10 pointing at folders in the real data sets'
  layouts (data_fixtures.py), so the real loading code runs, offline;
- in "gpu-short", GANLIB_ASSUME_ACCELERATOR=gpu: the mixed-precision policy and XLA
  setting a GPU would get, so a dtype or shape error shows up here, not in Colab.

Not part of the plain `pytest` run (it takes minutes per chapter); `.ci/run` runs it as
its own step, two tests at a time (README: `python -m pytest tests/smoke/test_gpu_bench.py
tests/smoke/test_chapter_modes.py -o addopts="" -n 2 -v`). Each test copies book/ and
makes its own kernel, so two can run at once.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .data_fixtures import write_anime_faces, write_cifar10

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
# The chapters whose parameters cell cuts its budgets with `training.smoke_budget`.
CHAPTERS = sorted(path.stem for path in BOOK.glob("0*.ipynb") if "smoke_budget" in path.read_text())
MODES = ("gpu-short", "full")


def _no_widget_sync():
    """The book build's extension (book/_ext/no_widget_sync.py), applied to this process's nbclient."""
    spec = importlib.util.spec_from_file_location(
        "no_widget_sync", BOOK / "_ext" / "no_widget_sync.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.setup(None)


@pytest.fixture(scope="session")
def real_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "GANLIB_ANIME_FACES": str(write_anime_faces(root / "anime")),
        "GANLIB_CIFAR10": str(write_cifar10(root / "cifar")),
    }


def _outputs(notebook):
    """Every text a cell printed or displayed, joined."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output:
                data = output["data"]
                parts.append(data.get("text/markdown", "") or data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_chapter_runs_in_its_gpu_modes(chapter, mode, real_data, tmp_path, monkeypatch):
    # A copy of book/: the GPU modes keep their run folders beside the notebook and
    # resume them, which a second smoke run must not do.
    book = tmp_path / "book"
    shutil.copytree(BOOK, book, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    for name, value in real_data.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GANLIB_BOOK_MODE", mode)
    monkeypatch.setenv("GANLIB_SMOKE", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    if mode == "gpu-short":
        monkeypatch.setenv("GANLIB_ASSUME_ACCELERATOR", "gpu")
    else:
        monkeypatch.delenv("GANLIB_ASSUME_ACCELERATOR", raising=False)
    _no_widget_sync()
    notebook = nbformat.read(book / f"{chapter}.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(book)}}
    )
    start = time.perf_counter()
    client.execute()  # a cell that raises fails the test with the cell and its traceback
    print(f"{chapter} in {mode}: {time.perf_counter() - start:.0f} s")
    text = _outputs(notebook)
    assert "Smoke run" in text, f"{chapter} does not say that it is a smoke run"
    assert "Traceback" not in text
