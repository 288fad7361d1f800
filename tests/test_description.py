"""The one description of a job record: every kind of job and every setting it holds, as the gallery's Info and
Compare, the results' job info, PNG Info and the Queue show it."""

import html
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from sdxl_nb.config.controlnets import TINY_CONTROLNET
from sdxl_nb.config.loras import demo_lora
from sdxl_nb.config.tiny_ip_adapter import DEMO_IP_ADAPTER
from sdxl_nb.config.tiny_lora import tiny_embedding_tensors, write_lora
from sdxl_nb.record.description import describe, differences, planned_record, summary
from sdxl_nb.record.description_values import ELLIPSIS, clip_words
from sdxl_nb.record.field_labels import FIELD_LABELS, field_options
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.png_params import read_png_parameters
from tests.conftest import SMALL


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """One tiny job of each kind and feature, on an engine of its own (adapters and LoRAs stay off the shared one):
    {name: (record, saved paths)}."""
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.jobs.animate import animate
    from sdxl_nb.jobs.batch import run_batch
    from sdxl_nb.jobs.generate import generate
    from sdxl_nb.jobs.sweep import parse_axis, run_sweep
    from sdxl_nb.jobs.upscale import upscale
    from sdxl_nb.request.resolve import GenerationRequest

    folder = tmp_path_factory.mktemp("described")
    square = folder / "square.png"
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill="black")
    image.save(square)
    mask = folder / "mask.png"
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 64 > 31).astype(np.uint8) * 255).save(mask)
    webui = folder / "webui"
    write_lora(webui / "embeddings" / "mystyle.safetensors", tiny_embedding_tensors(3, seed=1))
    engine, out = Engine(device="cpu"), folder / "out"
    made = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SDXL_NB_EMBEDDINGS", str(webui))

        def job(name, **fields):
            result = generate(out_dir=out, engine=engine, **{**SMALL, "seed": 5, "prompt": "a fox", **fields})
            made[name] = (result.record, result.paths)

        job("plain")
        job("hires", prompt=f"a (fox:1.3), mystyle <lora:{demo_lora().name}:0.7>", hires_scale=2,
            hires_upscaler="Lanczos", hires_steps=2, hires_denoise=0.5)
        job("resize", hires_resize=(96, 96), hires_upscaler="Latent")
        job("refiner", refiner="tiny-sdxl-refiner", refiner_switch=0.5, refiner_switch_by="steps", steps=4)
        job("controlnet", controlnets=[{"model": TINY_CONTROLNET, "image": str(square), "preprocessor": "canny",
                                        "weight": 0.8, "start": 0.1, "end": 0.9, "low_threshold": 50}])
        job("ip_adapter", ip_adapter=DEMO_IP_ADAPTER, ip_images=[str(square)], ip_scale=0.6)
        job("inpaint", init_image=str(square), mask_image=str(mask), strength=0.7, mask_blur=8,
            masked_content="fill", inpaint_area="Only masked", only_masked_padding=16)
        job("karras", scheduler="DPM++ 2M", schedule_type="Karras", batch=2)
        result = upscale(made["plain"][1][0], out_dir=out, engine=engine)
        made["upscale"] = (result.record, result.paths)
        result = animate(out_dir=out, engine=engine, prompt="a fox", mode="slerp", frames=2, seed=1, seed_end=9,
                         **SMALL)
        made["animate"] = (result.record, result.paths)
        run_sweep(GenerationRequest(prompt="a fox", seed=1, **SMALL), x=parse_axis("cfg=3,6"), out_dir=out,
                  engine=engine)
        run_batch([{"name": "night fox", "prompt": "a fox at night", "seed": 2, **SMALL}], batch_id="foxes", out_dir=out,
                  engine=engine)
    records = read_records(out / "jobs.log")
    made["sweep"] = (next(r for r in records if r["mode"] == "sweep"), [])
    made["sweep cell"] = (next(r for r in records if r.get("sweep") and r["mode"] != "sweep"), [])
    made["scenario"] = (next(r for r in records if r.get("scenario")), [])
    return made


def rows_of(record) -> dict:
    rows = describe(record)
    assert len({name for name, _ in rows}) == len(rows)  # one row per label
    return dict(rows)


def shown_cleanly(rows: dict) -> None:
    """No raw field name as a label, no None, no Python repr of a list or dict in a value."""
    for name, value in rows.items():
        assert "_" not in name and name[0].isupper(), name
        assert "None" not in value.replace("None / Raw", ""), (name, value)
        assert not re.search(r"[\[{]'", value) and "': " not in value, (name, value)


