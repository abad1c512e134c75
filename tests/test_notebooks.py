"""The chapters as files: what every notebook must carry before nbval executes it."""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# NBVAL_CHECK_OUTPUT"
CHAPTERS = [
    ROOT / f"{entry['file']}.ipynb"
    for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
    for entry in part["chapters"]
    if entry["file"].split("/")[-1][:2].isdigit()
]


def _code_cells(path):
    notebook = json.loads(path.read_text())
    return notebook, [c for c in notebook["cells"] if c["cell_type"] == "code"]


def _source(cell):
    return "".join(cell["source"])


def test_the_toc_lists_eight_chapters_that_exist():
    assert len(CHAPTERS) == 8
    missing = [p.name for p in CHAPTERS if not p.exists()]
    assert not missing, f"chapters in _toc.yml without a notebook: {missing}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_only_checked_cells_keep_outputs(path):
    _, cells = _code_cells(path)
    unchecked_with_output = [
        i
        for i, c in enumerate(cells)
        if c.get("outputs") and not _source(c).lstrip().startswith(MARKER)
    ]
    assert not unchecked_with_output, (
        f"{path.name}: code cells {unchecked_with_output} keep outputs; "
        "run `python .ci/keep_checked_outputs.py --strip` to clear them"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_checked_cells_store_a_text_output_to_compare(path):
    _, cells = _code_cells(path)
    for i, cell in enumerate(cells):
        if not _source(cell).lstrip().startswith(MARKER):
            continue
        outputs = cell.get("outputs", [])
        assert outputs, (
            f"{path.name}: checked code cell {i} has no stored output, so nbval compares nothing; "
            "run `python .ci/keep_checked_outputs.py` on it"
        )
        for output in outputs:
            data = output.get("data", {})
            assert not any(k.startswith("image/") for k in data), (
                f"{path.name}: cell {i} checks an image"
            )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_in_colab_and_has_a_parameters_cell(path):
    notebook, cells = _code_cells(path)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert "google.colab" in _source(cells[0]), "the first code cell installs ganlib in Colab"
    parameters = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(parameters) == 1, "exactly one cell tagged `parameters`"
    if path.stem.startswith("02_"):  # trains nothing: QUICK only shortens its sweep
        assert "QUICK" in _source(parameters[0])
    else:  # every chapter that trains picks quick / gpu-short / full (ganlib.training.modes)
        assert "MODE = training.book_mode(" in _source(parameters[0])
