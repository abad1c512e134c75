"""Browser check of the built book: every chapter page opened in headless Chromium.

Run after `jupyter-book build .` (it is not part of the plain `pytest` run):

    python -m pytest tests/browser -o addopts="" -q

For each chapter listed in _toc.yml it saves a screenshot of the whole page into
_build/screenshots/<page>.png (for a person to look at; CI keeps _build/), dumps the DOM as
the browser sees it, and checks that the page shows its figures, has no error output,
embeds its widgets, and links to its own notebook in Colab. It then looks at the page as a
reader does (chromium_page.py, whose checks test_page_checks.py proves on broken pages):
no raw Markdown table, no math left untypeset by MathJax, no traceback, no download or
network message, no temporary path named after another chapter, and no figure shown so
small that its text is smaller than the body text. Chromium must be installed at
/usr/bin/chromium (or named by the CHROMIUM environment variable); `.ci/run` installs
Debian's `chromium` when it is missing.
"""

import json
import re
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from chromium_page import CHROMIUM, CHROMIUM_FLAGS, defects, look

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
EXECUTED = ROOT / "_build" / "jupyter_execute"
SCREENSHOTS = ROOT / "_build" / "screenshots"
# Chapters that must show an ipywidgets view (later chapters may add more; any chapter
# whose executed notebook displays a widget is checked for it too).
WIDGET_CHAPTERS = {"01_gan_basics", "02_transposed_convolution"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _chapters():
    """Chapter notebooks named in _toc.yml, as paths like 'book/01_gan_basics'."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return [f for f in files if re.fullmatch(r"book/\d\d_\w+", f)]


def _colab_prefix():
    """The Colab URL prefix the launch button should use, from _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository = config["repository"]
    owner_repo = repository["url"].rstrip("/").removeprefix("https://github.com/")
    book_path = repository.get("path_to_book", "").strip("/")
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    prefix = f"{colab}/github/{owner_repo}/blob/{repository.get('branch', 'main')}/"
    return prefix + (f"{book_path}/" if book_path else "")


class _Page(HTMLParser):
    """Collects what the checks need from a DOM dump."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.scripts, self.classes = [], [], [], []
        self.stderr_text = []
        self._in_script = None
        self._stderr_depth = 0
        self.script_text = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        self.classes.append(classes)
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "script":
            self._in_script = attrs.get("type", "")
            self.scripts.append(self._in_script)
        if self._stderr_depth or "stderr" in classes:
            self._stderr_depth += 1

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None
        if self._stderr_depth:
            self._stderr_depth -= 1

    def handle_data(self, data):
        if self._in_script:
            self.script_text[self._in_script] = self.script_text.get(self._in_script, "") + data
        if self._stderr_depth:
            self.stderr_text.append(data)


def _run_chromium(*arguments, timeout=180):
    flags = [f for f in CHROMIUM_FLAGS if f != "--remote-debugging-pipe"]
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *flags, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _executed_outputs(name):
    """(figure count, has widget view) from the notebook the build executed."""
    path = EXECUTED / "book" / f"{name}.ipynb"
    assert path.exists(), f"{path} is missing: build the book with execution on"
    notebook = json.loads(path.read_text())
    figures, widgets = 0, False
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                widgets = True  # the page shows the widget, not its fallback image
            elif "image/png" in data or "image/jpeg" in data or "image/svg+xml" in data:
                figures += 1
    return figures, widgets


CHAPTERS = _chapters()


def test_toc_lists_eight_chapters():
    assert len(CHAPTERS) == 8, CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[Path(c).name for c in CHAPTERS])
def test_chapter_page(chapter):
    name = Path(chapter).name
    page = HTML / f"{chapter}.html"
    assert HTML.is_dir(), f"{HTML} is missing: run `jupyter-book build .` first"
    assert page.exists(), f"{page} is missing: is {chapter}.ipynb in the build?"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} not found: apt-get install chromium"

    # The page as a reader sees it, with a screenshot of the whole of it.
    screenshot = SCREENSHOTS / f"{name}.png"
    screenshot.unlink(missing_ok=True)
    seen = look(page, screenshot=screenshot)
    assert screenshot.exists() and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (
        f"no screenshot of {name}"
    )
    found = defects(seen)
    assert not found, f"{name} shows {len(found)} defect(s):\n" + "\n".join(found)
    if seen.math:
        assert seen.mathjax, f"{name}: MathJax did not load"

    url = page.as_uri()
    result = _run_chromium("--dump-dom", "--virtual-time-budget=5000", url)
    dom = result.stdout
    assert "<body" in dom, f"Chromium returned no DOM for {name}: {result.stderr[-2000:]}"
    parsed = _Page()
    parsed.feed(dom)

    # Figures: every image output of the executed notebook is on the page.
    expected_figures, has_widget = _executed_outputs(name)
    figures = [s for s in parsed.images if s.startswith("data:image") or "_images/" in s]
    assert len(figures) >= expected_figures, (
        f"{name}: {len(figures)} figures on the page, {expected_figures} in the notebook"
    )

    # No error output: no traceback anywhere (widget state included), no error blocks.
    assert "Traceback (most recent call last)" not in dom, f"{name} shows a traceback"
    assert '"output_type": "error"' not in dom and '"output_type":"error"' not in dom, (
        f"{name}: a widget saved an error output"
    )
    error_blocks = [
        c for c in parsed.classes if "traceback" in c or ("error" in c and "output" in c)
    ]
    assert not error_blocks, f"{name} has error output blocks: {error_blocks[:3]}"
    stderr = "".join(parsed.stderr_text)
    assert not re.search(r"Error|Exception", stderr), f"{name} has errors on stderr: {stderr[:500]}"

    # Widgets: the view and the saved state are embedded for chapters that have one.
    if name in WIDGET_CHAPTERS or has_widget:
        assert has_widget, f"{name} should display an ipywidgets view"
        assert WIDGET_VIEW in parsed.scripts, f"{name}: no widget view on the page"
        assert WIDGET_STATE in parsed.scripts, f"{name}: no widget state on the page"
        state = json.loads(parsed.script_text.get(WIDGET_STATE, "{}"))
        assert state.get("state"), f"{name}: the embedded widget state is empty"

    # The launch button opens this chapter's notebook in Colab.
    colab = _colab_prefix() + f"{chapter}.ipynb"
    assert colab in parsed.links, (
        f"{name}: no link to {colab}; Colab links on the page: "
        f"{[link for link in parsed.links if 'colab' in link]}"
    )
