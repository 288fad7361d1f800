"""The lab's panels on the backend chosen in the engine settings: ComfyUI (a fake server) runs Animate's seed walk,
refuses what it cannot do at submit with one line, and Generate says it makes no step previews."""

import html

import pytest

pytest.importorskip("ipywidgets")

from sdxl_nb.record.joblog import read_records  # noqa: E402
from tests.fake_comfy import FakeComfy  # noqa: E402
from tests.local_server import LocalServer  # noqa: E402
from tests.ui_helpers import lab_for, small_form, status_kind  # noqa: E402

CKPT = "sd_xl_base_1.0.safetensors"
PNG, GIF = b"\x89PNG", b"GIF8"


@pytest.fixture
def server():
    with LocalServer(FakeComfy().app()) as running:
        yield running


@pytest.fixture
def comfy_lab(engine, tmp_path, server):
    lab = lab_for(engine, tmp_path / "out")
    lab.settings.backend.value = "ComfyUI"
    lab.settings.comfy_url.value, lab.settings.comfy_checkpoint.value = server.url, CKPT
    lab.settings.apply.click()
    assert "on ComfyUI at" in lab.settings.status.value
    return lab


def test_animate_seed_walk_runs_on_comfyui_and_slerp_is_refused_at_submit(comfy_lab, tmp_path):
    panel = comfy_lab.panels["Animate"]
    panel.form.prompt.value, panel.frames.value, panel.form.steps.value = "a remote fox", 2, 2
    panel.form.use_seed(5)
    job = panel.submit()
    assert job is not None and job.wait(120) and job.status == "ok"
    assert status_kind(panel.status) == "ok" and "done: 2 of 2 frames" in panel.status.value
    assert bytes(panel.grid_view.value).startswith(PNG) and bytes(panel.animation_view.value).startswith(GIF)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["mode"] == "animate" and record["backend"]["name"] == "comfy" and record["seeds"] == [5, 6]
    panel.mode.value = "slerp"
    panel.seed_end.value = "9"
    assert panel.submit() is None
    assert status_kind(panel.status) == "error" and panel.status.value.count("<div") == 1
    assert "the ComfyUI backend cannot run slerp between seeds' noise" in html.unescape(panel.status.value)
    assert comfy_lab.queue.jobs() == [job]


def test_generate_says_once_that_the_backend_makes_no_step_previews(comfy_lab, engine, tmp_path):
    panel = comfy_lab.generate
    notes = []
    panel.preview_note.observe(lambda change: notes.append(change.new), "value")
    small_form(panel.form, seed=3)
    panel.form.steps.value = 3
    panel.generate.click()
    assert panel.wait(120)
    assert notes == ["<small style='color:#6c757d'>no step previews on this backend</small>"]
    assert panel.preview.layout.display == "none"
    comfy_lab.settings.backend.value = "local"
    comfy_lab.settings.apply.click()
    panel.generate.click()
    assert panel.wait(120)
    assert panel.preview_note.value == "" and comfy_lab.queue.backend_capabilities().previews
    assert [r.get("backend", {}).get("name") for r in read_records(tmp_path / "out" / "jobs.log")] == ["comfy", None]
