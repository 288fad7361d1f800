"""The Generate tab in a real browser: a styled batch, then each feature group (LoRA, refiner, hires fix, ControlNet,
IP-Adapter, each in its collapsed section opened by a click on its title) with the tiny twins the lab lists, and
Stop. Each test starts from a fresh form (LabDriver.generate_tab).
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e
PROMPT = "a lighthouse seen from a real browser"


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 64 px picture with clear edges (a control image, a reference image)."""
    from PIL import Image, ImageDraw

    path = tmp_path_factory.mktemp("pictures") / "square.png"
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill="white")
    image.save(path)
    return path


def info_text(lab, panel) -> str:
    """Open the first image's record (gallery Info) and return what it says."""
    cell = lab.all(".sdxl-gallery-item", panel)[0]
    lab.click(cell, "Info")
    return lab.find(".sdxl-viewer .sdxl-info", panel).text


def test_generate_a_styled_batch(lab):
    panel = lab.generate_tab(PROMPT, style="Cinematic")
    negative = lab.find(".sdxl-negative textarea", panel)
    lab.until(lambda: "cartoon, anime" in negative.get_property("value"), 30, "negative box did not follow the style")
    lab.type(lab.field(panel, "Batch"), "2")
    assert "2 image(s) saved" in lab.run_job(panel)
    cells = lab.all(".sdxl-gallery-item", panel)
    assert len(cells) == 2 and all("seed " in cell.text for cell in cells)
    # 64 px images are shown scaled up: the batch as thumbnails, the newest larger above them.
    thumbs = [cell.find_element("css selector", "img").size["width"] for cell in cells]
    newest = lab.find(".sdxl-newest-image", panel)
    assert all(width >= 128 for width in thumbs) and newest.size["width"] > max(thumbs)
    assert lab.errors(panel) == []
    lab.shot("generate-style", panel)


def test_generate_results_sit_beside_the_form(lab):
    """The newest image is right of the form and starts above the form's bottom: seen without scrolling."""
    panel = lab.tab("Generate")
    if not lab.all(".sdxl-newest-image", panel):  # run alone: make one
        lab.run_job(lab.generate_tab("a lighthouse, side by side"))
    form = lab.find(".sdxl-form-column", panel).rect
    newest = lab.find(".sdxl-newest-image", panel).rect
    generate = lab.button(panel, "Generate").rect
    assert newest["x"] >= form["x"] + form["width"]  # to the right of the form
    assert newest["y"] < form["y"] + form["height"]  # beside it, not below it
    assert generate["x"] >= form["x"] + form["width"] and generate["y"] < newest["y"]  # Generate heads the results


def test_pickers_are_filled_at_start(lab):
    """The LoRA and IP-Adapter lists held the tiny twins before anyone pressed Refresh (read as the lab opened)."""
    assert any(option.startswith("tiny-sdxl-lora") for option in lab.first_seen["LoRA"])
    assert any(option.startswith("tiny-sdxl-ip-adapter") for option in lab.first_seen["IP-Adapter"])


def test_generate_with_a_lora(lab):
    panel = lab.generate_tab("a lighthouse with a LoRA")
    section = lab.section(panel, "loras")
    assert lab.section_title(section) == "LoRAs"
    choice = lab.field(section, "LoRA")
    lab.choose(choice, "tiny-sdxl-lora (")
    lab.type(lab.field(section, "Weight"), "0.7")
    lab.click(lab.row_of(choice), "Insert tag")
    prompt = lab.find(".sdxl-prompt textarea", panel)
    lab.until(lambda: "<lora:tiny-sdxl-lora:0.7>" in prompt.get_property("value"), 30, "the tag was not inserted")
    lab.until(lambda: "tiny-sdxl-lora" in lab.section_title(section), 30, "the title does not name the LoRA")
    lab.run_job(panel)
    assert "tiny-sdxl-lora" in info_text(lab, panel)
    assert lab.errors(panel) == []
    lab.shot("generate-lora", panel)
    # The tag deleted from the prompt: no line and no title still speaks of the LoRA.
    lab.type(prompt, "a lighthouse without a LoRA")
    status = lab.status(".sdxl-lora-status", section)
    lab.until(lambda: "tiny-sdxl-lora" not in status.text and "in the prompt" not in status.text, 30,
              f"stale LoRA line: {status.text}")
    lab.until(lambda: lab.section_title(section) == "LoRAs", 30, "stale LoRAs title")


def test_generate_with_the_refiner(lab):
    panel = lab.generate_tab("a lighthouse, refined", steps=4)
    section = lab.section(panel, "refiner")
    lab.choose(lab.find(".sdxl-refiner select", section), "tiny-sdxl-refiner")
    lab.until(lambda: lab.section_title(section).startswith("Refiner · tiny-sdxl-refiner from 0.80"), 30,
              "the title does not say the refiner")
    lab.run_job(panel)
    assert "tiny-sdxl-refiner" in info_text(lab, panel)
    assert lab.errors(panel) == []
    lab.shot("generate-refiner", panel)


