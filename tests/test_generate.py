"""The core loop on the tiny model: reproducible pixels, seeds, shared weights, records, stops."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.metadata import parse_parameters
from tests.conftest import REPO, pixels


def test_same_request_twice_gives_identical_pixels(run, tmp_path):
    a = run(prompt="a red fox", batch=2, seed=11, out_dir=tmp_path / "a")
    b = run(prompt="a red fox", batch=2, seed=11, out_dir=tmp_path / "b")
    for x, y in zip(a.images, b.images, strict=True):
        assert np.array_equal(pixels(x), pixels(y))
    assert not np.array_equal(pixels(a.images[0]), pixels(a.images[1]))  # different seeds differ
    assert pixels(a.images[0]).std() > 5  # a real (noise) image, not blank


def test_batch_image_i_uses_seed_plus_i(run, tmp_path):
    batch = run(prompt="seeds", batch=3, seed=100, out_dir=tmp_path / "batch")
    assert batch.record["seeds"] == [100, 101, 102] and batch.seeds == [100, 101, 102]
    single = run(prompt="seeds", batch=1, seed=102, out_dir=tmp_path / "single")
    # One generator per image: image 2 of the batch is the batch-1 image of seed 102.
    diff = np.abs(pixels(batch.images[2]).astype(int) - pixels(single.images[0]).astype(int))
    assert diff.max() <= 1


def test_files_names_and_png_metadata(run, tmp_path):
    result = run(prompt="A fox / in the snow", style="Photoreal", batch=2, seed=42, negative_prompt="blurry")
    names = [p.name for p in result.paths]
    assert all(re.fullmatch(r"\d{8}-\d{6}_a-fox-in-the-snow_seed4[23]_0[12]\.png", n) for n in names), names
    with Image.open(result.paths[1]) as image:
        params = parse_parameters(image.text["parameters"])
        chunk = json.loads(image.text["sdxl_nb"])
    assert params["Prompt"] == result.record["styled_prompt"]
    assert params["Negative prompt"] == result.record["effective_negative_prompt"].replace("\n", " ")
    assert (params["Seed"], params["Steps"], params["Size"], params["Model"]) == ("43", "2", "64x64", "tiny-sdxl")
    assert params["Sampler"] == "Euler" and params["CFG scale"] == "5"
    assert chunk["image"] == {"index": 1, "seed": 43, "path": names[1]}
    assert chunk["job_id"] == result.record["job_id"] and chunk["styled_prompt"] == result.record["styled_prompt"]


def test_third_party_reader_understands_our_pngs(run):
    sd_parsers = pytest.importorskip("sd_parsers")
    result = run(prompt="a lighthouse", negative_prompt="fog", seed=9)
    with Image.open(result.paths[0]) as image:
        info = sd_parsers.ParserManager().parse(image)
    assert info is not None
    assert [p.value for p in info.prompts] == ["a lighthouse"]
    assert [p.value for p in info.negative_prompts] == ["fog"]
    assert info.samplers[0].parameters["seed"] == "9" or str(info.samplers[0].parameters.get("seed")) == "9"


def test_record_validates_against_the_schema_and_is_the_log_line(run, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    result = run(prompt="schema", batch=2, out_dir=tmp_path)
    logged = read_records(tmp_path / "jobs.log")
    assert logged == [json.loads(json.dumps(result.record))]
    jsonschema.validate(logged[0], schema, format_checker=jsonschema.FormatChecker())
    record = logged[0]
    assert record["status"] == "ok" and record["mode"] == "txt2img"
    assert [i["sha256"] for i in record["images"]] == [__import__("hashlib").sha256(p.read_bytes()).hexdigest() for p in result.paths]
    assert record["env"]["torch"] and record["env"]["diffusers"] and record["env"]["deterministic"] is False
    events = (tmp_path / "logs" / "app_events.log").read_text(encoding="utf-8")
    assert "MODEL=tiny-sdxl, STEPS=2, SCHEDULER=Default, 64x64, BATCH=2, STYLE=None / Raw" in events
    assert "PROMPT: schema" in events and "SAVED FILES: " + result.paths[0].name in events


def test_scheduler_swap_changes_output_and_is_logged(run, tmp_path):
    euler = run(prompt="swap", scheduler="Euler", out_dir=tmp_path)
    dpm = run(prompt="swap", scheduler="DPM++ 2M Karras", out_dir=tmp_path)
    assert not np.array_equal(pixels(euler.images[0]), pixels(dpm.images[0]))
    records = read_records(tmp_path / "jobs.log")
    assert [r["scheduler"]["class"] for r in records] == ["EulerDiscreteScheduler", "DPMSolverMultistepScheduler"]
    assert records[1]["scheduler"]["config"]["use_karras_sigmas"] is True
    assert records[1]["scheduler"]["name"] == "DPM++ 2M Karras"


def test_img2img_and_inpaint_share_the_loaded_weights(engine, run, tmp_path):
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.request.prepare import prepare

    loaded = engine.load(find_model("tiny-sdxl", load_presets()))
    base = loaded.pipe
    before = {id(p) for module in (base.unet, base.vae, base.text_encoder, base.text_encoder_2) for p in module.parameters()}
    for mode in ("img2img", "inpaint"):
        derived = engine.pipeline(loaded, mode)
        for name in ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
            assert getattr(derived, name) is getattr(base, name), name
        assert derived.unet.dtype == base.unet.dtype
    after = {id(p) for module in (base.unet, base.vae, base.text_encoder, base.text_encoder_2) for p in module.parameters()}
    assert before == after
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    i2i = run(prompt="img2img", init_image=str(tmp_path / "init.png"), strength=0.6, steps=4)
    inp = run(prompt="inpaint", init_image=str(tmp_path / "init.png"), mask_image=str(tmp_path / "mask.png"), steps=4)
    assert i2i.record["mode"] == "img2img" and i2i.record["strength"] == 0.6
    assert inp.record["mode"] == "inpaint" and inp.record["mask_image"]["sha256"]
    with Image.open(i2i.paths[0]) as image:
        assert "Denoising strength: 0.6" in image.text["parameters"]
    again = run(prompt="img2img", init_image=str(tmp_path / "init.png"), strength=0.6, steps=4, out_dir=tmp_path / "again")
    assert np.array_equal(pixels(i2i.images[0]), pixels(again.images[0]))
    assert prepare  # the same request resolves without torch (see test_light_imports)


def test_progress_is_plain_data(run):
    seen = []
    run(prompt="progress", steps=3, on_progress=seen.append)
    assert [p["step"] for p in seen] == [1, 2, 3]
    assert all(p["total"] == 3 and isinstance(p["elapsed"], float) for p in seen)


def test_stop_keeps_finished_images_and_records_interrupted(run, tmp_path):
    seen = []

    def should_stop():
        return any(p["chunk"] == 2 and p["step"] == 1 for p in seen)

    result = run(prompt="stop", batch=3, chunk_size=1, steps=3, on_progress=seen.append, should_stop=should_stop,
                 out_dir=tmp_path)
    assert result.status == "interrupted"
    assert [i["seed"] for i in result.record["images"]] == [1]
    assert len(result.paths) == 1 and result.paths[0].exists()
    assert any("stopped at step 1 of chunk 2" in e for e in result.record["events"])
    assert read_records(tmp_path / "jobs.log")[0]["status"] == "interrupted"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [result.paths[0].name]


@pytest.mark.parametrize("fields", [dict(width=100), dict(steps=0), dict(style="nope"), dict(batch=0)])
def test_bad_input_writes_nothing(run, tmp_path, fields):
    out = tmp_path / "never"
    with pytest.raises(InputError):
        run(prompt="x", out_dir=out, **fields)
    assert not out.exists()


def test_unwritable_output_folder_is_bad_input(run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="is not usable: .* is a file"):
        run(prompt="x", out_dir=blocker / "sub")


def test_failed_run_is_recorded(run, engine, tmp_path, monkeypatch):
    from sdxl_nb.errors import GenerationError

    def explode(*args, **kwargs):
        raise RuntimeError("simulated device failure\nwith detail")

    monkeypatch.setattr("sdxl_nb.backends.local.run_loop.RunLoop.run", explode)
    with pytest.raises(GenerationError, match="simulated device failure"):
        run(prompt="fails", out_dir=tmp_path)
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "failed" and record["error"] == "simulated device failure"
    assert record["images"] == [] and not list(tmp_path.glob("*.png"))


def test_saves_run_on_the_writer_thread_and_the_record_waits_for_them(run, tmp_path, monkeypatch):
    import threading

    from sdxl_nb.jobs import files
    from sdxl_nb.record.joblog import read_records

    writes = []
    real = files.write_new_file

    def spy(folder, name, data, **kwargs):
        writes.append(threading.current_thread().name)
        assert not (folder / "jobs.log").exists()  # the record comes only after every file is durable
        return real(folder, name, data, **kwargs)

    monkeypatch.setattr(files, "write_new_file", spy)
    result = run(prompt="writer", batch=3, chunk_size=1, out_dir=tmp_path)
    # Encoding, hashing and writing overlap the next chunk's denoising: none of it runs on the job's thread.
    assert len(writes) == 3 and all(name.startswith("sdxl_nb-writer") for name in writes)
    (record,) = read_records(tmp_path / "jobs.log")
    assert [image["path"] for image in record["images"]] == [path.name for path in result.paths]
    assert all(path.is_file() for path in result.paths)
