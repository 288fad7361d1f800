"""The PNG Info tab driven headless: a chosen (or named) PNG's parameters shown, then loaded into a tab's form."""

import html
import io

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

pytest.importorskip("ipywidgets")

from sdxl_nb.ui.uploads import upload_value  # noqa: E402
from tests.test_png_params import A1111  # noqa: E402
from tests.ui_helpers import lab_for, small_form, status_kind  # noqa: E402


@pytest.fixture
def lab(engine, tmp_path):
    return lab_for(engine, tmp_path / "out")


def a1111_png(path):
    info = PngInfo()
    info.add_text("parameters", A1111.replace("Model: sd_xl_base_1.0", "Model: tiny-sdxl"))
    Image.new("RGB", (83, 121), "olive").save(path, pnginfo=info)
    return path


def test_an_a1111_png_is_shown_and_loads_into_the_generate_form(lab, tmp_path):
    panel = lab.panels["PNG Info"]
    assert all(b.disabled for b in panel.load_buttons)  # nothing read yet
    panel.upload.value = upload_value(a1111_png(tmp_path / "castle.png"))
    assert status_kind(panel.status) == "ok" and "written by A1111" in panel.status.value
    table = html.unescape(panel.table.value)
    assert "a castle on a hill" in table and "DPM++ 2M Karras" in table and "Model hash" in table
    assert "not loaded" in table and panel.thumb.layout.display is None
    lab.tabs.selected_index = 5
    panel.load_buttons[0].click()  # into Generate
    form = lab.generate.form
    assert lab.tabs.selected_index == 0
    assert (form.prompt.value, form.negative.value) == ("a castle on a hill, (masterpiece:1.2)", "blurry, lowres")
    assert (form.scheduler.value, form.steps.value, form.cfg.value, form.seed.value) == ("DPM++ 2M Karras", 30, 6.5,
                                                                                         1234)
    assert (form.resolution.value, form.width.value, form.height.value) == ("832x1216", 832, 1216)  # a named size
    assert form.styled_preview.value.endswith("a castle on a hill, (masterpiece:1.2)</small>")  # no style added
    assert "Model hash not loaded" in panel.status.value


def test_our_own_png_by_path_loads_into_animate_and_sweep(lab, tmp_path):
    small_form(lab.generate.form, seed=9, prompt="a read back heron")
    lab.generate.form.style.value = "Cinematic"
    lab.generate.generate.click()
    assert lab.generate.wait(120)
    saved = lab.generate.results.images.items[0].path
    panel = lab.panels["PNG Info"]
    panel.path.value = str(saved)
    panel.read_button.click()
    assert "written by sdxl_nb" in panel.status.value
    for index, tab in ((1, "Animate"), (2, "Sweep")):
        panel.load_buttons[index].click()
        form = lab.panels[tab].form
        assert lab.tabs.selected_index == index and status_kind(panel.status) == "ok"
        assert (form.prompt.value, form.style.value, form.seed.value, form.width.value) == ("a read back heron",
                                                                                            "Cinematic", 9, 64)
    guided = {"prompt": "x", "controlnets": [{"model": "m", "image": "i.png"}], "ip_adapter": "a"}
    skipped = lab.load_into("Animate", guided)  # what an animation cannot use is said, not dropped silently
    assert [line.split(":")[0] for line in skipped] == ["its ControlNet units left out", "its IP-Adapter left out"]


def test_what_is_not_a_png_with_parameters_is_one_red_line(lab, tmp_path):
    panel = lab.panels["PNG Info"]
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    panel.path.value = str(plain)
    panel.read_button.click()
    assert status_kind(panel.status) == "error" and "no generation parameters" in panel.status.value
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    (tmp_path / "photo.png").write_bytes(jpeg.getvalue())
    panel.upload.value = upload_value(tmp_path / "photo.png")
    assert "a JPEG image carries no PNG text chunks" in panel.status.value and panel.status.value.count("<div") == 1
    assert all(b.disabled for b in panel.load_buttons) and panel.table.value == ""
    panel.path.value = str(tmp_path / "missing.png")
    panel.read_button.click()
    assert "no file at" in panel.status.value