@pytest.mark.parametrize("name", ["plain", "hires", "resize", "refiner", "controlnet", "ip_adapter", "inpaint",
                                  "karras", "upscale", "animate", "sweep", "sweep cell", "scenario"])
def test_every_kind_of_record_is_described_cleanly_with_its_mode_and_status(jobs, name):
    record = jobs[name][0]
    rows = rows_of(record)
    shown_cleanly(rows)
    assert rows["Mode"] == record["mode"] and rows["Status"] == "ok" and record["job_id"].startswith(rows["Job"])


def test_a_hires_job_says_the_size_it_saved_and_every_setting_of_its_passes(jobs):
    record, paths = jobs["hires"]
    rows = rows_of(record)
    with Image.open(paths[0]) as saved:
        assert saved.size == (128, 128)
    assert rows["Size"] == "128x128 (first pass 64x64)"
    assert (rows["Hires upscale"], rows["Hires steps"], rows["Hires denoising strength"]) == ("2", "2", "0.5")
    assert rows["Hires upscaler"].startswith("Lanczos")
    assert rows["LoRAs"].startswith(f"{demo_lora().name} 0.7 [")
    assert rows["Embeddings"].startswith("mystyle [") and "3 vectors" in rows["Embeddings"]
    assert "fox: 1.3" in rows["Prompt weights"] and "sent as embeddings" in rows["Conditioning"]
    assert rows_of(jobs["resize"][0])["Hires resize"] == "96x96"
    assert rows_of(jobs["resize"][0])["Size"] == "96x96 (first pass 64x64)"
    assert "Hires upscale" not in rows_of(jobs["resize"][0])


def test_refiner_controlnet_ip_adapter_inpaint_and_schedule_type_are_named(jobs):
    refiner = rows_of(jobs["refiner"][0])
    assert refiner["Refiner"].startswith("tiny-sdxl-refiner")
    assert refiner["Refiner switch at"].startswith("0.5 · by sampling steps · base 2 steps, refiner 2")
    unit = rows_of(jobs["controlnet"][0])["ControlNet 0"]
    assert unit.startswith(f"{TINY_CONTROLNET} · canny (thresholds 50, 200) · weight 0.8 · from 0.1 to 0.9")
    assert "image inputs/" in unit
    adapter = rows_of(jobs["ip_adapter"][0])
    assert adapter["IP-Adapter"].startswith(DEMO_IP_ADAPTER) and adapter["IP-Adapter scale"] == "0.6"
    assert adapter["IP-Adapter images"].startswith("inputs/") and adapter["IP-Adapter images"].endswith("(64x64)")
    inpaint = rows_of(jobs["inpaint"][0])
    assert (inpaint["Mask blur"], inpaint["Masked content"], inpaint["Inpaint area"],
            inpaint["Masked area padding"], inpaint["Denoising strength"]) == ("8 px", "fill", "Only masked",
                                                                              "16 px", "0.7")
    assert inpaint["Init image"].startswith("inputs/") and inpaint["Mask"].startswith("inputs/")
    karras = rows_of(jobs["karras"][0])
    assert (karras["Sampler"], karras["Schedule type"]) == ("DPM++ 2M", "Karras")
    assert karras["Seeds"] == "5, 6" and karras["Batch size"] == "2"


def test_an_upscale_job_is_described_as_an_upscale(jobs):
    rows = rows_of(jobs["upscale"][0])
    assert rows["Upscaler"].startswith("Lanczos") and rows["Scale"] == "2"
    assert rows["Size"] == "128x128 from 64x64" and rows["Source image"].startswith("inputs/")
    assert not {"Sampler", "Steps", "CFG scale", "Seed", "Model", "Prompt", "Style"} & set(rows)
    assert summary(jobs["upscale"][0]) == "upscale · Lanczos · x2 · 128x128 from 64x64"


def test_animation_sweep_and_batch_rows(jobs):
    animation = rows_of(jobs["animate"][0])
    assert animation["Animation"].startswith("slerp from txt2img · 2 frames") and animation["Seed end"] == "9"
    assert animation["Frame t"] == "0, 1"
    assert rows_of(jobs["sweep cell"][0])["Sweep X"] == "CFG scale = 3 (of 3, 6)"
    grid = rows_of(jobs["sweep"][0])
    assert grid["Sweep X"] == "CFG scale: 3, 6" and "2 of 2 cells ok" in grid["Sweep"]
    assert summary(jobs["sweep"][0]).startswith("sweep CFG scale: 3, 6 · tiny-sdxl")
    assert rows_of(jobs["scenario"][0])["Scenario"].startswith("night fox · #1 · batch ")


