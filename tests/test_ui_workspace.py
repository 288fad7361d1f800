"""The lab as a workspace, driven headless: form left and results right, the newest image large over clickable
thumbnails, full size at the image's own pixels, Animate's init image uploaded, each animation end in its mode."""

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("ipywidgets")

from sdxl_nb.record.joblog import read_records  # noqa: E402
from sdxl_nb.ui.gallery import Gallery, GalleryItem  # noqa: E402
from sdxl_nb.ui.image_view import PIXELATED  # noqa: E402
from sdxl_nb.ui.uploads import upload_value  # noqa: E402
from sdxl_nb.ui.workspace import FORM_BASIS, GUTTER, RESULTS_BASIS, columns  # noqa: E402
from tests.ui_helpers import lab_for, small_form, status_kind, thumbnail  # noqa: E402

PANEL_CLASSES = {"Generate": "sdxl-generate-panel", "Animate": "sdxl-animate-panel", "Sweep": "sdxl-sweep-panel"}


@pytest.fixture
def lab(engine, tmp_path):
    return lab_for(engine, tmp_path / "out")


def contains(root, widget) -> bool:
    """Whether `widget` is `root` or anywhere below it."""
    return root is widget or any(contains(child, widget) for child in getattr(root, "children", ()))


def png(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (40, 90, 160)).save(path)
    return path


def tiny(form, seed: int, prompt: str = "a lighthouse") -> None:
    """An Animate form's fastest request: 64 px, 2 steps, a fixed seed."""
    form.prompt.value = prompt
    form.resolution.value = "custom"
    form.width.value = form.height.value = 64
    form.steps.value = 2
    form.use_seed(seed)


def test_each_job_tab_is_the_form_left_and_its_button_and_results_right(lab):
    for title, panel_class in PANEL_CLASSES.items():
        panel = lab.panels[title]
        box = panel.widget
        assert {"sdxl-workspace", panel_class} <= set(box._dom_classes), title
        left, right = columns(box)
        assert "sdxl-form-column" in left._dom_classes and "sdxl-results" in right._dom_classes
        # Side by side while both bases fit (about 1000 px), else the results wrap below the form.
        assert box.layout.flex_flow == "row wrap"
        assert (left.layout.flex, right.layout.flex) == (f"1 1 {FORM_BASIS}px", f"1 1 {RESULTS_BASIS}px")
        assert 840 <= FORM_BASIS + GUTTER + RESULTS_BASIS <= 900  # two columns in JupyterLab at 1400 px
        assert contains(left, panel.form.prompt) and not contains(right, panel.form.prompt)
        run = {"Generate": lambda p: p.generate, "Animate": lambda p: p.run_button, "Sweep": lambda p: p.run_button}
        assert contains(right, run[title](panel)) and not contains(left, run[title](panel)), title
    generate = lab.generate
    _, right = columns(generate.widget)
    for view in (generate.preview, generate.progress, generate.results.widget, generate.message):
        assert contains(right, view)
    animate, sweep = lab.panels["Animate"], lab.panels["Sweep"]
    assert contains(columns(animate.widget)[1], animate.animation_view)
    assert contains(columns(animate.widget)[1], animate.grid_view)
    assert contains(columns(sweep.widget)[1], sweep.grid_view)
    assert contains(columns(sweep.widget)[0], sweep.x_values)


