"""One request form for Generate, Animate and Sweep: the same fields and choices, the model shown, custom sizes,
filling it from request fields (a reused image, a PNG's parameters), the feature groups in sections whose titles
follow the settings, the text CLIP receives, and refiner + hires checked as the pipeline checks them."""

import html

import pytest

pytest.importorskip("ipywidgets")

from sdxl_nb.record.joblog import read_records  # noqa: E402
from sdxl_nb.ui.request_form import CUSTOM_SIZE, MODEL_SIZE, RequestForm  # noqa: E402
from tests.ui_helpers import lab_for  # noqa: E402


@pytest.fixture
def lab(engine, tmp_path):
    return lab_for(engine, tmp_path / "out")


def forms(lab):
    return [lab.generate.form, lab.panels["Animate"].form, lab.panels["Sweep"].form]


def test_the_three_tabs_share_one_form_and_follow_the_model_panel(lab):
    generate, animate, sweep = forms(lab)
    assert all(isinstance(form, RequestForm) for form in (generate, animate, sweep))
    for name in ("style", "scheduler", "resolution"):
        assert getattr(generate, name).options == getattr(animate, name).options == getattr(sweep, name).options
    assert all("tiny-sdxl" in form.model_line.value for form in (generate, animate, sweep))
    assert all(form.style_info.value for form in (generate, animate, sweep))  # the style's description
    # Scheduler names fit their box; the chosen one's description is shown under it, not cut off in the list.
    assert generate.scheduler.options == tuple(generate.presets.schedulers)
    generate.scheduler.value = "DPM++ 2M Karras"
    assert generate.presets.schedulers["DPM++ 2M Karras"].description in generate.scheduler_info.value
    other = next(value for _label, value in lab.model.dropdown.options if value != "tiny-sdxl")
    lab.model.dropdown.value = other
    for form in (generate, animate, sweep):
        assert other in form.model_line.value and form.model_id == other
        assert form.fields()[0]["model"] == other
    lab.model.dropdown.value = "tiny-sdxl"


def test_custom_sizes_and_styles_reach_animate_and_sweep_jobs(lab, tmp_path):
    animate, sweep = lab.panels["Animate"], lab.panels["Sweep"]
    for form, prompt in ((animate.form, "a wide fox"), (sweep.form, "a wide sweep")):
        form.prompt.value = prompt
        form.style.value = "Cinematic"
        form.resolution.value = CUSTOM_SIZE
        form.width.value, form.height.value = 96, 64
        form.steps.value = 2
        form.use_seed(8)
    animate.frames.value = 2
    sweep.x_field.value, sweep.x_values.value = "cfg", "3, 5"
    assert animate.submit() is not None and sweep.submit() is not None
    assert lab.queue.wait_idle(300)
    records = read_records(tmp_path / "out" / "jobs.log")
    images = [r for r in records if r["mode"] != "sweep"]
    assert [(r["width"], r["height"], r["style"]["name"]) for r in images] == [(96, 64, "Cinematic")] * 3
    assert images[0]["mode"] == "animate" and images[0]["seeds"] == [8, 9]
    assert [r["seed"] for r in images[1:]] == [8, 8] and [r["cfg"] for r in images[1:]] == [3, 5]


def test_load_fills_every_field_it_can_and_says_what_it_could_not(lab):
    form = lab.panels["Animate"].form
    skipped = form.load({"prompt": "a heron", "negative_prompt": "fog", "style": "Cinematic", "scheduler": "Euler a",
                         "steps": 7, "cfg": 4.5, "width": 96, "height": 64, "seed": 42})
    assert skipped == []
    style = form.presets.styles["Cinematic"]
    assert (form.prompt.value, form.negative.value) == ("a heron", f"fog, {style.negative}")
    assert (form.scheduler.value, form.steps.value, form.cfg.value) == ("Euler a", 7, 4.5)
    assert (form.resolution.value, form.width.value, form.height.value) == (CUSTOM_SIZE, 96, 64)
    assert (form.random_seed.value, form.seed.value) == (False, 42)
    fields, _ = form.fields()
    assert fields["negative_prompt"] == "fog" and fields["seed"] == 42 and (fields["width"], fields["height"]) == (96, 64)
    skipped = form.load({"style": "No Such Style", "scheduler": "Karras 3000", "width": 128, "height": 128})
    assert [line.split(" '")[0] for line in skipped] == ["style", "scheduler"] and form.style.value == "Cinematic"
    assert form.resolution.value == MODEL_SIZE  # tiny-sdxl's own size


