"""The book's text against its sources of truth: the repository URL and the bibliography."""

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SYNC = ROOT / ".ci" / "sync_repository_url.py"
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _sync_module():
    spec = importlib.util.spec_from_file_location("sync_repository_url", SYNC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config_url():
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def _first_code_cell(path):
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def test_there_are_eight_chapters():
    assert len(CHAPTERS) == 8


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_install_cell_uses_the_config_url(path):
    found = re.findall(r"git\+[^\s\"']+", _first_code_cell(path))
    assert found == [f"git+{_config_url()}"], (
        f"{path.name} installs from {found}, _config.yml says {_config_url()}: "
        "run `python .ci/sync_repository_url.py`"
    )


def _tiny_book(root, url, install_url):
    (root / "book").mkdir()
    (root / "_config.yml").write_text(yaml.safe_dump({"repository": {"url": url}}))
    (root / "_toc.yml").write_text(
        yaml.safe_dump({"root": "book/intro", "parts": [{"chapters": [{"file": "book/01_x"}]}]})
    )
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# A chapter"),
            nbformat.v4.new_code_cell(f'package = "git+{install_url}"\nprint(package)'),
            nbformat.v4.new_code_cell('other = "git+https://example.org/untouched"'),
        ]
    )
    nbformat.write(notebook, root / "book" / "01_x.ipynb")
    return root / "book" / "01_x.ipynb"


def test_sync_script_rewrites_only_the_first_code_cell(tmp_path):
    sync = _sync_module()
    path = _tiny_book(tmp_path, "https://example.org/new-home/", "https://example.org/old-home")
    assert sync.main(["--check"], root=tmp_path) == 1
    assert sync.main([], root=tmp_path) == 0
    cells = nbformat.read(path, as_version=4).cells
    assert cells[1].source == 'package = "git+https://example.org/new-home"\nprint(package)'
    assert cells[2].source == 'other = "git+https://example.org/untouched"'
    assert sync.main(["--check"], root=tmp_path) == 0


def _bib_keys():
    text = (ROOT / "book" / "references.bib").read_text()
    return re.findall(r"^@\w+\{([^,\s]+),", text, flags=re.MULTILINE)


def _markdown_texts():
    for path in CHAPTERS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                yield path.name, "".join(cell["source"])
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, path.read_text()


def test_bibliography_keys_are_unique():
    keys = _bib_keys()
    assert len(keys) >= 11
    assert len(keys) == len(set(keys))


def test_every_citation_has_an_entry():
    keys = set(_bib_keys())
    missing = [
        (name, key.strip())
        for name, text in _markdown_texts()
        for group in CITE.findall(text)
        for key in group.split(",")
        if key.strip() not in keys
    ]
    assert not missing, f"cited but not in book/references.bib: {missing}"


def test_references_page_is_in_the_toc_and_lists_every_entry():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    assert "book/references" in files
    page = (ROOT / "book" / "references.md").read_text()
    assert "```{bibliography}" in page and ":all:" in page


