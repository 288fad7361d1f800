"""The lab's rough edges, each driven headless: hidden prompts, silent empty prompts, a stale model line, odd image
sizes, a literal {prompt}, a stale progress line and gallery, cut-off labels, CLI words, a lost lab after reload,
input images without a preview, a stale ControlNet line, and a first load that said nothing while torch imported."""

import html
import io
import json
from types import SimpleNamespace

import pytest

pytest.importorskip("ipywidgets")

from sdxl_nb.jobs.animate import MODES  # noqa: E402
from sdxl_nb.jobs.queue import JobQueue  # noqa: E402
from sdxl_nb.record.joblog import read_records  # noqa: E402
from sdxl_nb.ui.animate_panel import AnimatePanel  # noqa: E402
from sdxl_nb.ui.image_view import PIXELATED, display_size  # noqa: E402
from sdxl_nb.ui.sweep_panel import SweepPanel  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.ui_helpers import lab_for, small_form, status_kind  # noqa: E402

EMPTY = "the prompt is empty"


@pytest.fixture
def queue(engine, tmp_path):
    return JobQueue(engine=engine, out_dir=tmp_path / "out")


def tiny(form, prompt=""):
    """64 px, 2 steps, a fixed seed: the fastest job a form can ask for."""
    form.prompt.value = prompt
    form.resolution.value = "custom"
    form.width.value = form.height.value = 64
    form.steps.value = 2
    form.use_seed(3)


def test_animate_shows_its_prompt_in_every_mode_and_prompt_end_only_where_it_applies(queue):
    panel = AnimatePanel(queue)
    assert panel.prompt_end.layout is not panel.form.prompt.layout
    for mode in MODES:
        panel.mode.value = mode
        assert panel.form.prompt.layout.display != "none", mode
        assert (panel.prompt_end.layout.display == "none") == (mode != "prompt-travel"), mode
        assert (panel.seed_end.layout.display == "none") == (mode != "slerp"), mode
        assert panel.mode_help.value  # each mode says what it does


def test_an_empty_prompt_warns_in_orange_in_every_tab_and_in_the_record(queue, tmp_path):
    animate, sweep = AnimatePanel(queue), SweepPanel(queue)
    tiny(animate.form)
    animate.frames.value = 2
    job = animate.submit()
    assert job is not None and status_kind(animate.status) == "warning" and EMPTY in animate.status.value
    tiny(sweep.form)
    sweep.x_field.value, sweep.x_values.value = "cfg", "2, 4"
    assert sweep.submit() is not None and status_kind(sweep.status) == "warning" and EMPTY in sweep.status.value
    assert queue.wait_idle(300)
    records = read_records(tmp_path / "out" / "jobs.log")
    assert [r["mode"] for r in records] == ["animate", "txt2img", "txt2img", "sweep"]
    assert all(any(w.startswith(EMPTY) for w in r["warnings"]) for r in records if r["mode"] != "sweep")
    tiny(animate.form, "a fox")
    animate.submit()
    assert status_kind(animate.status) == "idle" and EMPTY not in animate.status.value
    assert queue.wait_idle(300)


def test_generate_warns_about_an_empty_prompt_when_queued_and_after_the_job(engine, tmp_path):
    lab = lab_for(engine, tmp_path / "out")
    panel = lab.generate
    small_form(panel.form, prompt="   ")
    panel.generate.click()
    assert status_kind(panel.message) == "warning" and EMPTY in panel.message.value
    assert panel.wait(120)
    assert EMPTY in panel.results.warnings.value


