"""Mask painting in the Generate form, driven headless through the canvas's own mouse events."""

import hashlib

import pytest
from PIL import Image

pytest.importorskip("ipycanvas")

from sdxl_nb.record.joblog import read_records  # noqa: E402
from tests.ui_helpers import lab_for, small_form, status_kind  # noqa: E402


@pytest.fixture
def lab(engine, tmp_path):
    return lab_for(engine, tmp_path / "out")


def mouse(canvas, event, x, y):
    """What the browser sends when the mouse moves over the canvas (ipycanvas's front-end message)."""
    canvas._handle_custom_msg({"event": event, "x": x, "y": y}, [])


def stroke(painter, *points):
    mouse(painter.canvas, "mouse_down", *points[0])
    for point in points[1:]:
        mouse(painter.canvas, "mouse_move", *point)
    mouse(painter.canvas, "mouse_up", *points[-1])


def init_from_gallery(lab):
    panel = lab.generate
    small_form(panel.form, seed=11, prompt="a painted fox")
    panel.generate.click()
    assert panel.wait(120)
    (cell,) = panel.results.gallery.children
    next(b for row in cell.children[2:] for b in row.children if b.description == "Inpaint").click()
    return panel


def test_a_painted_mask_is_saved_by_hash_and_recorded(lab, tmp_path):
    panel = init_from_gallery(lab)
    form, painter = panel.form, panel.form.painter
    assert form.mode.value == "inpaint" and form.sections["Inpaint"].is_open and painter.widget.layout.display is None
    assert (painter.canvas.width, painter.canvas.height) == (256, 256) and painter.scale == 4  # 64 px, scaled up
    assert (painter.canvas.layout.width, painter.canvas.layout.height) == ("256px", "256px")  # never stretched
    painter.brush.value = 32  # 8 image px across
    stroke(painter, (40, 128), (120, 128), (216, 128))
    (painted,) = painter.paint.strokes
    assert painted.points == ((10, 32), (30, 32), (54, 32)) and painted.radius == 4 and not painted.erase
    assert "of the image will be repainted" in painter.note.value
    mask = painter.mask()
    assert mask.getpixel((30, 32)) == 255 and mask.getpixel((30, 50)) == 0
    panel.generate.click()
    assert panel.wait(120) and status_kind(panel.message) == "ok"
    record = read_records(tmp_path / "out" / "jobs.log")[-1]
    assert record["mode"] == "inpaint" and record["status"] == "ok"
    kept = tmp_path / "out" / "inputs" / f"{record['mask_image']['sha256']}.png"
    assert record["mask_image"]["path"] == f"inputs/{kept.name}" and hashlib.sha256(kept.read_bytes()).hexdigest() == kept.stem
    assert Image.open(kept).tobytes() == mask.tobytes()


def test_eraser_invert_feather_and_clear(lab):
    painter = init_from_gallery(lab).form.painter
    stroke(painter, (20, 20), (236, 20))
    painter.tool.value = "erase"
    stroke(painter, (128, 20))
    mask = painter.mask()
    assert mask.getpixel((32, 5)) == 0 and mask.getpixel((10, 5)) == 255
    painter.invert.value = True
    assert painter.mask().getpixel((32, 40)) == 255 and "inverted" in painter.note.value
    painter.feather.value = 3
    assert "feather 3 px" in painter.note.value and 0 < painter.mask().getpixel((10, 8)) < 255
    painter.invert.value = False
    painter.clear_button.click()
    assert painter.mask() is None and painter.paint.strokes == []
    lab.generate.submit()
    message = lab.generate.message.value
    assert status_kind(lab.generate.message) == "error" and "inpaint needs a mask: paint where to repaint" in message


def test_an_uploaded_mask_shows_on_the_canvas_and_can_be_painted_over(lab, tmp_path):
    from sdxl_nb.ui.uploads import upload_value

    painter = init_from_gallery(lab).form.painter
    uploaded = tmp_path / "mask.png"
    half = Image.new("L", (64, 64), 0)
    half.paste(255, (0, 0, 32, 64))
    half.save(uploaded)
    lab.generate.form.mask_upload.value = upload_value(uploaded)
    assert painter.paint.untouched_base() and "50% of the image" in painter.note.value
    assert painter.save(tmp_path / "out").read_bytes() == uploaded.read_bytes()  # used as uploaded
    stroke(painter, (200, 200))
    assert painter.mask().getpixel((50, 50)) == 255 and painter.mask().getpixel((10, 10)) == 255
    assert painter.save(tmp_path / "out").read_bytes() != uploaded.read_bytes()


def test_a_decompression_bomb_as_init_or_mask_never_raises_from_the_painter():
    from sdxl_nb.ui.mask_painter import MaskPainter
    from tests.strategies import declared_png

    painter = MaskPainter()
    painter.set_image(declared_png(30000, 30000))  # refused from its header, nothing decoded
    assert painter.image is None and "choose an init image" in painter.note.value
    buffer = __import__("io").BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    painter.set_image(buffer.getvalue())
    painter.set_base(declared_png(30000, 30000))
    assert painter.image is not None and painter.paint.base is None