def _main_job_command():
    """The README's `python -m ganlib train ...` command, continuation lines joined."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    found = [
        line
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.startswith("python -m ganlib train")
    ]
    assert len(found) == 1, f"the README should show one main-job command, found {found}"
    return " ".join(found[0].split())


def test_the_readme_main_job_is_chapter_4s_recipe_and_bench_measures_it():
    import sys

    from ganlib import cli
    from ganlib.training import PRESETS

    command = _main_job_command()
    args = cli._parser().parse_args(command.split()[3:])
    assert args.model in PRESETS and args.data == "toy-faces"
    # chapter 4 shows the same command where it trains the recipe
    chapter = json.loads((ROOT / "book" / "04_why_gans_collapse.ipynb").read_text())
    prose = " ".join(
        " ".join("".join(c["source"]).replace("\\\n", " ").split())
        for c in chapter["cells"]
        if c["cell_type"] == "markdown"
    )
    assert command in prose, f"chapter 4 does not show the README's main job: {command}"
    code = "".join("".join(c["source"]) for c in chapter["cells"] if c["cell_type"] == "code")
    assert f'model="{args.model}"' in code
    # bench/recipes.py measures the same recipe, scored at the README's epochs
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import recipes
    finally:
        sys.path.remove(str(ROOT / "bench"))
    measured = [
        (options, stages)
        for _, options, stages in recipes.RECIPES.values()
        if options["model"] == args.model
        and options["width"] == args.width
        and options["batch_size"] == (args.batch_size or PRESETS[args.model].batch_size)
        and options.get("r1_gamma", 0.0) == args.r1_gamma
    ]
    assert measured and any(args.epochs in stages for _, stages in measured)


# ---- what a reader sees on chapters 4-8: legible figures, no stale paths (issue: the site as a
# reader sees it). tests/browser measures the built pages; these read the notebooks' code.

READER_CHAPTERS = [p for p in CHAPTERS if 4 <= int(p.name[:2]) <= 8]
FIGURE_FONT_PT = 14  # as tests/browser/chromium_page.py assumes when it judges a figure's size
FIGURE_MAX_INCHES = 8.0  # 800 px at 100 dpi: 14-pt text stays body-sized in a ~700-px column


def _code(path):
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", READER_CHAPTERS, ids=lambda p: p.stem)
def test_figures_are_drawn_to_be_read_at_the_pages_width(path):
    code = _code(path)
    sizes = re.findall(r"\"font\.size\":\s*(\d+(?:\.\d+)?)", code)
    assert sizes and all(float(s) >= FIGURE_FONT_PT for s in sizes), (
        f"{path.name}: set matplotlib's font.size to at least {FIGURE_FONT_PT} (found {sizes})"
    )
    assert re.search(r"\"figure\.dpi\":\s*100\b", code), f"{path.name}: figures at 100 dpi"
    small = [f for f in re.findall(r"fontsize=(\d+(?:\.\d+)?)", code) if float(f) < FIGURE_FONT_PT]
    assert not small, f"{path.name}: text smaller than {FIGURE_FONT_PT} pt: fontsize={small}"
    widths = re.findall(r"figsize=\(\s*([^,]+?)\s*,", code)
    widths += re.findall(r"show_grid\([^)]*\bsize=([\d.]+)", code)
    too_wide = [w for w in widths if w != "FIGURE_WIDTH" and not (_number(w) and float(w) <= 8.0)]
    assert not too_wide, f"{path.name}: figures wider than {FIGURE_MAX_INCHES} in: {too_wide}"
    width = re.search(r"^FIGURE_WIDTH\s*=\s*([\d.]+)", code, flags=re.M)
    assert width is None or float(width.group(1)) <= FIGURE_MAX_INCHES


def _number(text):
    return re.fullmatch(r"\d+(?:\.\d+)?", text) is not None


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_temporary_and_run_folders_are_named_after_their_own_chapter(path):
    number = int(path.name[:2])
    code = _code(path)
    named = re.findall(r"prefix=\"[^\"]*?(\d\d)[_-]", code)
    named += re.findall(r"[\"/](?:ch)?(\d\d)_[a-z]\w*\"", code)
    wrong = sorted({int(n) for n in named} - {number})
    assert not wrong, f"{path.name} names folders after chapter(s) {wrong}"


def test_the_stale_names_of_issue_21_would_be_caught():
    # The check above, on the three names the issue found (chapters 6, 7 and 8).
    for number, code in (
        (6, 'Path(tempfile.mkdtemp(prefix="ch05_"))'),
        (7, 'Path(tempfile.mkdtemp(prefix="gan-book-06-"))'),
        (8, 'run_dir = Path(tempfile.mkdtemp(prefix="ch07_"))'),
    ):
        named = re.findall(r"prefix=\"[^\"]*?(\d\d)[_-]", code)
        assert {int(n) for n in named} - {number}, code
