"""The generate panel driven headless: style -> negative box, gallery + log line, Stop, bad input, uploads."""

import json
import threading

import pytest
from PIL import Image

from sdxl_nb.record.joblog import read_records
from sdxl_nb.ui.uploads import upload_value
from tests.ui_helpers import gallery_images, lab_for, small_form, status_kind


@pytest.fixture
def lab(engine, tmp_path):
    return lab_for(engine, tmp_path / "out")


def test_choosing_a_style_writes_the_effective_negative_and_its_overrides(lab):
    form = lab.generate.form
    presets = form.presets
    form.prompt.value = "a fox"
    form.negative.value = "blurry"
    form.style.value = "Cinematic"
    assert form.negative.value == "blurry, " + presets.styles["Cinematic"].negative
    assert form.scheduler.value == "DPM++ 2M Karras"
    assert "cinematic film still, a fox," in form.styled_preview.value
    form.style.value = "Pencil Sketch"
    assert form.negative.value == "blurry, " + presets.styles["Pencil Sketch"].negative
    assert (form.scheduler.value, form.cfg.value) == ("Default", 6.0)
    form.style.value = "Dark Fantasy / Grimdark"
    assert form.steps.value == 35 and form.cfg.value == 5.0
    form.style.value = "None / Raw"
    assert form.negative.value == "blurry" and form.steps.value == 4


def test_generate_shows_every_image_with_its_seed_and_writes_the_log_line(lab, tmp_path):
    panel = lab.generate
    small_form(panel.form, seed=11, batch=2)
    panel.form.negative.value = "fog"
    panel.form.style.value = "Photoreal"
    shown_negative = panel.form.negative.value
    panel.generate.click()
    assert panel.wait(120)
    cells = gallery_images(panel)
    assert [caption for _, caption in cells] == ["seed 11", "seed 12"]
    assert all(image.size == (64, 64) for image, _ in cells)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["effective_negative_prompt"] == shown_negative == "fog, " + panel.form.presets.styles["Photoreal"].negative
    assert record["negative_prompt"] == "fog" and record["seeds"] == [11, 12] and record["status"] == "ok"
    assert record["styled_prompt"] in panel.form.styled_preview.value
    for image in record["images"]:
        assert image["path"] in panel.results.info.value
    assert status_kind(panel.message) == "ok" and "2 image(s) saved" in panel.message.value


def test_stop_mid_run_keeps_the_finished_images(lab, tmp_path):
    panel = lab.generate
    small_form(panel.form, seed=3, batch=3, steps=3)
    panel.form.at_once.value = 1
    stop_enabled = []

    def stop_in_second_image(event):
        if event["type"] == "progress" and event["progress"]["chunk"] == 2 and not stop_enabled:
            stop_enabled.append(not panel.stop.disabled)
            panel.stop.click()

    lab.queue.subscribe(stop_in_second_image)
    panel.generate.click()
    assert panel.wait(120)
    assert stop_enabled == [True] and panel.stop.disabled
    assert [caption for _, caption in gallery_images(panel)] == ["seed 3"]
    assert "stopped: 1 of 3 image(s) finished and kept" in panel.results.warnings.value
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["status"] == "interrupted" and record["chunk_size"] == 1


def test_queued_requests_wait_in_order_and_can_be_cancelled(lab, engine, tmp_path):
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    engine.load(find_model("tiny-sdxl", load_presets()))
    panel, queue_view = lab.generate, lab.panels["Queue"]
    entered, release = threading.Event(), threading.Event()

    def hold_first_job(event):
        if event["type"] == "progress" and not entered.is_set():
            entered.set()
            release.wait(60)

    lab.queue.subscribe(hold_first_job)
    for seed in (1, 2, 3):
        small_form(panel.form, seed=seed)
        panel.generate.click()
        if seed == 1:
            assert entered.wait(60)
    rows = queue_view.row_labels()
    assert ["running" in rows[0], "queued" in rows[1], "queued" in rows[2]] == [True, True, True]
    assert "1 waiting" not in panel.queue_line.value and "2 waiting" in panel.queue_line.value
    cancel = queue_view.rows.children[1].children[1]
    assert cancel.description == "Cancel"
    cancel.click()
    release.set()
    assert panel.wait(120)
    assert [r["seed"] for r in read_records(tmp_path / "out" / "jobs.log")] == [1, 3]
    assert any("cancelled" in row and "#" in row for row in queue_view.row_labels())