def test_the_model_panel_shows_a_model_an_api_call_loaded(tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    engine = Engine(device="cpu")  # its own: nothing loaded yet
    lab = lab_for(engine, tmp_path / "out")
    assert "no model loaded yet" in lab.model.status.value
    engine.load(find_model("tiny-sdxl", load_presets()))  # what the notebook's API cell does, outside the queue
    assert status_kind(lab.model.status) == "ok" and "loaded: tiny-sdxl" in lab.model.status.value


@pytest.mark.parametrize("size, box, shown", [
    ((64, 64), 512, (256, 256)),  # small: scaled up by a whole factor (drawn pixelated)
    ((128, 128), 512, (256, 256)),
    ((128, 64), 512, (256, 128)),  # aspect kept
    ((100, 100), 512, (300, 300)),
    ((300, 200), 512, (300, 200)),  # already sensible: as it is
    ((1024, 1024), 512, (512, 512)),  # large: fitted
    ((1536, 640), 512, (512, 213)),
    ((64, 64), 128, (128, 128)),  # never past the box
])
def test_display_size(size, box, shown):
    assert display_size(*size, box=box) == shown


def test_outputs_are_hidden_until_made_then_shown_at_their_own_aspect_ratio(queue, engine, tmp_path):
    animate, sweep = AnimatePanel(queue), SweepPanel(queue)
    for view in (animate.grid_view, animate.animation_view, sweep.grid_view):
        assert view.layout.display == "none"  # no broken-image icon before the first run
    tiny(animate.form, "a wide fox")
    animate.form.width.value = 128
    animate.frames.value = 2
    animate.submit()
    tiny(sweep.form, "a sweep")
    sweep.x_field.value, sweep.x_values.value = "cfg", "2, 4"
    sweep.submit()
    assert queue.wait_idle(300)
    gif = animate.animation_view
    assert gif.format == "gif" and gif.layout.display is None
    # Fitted to its column: the width a whole factor up, the height following it (the aspect ratio kept).
    assert (gif.layout.width, gif.layout.height, gif.layout.max_width) == ("256px", "auto", "100%")
    assert PIXELATED in gif._dom_classes
    grid = sweep.grid_view
    from PIL import Image

    pixels = Image.open(sweep.result.grid_path).size
    assert grid.layout.width == f"{display_size(*pixels, box=960)[0]}px" and int(grid.layout.width[:-2]) <= 960
    assert (grid.layout.height, grid.layout.max_width) == ("auto", "100%")
    lab = lab_for(engine, tmp_path / "lab")
    small_form(lab.generate.form)
    lab.generate.generate.click()
    assert lab.generate.wait(120)
    shown = lab.generate.results.large.image  # one image: shown large, its cell keeps the caption and actions
    assert (shown.layout.width, shown.layout.max_width) == ("512px", "100%") and PIXELATED in shown._dom_classes


def test_a_new_style_starts_empty_and_a_double_prompt_is_refused(tmp_path, monkeypatch):
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.ui.preset_editor import PresetEditor

    monkeypatch.setenv("SDXL_NB_USER_PRESETS", str(tmp_path / "user_presets.json"))
    editor = PresetEditor()
    assert editor.choice.value == "__new__" and editor.prompt.value == "" and "{prompt}" in editor.prompt.placeholder
    editor.name.value, editor.prompt.value = "Grain", "{prompt}, film grain"
    editor.save.click()
    assert status_kind(editor.status) == "ok" and load_presets().styles["Grain"].prompt == "{prompt}, film grain"
    editor.choice.value = "__new__"
    editor.name.value, editor.prompt.value = "Twice", "{prompt}{prompt}, film grain"
    editor.save.click()
    assert status_kind(editor.status) == "error" and "holds {prompt} 2 times" in html.unescape(editor.status.value)
    assert "Twice" not in load_presets().styles


def test_after_stop_the_progress_line_says_where_it_stopped_and_the_next_job_starts_with_an_empty_gallery(
        engine, tmp_path):
    lab = lab_for(engine, tmp_path / "out")
    panel = lab.generate
    small_form(panel.form, seed=3, batch=3, steps=3)
    panel.form.at_once.value = 1
    stopped = []

    def stop_in_second_image(event):
        if event["type"] == "progress" and event["progress"]["chunk"] == 2 and not stopped:
            stopped.append(panel.progress_text.value)
            panel.stop.click()

    unsubscribe = lab.queue.subscribe(stop_in_second_image)
    panel.generate.click()
    assert panel.wait(120) and "ETA" in stopped[0]
    line = panel.progress_text.value
    assert "ETA" not in line and "stopped at step" in line and "of chunk 2/3" in line, line
    assert len(panel.results.gallery.children) == 1
    unsubscribe()
    seen_at_start = []
    lab.queue.subscribe(lambda e: e["type"] == "progress" and seen_at_start.append(len(panel.results.gallery.children)))
    small_form(panel.form, seed=4)
    panel.generate.click()
    assert panel.wait(120)
    assert seen_at_start and set(seen_at_start) == {0}  # the stopped job's image is gone before the new one's steps
    assert "done in" in panel.progress_text.value and "ETA" not in panel.progress_text.value


def test_engine_settings_fit_their_labels_and_show_server_boxes_only_for_comfyui(engine, tmp_path):
    lab = lab_for(engine, tmp_path / "out")
    settings = lab.settings
    assert all(len(label) <= 24 and ":" not in label for label in settings.profile.options)
    assert settings.profiles[settings.profile.value].description in html.unescape(settings.profile_info.value)
    settings.profile.value = "Low memory"
    assert "small GPUs" in settings.profile_info.value
    assert settings.auto_tune.layout.width == "auto" and len(settings.auto_tune.description) <= 45
    assert settings.comfy_fields.layout.display == "none"
    settings.backend.value = "ComfyUI"
    assert settings.comfy_fields.layout.display is None
    settings.apply.click()
    message = html.unescape(settings.status.value)
    assert status_kind(settings.status) == "error" and "Server box" in message and "--" not in message
    settings.backend.value = "local"
    assert settings.comfy_fields.layout.display == "none"


def test_messages_the_lab_shows_use_its_own_words():
    from sdxl_nb.backends.base import Capabilities, check_plan
    from sdxl_nb.errors import InputError
    from sdxl_nb.jobs.queued import memory_line
    from sdxl_nb.request.memory import MemoryRequest, advise

    request = MemoryRequest(component_bytes={"unet": 5 * 2**30}, dtype="float16", width=1024, height=1024,
                            images_at_once=4, cfg=7.0)
    for free in (64 * 2**30, 6 * 2**30):  # fits, then risky
        line = memory_line(advise(request, free, in_use_bytes=5 * 2**30))
        assert "fallback" not in line and "constants" not in line and "chunk_size" not in line, line

    class Remote:
        name, capabilities = "ComfyUI", Capabilities()

    class Slerp:  # what check_plan asks of a plan
        request, plain = SimpleNamespace(controlnets=(), model=None), False

        def needs(self):
            return ["noise_mix"]

    with pytest.raises(InputError) as refused:
        check_plan(Remote(), Slerp())
    assert "--" not in str(refused.value) and "slerp" in str(refused.value)


def test_the_notebooks_say_how_to_get_a_lost_lab_back():
    for name, cell_with_widgets in (("01_generate.ipynb", "sdxl_nb.lab()"), ("02_animate.ipynb", "animate_panel()")):
        cells = json.loads((REPO / "notebooks" / name).read_text(encoding="utf-8"))["cells"]
        at = next(i for i, c in enumerate(cells) if cell_with_widgets in "".join(c["source"]))
        before = "".join(cells[at - 1]["source"])
        assert "model not found" in before and "run" in before and "again" in before, name


def _png(path, size, colour="red"):
    from PIL import Image

    Image.new("RGB", size, colour).save(path)
    return path


def _thumb_sizes(thumbs):
    from PIL import Image

    return [Image.open(io.BytesIO(child.value)).size for child in thumbs.widget.children]


def test_every_input_image_is_previewed_beside_its_picker_and_cleared_with_it(tmp_path):
    from sdxl_nb.ui.generate_form import GenerateForm
    from sdxl_nb.ui.thumbnails import THUMB
    from sdxl_nb.ui.uploads import upload_value

    form = GenerateForm()
    wide, small = _png(tmp_path / "wide.png", (400, 200)), _png(tmp_path / "small.png", (64, 64), "blue")
    for thumbs in (form.init_thumb, form.mask_thumb, form.ip_adapter.thumbs):
        assert thumbs.count == 0 and thumbs.widget.layout.display == "none"  # nothing (no broken icon) before a pick
    form.mode.value = "inpaint"
    form.use_init_image(wide, "inpaint")
    assert form.init_thumb.widget in form.init_row.children and _thumb_sizes(form.init_thumb) == [(THUMB, THUMB // 2)]
    assert "sdxl-thumb" in form.init_thumb.widget.children[0]._dom_classes
    form.init_upload.value = ()
    assert form.init_thumb.count == 0 and form.init_thumb.widget.layout.display == "none"
    form.use_mask_file(small)
    assert _thumb_sizes(form.mask_thumb) == [(64, 64)]  # a small one as it is
    form.mask_upload.value = ({**upload_value(small)[0], "content": memoryview(b"not an image")},)
    assert form.mask_thumb.count == 0 and "not a readable image" in form.mask_thumb.widget.children[0].value

    picker = form.ip_adapter
    picker.use({"ip_adapter": "some-adapter", "ip_images": [str(wide), str(small)]})
    assert picker.thumbs.count == 2 and picker.thumbs.widget.layout.display is None
    picker.use({})
    assert picker.thumbs.count == 0 and picker.thumbs.widget.layout.display == "none"

    form.controlnets.listing = lambda: [{"name": "tiny-controlnet", "usable": True}]
    first, second = form.controlnets.add_unit(), form.controlnets.add_unit()
    first.upload.value = upload_value(wide)
    second.upload.value = upload_value(small)
    assert (first.thumb.count, second.thumb.count) == (1, 1) and first.thumb.widget in first.widget.children[1].children
    first.upload.value = ()
    assert first.thumb.count == 0 and second.thumb.count == 1


def test_upload_buttons_are_wide_enough_for_their_labels():
    from sdxl_nb.ui.generate_form import GenerateForm
    from sdxl_nb.ui.uploads import upload_width

    form = GenerateForm()
    form.controlnets.listing = lambda: [{"name": "tiny-controlnet", "usable": True}]
    unit = form.controlnets.add_unit()
    for upload in (form.init_upload, form.mask_upload, unit.upload, form.ip_adapter.images):
        assert upload.layout.width == upload_width(upload.description) and int(upload.layout.width[:-2]) >= 148
    for upload in (unit.upload, form.ip_adapter.images):  # the front end's default 148 px cut these two off
        assert int(upload.layout.width[:-2]) > 148


def test_the_controlnet_line_counts_the_units_there_are_now():
    from sdxl_nb.ui.controlnet_picker import ControlNetPicker

    picker = ControlNetPicker(size=lambda: (64, 64), listing=lambda: [{"name": "tiny-controlnet", "usable": True}])
    assert "no unit" in picker.status.value
    unit = picker.add_unit()
    assert "1 unit added" in picker.status.value and "1 ControlNet model to choose from" in picker.status.value
    unit.remove.click()
    assert "1 unit" not in picker.status.value and "no unit" in picker.status.value


def test_load_says_so_at_once_and_counts_the_engine_start_in_its_time_and_eta(tmp_path, monkeypatch):
    import sdxl_nb.backends.local.core as core
    from sdxl_nb.ui.model_panel import ModelPanel
    from tests.ui_helpers import status_text

    monkeypatch.setattr(core, "_ENGINE", None)  # a kernel whose engine is not made yet: the load makes it
    out = tmp_path / "out"
    queue = JobQueue(out_dir=out)
    panel = ModelPanel(queue, out)
    assert not queue.engine_started()
    statuses, loaded = [], []
    panel.status.observe(lambda change: statuses.append(change.new), "value")
    queue.subscribe(lambda event: event["type"] == "loaded" and loaded.append(event))
    panel.load_button.click()
    assert "sdxl-status-busy" in statuses[0] and "loading tiny-sdxl" in statuses[0]  # before the worker said a word
    assert queue.wait_idle(120)
    assert any("starting the engine (importing torch and diffusers)" in s for s in statuses)
    (event,) = loaded
    assert event["engine_start_s"] > 0
    line = status_text(panel.status)
    assert f"loaded tiny-sdxl in {event['load_s'] + event['engine_start_s']:.1f} s" in line
    assert f"({event['engine_start_s']:.1f} s of it starting the engine" in line
    from sdxl_nb.record.events import events_log_path
    from sdxl_nb.record.history import engine_start_eta, load_eta

    events_log = events_log_path(out).read_text(encoding="utf-8")
    assert "ENGINE STARTED in" in events_log
    monkeypatch.setattr(core, "_ENGINE", None)  # the next kernel: its ETA adds the recorded start to the load
    panel = ModelPanel(JobQueue(out_dir=out), out)
    eta = panel._expected_load("tiny-sdxl")
    assert eta is not None and "to start the engine" in eta[1]
    assert eta[0] == pytest.approx(load_eta(out, "tiny-sdxl") + engine_start_eta(out))
    assert engine_start_eta(out) == pytest.approx(event["engine_start_s"], abs=0.01)