def test_an_animation_frame_png_names_its_frame_and_blend(jobs):
    record, paths = jobs["animate"]
    params = read_png_parameters(paths[1])
    rows = dict(describe(params.record))
    assert rows["Frame"] == "2 of 2 · t 1 · toward seed 9" and rows["Seed"] == str(record["seeds"][1])


def test_differences_come_from_the_description(jobs):
    plain = jobs["plain"][0]
    for name, label in (("hires", "Hires upscale"), ("controlnet", "ControlNet 0"), ("ip_adapter", "IP-Adapter"),
                        ("refiner", "Refiner")):
        changed = {row[0]: row[1:] for row in differences(plain, jobs[name][0])}
        assert changed[label][0] == "(none)" and changed[label][1] != "(none)"
        assert "Job" not in changed and "Status" not in changed
    assert "LoRAs" in {row[0] for row in differences(plain, jobs["hires"][0])}
    assert differences(plain, plain) == []


# ---- any record: optional fields missing, malformed or of another type ----
_TEXT = st.text(alphabet="abc xyz-.", max_size=12)
_LEAF = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | _TEXT
# the keys the record's nested objects use, so malformed values land where the description reads
_KEYS = st.sampled_from(["scale", "steps", "denoise", "upscaler", "name", "width", "height", "resize", "switch",
                         "switch_by", "split", "base_steps", "refiner_steps", "id", "hash", "model", "image", "path",
                         "size", "settings", "low_threshold", "weight", "start", "end", "preprocessor", "sha256",
                         "a1111_hash", "image_encoder", "folder", "x", "y", "field", "value", "x_values", "cells",
                         "status", "frames", "fps", "t", "seed", "seed_end", "index", "prompt", "tokens", "chunks",
                         "weights", "sent_as", "class", "config", "source_size", "kind", "vectors"]) | _TEXT
_ANY = st.recursive(_LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
                    max_leaves=10)
_OPTIONAL = ("hires", "refiner", "controlnets", "ip_adapter", "ip_images", "loras", "embeddings", "inpaint",
             "conditioning", "scheduler", "model", "style", "seeds", "upscale", "animation", "sweep", "image",
             "init_image", "width", "height", "steps", "cfg", "seed", "strength", "mode", "backend", "timings")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["hires", "controlnet", "ip_adapter", "refiner", "upscale", "animate", "sweep"]),
       changes=st.dictionaries(st.sampled_from(_OPTIONAL), _ANY, max_size=6),
       dropped=st.lists(st.sampled_from(_OPTIONAL), max_size=6))
def test_any_optional_field_missing_or_malformed_never_crashes_or_shows_none(jobs, name, changes, dropped):
    record = {key: value for key, value in jobs[name][0].items() if key not in dropped}
    record.update(changes)
    rows = describe(record)
    for label, value in rows:
        assert isinstance(label, str) and isinstance(value, str) and value
        assert "None" not in value.replace("None / Raw", ""), (label, value)
    summary(record)


