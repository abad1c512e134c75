"""Sphinx extension: serve MathJax from the built site instead of a CDN.

Sphinx loads MathJax from a CDN by default, so a page read offline, and the browser check
of the built pages (tests/browser), shows every formula as its LaTeX source and cannot
tell typeset math from broken math. This extension puts MathJax 3 (the npm package
`mathjax`, version MATHJAX_VERSION) into the site's `_static/mathjax/` and points
`mathjax_path` at it; _config.yml enables it:

    sphinx:
      local_extensions:
        local_mathjax: book/_ext/

Where the files come from, first found:

1. the folder named by the environment variable GAN_BOOK_MATHJAX (MathJax's `es5` folder,
   the one holding tex-mml-chtml.js), for a machine without npm;
2. a cache folder (~/.cache/gan-book/mathjax-<version>, or under $XDG_CACHE_HOME), filled
   on first use by `npm install mathjax@<version>` from the npm registry (about 1 s, 24 MB).

If neither works the build keeps the CDN and logs a warning, which fails the CI build
(`--warningiserror`): a site whose math only typesets online is a defect there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MATHJAX_VERSION = "3.2.2"
ENTRY = "tex-mml-chtml.js"  # Sphinx's default MathJax 3 component: TeX and MathML in, HTML out
STATIC_FOLDER = "mathjax"  # under the site's _static/


def cache_folder() -> Path:
    """Where the npm install of MathJax is kept between builds."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "gan-book" / f"mathjax-{MATHJAX_VERSION}"


def npm_install(target: Path, npm: str = "npm") -> Path:
    """Install mathjax@MATHJAX_VERSION with npm under `target`; its es5 folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Installed beside the target first and moved in one step, so an interrupted install
    # never leaves a half-filled cache that later builds would trust.
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                scratch,
                f"mathjax@{MATHJAX_VERSION}",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        es5 = Path(scratch) / "node_modules" / "mathjax" / "es5"
        if not (es5 / ENTRY).is_file():
            raise FileNotFoundError(f"npm installed mathjax without es5/{ENTRY}")
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(es5), str(target))
    return target


def find_mathjax(install=npm_install) -> Path:
    """MathJax's es5 folder: from GAN_BOOK_MATHJAX, the cache, or a fresh npm install."""
    named = os.environ.get("GAN_BOOK_MATHJAX")
    if named:
        folder = Path(named)
        if not (folder / ENTRY).is_file():
            raise FileNotFoundError(
                f"GAN_BOOK_MATHJAX={named} has no {ENTRY}: point it at MathJax 3's es5 folder"
            )
        return folder
    folder = cache_folder()
    if (folder / ENTRY).is_file():
        return folder
    return install(folder)


def _use_local_mathjax(app, config):
    from sphinx.util import logging

    try:
        source = find_mathjax()
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or error
        logging.getLogger(__name__).warning(
            "MathJax could not be installed for the site (%s); the pages load it from a CDN, "
            "so math shows as LaTeX source offline. Install npm, or set GAN_BOOK_MATHJAX to "
            "MathJax 3's es5 folder.",
            str(detail).strip()[-300:],
        )
        return
    # A relative mathjax_path is relative to the site's _static folder.
    config.mathjax_path = f"{STATIC_FOLDER}/{ENTRY}"
    app._local_mathjax_source = source


def _copy_mathjax(app, exception):
    source = getattr(app, "_local_mathjax_source", None)
    if exception is not None or source is None or app.builder.format != "html":
        return
    shutil.copytree(source, Path(app.outdir) / "_static" / STATIC_FOLDER, dirs_exist_ok=True)


def setup(app):
    # Priority 900: after sphinx.ext.mathjax and jupyter-book have settled the config.
    app.connect("config-inited", _use_local_mathjax, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
