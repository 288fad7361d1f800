"""The Generate gallery's actions in a real browser (View full size, Info, Compare, Code, Reuse) and inpaint with a mask
painted on the canvas; each test makes its own images."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e
PROMPT = "a lighthouse in the gallery"


def test_gallery_view_info_compare_and_reuse(lab):
    panel = lab.generate_tab(PROMPT)
    lab.type(lab.field(panel, "Batch"), "2")
    lab.run_job(panel)
    cells = lab.all(".sdxl-gallery-item", panel)
    viewer = lab.find(".sdxl-viewer", panel, visible=False)
    # The newest (first) image is shown large; a click on the other thumbnail shows that one instead.
    assert "sdxl-shown-large" in cells[0].get_attribute("class")
    lab.find(".sdxl-clickable-thumb", cells[1]).click()  # (a transparent button over the image takes the click)
    lab.until(lambda: "sdxl-shown-large" in cells[1].get_attribute("class"), 30, "the thumbnail's click did nothing")
    assert cells[1].text.split("\n")[0] in lab.find(".sdxl-newest", panel).text  # its caption under the large one

    lab.click(cells[0], "View")
    full = lab.find(".sdxl-viewer .sdxl-full-size", panel)
    lab.until(lambda: lab.image_loaded(full), 30, "the full-size image did not load")
    assert "64x64 px, full size" in viewer.text
    assert full.size == {"width": 64, "height": 64}  # its own pixels: not scaled up like the thumbnails
    lab.shot("gallery-view", viewer)

    lab.click(cells[0], "Info")
    info = lab.find(".sdxl-viewer .sdxl-info", panel)
    table = lab.find(".sdxl-info-table", info)
    assert "Steps\n2" in table.text or "Steps 2" in table.text, table.text
    assert PROMPT in table.text and "Steps: 2" in info.text  # the table, then the A1111 parameters
    lab.shot("gallery-info", viewer)

    lab.click(cells[0], "Compare")
    lab.until(lambda: "picked" in lab.status(".sdxl-gallery-note", panel).text, 30, "the first pick was not said")
    lab.click(cells[1], "Compare")
    compare = lab.find(".sdxl-viewer .sdxl-compare", panel)
    differences = lab.find(".sdxl-differences", panel).text
    assert re.search(r"Seed: \d+ → \d+", differences), differences  # a batch's images differ by their seed only
    widths = [img.size["width"] for img in lab.all("img", compare)]
    assert len(widths) == 2 and widths[0] == widths[1] >= 256  # side by side at one size (384 px today)
    lab.shot("gallery-compare", viewer)
    lab.click(viewer, "Close")

    # Code: the job as a standalone diffusers script, shown to copy.
    lab.click(cells[0], "Code")
    code = lab.find(".sdxl-viewer .sdxl-code textarea", panel)
    lab.until(lambda: "StableDiffusionXL" in (code.get_property("value") or ""), 60, "no script shown")
    script = code.get_property("value")
    assert "import sdxl_nb" not in script and "def main(" in script and "import diffusers" in script
    lab.shot("gallery-code", viewer)
    lab.click(viewer, "Close")

    # Reuse fills the form from the image: change the form first, so the reuse is seen.
    lab.type(lab.find(".sdxl-prompt textarea", panel), "something else")
    lab.type(lab.field(panel, "Steps"), "3")
    lab.click(cells[1], "Reuse")
    note = lab.status(".sdxl-gallery-note", panel)
    lab.until(lambda: "its settings are in the Generate form" in note.text, 30, "Reuse said nothing")
    assert lab.find(".sdxl-prompt textarea", panel).get_property("value") == PROMPT
    assert lab.field(panel, "Steps").get_property("value") == "2"
    assert lab.field(panel, "Seed").get_property("value") in cells[1].text  # "seed N" under the image
    assert lab.errors(panel) == []


def test_inpaint_with_a_painted_mask(lab):
    from selenium.webdriver.common.action_chains import ActionChains

    panel = lab.generate_tab("a lighthouse to repaint")
    lab.run_job(panel)
    lab.click(lab.all(".sdxl-gallery-item", panel)[0], "Inpaint")
    canvas = lab.find(".sdxl-mask-canvas", panel)
    assert canvas.size["width"] == canvas.size["height"] >= 256  # 64 px painted scaled up, square, not stretched
    ActionChains(lab.browser).move_to_element_with_offset(canvas, -60, -20).click_and_hold() \
        .move_by_offset(60, 0).move_by_offset(60, 30).release().perform()
    note = lab.find(".sdxl-mask-note", panel)
    lab.until(lambda: "of the image will be repainted" in note.text and not note.text.startswith("0%"), 30,
              "the brush painted nothing")
    lab.run_job(panel)
    lab.shot("inpaint-painted-mask", panel)  # the painted mask in the form, the result beside it
    records = lab.records()
    assert any(r["mode"] == "inpaint" and r["mask_image"]["path"].split("/")[-2] == "inputs" for r in records)
    assert lab.errors(panel) == []