@given(st.text(max_size=200), st.integers(10, 80))
def test_clip_words_cuts_at_a_word_with_an_ellipsis(text, limit):
    clipped = clip_words(text, limit)
    flat = " ".join(text.split())
    assert len(clipped) <= limit
    if clipped == flat:
        return
    assert clipped.endswith(ELLIPSIS) and flat.startswith(clipped[:-1])
    cut = len(clipped) - 1
    words = flat.split(" ")
    if all(len(word) < limit // 2 for word in words):  # only a very long word is cut inside
        assert flat[cut:cut + 1] in (" ", "") or flat[:cut].rstrip(" ,;:·-") == clipped[:-1]


def test_the_sweep_axes_show_labels_and_keep_field_names():
    options = field_options(["cfg", "hires_denoise", "ip_scale", "negative_prompt"])
    assert options == [("CFG scale", "cfg"), ("Hires denoising strength", "hires_denoise"),
                       ("IP-Adapter scale", "ip_scale"), ("Negative prompt", "negative_prompt")]
    assert all("_" not in label for label in FIELD_LABELS.values())


# ---- where the description is shown ----
def test_the_queue_label_names_every_stage_and_cuts_the_prompt_at_a_word(engine, tmp_path):
    pytest.importorskip("ipywidgets")
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest
    from sdxl_nb.ui.queue_panel import QueuePanel

    lora = demo_lora().name
    base = dict(prompt="x", width=64, height=64, steps=2)
    resolved = prepare(GenerationRequest(**base, loras=[(lora, 0.5)], hires_scale=2, hires_upscaler="Latent"))
    assert summary(planned_record(resolved, "tiny-sdxl")) == (
        f"txt2img · tiny-sdxl · 128x128 (first pass 64x64) · batch 1 · 2 steps · LoRA {lora}:0.5 · hires x2 Latent")
    refined = prepare(GenerationRequest(**base, refiner="tiny-sdxl-refiner", refiner_switch=0.7))
    assert "refiner tiny-sdxl-refiner from 0.7" in summary(planned_record(refined, "tiny-sdxl"))

    queue = JobQueue(engine=engine, out_dir=tmp_path / "out")
    prompt = "a lighthouse on a rocky shore at dusk with waves crashing and gulls circling overhead in the wind"
    view = QueuePanel(queue)
    queue.submit(GenerationRequest(prompt=prompt, model="tiny-sdxl", seed=1, **SMALL))
    assert queue.wait_idle(120)
    row = html.unescape(view.row_labels()[0])
    assert "txt2img · tiny-sdxl · 64x64 · batch 1 · 2 steps" in row
    shown = re.search(r"“(.*)”", row).group(1)
    assert shown.endswith(ELLIPSIS) and prompt.startswith(shown[:-1]) and prompt[len(shown) - 1] == " "
    assert f"title='{prompt}'" in row  # the whole prompt in the tooltip


def test_queue_buttons_share_one_column(tmp_path):
    pytest.importorskip("ipywidgets")
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.jobs.queued import Job
    from sdxl_nb.ui.queue_panel import BUTTON_WIDTH, QueuePanel

    view = QueuePanel(JobQueue(out_dir=tmp_path / "out"))
    rows = [view._row(Job(id=n, kind="generate", model="m", out_dir=tmp_path, label="l" * n, prompt="p",
                          status=status)) for n, status in ((1, "queued"), (40, "running"))]
    assert [row.children[1].description for row in rows] == ["Cancel", "Stop"]
    # the label takes the room left, the button a fixed width at the end: Stop and Cancel line up whatever the text
    assert all(row.children[1].layout.width == BUTTON_WIDTH and row.children[0].layout.flex == "1 1 0%"
               and row.layout.width == "100%" for row in rows)


def test_compare_shows_a_hires_controlnet_and_ip_adapter_difference(jobs):
    pytest.importorskip("ipywidgets")
    from sdxl_nb.ui.gallery import Gallery, GalleryItem

    gallery = Gallery()
    plain = GalleryItem(jobs["plain"][1][0], "plain")
    for name, label in (("hires", "Hires upscale: (none) → 2"), ("controlnet", "ControlNet 0: (none) → "),
                        ("ip_adapter", "IP-Adapter scale: (none) → 0.6")):
        gallery.compare(plain)
        gallery.compare(GalleryItem(jobs[name][1][0], name))
        text = html.unescape(gallery.viewer.children[-1].value)
        assert label in text and "Seed" not in text


def test_gallery_info_and_job_info_show_the_description(jobs):
    pytest.importorskip("ipywidgets")
    from sdxl_nb.ui.gallery import Gallery, GalleryItem
    from sdxl_nb.ui.results import job_info_html

    record, paths = jobs["upscale"]
    info = html.unescape(job_info_html(record, [str(path) for path in paths]))
    assert "sdxl-info-table" in info and "Upscaler" in info and str(paths[0]) in info
    assert "scheduler None" not in info and "Sampler" not in info and "cfg 0" not in info
    gallery = Gallery()
    gallery.info(GalleryItem(jobs["hires"][1][0], "hires"))
    text = html.unescape(gallery.viewer.children[1].value)
    assert "128x128 (first pass 64x64)" in text and "Hires upscaler" in text and "Steps: 2" in text


def test_gallery_cells_hold_their_actions_in_tidy_rows(jobs):
    pytest.importorskip("ipywidgets")
    from sdxl_nb.ui.gallery import Gallery, GalleryItem

    def noop(*_args):
        return None

    gallery = Gallery(on_seed=noop, on_reuse=noop, on_init=noop, on_upscale=noop)
    gallery.show([GalleryItem(jobs["plain"][1][0], "plain")])
    rows = [child for child in gallery.cells.children[0].children if "sdxl-gallery-actions" in child._dom_classes]
    assert [[b.description for b in row.children] for row in rows] == [
        ["View", "Info", "Compare"], ["Seed", "Reuse", "Code"], ["img2img", "Inpaint", "Upscale"]]


def test_png_info_is_a_table_of_labels_with_what_was_read_and_what_was_not(jobs, tmp_path):
    pytest.importorskip("ipywidgets")
    from sdxl_nb.ui.png_info_panel import PngInfoPanel

    panel = PngInfoPanel()
    path = jobs["controlnet"][1][0]
    panel.read(path.read_bytes(), path.name)
    table = html.unescape(panel.table.value)
    labels = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert {"Prompt", "Seed", "CFG scale", "ControlNet"} <= set(labels)
    assert all("_" not in label for label in labels)  # no raw field names
    assert "sdxl-info-table" in table and "sdxl-row-read" in table
    assert "[{" not in table and "{'" not in table  # no Python repr of the units
    assert "overflow-wrap:anywhere" in table  # values wrap instead of running off sideways
    foreign = tmp_path / "foreign.png"
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a castle\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: x, Size: 64x64, "
                                "Hires refiner: Refiner pass, Lora hashes: \"a: 123\"")
    Image.new("RGB", (8, 8)).save(foreign, pnginfo=info)
    panel.read(foreign.read_bytes(), foreign.name)
    table = html.unescape(panel.table.value)
    assert "sdxl-row-not-loaded" in table and "sdxl-row-not-read" in table and "Lora hashes" in table
    statuses = re.findall(r"class='sdxl-row-status'>([^<]*)<", table)
    assert {"read", "not loaded", "not read"} <= set(statuses)


