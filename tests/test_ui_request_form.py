"""One request form for Generate, Animate and Sweep: the same fields and choices, the model shown, custom sizes,
and filling it from request fields (a reused image, a PNG's parameters)."""

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