def test_the_newest_image_is_large_and_a_thumbnail_click_makes_another_one_large(lab):
    panel = lab.generate
    results = panel.results
    assert results.large.widget.layout.display == "none"  # nothing large before the first job
    small_form(panel.form, seed=21, batch=3)
    panel.generate.click()
    assert panel.wait(120)
    items, cells = results.images.items, results.gallery.children
    assert "sdxl-batch" in results.gallery._dom_classes and len(cells) == 3
    assert results.large.widget.layout.display is None and "sdxl-newest" in results.large.widget._dom_classes
    large = results.large.image
    assert bytes(large.value) == items[0].path.read_bytes() and "seed 21" in results.large.caption.value
    # 64 px images: large at 512 (a whole factor up, hard edges) and fitted to the column when it is narrower.
    assert (large.layout.width, large.layout.height, large.layout.max_width) == ("512px", "auto", "100%")
    assert PIXELATED in large._dom_classes
    assert ["sdxl-shown-large" in cell._dom_classes for cell in cells] == [True, False, False]
    for cell in cells:
        picture = cell.children[0]
        assert "sdxl-clickable-thumb" in picture._dom_classes and picture.layout.display is None
        assert thumbnail(picture).layout.width == "128px"  # small beside the large one: 64 px, 2x
    pick = cells[2].children[0].children[1]
    assert "sdxl-show-large" in pick._dom_classes
    pick.click()
    assert results.large.shown is items[2] and bytes(large.value) == items[2].path.read_bytes()
    assert "seed 23" in results.large.caption.value
    assert ["sdxl-shown-large" in cell._dom_classes for cell in cells] == [False, False, True]
    # A new job clears the large view; a single image is shown large, its cell keeps the caption and actions.
    small_form(panel.form, seed=30, batch=1)
    panel.generate.click()
    assert panel.wait(120)
    (cell,) = results.gallery.children
    assert cell.children[0].layout.display == "none" and cell.children[1].value == "seed 30"
    assert bytes(large.value) == results.images.items[0].path.read_bytes()


@pytest.mark.parametrize("size", [(128, 128), (1600, 96), (40, 72)])
def test_full_size_is_the_images_own_pixels_fitted_only_to_a_narrower_page(tmp_path, size):
    path = png(tmp_path / "image.png", size)
    gallery = Gallery()
    gallery.show([GalleryItem(path, "an image")])
    gallery.view(gallery.items[0])
    heading, full = gallery.viewer.children
    assert "sdxl-full-size" in full._dom_classes
    # Never scaled: the width is the image's own, the height follows it; only a narrower page narrows it.
    assert (full.layout.width, full.layout.height, full.layout.max_width) == (f"{size[0]}px", "auto", "100%")
    assert PIXELATED not in full._dom_classes
    assert f"{size[0]}x{size[1]} px, full size" in heading.children[0].value
    thumb = gallery.cells.children[0].children[0]  # no on_pick: the thumbnail is the bare image
    assert thumb.layout.height != "auto"


def test_the_compare_hint_stays_while_an_image_is_picked_and_a_new_job_closes_the_viewer(tmp_path):
    first, second = (png(tmp_path / f"{name}.png", (32, 32)) for name in ("a", "b"))
    gallery = Gallery()
    gallery.show([GalleryItem(first, "seed 1"), GalleryItem(second, "seed 2")])
    gallery.compare(gallery.items[0])
    hint = "seed 1 picked: press Compare on another image"
    gallery.clear()  # a job starts
    assert hint in gallery.note.value
    gallery.show([GalleryItem(second, "seed 2")])
    gallery.view(gallery.items[0])
    assert hint in gallery.note.value
    gallery.clear()  # the next job: the viewer of an image no longer shown closes, the hint stays
    assert gallery.viewer.children == () and hint in gallery.note.value
    gallery.picked = None  # compared (tests/test_ui_gallery.py compares two records)
    gallery.clear()
    assert gallery.note.value == ""


def test_animate_uploads_its_init_image_as_generate_does_with_a_thumbnail_and_keeps_it_under_inputs(lab, tmp_path):
    panel = lab.panels["Animate"]
    upload, thumbs = panel.init_upload, panel.init_thumb
    assert "sdxl-upload" in upload._dom_classes and type(upload) is type(lab.generate.form.init_upload)
    assert thumbs.count == 0 and thumbs.widget.layout.display == "none"
    assert panel.remove_init.layout.display == "none" and panel.strength.layout.display == "none"  # image only
    assert contains(columns(panel.widget)[0], upload) and contains(columns(panel.widget)[0], thumbs.widget)
    source = png(tmp_path / "start.png", (64, 64))
    upload.value = upload_value(source)
    assert thumbs.count == 1 and thumbs.widget.layout.display is None
    assert panel.remove_init.layout.display is None and panel.strength.layout.display is None
    tiny(panel.form, seed=4)
    panel.frames.value, panel.strength.value = 2, "0.6"
    panel.frames.value = 1  # refused: nothing queued, nothing kept
    assert panel.submit() is None and status_kind(panel.status) == "error"
    assert not (tmp_path / "out" / "inputs").exists()
    panel.frames.value = 2
    job = panel.submit()
    assert job is not None and job.wait(120) and job.status == "ok"
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    kept = tmp_path / "out" / "inputs" / f"{sha256}.png"
    request, _ = panel.request()
    assert kept.is_file() and request.init_image == str(kept) and request.strength == 0.6
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["init_image"]["sha256"] == sha256 and record["strength"] == 0.6  # every frame img2img from it
    panel.remove_init.click()
    assert upload.value == () and thumbs.count == 0 and thumbs.widget.layout.display == "none"
    assert panel.strength.layout.display == "none" and panel.strength.value == "0.6"  # kept, hidden, not sent
    assert (panel.request()[0].init_image, panel.request()[0].strength) == (None, None)
    # A reused image's init image (PNG Info's Load into Animate) arrives as an upload, thumbnail and all.
    assert panel.load({"prompt": "again", "init_image": str(kept), "strength": 0.45}) == []
    assert bytes(upload.value[0]["content"]) == source.read_bytes() and thumbs.count == 1
    assert panel.strength.value == "0.45"