def test_the_model_description_is_shown_once(tmp_path):
    pytest.importorskip("ipywidgets")
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.ui.model_panel import ModelPanel

    panel = ModelPanel(queue=JobQueue(out_dir=tmp_path / "out"), out_dir=tmp_path / "out")
    info = panel.models[panel.model_id]
    label = dict((value, text) for text, value in panel.dropdown.options)[panel.model_id]
    assert info.description and info.description not in label and info.description in html.unescape(panel.info.value)


def test_every_kind_of_job_has_its_queue_label(engine, jobs, tmp_path):
    from sdxl_nb.jobs.animate.plan import AnimationRequest
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.jobs.sweep import parse_axis
    from sdxl_nb.request.resolve import GenerationRequest

    queue = JobQueue(engine=engine, out_dir=tmp_path / "out")
    sweep = queue.submit_sweep(GenerationRequest(prompt="a fox", model="tiny-sdxl", seed=1, **SMALL),
                               parse_axis("cfg=3,6"), parse_axis("steps=2,3"))
    animation = queue.submit_animation(AnimationRequest(prompt="a fox", model="tiny-sdxl", frames=2, seed=1, **SMALL))
    upscale = queue.submit_upscale(jobs["plain"][1][0])
    assert queue.wait_idle(180)
    assert sweep.label == "sweep CFG scale: 3, 6 × Steps: 2, 3 · tiny-sdxl · 64x64" and sweep.prompt == "a fox"
    assert animation.label.startswith("animate seed-walk from txt2img · 2 frames · 8 fps · tiny-sdxl · 64x64")
    assert upscale.label == f"upscale · Lanczos · x2 · 128x128 from 64x64 · {jobs['plain'][1][0].name}"


def test_a_stopped_job_says_which_of_its_seeds_were_saved(jobs):
    import copy

    record = copy.deepcopy(jobs["plain"][0])
    record.update(status="interrupted", seeds=[5, 6, 7], images=record["images"][:1])
    assert rows_of(record)["Seeds"] == "5, 6, 7 (saved: 5)"
    record["images"] = []
    assert rows_of(record)["Seeds"] == "5, 6, 7 (saved: none)"
    record.update(status="ok", images=[{**record_image, "seed": s} for s in (5, 6, 7)
                                       for record_image in jobs["plain"][0]["images"][:1]])
    assert rows_of(record)["Seeds"] == "5, 6, 7"  # a finished job: its seeds alone
