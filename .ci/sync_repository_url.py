"""Write the repository URL from _config.yml into every chapter's install cell.

_config.yml's `repository: url:` is the one place for the book's address: the Colab
buttons read it, and the first code cell of each chapter installs ganlib from
`git+<url>` when it runs in Colab. Run this after changing the URL:

    python .ci/sync_repository_url.py           # rewrite the chapters that differ
    python .ci/sync_repository_url.py --check   # only report them (exit status 1 if any)

Only the `git+...` address in the first code cell is rewritten; a chapter that already
uses the right address is left untouched. tests/test_book_text.py checks the result.
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
# A pip requirement that installs from git: `git+` and an address up to the closing quote.
GIT_URL = re.compile(r"git\+[^\s\"']+")


def repository_url(root=ROOT) -> str:
    """The `repository: url:` of _config.yml, without a trailing slash."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/")


def chapters(root=ROOT) -> list[Path]:
    """The chapter notebooks listed in _toc.yml, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    return [root / f"{name}.ipynb" for name in files if (root / f"{name}.ipynb").exists()]


def install_cell(notebook):
    """The first code cell: the one that installs ganlib in Colab."""
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def main(argv=None, root=ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if a chapter differs"
    )
    args = parser.parse_args(argv)
    wanted = f"git+{repository_url(root)}"
    stale = []
    for path in chapters(root):
        notebook = nbformat.read(path, as_version=4)
        cell = install_cell(notebook)
        found = GIT_URL.findall(cell.source)
        if not found:
            print(f"{path.name}: no git+ address in the first code cell", file=sys.stderr)
            return 2
        if all(url == wanted for url in found):
            continue
        stale.append(path.name)
        if not args.check:
            cell.source = GIT_URL.sub(wanted, cell.source)
            nbformat.write(notebook, path)
        print(f"{path.name}: {', '.join(sorted(set(found)))} -> {wanted}")
    if args.check and stale:
        print("run `python .ci/sync_repository_url.py` to update them", file=sys.stderr)
        return 1
    if not stale:
        print(f"every chapter installs from {wanted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
