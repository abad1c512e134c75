"""The public API: every package says what it exports, the appendix documents exactly that,
docstrings point to their chapter, and the NumPy-only parts import no TensorFlow."""

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "ganlib.data",
    "ganlib.models",
    "ganlib.training",
    "ganlib.metrics",
    "ganlib.augment",
    "ganlib.postprocess",
    "ganlib.plotting",
    "ganlib.grids",
    "ganlib.common",
    "ganlib.experiments",
]
# Words that only make sense to someone who saw how the book was made.
UNPLACEABLE = re.compile(
    r"anime design|CIFAR design|as it ran|first design|the seed\b|the design\b"
)


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_exists_and_points_to_its_chapter(name):
    module = importlib.import_module(name)
    assert module.__all__, f"{name} has no __all__"
    assert len(set(module.__all__)) == len(module.__all__)
    for public in module.__all__:
        value = getattr(module, public)
        if inspect.isfunction(value) or inspect.isclass(value):
            doc = inspect.getdoc(value) or ""
            assert re.search(r"[Cc]hapters? \d", doc), (
                f"{name}.{public}: docstring names no chapter"
            )


def test_internals_are_not_public():
    training = importlib.import_module("ganlib.training")
    for internal in ("RUN_KEYS", "update_ema", "remove_stale_temporaries", "_state_groups"):
        assert internal not in training.__all__


def test_the_appendix_documents_every_module():
    appendix = (ROOT / "book" / "api.md").read_text()
    for name in MODULES:
        assert f".. automodule:: {name}\n" in appendix, name


def test_no_docstring_or_comment_uses_words_a_newcomer_cannot_place():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "ganlib").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if UNPLACEABLE.search(line)
    ]
    assert not offenders, offenders


def test_numpy_only_parts_import_no_tensorflow(tmp_path):
    rows = tmp_path / "history.csv"
    rows.write_text("epoch,d_loss,g_loss\n0,0.7,0.8\n1,0.6,0.9\n")
    script = f"""
import sys
import matplotlib
matplotlib.use("Agg")
import numpy as np
import ganlib.metrics.distances, ganlib.metrics.coverage, ganlib.training.history
from ganlib import metrics, plotting
x = np.random.default_rng(0).normal(size=(20, 4))
metrics.kid(x, x + 1, num_subsets=2, subset_size=10)
metrics.fid(x, x + 1)
from ganlib.data import toy_faces
metrics.mode_coverage(toy_faces(4, 32)[0])
plotting.plot_history({str(rows)!r})
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
