"""What issue 24's lab changes must show, checked in the browser; marked `pending` until those changes are merged.

Each check reads the page at once (no waiting for what may never come), so a pending one costs no time. Once the
change it names is in, drop its mark: strict from then on.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def pending(what: str):
    return pytest.mark.xfail(reason=f"issue 24, not merged yet: {what}", strict=False)


@pending("layout: results beside the form on a wide screen")
def test_generate_results_sit_beside_the_form(lab):
    panel = lab.tab("Generate")
    if not lab.all(".sdxl-gallery-item img", panel):  # run alone: make one
        lab.run_job(lab.generate_tab("a lighthouse, side by side"))
    generate = lab.button(panel, "Generate")
    newest = lab.all(".sdxl-gallery-item img", panel)[0]
    assert newest.location["x"] > generate.location["x"] + generate.size["width"]  # to the right of the form
    assert newest.location["y"] < generate.location["y"]  # seen without scrolling past the form


@pending("form: the LoRA and IP-Adapter pickers are filled when the lab opens")
def test_pickers_are_filled_at_start(lab):
    assert any(option.startswith("tiny-sdxl-lora") for option in lab.first_seen["LoRA"])
    assert any(option.startswith("tiny-sdxl-ip-adapter") for option in lab.first_seen["IP-Adapter"])


@pending("describe: the job info names every setting and the real output size")
def test_job_info_names_hires_and_its_real_size(lab):
    panel = lab.generate_tab("a lighthouse, described")
    lab.find(".sdxl-hires input[type=checkbox]", panel).click()
    lab.type(lab.field(panel, "Upscale by"), "2")
    lab.run_job(panel)
    info = lab.find(".sdxl-job-info", panel).text
    assert "128x128" in info and "hires" in info.lower()
