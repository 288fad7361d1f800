"""Gallery actions driven headless: full size, record, seed, compare, reuse, img2img/inpaint, from every tab."""

import html

import pytest

pytest.importorskip("ipywidgets")

from sdxl_nb.record.joblog import read_records  # noqa: E402
from sdxl_nb.ui.image_view import PIXELATED  # noqa: E402
from tests.ui_helpers import lab_for, small_form, status_kind  # noqa: E402

ACTIONS = ["View", "Info", "Compare", "Seed", "Reuse", "Code", "img2img", "Inpaint", "Upscale"]


@pytest.fixture
def lab(engine, tmp_path):
    return lab_for(engine, tmp_path / "out")


def actions(cell) -> dict:
    return {b.description: b for row in cell.children[2:] for b in row.children}


def generated(lab, **form):
    panel = lab.generate
    small_form(panel.form, **{"seed": 11, "batch": 2, **form})
    panel.generate.click()
    assert panel.wait(120)
    return panel.results.gallery.children


def test_every_image_has_its_actions_and_view_info_seed_and_compare_work(lab):
    panel = lab.generate
    first, second = generated(lab, prompt="a gallery heron")
    assert list(actions(first)) == ACTIONS
    gallery = panel.results.images
    actions(second)["View"].click()
    heading, full = gallery.viewer.children
    # Its own pixel size, narrowed (aspect kept) only where the page is narrower.
    assert (full.layout.width, full.layout.height, full.layout.max_width) == ("64px", "auto", "100%")
    assert "64x64 px, full size" in heading.children[0].value and PIXELATED not in full._dom_classes
    heading.children[1].click()  # Close
    assert gallery.viewer.children == ()
    actions(second)["Info"].click()
    info = html.unescape(gallery.viewer.children[1].value)
    assert "a gallery heron" in info and "Steps: 2" in info and "Seed: 12" in info and "Job" in info
    assert "negative_prompt" not in info  # the form's words, not the field names
    panel.form.random_seed.value = True
    actions(second)["Seed"].click()
    assert (panel.form.random_seed.value, panel.form.seed.value) == (False, 12)
    assert "seed 12 is in the form" in gallery.note.value
    actions(first)["Compare"].click()
    assert "seed 11 picked" in gallery.note.value
    actions(second)["Compare"].click()
    (compare,) = [child for child in gallery.viewer.children if "sdxl-compare" in child._dom_classes]
    sizes = [(side.children[0].layout.width, side.children[0].layout.height) for side in compare.children]
    assert sizes == [("384px", "384px")] * 2  # both at one size, small ones scaled up
    differences = html.unescape(gallery.viewer.children[-1].value)
    assert "Seed: 11 → 12" in differences and "Prompt" not in differences


def test_compare_reaches_across_jobs(lab):
    (first,) = generated(lab, prompt="one", batch=1, seed=5)
    actions(first)["Compare"].click()
    (later,) = generated(lab, prompt="two", batch=1, seed=5)
    assert "seed 5 picked" in lab.generate.results.images.note.value  # the hint outlives the next job's start
    actions(later)["Compare"].click()
    differences = html.unescape(lab.generate.results.images.viewer.children[-1].value)
    assert "Prompt: one → two" in differences and "Seed" not in differences


def test_reuse_sends_every_setting_back_and_the_rerun_matches(lab, tmp_path):
    panel = lab.generate
    panel.form.style.value = "Cinematic"
    panel.form.negative.value = "fog, " + panel.form.presets.styles["Cinematic"].negative
    _, second = generated(lab, prompt="a reused fox")
    form = panel.form
    form.prompt.value, form.style.value, form.steps.value, form.batch.value = "something else", "None / Raw", 5, 3
    form.random_seed.value = True
    actions(second)["Reuse"].click()
    assert (form.prompt.value, form.style.value, form.steps.value, form.batch.value) == ("a reused fox", "Cinematic",
                                                                                         2, 1)
    assert form.negative.value.startswith("fog, ") and (form.random_seed.value, form.seed.value) == (False, 12)
    assert (form.width.value, form.height.value, form.mode.value) == (64, 64, "txt2img")
    assert status_kind(panel.results.images.note) == "ok"
    panel.generate.click()
    assert panel.wait(120)
    original, rerun = read_records(tmp_path / "out" / "jobs.log")
    for key in ("styled_prompt", "effective_negative_prompt", "steps", "cfg", "width", "height", "scheduler"):
        assert rerun[key] == original[key], key
    assert rerun["seeds"] == [12] and rerun["model"]["id"] == original["model"]["id"]


def test_img2img_and_inpaint_make_the_image_the_init_image(lab):
    _, second = generated(lab, prompt="an init")
    form = lab.generate.form
    actions(second)["img2img"].click()
    path = lab.generate.results.images.items[1].path
    assert form.mode.value == "img2img" and bytes(form.init_upload.value[0]["content"]) == path.read_bytes()
    actions(second)["Inpaint"].click()
    assert form.mode.value == "inpaint" and "init image for inpaint" in lab.generate.results.images.note.value


def test_animate_frames_and_sweep_cells_send_their_settings_to_the_generate_tab(lab):
    animate, sweep = lab.panels["Animate"], lab.panels["Sweep"]
    animate.form.prompt.value, animate.frames.value, animate.form.steps.value = "a walking fox", 2, 2
    animate.form.use_seed(30)
    sweep.form.prompt.value, sweep.form.steps.value = "a swept fox", 2
    sweep.form.use_seed(40)
    sweep.x_field.value, sweep.x_values.value = "cfg", "2, 6"
    for panel in (animate, sweep):
        assert panel.submit() is not None
    assert lab.queue.wait_idle(300)
    frames = animate.frames_gallery
    assert [item.caption for item in frames.items] == ["frame 1/2 · seed 30", "frame 2/2 · seed 31"]
    assert "2 frames" in frames.fold.get_title(0) and frames.widget.layout.display is None
    lab.tabs.selected_index = 1
    actions(frames.cells.children[1])["Reuse"].click()
    form = lab.generate.form
    assert lab.tabs.selected_index == 0 and form.seed.value == 31 and form.prompt.value.startswith("a walking fox")
    assert "frame 2 of an animation" in frames.note.value
    cells = sweep.cells_gallery
    assert [item.caption for item in cells.items] == ["CFG scale: 2", "CFG scale: 6"]
    actions(cells.cells.children[1])["Reuse"].click()
    assert (form.prompt.value, form.cfg.value, form.seed.value) == ("a swept fox", 6, 40)
    actions(cells.cells.children[0])["Seed"].click()
    assert sweep.form.seed.value == 40  # Seed stays in the sweep's own form


def test_an_image_moved_away_is_one_red_line(lab):
    (cell,) = generated(lab, batch=1)
    lab.generate.results.images.items[0].path.unlink()
    actions(cell)["Info"].click()
    note = lab.generate.results.images.note
    assert status_kind(note) == "error" and "seed 11" in note.value and note.value.count("<div") == 1
