"""Execute chapters and keep only the outputs that nbval checks.

Notebooks live in git without outputs, except the cells marked `# NBVAL_CHECK_OUTPUT`:
nbval can only compare a cell's fresh output with a stored one, so those cells keep
theirs (they must be deterministic). Run this after changing such a cell:

    python .ci/keep_checked_outputs.py book/02_transposed_convolution.ipynb   # or no argument: every chapter

`--strip` skips the execution and only removes every output that is not checked.
tests/test_notebooks.py enforces the result.
"""

import argparse
import sys
from pathlib import Path

import nbformat

MARKER = "# NBVAL_CHECK_OUTPUT"
BOOK = Path(__file__).resolve().parents[1] / "book"


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARKER)


def keep_checked(executed, original):
    """Copy the checked cells' outputs from `executed` into `original`; clear the rest."""
    for cell, ran in zip(original.cells, executed.cells, strict=True):
        if cell.cell_type != "code":
            continue
        if is_checked(cell):
            cell.outputs = [o for o in ran.outputs if o.get("name") != "stderr"]
            cell.execution_count = ran.execution_count
        else:
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return original


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--strip", action="store_true", help="do not execute; only clear unchecked outputs")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        original = nbformat.read(path, as_version=4)
        executed = original
        if not args.strip:
            from nbclient import NotebookClient

            executed = nbformat.read(path, as_version=4)
            NotebookClient(executed, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(keep_checked(executed, original), path)
        kept = sum(bool(c.get("outputs")) for c in original.cells if c.cell_type == "code")
        print(f"{path}: kept the outputs of {kept} checked cell(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
