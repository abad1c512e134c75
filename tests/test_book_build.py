"""The book build's settings and extensions: the guard against nbclient's widget stall
(jupyter/nbclient#312), cell outputs rendered as MyST, and MathJax served from the site."""

import importlib.util
import os
import shutil
import subprocess
import types
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import output_widget

ROOT = Path(__file__).resolve().parents[1]


def _load_extension():
    path = ROOT / "book" / "_ext" / "no_widget_sync.py"
    spec = importlib.util.spec_from_file_location("no_widget_sync", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _widget(sent):
    """nbclient's Output widget mimic with a kernel client that records what it sends."""
    session = types.SimpleNamespace(msg=lambda msg_type, **kw: {"msg_type": msg_type, **kw})
    channel = types.SimpleNamespace(send=sent.append)
    client = types.SimpleNamespace(session=session, shell_channel=channel)
    widget = output_widget.OutputWidget("c1", {"outputs": []}, client, executor=None)
    widget.parent_header = {}
    return widget


def test_the_book_build_loads_the_extension():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    folder = config["sphinx"]["local_extensions"]["no_widget_sync"]
    assert (ROOT / folder / "no_widget_sync.py").is_file()


def test_output_widgets_stop_messaging_the_kernel_on_the_shell_channel(monkeypatch):
    monkeypatch.setattr(
        output_widget.OutputWidget, "sync_state", output_widget.OutputWidget.sync_state
    )
    sent = []
    _widget(sent).sync_state()
    # nbclient's own method sends the outputs back on the shell channel: the cause of the stall.
    # (If this fails, nbclient changed and the extension may no longer be needed.)
    assert [m["msg_type"] for m in sent] == ["comm_msg"]

    sent.clear()
    assert _load_extension().setup(app=None)["parallel_read_safe"]
    widget = _widget(sent)
    widget.clear_output([], {"parent_header": {}, "content": {}}, 0)
    widget.sync_state()
    assert sent == [] and widget.outputs == []


# ---- how cell outputs and math reach the page (_config.yml, book/_ext/local_mathjax.py) ----


def _load(name):
    path = ROOT / "book" / "_ext" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cell_markdown_is_rendered_as_myst_and_streams_are_merged():
    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert sphinx["config"]["nb_render_markdown_format"] == "myst"
    assert sphinx["config"]["nb_merge_streams"] is True
    assert sphinx["local_extensions"]["local_mathjax"] == "book/_ext/"


def _fake_mathjax(folder):
    folder.mkdir(parents=True)
    (folder / "tex-mml-chtml.js").write_text("window.fakeMathJax = true;\n")
    (folder / "output").mkdir()
    (folder / "output" / "font.woff").write_bytes(b"font")
    return folder


def test_mathjax_comes_from_the_named_folder_the_cache_or_npm(tmp_path, monkeypatch):
    local_mathjax = _load("local_mathjax")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GAN_BOOK_MATHJAX", raising=False)
    installs = []

    def install(target):
        installs.append(target)
        return _fake_mathjax(target)

    first = local_mathjax.find_mathjax(install=install)
    assert first == local_mathjax.cache_folder() and len(installs) == 1
    assert local_mathjax.find_mathjax(install=install) == first and len(installs) == 1  # cached

    named = _fake_mathjax(tmp_path / "es5")
    monkeypatch.setenv("GAN_BOOK_MATHJAX", str(named))
    assert local_mathjax.find_mathjax(install=install) == named
    monkeypatch.setenv("GAN_BOOK_MATHJAX", str(tmp_path))  # no tex-mml-chtml.js there
    with pytest.raises(FileNotFoundError, match="GAN_BOOK_MATHJAX"):
        local_mathjax.find_mathjax(install=install)


def _tiny_book(root, mathjax):
    """The repository's _config.yml on one notebook with saved outputs (not executed)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    config["only_build_toc_files"] = True
    (root / "book").mkdir(parents=True)
    (root / "_config.yml").write_text(yaml.safe_dump(config))
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/01_probe"}))
    shutil.copytree(ROOT / "book" / "_ext", root / "book" / "_ext")
    shutil.copy(ROOT / "book" / "references.bib", root / "book" / "references.bib")
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/markdown": "| MODE | updates |\n|---|---:|\n| quick | 12 |\n\n"
                "Printed math: $\\log 2 - \\mathrm{JS}$ and $2\\,d\\theta$.",
                "text/plain": "<IPython.core.display.Markdown object>",
            },
        ),
        *[nbformat.v4.new_output("stream", name="stdout", text=f"epoch {i}\n") for i in range(3)],
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Probe"), cell])
    nbformat.write(notebook, root / "book" / "01_probe.ipynb")
    _fake_mathjax(mathjax)


def test_the_built_page_shows_tables_math_one_stream_and_local_mathjax(tmp_path):
    book, mathjax = tmp_path / "book-root", tmp_path / "mathjax-es5"
    _tiny_book(book, mathjax)
    env = {**os.environ, "GAN_BOOK_MATHJAX": str(mathjax)}
    result = subprocess.run(
        [shutil.which("jupyter-book") or "jupyter-book", "build", str(book)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    page = book / "_build" / "html" / "book" / "01_probe.html"
    assert page.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    html = page.read_text()
    assert "<table" in html and "|---|" not in html  # the table is a table
    # the math is math, for MathJax: the backslash of \, survives
    assert r'<span class="math notranslate nohighlight">\(2\,d\theta\)</span>' in html
    assert r"\(\log 2 - \mathrm{JS}\)" in html
    assert html.count('class="output stream') == 1 and "epoch 0\nepoch 1\nepoch 2" in html
    # MathJax is loaded from the site itself, and is there
    assert 'src="../_static/mathjax/tex-mml-chtml.js"' in html and "cdn.jsdelivr" not in html
    static = book / "_build" / "html" / "_static" / "mathjax"
    assert (static / "tex-mml-chtml.js").is_file() and (static / "output" / "font.woff").is_file()