def test_feature_groups_sit_in_closed_sections_whose_titles_follow_the_settings(lab, tmp_path):
    from PIL import Image

    from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
    from sdxl_nb.ui.sections import ACTIVE

    form = lab.generate.form
    sections = form.sections
    assert list(sections) == ["LoRAs", "Refiner", "Hires fix", "ControlNet", "IP-Adapter", "Inpaint"]
    assert all(not s.is_open and s.title == s.name and not s.active for s in sections.values())
    top = form.widget.children
    assert all(widget in top for widget in (form.prompt, form.negative, form.size_row, form.numbers_row, form.seed_row))
    assert all(section.widget in top for section in sections.values())
    assert [s.name for s in lab.panels["Animate"].form.sections.values()] == ["LoRAs"]  # Animate runs no refiner
    assert "&nbsp;·&nbsp;<span class='sdxl-style-hash' style='white-space:nowrap'>hash " in form.style_info.value

    form.prompt.value = "a fox <lora:tiny-sdxl-lora:0.7>"
    assert sections["LoRAs"].title == "LoRAs · tiny-sdxl-lora 0.7" and ACTIVE in sections["LoRAs"].widget._dom_classes
    form.prompt.value = "a fox"
    assert sections["LoRAs"].title == "LoRAs" and ACTIVE not in sections["LoRAs"].widget._dom_classes

    form.hires.enabled.value = True
    form.hires.steps.value = 4
    assert sections["Hires fix"].title == "Hires fix · 2x, 4 steps, denoise 0.7"
    form.hires.resize_width.value = 256
    assert sections["Hires fix"].title.startswith("Hires fix · to 256x0, 4 steps")
    form.hires.enabled.value = False
    assert sections["Hires fix"].title == "Hires fix"

    form.refiner.value = TINY_REFINER_ID
    form.refiner_switch.value = 0.6
    assert sections["Refiner"].title == f"Refiner · {TINY_REFINER_ID} from 0.60"
    form.refiner.value = ""
    assert sections["Refiner"].title == "Refiner"

    Image.new("RGB", (64, 64), "red").save(tmp_path / "ref.png")
    form.ip_adapter.use({"ip_adapter": "some-adapter", "ip_images": [str(tmp_path / "ref.png")], "ip_scale": 0.5})
    assert sections["IP-Adapter"].title == "IP-Adapter · some-adapter, 1 image, scale 0.5"
    form.ip_adapter.use({})
    assert sections["IP-Adapter"].title == "IP-Adapter"

    form.controlnets.listing = lambda: [{"name": "tiny-controlnet", "usable": True}]
    unit = form.controlnets.add_unit()
    assert sections["ControlNet"].title == "ControlNet · canny (tiny-controlnet)"
    unit.remove.click()
    assert sections["ControlNet"].title == "ControlNet"

    assert sections["Inpaint"].widget.layout.display == "none"  # only in inpaint mode
    form.mode.value = "inpaint"
    inpaint = sections["Inpaint"]
    assert inpaint.widget.layout.display is None and inpaint.is_open  # the mask is what inpaint needs next
    assert inpaint.title == "Inpaint · no mask yet, blur 4, original, Whole picture"
    assert sections["Hires fix"].widget.layout.display == "none"  # txt2img only, as in A1111
    form.inpaint.mask_blur.value = 8
    assert "blur 8" in inpaint.title
    form.mode.value = "txt2img"
    assert inpaint.title == "Inpaint" and sections["Hires fix"].widget.layout.display is None


def test_sent_as_shows_the_text_clip_receives(lab):
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.prompt_syntax import without_tags

    form = lab.generate.form
    form.style.value = "Cinematic"
    form.prompt.value = "a fox <lora:tiny-sdxl-lora:0.7>, snow"
    request, _ = form.request(lab.out_dir)
    clip_text = without_tags(prepare(request).styled_prompt)
    assert "lora" not in form.styled_preview.value and "a fox , snow" in form.styled_preview.value
    assert html.unescape(form.styled_preview.value) == f"<small><b>sent as:</b> {clip_text}</small>"
    form.style.value, form.prompt.value = "None / Raw", ""
    assert form.styled_preview.value == ""  # nothing is sent: no empty "sent as:" line


def test_refiner_and_hires_go_together_and_a_combination_the_pipeline_refuses_is_said_at_once(lab, tmp_path):
    from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
    from tests.ui_helpers import small_form, status_kind, status_text

    panel = lab.generate
    form = panel.form
    small_form(form, seed=5)
    form.refiner.value = TINY_REFINER_ID
    form.refiner_switch.value = 0.7
    form.hires.enabled.value = True
    form.hires.steps.value = 2
    assert form.combination.value == ""
    form.hires.denoise.value = 0.2  # starts after the switch: the base would run no step of the hires pass
    line = status_text(form.combination)
    assert status_kind(form.combination) == "error" and "starts after the refiner switch" in line
    panel.generate.click()  # the same check refuses it at Generate, in the same words
    assert status_kind(panel.message) == "error" and status_text(panel.message) == line
    form.refiner_by_steps.value = True  # a switch by steps has no such limit: the line goes
    assert form.combination.value == ""
    form.refiner_by_steps.value = False
    form.hires.denoise.value = 0.7
    assert form.combination.value == ""
    panel.generate.click()
    assert panel.wait(300) and status_kind(panel.message) == "ok", panel.message.value
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["status"] == "ok" and record["refiner"]["id"] == TINY_REFINER_ID
    assert record["hires"]["width"] == 128 and record["refiner"]["split"]["pass"] == "hires"


def test_a_controlnet_with_a_latent_masked_content_is_refused_as_soon_as_both_are_set(lab):
    from tests.ui_helpers import status_text

    form = lab.generate.form
    form.controlnets.listing = lambda: [{"name": "tiny-controlnet", "usable": True}]
    form.mode.value = "inpaint"
    form.inpaint.masked_content.value = "latent noise"
    assert form.combination.value == ""
    unit = form.controlnets.add_unit()
    assert "'latent noise' cannot run with ControlNet units" in status_text(form.combination)
    form.inpaint.masked_content.value = "fill"
    assert form.combination.value == ""
    form.inpaint.masked_content.value = "latent nothing"
    unit.remove.click()
    assert form.combination.value == ""
