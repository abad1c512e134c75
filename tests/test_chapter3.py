"""Chapter 3 reads its recorded figures from book/results/ and types none of them into its prose."""

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ganlib import recorded

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "03_baseline_vs_improved.ipynb"
RESULTS = ("seed-claim", "ablation")


def _cells(kind, notebook=None):
    notebook = notebook or json.loads(CHAPTER.read_text())
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == kind]


def _significant(text):
    """The significant digits of a number as written: '0.0420' -> '42', '1,234.0' -> '1234'."""
    digits = re.sub(r"\D", "", text).lstrip("0").rstrip("0")
    return digits


def _forms(value):
    """How a recorded number could appear in prose: several roundings and units."""
    forms = set()
    if not math.isfinite(value):
        return forms
    forms |= {f"{value:.1f}", f"{value:.2f}", f"{value:.3f}", f"{value:.4f}", f"{value:,.1f}"}
    if abs(value) >= 100:
        forms |= {f"{value:.0f}", f"{value:,.0f}"}
    if 0 < abs(value) <= 1:
        forms |= {f"{100 * value:.1f}%", f"{100 * value:.2f}%"}
    return forms


def _wall_forms(seconds):
    minutes, hours = seconds / 60, seconds / 3600
    return {
        f"{seconds:.0f} s",
        f"{seconds:,.0f} s",
        f"{minutes:.0f} min",
        f"{minutes:.0f} minutes",
        f"{minutes:.1f} min",
        f"{hours:.1f} h",
        f"{hours:.1f} hours",
        f"{int(minutes // 60)} h {minutes % 60:02.0f} min",
    }


def recorded_numbers(result):
    """Strings that a recorded result's numbers would show as: histories and provenance."""
    candidates = set()
    for history in result.histories.values():
        for key, values in history.items():
            if key == "epoch":
                continue
            for value in values:
                candidates |= _forms(float(value))
    provenance = result.provenance
    candidates |= _wall_forms(float(provenance.get("wall_seconds") or 0))
    if provenance.get("commit"):
        candidates.add(str(provenance["commit"])[:7])
    if provenance.get("date"):
        candidates.add(str(provenance["date"])[:10])
    return candidates


def _literals(code_cells):
    """Numbers the chapter writes in its own code (parameters, thresholds): inputs, not results."""
    return {
        _significant(match) for code in code_cells for match in re.findall(r"\d[\d_.,e-]*", code)
    }


def _settings(result):
    """The numbers a recorded run was set up with (batch, steps per epoch): inputs, not results."""
    settings = result.provenance.get("settings") or {}
    return {
        _significant(str(value))
        for value in settings.values()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def typed_recorded_numbers(markdown_cells, code_cells, results):
    """The recorded numbers (with at least 3 significant digits) found in the markdown cells."""
    allowed = _literals(code_cells)
    for result in results:
        allowed |= _settings(result)
    found = set()
    text = "\n".join(markdown_cells)
    for result in results:
        for candidate in recorded_numbers(result):
            digits = _significant(candidate)
            if not (candidate[0].isdigit() or candidate[0] == "-"):
                pass  # a commit or a date: always checked
            elif re.search(r"\d [a-z]", candidate):
                if len(re.sub(r"\D", "", candidate).lstrip("0")) < 2:
                    continue  # a wall time in units: "0 min" says nothing
            elif len(digits) < 3 or digits in allowed:
                continue  # too short to tell from an ordinary number, or a setting of the chapter
            # Not a piece of a longer number: "404" is not in "404,801" or "404.8".
            pattern = rf"(?<![\w.,]){re.escape(candidate)}(?!\d|[.,]\d)"
            if re.search(pattern, text):
                found.add(candidate)
    return sorted(found)


@pytest.fixture(scope="module")
def results():
    return [recorded.load_result(ROOT / "book" / "results" / name) for name in RESULTS]


def test_the_results_load_and_have_finished_or_running_runs(results):
    for name, result in zip(RESULTS, results, strict=True):
        assert result.histories or result.provenance.get("runs_in_progress"), (
            f"book/results/{name} has neither a finished run nor one in progress"
        )


def test_chapter_loads_its_recorded_results_through_ganlib_recorded():
    code = "\n".join(_cells("code"))
    for name in RESULTS:
        pattern = rf"recorded\.load_result\(\s*Path\(\s*[\"']results/{name}[\"']\s*\)\s*\)"
        assert re.search(pattern, code), (
            f"chapter 3 does not load results/{name} with ganlib.recorded"
        )
    assert "recorded.provenance_caption(" in code, (
        "the recorded figures need their provenance captions"
    )
    # Nothing read around ganlib.recorded: no CSV or provenance.json opened by hand.
    for bypass in ("provenance.json", "history_", "read_csv", "read_history", "json.load"):
        assert bypass not in code, f"chapter 3's code reads {bypass!r} itself"


def test_no_recorded_number_is_typed_into_the_prose(results):
    found = typed_recorded_numbers(_cells("markdown"), _cells("code"), results)
    assert not found, f"chapter 3's markdown types numbers of the recorded results: {found}"


def test_the_check_finds_numbers_typed_into_a_doctored_copy(results):
    notebook = json.loads(CHAPTER.read_text())
    result = next(r for r in results if r.histories)
    variant = next(iter(result.histories))
    kids = [v for v in result.histories[variant].get("kid", []) if math.isfinite(v)]
    wall = float(result.provenance["wall_seconds"])
    doctored = []
    if kids:
        doctored.append(f"The baseline ended at a KID of {kids[-1]:.1f}.")
    wall_text = f"{wall:.0f} s" if wall < 600 else f"{wall / 60:.0f} min"
    doctored.append(f"The recorded run took {wall_text} on its GPU.")
    doctored.append(f"It was made at commit {result.provenance['commit'][:7]}.")
    notebook["cells"].append(
        {"cell_type": "markdown", "metadata": {}, "source": [" ".join(doctored)]}
    )
    found = typed_recorded_numbers(_cells("markdown", notebook), _cells("code", notebook), results)
    assert wall_text in found
    assert result.provenance["commit"][:7] in found
    if kids and len(_significant(f"{kids[-1]:.1f}")) >= 3:
        assert f"{kids[-1]:.1f}" in found


def test_a_setting_of_the_recorded_run_is_not_a_result():
    # A KID of 155.8 reads "156" at no decimals, as do the 156 steps per epoch the run was set to.
    result = SimpleNamespace(
        histories={"run": {"kid": np.array([155.8, 404.2])}},
        provenance={"settings": {"steps_per_epoch": 156, "quick": False}},
    )
    text = ["156 updates per epoch; a KID of 404 at the end"]
    assert typed_recorded_numbers(text, [], [result]) == ["404"]
    result.provenance = {}
    assert typed_recorded_numbers(text, [], [result]) == ["156", "404"]


def test_a_number_is_not_found_inside_a_longer_one():
    result = SimpleNamespace(histories={"run": {"kid": np.array([404.2])}}, provenance={})
    assert typed_recorded_numbers(["the discriminator has 404,801 parameters"], [], [result]) == []
    assert typed_recorded_numbers(["a KID of 404.21 at the end"], [], [result]) == []
    assert typed_recorded_numbers(["a KID of 404 at the end"], [], [result]) == ["404"]
