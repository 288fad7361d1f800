"""Notebooks 01 -> 09 run in order, each in a fresh kernel, all writing into one output folder; it stays auditable."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from sdxl_nb.cli import main
from sdxl_nb.record.joblog import read_records
from tests.conftest import REPO

pytestmark = pytest.mark.slow
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_all_notebooks_in_sequence_share_one_output_folder(tmp_path, monkeypatch, capsys):
    assert [path.name[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]
    out = tmp_path / "output_images"
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("SDXL_NB_OUTPUT", str(out))
    jobs_before = 0
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        errors = [(o.get("ename"), o.get("evalue")) for cell in notebook.cells for o in cell.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert errors == [], path.name
        jobs = len(read_records(out / "jobs.log"))
        assert jobs > jobs_before, f"{path.name} recorded no job in the shared folder"
        jobs_before = jobs
    records = read_records(out / "jobs.log")
    assert {record["status"] for record in records} == {"ok"}
    assert {"txt2img", "img2img", "animate", "sweep"} <= {record["mode"] for record in records}
    capsys.readouterr()
    assert main(["verify", "--out", str(out)]) == 0, capsys.readouterr().out
    assert main(["audit", str(out)]) == 0, capsys.readouterr().out
