"""The LoRA picker driven headless: listing labels, Insert writes or replaces the tag, unfit LoRAs refused."""

import ipywidgets as w

from sdxl_nb.request.prompt_syntax import with_lora_tag
from sdxl_nb.ui.lora_picker import LoraPicker
from tests.ui_helpers import status_kind

ROWS = [
    {"name": "tiny-sdxl-lora", "path": "/cache/tiny.safetensors", "size_bytes": 147_456, "short_hash": "7ac23ba58b75",
     "fits": True, "problem": None},
    {"name": "sd15", "path": "/loras/sd15.safetensors", "size_bytes": 2 * 2**20, "short_hash": "0123456789ab",
     "fits": False, "problem": "LoRA 'sd15' was made for SD 1.x/2.x (one text encoder), not for an SDXL model"},
]


def test_tags_are_appended_or_replaced():
    assert with_lora_tag("", "a", 0.8) == "<lora:a:0.8>"
    assert with_lora_tag("a fox ", "a", 1) == "a fox <lora:a:1>"
    assert with_lora_tag("a fox <lora:a:0.5>, snow", "a", -0.25) == "a fox <lora:a:-0.25>, snow"


def test_picker_lists_and_inserts_the_tag():
    prompt = w.Textarea(value="a fox")
    picker = LoraPicker(prompt, listing=lambda: ROWS)
    assert [label for label, _ in picker.choice.options] == [
        "tiny-sdxl-lora (0.1 MiB, 7ac23ba58b75, fits)", "sd15 (2.0 MiB, 0123456789ab, does not fit)"]
    picker.weight.value = 0.6
    picker.insert.click()
    assert prompt.value == "a fox <lora:tiny-sdxl-lora:0.6>" and status_kind(picker.status) == "ok"
    picker.weight.value = 1.2
    picker.insert.click()  # the same LoRA again: its tag is updated, not doubled
    assert prompt.value == "a fox <lora:tiny-sdxl-lora:1.2>"
    picker.choice.value = "sd15"
    assert "SD 1.x" in picker.info.value
    picker.insert.click()
    assert prompt.value == "a fox <lora:tiny-sdxl-lora:1.2>" and status_kind(picker.status) == "error"


def test_picker_with_the_real_listing(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("SDXL_NB_LORAS", str(tmp_path))  # an empty folder: only the demo LoRA
    prompt = w.Textarea(value="")
    picker = LoraPicker(prompt, model="tiny-sdxl", backend=engine)
    assert picker.choice.value == "tiny-sdxl-lora" and picker.rows["tiny-sdxl-lora"]["fits"] is True
    picker.insert.click()
    assert prompt.value == "<lora:tiny-sdxl-lora:0.8>"


def test_a_lazy_picker_lists_on_refresh():
    calls = []
    picker = LoraPicker(w.Textarea(), listing=lambda: calls.append(1) or ROWS, autoload=False)
    assert calls == [] and "Refresh" in picker.status.value
    picker.refresh.click()
    assert calls == [1] and picker.choice.value == "tiny-sdxl-lora"


def test_a_listing_failure_is_one_red_line():
    def broken():
        raise OSError("permission denied: /loras")

    picker = LoraPicker(w.Textarea(), listing=broken)
    assert status_kind(picker.status) == "error" and "permission denied" in picker.status.value
    picker.insert.click()
    assert "choose a LoRA first" in picker.status.value


def test_every_tab_form_has_the_picker_and_it_writes_into_that_forms_prompt(monkeypatch):
    from sdxl_nb.ui.request_form import RequestForm

    form = RequestForm()
    rows = [{"name": "tiny-sdxl-lora", "path": "x", "size_bytes": 1, "sha256": "0" * 64, "short_hash": "0" * 12,
             "source": "embedded", "fits": True, "problem": None}]
    form.lora_picker.listing = lambda: rows
    assert form.lora_picker.widget in form.sections["LoRAs"].widget.children
    form.lora_picker.refresh.click()
    assert form.lora_picker.fit_checked
    form.prompt.value = "a fox"
    form.lora_picker.weight.value = 0.5
    form.lora_picker.insert.click()
    assert "<lora:tiny-sdxl-lora:0.5>" in form.prompt.value


def test_the_picker_is_filled_as_the_form_opens_without_the_fit_check():
    from sdxl_nb.config.tiny_lora import ensure_demo_lora
    from sdxl_nb.ui.request_form import RequestForm

    ensure_demo_lora()
    picker = RequestForm().lora_picker
    assert picker.choice.value == "tiny-sdxl-lora" and not picker.fit_checked  # no Refresh pressed
    row = picker.rows["tiny-sdxl-lora"]
    assert row["fits"] is None and row["short_hash"] is None  # the quick listing: no torch, no file read whole
    assert picker.choice.label == f"tiny-sdxl-lora ({row['size_bytes'] / 2**20:.1f} MiB)"
    assert "Refresh checks which fit" in picker.status.value and "press Refresh" not in picker.status.value


def test_the_status_line_follows_the_prompt_not_the_last_click():
    prompt = w.Textarea(value="a fox")
    picker = LoraPicker(prompt, listing=lambda: ROWS)
    picker.weight.value = 0.7
    picker.insert.click()
    assert status_kind(picker.status) == "ok" and "tiny-sdxl-lora 0.7" in picker.status.value
    prompt.value = "a fox"  # the tag deleted by hand: no line says it is there
    assert "tiny-sdxl-lora" not in picker.status.value and status_kind(picker.status) != "ok"
    prompt.value = "a fox <lora:tiny-sdxl-lora:0.3> <lora:other:1>"  # typed by hand: named too
    assert "tiny-sdxl-lora 0.3, other 1" in picker.status.value
    picker.choice.value = "sd15"
    picker.insert.click()  # refused: red until the prompt or the choice changes
    assert status_kind(picker.status) == "error"
    prompt.value = "a fox"
    assert status_kind(picker.status) != "error"
    prompt.value = "a fox <lora:broken:abc>"
    assert status_kind(picker.status) == "warning" and "not understood" in picker.status.value


def test_a_first_run_s_empty_pickers_fill_once_a_model_is_loaded(engine, tmp_path, monkeypatch):
    from tests.ui_helpers import lab_for

    monkeypatch.setenv("SDXL_NB_CACHE", str(tmp_path / "fresh_cache"))  # nothing built yet: a first run
    lab = lab_for(engine, tmp_path / "out")
    generate, sweep = lab.generate.form, lab.panels["Sweep"]
    assert not generate.lora_picker.rows and not generate.ip_adapter.rows and not sweep.ip_adapter.rows
    assert "Refresh also lists the demo LoRA" in generate.lora_picker.status.value
    lab.model.load_button.click()
    assert lab.queue.jobs()[-1].wait(300)
    assert "tiny-sdxl-lora" in generate.lora_picker.rows and generate.lora_picker.fit_checked  # no Refresh pressed
    assert generate.ip_adapter.rows and sweep.ip_adapter.rows
    assert "Refresh also lists" not in generate.lora_picker.status.value
