"""The browser check's eyes, tested on small pages written here: no book build needed.

Each defect the check looks for (chromium_page.defects) is put on a page of its own, opened
in headless Chromium, and must be reported; a page without defects, with real MathJax
typesetting its math, must pass. The pages copy the structure of the book's pages: a
`main` with cells whose `.cell_input` holds the code and `.cell_output` what it showed.

    python -m pytest tests/browser/test_page_checks.py -o addopts="" -q
"""

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from chromium_page import CHROMIUM, FIGURE_FONT_PT, defects, look  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not found: apt-get install chromium"
)


def _mathjax_script():
    """A <script> that loads the MathJax the book build serves (npm's mathjax@3)."""
    path = ROOT / "book" / "_ext" / "local_mathjax.py"
    spec = importlib.util.spec_from_file_location("local_mathjax", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = module.find_mathjax() / module.ENTRY
    return f'<script defer src="{entry.as_uri()}"></script>'


def _figure(path, width_inches, font_pt=FIGURE_FONT_PT):
    """A PNG drawn as the chapters draw: 100 dpi, text of font_pt points."""
    with plt.rc_context({"font.size": font_pt}):
        fig, ax = plt.subplots(figsize=(width_inches, 3), dpi=100)
        ax.plot([0, 1], [0, 1])
        ax.set(xlabel="update", ylabel="loss")
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return path.name


CODE_CELL = """
<div class="cell docutils container">
  <div class="cell_input docutils container"><div class="highlight-ipython3"><pre>
rows = ["| MODE | updates |", "|---|---:|"]   # code may build a table
url = "https://storage.googleapis.com/weights.h5"  # or hold a URL
theta = r"$\\theta$"
  </pre></div></div>
  <div class="cell_output docutils container">{output}</div>
</div>
"""


def _page(folder, name, output, head="", prose=""):
    """An HTML page like the book's: prose, then one code cell showing `output`."""
    html = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8">{head}
<style>main {{ width: 750px; font-size: 16px; }} img {{ max-width: 100%; }}</style>
</head><body><main>
<p>Prose with inline math <span class="math notranslate nohighlight">\\(D^*(x)\\)</span>
and a display:</p>
<div class="math notranslate nohighlight">\\[\\log 2 - \\mathrm{{JS}}(p \\,\\|\\, q)\\]</div>
<p>Prose code is not judged: <code class="literal">| --- |</code>.</p>
{prose}
{CODE_CELL.format(output=output)}
</main></body></html>"""
    page = folder / name
    page.write_text(html)
    return page


GOOD_OUTPUT = """
<table class="table"><thead><tr><th>MODE</th><th>updates</th></tr></thead>
<tbody><tr><td>quick</td><td>12</td></tr></tbody></table>
<p>Math printed by a cell: <span class="math notranslate nohighlight">\\(2\\,d\\theta\\)</span>.</p>
<div class="output stream highlight-myst-ansi"><pre>epoch 1/4  d_loss 0.69  g_loss 0.70
runs/ch06_measuring_quality/history.csv</pre></div>
"""


@pytest.fixture(scope="module")
def mathjax():
    return _mathjax_script()


def test_a_good_page_passes(tmp_path, mathjax):
    figure = _figure(tmp_path / "figure.png", width_inches=7)
    page = _page(
        tmp_path, "06_measuring_quality.html", GOOD_OUTPUT + f'<img src="{figure}">', head=mathjax
    )
    screenshot = tmp_path / "shot.png"
    seen = look(page, screenshot=screenshot)
    assert seen.mathjax and len(seen.math) == 3 and all(m["typeset"] for m in seen.math)
    assert [i["shown"] for i in seen.images] == [700]
    assert defects(seen) == []
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BROKEN = {
    "raw Markdown table": "<p>| MODE | updates |\n|---|---:|\n| quick | 12 |</p>",
    # what CommonMark output looks like on the built page: Sphinx's smart quotes make --- a dash
    "raw Markdown table, dashes": "<p>| MODE | updates |\n|\u2014|\u2014:|\n| quick | 12 |</p>",
    "math shown as TeX source": (
        "<p>At 20 widths, $\\log 2 - \\mathrm{JS}$ is 1.2e-10 and $2,d\\theta$ matches.</p>"
    ),
    "Python traceback": (
        '<div class="output traceback"><pre>Traceback (most recent call last):\n'
        '  File "/tmp/x.py", line 3, in &lt;module&gt;\nValueError: bad</pre></div>'
    ),
    "download or network message": (
        '<div class="output stream"><pre>Downloading data from https://storage.googleapis.com/'
        "tensorflow/keras-applications/inception_v3/weights.h5\n"
        "could not download the ImageNet weights: [Errno -2] Name or service not known"
        "</pre></div>"
    ),
    "a path named after chapter 5": (
        '<div class="output stream"><pre>run folder /tmp/ch05_x1y2/run</pre></div>'
    ),
}


@pytest.mark.parametrize("defect", BROKEN, ids=lambda d: "_".join(d.replace(",", "").split()))
def test_each_defect_fails_the_page(tmp_path, mathjax, defect):
    page = _page(tmp_path, "06_measuring_quality.html", BROKEN[defect], head=mathjax)
    found = defects(look(page))
    assert found, f"the check missed: {defect}"
    assert all(line.startswith(defect.split(",")[0]) for line in found), found


def test_math_without_mathjax_fails(tmp_path):
    # What an offline build with MathJax from a CDN shows: the TeX, in math elements.
    page = _page(tmp_path, "06_x.html", GOOD_OUTPUT, head="")
    found = defects(look(page))
    assert found and all("not typeset" in line or "TeX source" in line for line in found)
    assert any("3 math element(s) not typeset (MathJax did not load)" in f for f in found)


def test_a_figure_shrunk_below_the_body_text_fails(tmp_path, mathjax):
    # 16 inches at 100 dpi in a 750-px column: its 14-pt text shows at about 9 px.
    wide = _figure(tmp_path / "wide.png", width_inches=16)
    found = defects(look(_page(tmp_path, "04_x.html", f'<img src="{wide}">', head=mathjax)))
    assert len(found) == 1 and found[0].startswith("figure too small to read"), found
    # The same figure as an inline data URL (how myst-nb may embed it) is measured too.
    import base64

    data = base64.b64encode((tmp_path / wide).read_bytes()).decode()
    page = _page(tmp_path, "04_y.html", f'<img src="data:image/png;base64,{data}">', head=mathjax)
    assert any(line.startswith("figure too small") for line in defects(look(page)))


def test_a_stale_path_is_judged_against_the_pages_own_chapter(tmp_path, mathjax):
    output = '<div class="output stream"><pre>run folder /tmp/ch05_x1y2/run</pre></div>'
    assert defects(look(_page(tmp_path, "05_training.html", output, head=mathjax))) == []