def test_generate_with_hires_fix(lab):
    """The hires job's title, its real size in the job info, and its full-size view at the image's own pixels."""
    panel = lab.generate_tab("a lighthouse, hires")
    section = lab.section(panel, "hires-fix")
    lab.find(".sdxl-hires input[type=checkbox]", section).click()
    lab.type(lab.field(section, "Upscale by"), "2")
    lab.until(lambda: lab.section_title(section).startswith("Hires fix · 2x"), 30, "the title does not say 2x")
    lab.run_job(panel)
    newest = lab.find(".sdxl-newest-image", panel)
    assert lab.browser.execute_script("return arguments[0].naturalWidth", newest) == 128  # 64 px, then 2x
    info = lab.find(".sdxl-job-info", panel).text
    assert "128x128 (first pass 64x64)" in info and "Hires upscale" in info, info
    lab.click(lab.all(".sdxl-gallery-item", panel)[0], "View")
    heading = lab.find(".sdxl-viewer", panel)
    lab.until(lambda: "128x128 px, full size" in heading.text, 30, "the full-size view names another size")
    full = lab.find(".sdxl-viewer .sdxl-full-size", panel)
    lab.until(lambda: lab.image_loaded(full), 30, "the full-size image did not load")
    assert full.size == {"width": 128, "height": 128}  # one image pixel per CSS pixel
    assert lab.errors(panel) == []
    lab.shot("generate-hires", panel)


def test_generate_with_controlnet(lab, picture):
    panel = lab.generate_tab("a lighthouse, controlled")
    section = lab.section(panel, "controlnet")
    lab.click(section, "Add ControlNet")
    unit = lab.field(section, "ControlNet")
    lab.until(lambda: any(o.startswith("tiny-sdxl-controlnet") for o in lab.options(unit)), 60, "no tiny ControlNet")
    lab.choose(unit, "tiny-sdxl-controlnet")
    lab.upload(section, "Control image", picture)
    lab.until(lambda: len(lab.thumbnails(section, "control")) == 1, 30, "no thumbnail of the control image")
    lab.click(section, "Show map")
    lab.until(lambda: any("canny map at 64x64" in (s.text or "") for s in lab.all(".sdxl-status", section)), 60,
              "no control map shown")
    lab.until(lambda: lab.section_title(section).startswith("ControlNet · canny (tiny-sdxl-controlnet"), 30,
              "the title does not say the unit")
    assert lab.run_job(panel)
    assert "tiny-sdxl-controlnet" in info_text(lab, panel)
    assert lab.errors(panel) == []
    lab.shot("generate-controlnet", panel)
    # The unit removed: no line and no title still counts it.
    lab.click(section, "Remove")
    status = lab.status(".sdxl-controlnet-status", section)
    lab.until(lambda: not lab.all(".sdxl-control-unit", section), 30, "the unit stayed")
    lab.until(lambda: lab.section_title(section) == "ControlNet", 30, "stale ControlNet title")
    lab.until(lambda: status.text.startswith("no unit"), 30, f"stale ControlNet line: {status.text}")


def test_generate_with_ip_adapter(lab, picture):
    panel = lab.generate_tab("a lighthouse, like the reference")
    section = lab.section(panel, "ip-adapter")
    lab.choose(lab.field(section, "IP-Adapter"), "tiny-sdxl-ip-adapter (")
    lab.upload(section, "Reference images", picture)
    lab.until(lambda: len(lab.thumbnails(section, "reference")) == 1, 30, "no thumbnail of the reference image")
    lab.type(lab.field(section, "Scale"), "0.6")
    lab.until(lambda: lab.section_title(section).endswith("1 image, scale 0.6"), 30, "the title does not say it")
    lab.run_job(panel)
    assert "tiny-sdxl-ip-adapter" in info_text(lab, panel)
    assert lab.errors(panel) == []
    lab.shot("generate-ip-adapter", panel)


def test_generate_stop_keeps_what_finished(lab):
    panel = lab.generate_tab("a lighthouse, stopped", steps=40)
    lab.type(lab.field(panel, "Batch"), "4")
    lab.choose(lab.field(panel, "At once"), "1")
    message = lab.status(".sdxl-message", panel)
    before = message.text
    lab.click(panel, "Generate")
    lab.until(lambda: re.search(r"step \d+/40", panel.text), 300, "no progress")
    lab.click(panel, "Stop")
    lab.until(lambda: message.text != before and "stopped" in message.text, 300, "did not stop")
    lab.until(lambda: "stopped at step" in panel.text, 30, "progress line kept the ETA")
    assert "ETA" not in panel.text and lab.errors(panel) == []
    lab.shot("generate-stopped", panel)
