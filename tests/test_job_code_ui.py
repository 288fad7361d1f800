"""The gallery's Code action: a job's script shown to copy (and in the next cell within a kernel); a job that cannot
be written as code says why in the gallery's note line."""

import json

import pytest

pytest.importorskip("ipywidgets")

from tests.conftest import SMALL  # noqa: E402
from tests.ui_helpers import status_kind  # noqa: E402


@pytest.fixture
def made(engine, tmp_path):
    from sdxl_nb.jobs.generate import generate

    return generate(out_dir=tmp_path / "out", engine=engine, **SMALL, seed=4, prompt="a gallery fox")


def code_button(gallery, item):
    gallery.show([item])
    (cell,) = gallery.cells.children
    (button,) = [b for row in cell.children[2:] for b in row.children if b.description == "Code"]
    return button


def test_code_shows_the_jobs_script_to_copy(made):
    from sdxl_nb.ui.gallery import Gallery, GalleryItem

    gallery = Gallery()
    code_button(gallery, GalleryItem(path=made.paths[0], caption="seed 4")).click()
    _heading, _hint, area = gallery.viewer.children
    assert area.value.startswith(f'"""Job {made.record["job_id"]}') and "import sdxl_nb" not in area.value
    assert status_kind(gallery.note) == "ok" and "the script that makes it again is below" in gallery.note.value


def test_in_a_kernel_the_script_goes_to_the_next_cell(made, monkeypatch):
    import IPython

    from sdxl_nb.ui.gallery import Gallery, GalleryItem

    cells = []
    shell = type("Shell", (), {"kernel": object(), "set_next_input": lambda self, text, replace: cells.append(text)})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    gallery = Gallery()
    code_button(gallery, GalleryItem(path=made.paths[0], caption="seed 4")).click()
    assert len(cells) == 1 and cells[0] == gallery.viewer.children[2].value
    assert "in the next cell and below" in gallery.note.value


def test_a_job_that_cannot_be_code_says_why_in_one_line(made, tmp_path):
    from sdxl_nb.ui.gallery import Gallery, GalleryItem

    log = made.paths[0].parent / "jobs.log"
    record = json.loads(log.read_text().splitlines()[0])
    log.write_text(json.dumps({**record, "backend": {"name": "comfy", "server": "http://x"}}) + "\n")
    gallery = Gallery()
    code_button(gallery, GalleryItem(path=made.paths[0], caption="seed 4")).click()
    assert gallery.viewer.children == () and status_kind(gallery.note) == "error"
    assert "cannot be written as plain code yet: it was made on the comfy backend" in gallery.note.value