def test_an_unreadable_upload_shows_no_thumbnail_and_is_refused_in_one_line(lab, tmp_path):
    panel = lab.panels["Animate"]
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    panel.init_upload.value = upload_value(bad)
    assert panel.init_thumb.count == 0 and "not a readable image" in panel.init_thumb.widget.children[0].value
    panel.form.prompt.value = "x"
    assert panel.submit() is None
    assert status_kind(panel.status) == "error" and panel.status.value.count("<div") == 1


def test_each_animation_end_is_shown_and_sent_only_in_its_own_mode(lab, tmp_path):
    panel = lab.panels["Animate"]
    tiny(panel.form, seed=40)
    panel.frames.value = 2
    panel.mode.value = "slerp"
    panel.seed_end.value = "4242"
    assert panel.seed_end.layout.display is None and panel.prompt_end.layout.display == "none"
    panel.mode.value = "prompt-travel"  # the slerp end seed stays typed, but hidden and not sent
    assert panel.seed_end.layout.display == "none" and panel.prompt_end.layout.display is None
    panel.prompt_end.value = "a lighthouse at night"
    request, _ = panel.request()
    assert request.seed_end is None and request.prompt_end == "a lighthouse at night"
    job = panel.submit()
    assert job is not None and job.wait(120) and job.status == "ok"
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert all(frame.get("seed_end") is None for frame in record["frames"])
    captions = [item.caption for item in panel.frames_gallery.items]
    assert captions == ["frame 1/2 · seed 40 · t 0.000", "frame 2/2 · seed 40 · t 1.000"]
    panel.mode.value = "slerp"  # and the other way: a prompt end typed for prompt travel is not sent by slerp
    request, _ = panel.request()
    assert (request.seed_end, request.prompt_end) == (4242, None)
    panel.mode.value = "seed-walk"
    request, _ = panel.request()
    assert (request.seed_end, request.prompt_end) == (None, None)


@settings(max_examples=25, deadline=None)
@given(width=st.integers(1, 900), height=st.integers(1, 900), fit=st.booleans())
def test_full_size_never_scales_and_fitted_views_keep_the_aspect_ratio(width, height, fit):
    import io

    from sdxl_nb.ui.image_view import VIEW_BOX, display_size, image_box, show_image

    data = io.BytesIO()
    Image.new("L", (width, height)).save(data, "PNG")
    full, view = image_box(), image_box()
    assert show_image(full, data.getvalue(), full_size=True) == (width, height)
    assert (full.layout.width, full.layout.height, full.layout.max_width) == (f"{width}px", "auto", "100%")
    assert PIXELATED not in full._dom_classes
    shown = show_image(view, data.getvalue(), VIEW_BOX, smallest=VIEW_BOX, fit=fit)
    assert shown == display_size(width, height, VIEW_BOX, VIEW_BOX) and view.layout.width == f"{shown[0]}px"
    # Fitted: the height follows the width (so narrowing keeps the aspect); else both are set.
    assert (view.layout.height, view.layout.max_width) == (("auto", "100%") if fit else (f"{shown[1]}px", None))
