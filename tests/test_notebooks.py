"""Every notebook in notebooks/ runs top to bottom, headless."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

pytestmark = pytest.mark.slow
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_headless(path, tmp_path, monkeypatch):
    # The kernel must import this checkout's sdxl_nb and write into a scratch output folder.
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("SDXL_NB_OUTPUT", str(tmp_path / "output_images"))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert list((tmp_path / "output_images").glob("*.png"))


def test_notebooks_match_their_builders():
    """notebooks/*.ipynb are written by scripts/make_notebooks.py; an edit made only in the .ipynb is caught."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", REPO / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for builder in module.builders():
        saved = nbformat.read(REPO / "notebooks" / builder.FILENAME, as_version=4)
        assert [c.source for c in saved.cells] == [c.source for c in builder.cells()], builder.FILENAME
