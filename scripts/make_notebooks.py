"""Writes notebooks/*.ipynb from the cell builders in scripts/notebooks/ (kept as code so diffs stay readable)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent / "notebooks"


def builders():
    """Every scripts/notebooks/nb*.py module: it defines FILENAME and cells()."""
    for path in sorted((HERE / "notebooks").glob("nb*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def main(names: list[str]) -> None:
    for module in builders():
        if names and module.FILENAME not in names:
            continue
        notebook = new_notebook(cells=module.cells())
        for number, cell in enumerate(notebook.cells):
            cell["id"] = f"cell-{number:02d}"  # stable ids keep regenerated notebooks diff-free
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.validate(notebook)
        nbformat.write(notebook, NOTEBOOKS / module.FILENAME)
        print("wrote", NOTEBOOKS / module.FILENAME)


if __name__ == "__main__":
    main(sys.argv[1:])