def _non_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image", encoding="utf-8")
    return upload_value(path)


def _image(tmp):
    path = tmp / "reference.png"
    Image.new("RGB", (64, 64), "teal").save(path)
    return upload_value(path)


def _control_unit(form, tmp, weight):
    row = form.controlnets.add_unit()
    row.upload.value, row.weight.value = _image(tmp), weight


def _ip_adapter(form, tmp, scale):
    from sdxl_nb.config.tiny_ip_adapter import DEMO_IP_ADAPTER

    form.ip_adapter.refresh.click()
    form.ip_adapter.choice.value = DEMO_IP_ADAPTER
    form.ip_adapter.images.value, form.ip_adapter.scale.value = _image(tmp), scale


@pytest.mark.parametrize("change, expected", [
    (lambda form, tmp: setattr(form.batch, "value", 0), "batch 0 is out of range; accepted: 1 to 64"),
    (lambda form, tmp: setattr(form.batch, "value", 65), "batch 65 is out of range; accepted: 1 to 64"),
    (lambda form, tmp: setattr(form.width, "value", 100), "width 100 must be a positive multiple of 8"),
    (lambda form, tmp: setattr(form.mode, "value", "img2img"), "img2img needs an init image"),
    (lambda form, tmp: (setattr(form.mode, "value", "img2img"), setattr(form.init_upload, "value", _non_image(tmp))),
     "init image is not a readable image"),
    # the uploads below are readable and kept first; a field only resolve() checks refuses the request after
    (lambda form, tmp: (setattr(form.mode, "value", "img2img"), setattr(form.init_upload, "value", _image(tmp)),
                        setattr(form.strength, "value", 1.5)), "strength 1.5 is out of range"),
    (lambda form, tmp: _control_unit(form, tmp, weight=3.0), "weight 3.0 is out of range"),
    (lambda form, tmp: _ip_adapter(form, tmp, scale=5.0), "ip_scale 5.0 is out of range"),
])
def test_bad_input_shows_one_red_line_and_starts_or_writes_nothing(lab, tmp_path, change, expected):
    panel = lab.generate
    small_form(panel.form)
    change(panel.form, tmp_path)
    assert panel.submit() is None
    assert status_kind(panel.message) == "error"
    assert expected in panel.message.value and panel.message.value.count("<div") == 1
    assert lab.queue.jobs() == []
    assert not (tmp_path / "out").exists()


def test_img2img_upload_is_kept_and_the_reference_aspect_is_matched(lab, tmp_path):
    panel = lab.generate
    small_form(panel.form, seed=5)
    reference = tmp_path / "ref.png"
    Image.new("RGB", (96, 64), "teal").save(reference)
    panel.form.mode.value = "img2img"
    panel.form.init_upload.value = upload_value(reference)
    panel.form.resolution.value = "model"  # tiny-sdxl's 128x128, matched to 3:2
    panel.form.match_aspect.value = True
    assert "size 160x104: the aspect ratio of the 96x64 reference image" in panel.form.size_note.value
    panel.generate.click()
    assert panel.wait(120)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert (record["mode"], record["width"], record["height"]) == ("img2img", 160, 104)
    kept = tmp_path / "out" / "inputs" / f"{record['init_image']['sha256']}.png"
    assert record["init_image"]["path"] == f"inputs/{kept.name}" and kept.read_bytes() == reference.read_bytes()
    assert "snapped to multiples of 8" in panel.results.warnings.value
    assert [image.size for image, _ in gallery_images(panel)] == [(160, 104)]
    assert json.loads(json.dumps(record))["strength"] == 0.75


def test_inpaint_takes_the_init_image_and_the_mask_from_uploads(lab, tmp_path):
    panel = lab.generate
    small_form(panel.form, seed=6)
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), "navy").save(init)
    Image.new("L", (64, 64), 255).save(mask)
    panel.form.mode.value = "inpaint"
    assert panel.form.mask_upload.layout.display is None and panel.form.strength.layout.display is None
    panel.form.init_upload.value = upload_value(init)
    panel.form.mask_upload.value = upload_value(mask)
    panel.generate.click()
    assert panel.wait(120)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["mode"] == "inpaint" and record["status"] == "ok"
    assert record["mask_image"]["path"].startswith("inputs/")
    assert [caption for _, caption in gallery_images(panel)] == ["seed 6"]
