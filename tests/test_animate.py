"""Animations on the tiny model: files and metadata, one record, exact endpoints, exact re-runs, stops, bad input."""

import hashlib
import json
import re

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.errors import InputError
from sdxl_nb.jobs.animate import animate, check_rerun, rerun_frames
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.metadata import parse_parameters
from tests.conftest import REPO, SMALL, pixels


@pytest.fixture
def make(engine, tmp_path):
    def _make(**fields):
        out = fields.pop("out_dir", tmp_path / "out")
        return animate(out_dir=out, engine=engine, **{**SMALL, "prompt": "a fox", "seed": 1, **fields})

    return _make


def logged(folder):
    (record,) = [r for r in read_records(folder / "jobs.log") if r["mode"] == "animate"]
    return record


def test_frames_files_metadata_and_one_record(make, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    result = make(frames=3, seed=40, ping_pong=True, style="Photoreal", batch_size=2)
    out = tmp_path / "out"
    names = [p.name for p in result.paths]
    assert [re.fullmatch(r"\d{8}-\d{6}_a-fox_frame_(\d{3})\.png", n).group(1) for n in names] == ["001", "002", "003"]
    records = read_records(out / "jobs.log")
    assert len(records) == 1 and records[0] == json.loads(json.dumps(result.record))
    record = records[0]
    jsonschema.validate(record, json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8")),
                        format_checker=jsonschema.FormatChecker())
    assert record["mode"] == "animate" and record["status"] == "ok" and record["seeds"] == [40, 41, 42]
    assert record["animation"]["mode"] == "seed-walk" and record["animation"]["order"] == [0, 1, 2, 1]
    assert [f["call"] for f in record["frames"]] == [0, 0, 1] and record["chunk_size"] == 2
    for frame, path in zip(record["frames"], result.paths, strict=True):
        assert frame["path"] == path.name and frame["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        with Image.open(path) as image:
            params = parse_parameters(image.text["parameters"])
            chunk = json.loads(image.text["sdxl_nb"])
        assert params["Seed"] == str(frame["seed"]) and params["Prompt"] == frame["styled_prompt"]
        assert frame["prompt"] in frame["styled_prompt"] and params["Frame"] == f"{frame['index'] + 1} of 3"
        assert chunk["image"]["index"] == frame["index"] and chunk["job_id"] == record["job_id"]
        assert chunk["animation"] == record["animation"] and "frames" not in chunk
    assert [i["path"] for i in record["images"]] == names  # generic image checks cover the frames too
    grid = out / record["grid"]["path"]
    assert record["grid"]["sha256"] == hashlib.sha256(grid.read_bytes()).hexdigest()
    with Image.open(grid) as image:
        assert image.size == tuple(record["grid"]["size"]) and image.size[1] > 2 * 64
    assert {a["format"]: a["frames"] for a in record["animations"]} == {"gif": 4, "webp": 4}
    for item in record["animations"]:
        with Image.open(out / item["path"]) as image:
            assert image.n_frames == 4 and image.format == item["format"].upper()
            image.seek(1)
            image.load()
            assert image.info["loop"] == 0 and image.info["duration"] == item["duration_ms"]
    trail = (out / "logs" / "app_events.log").read_text(encoding="utf-8")
    assert all(name in trail for name in [record["grid"]["path"], *(a["path"] for a in record["animations"])])


def test_slerp_noise_ends_are_the_pipelines_own_seed_noise(engine):
    import torch

    from sdxl_nb.backends.local.mixing import initial_noise, slerp
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    pipe = engine.load(find_model("tiny-sdxl", load_presets())).pipe
    shape = (1, 4, 8, 8)
    for seed in (1, 2):
        own = pipe.prepare_latents(1, 4, 64, 64, torch.float32, "cpu", [torch.Generator("cpu").manual_seed(seed)])
        assert torch.equal(initial_noise(seed, shape, torch.float32) * pipe.scheduler.init_noise_sigma, own)
    a, b = initial_noise(1, shape, torch.float32), initial_noise(2, shape, torch.float32)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    assert not torch.equal(middle, a) and abs(middle.norm() / a.norm() - 1) < 0.05  # stays on the noise sphere


def test_slerp_ends_are_the_plain_seed_images(make, run, tmp_path):
    frames = make(mode="slerp", frames=3, seed=5, seed_end=9, batch_size=1).frames
    plain_a = run(prompt="a fox", seed=5, out_dir=tmp_path / "a").images[0]
    plain_b = run(prompt="a fox", seed=9, out_dir=tmp_path / "b").images[0]
    assert np.array_equal(pixels(frames[0]), pixels(plain_a))
    assert np.array_equal(pixels(frames[2]), pixels(plain_b))
    assert not np.array_equal(pixels(frames[1]), pixels(plain_a))
    assert not np.array_equal(pixels(frames[1]), pixels(plain_b))


def test_prompt_travel_ends_are_the_plain_prompt_images(make, run, tmp_path):
    result = make(mode="prompt-travel", frames=3, seed=5, prompt="a red fox", prompt_end="a blue whale",
                  style="Photoreal", batch_size=1)
    plain_a = run(prompt="a red fox", style="Photoreal", seed=5, out_dir=tmp_path / "a").images[0]
    plain_b = run(prompt="a blue whale", style="Photoreal", seed=5, out_dir=tmp_path / "b").images[0]
    assert np.array_equal(pixels(result.frames[0]), pixels(plain_a))
    assert np.array_equal(pixels(result.frames[2]), pixels(plain_b))
    assert not np.array_equal(pixels(result.frames[1]), pixels(plain_a))
    with Image.open(result.paths[1]) as image:
        params = parse_parameters(image.text["parameters"])
    assert params["Prompt travel t"] == "0.5" and params["Prompt travel end"] == result.record["frames"][1]["styled_prompt_end"]


def test_img2img_slerp_start_is_the_plain_img2img_image(make, run, tmp_path):
    init = tmp_path / "init.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    result = make(mode="slerp", frames=2, seed=3, seed_end=4, init_image=str(init), strength=0.6, steps=4,
                  batch_size=1)
    plain = run(prompt="a fox", seed=3, init_image=str(init), strength=0.6, steps=4, out_dir=tmp_path / "p")
    assert result.record["animation"]["source"] == "img2img"
    assert np.array_equal(pixels(result.frames[0]), pixels(plain.images[0]))
    assert not np.array_equal(pixels(result.frames[1]), pixels(plain.images[0]))


@pytest.mark.parametrize("fields", [
    dict(mode="seed-walk", frames=3, batch_size=2, scheduler="Euler a"),
    dict(mode="slerp", frames=3, seed_end=7, schedule="ease-in-out", scheduler="DPM++ 2M Karras"),
    dict(mode="prompt-travel", frames=3, prompt_end="a whale", seed_end=8),
])
def test_every_frame_reruns_bit_exactly_from_the_logged_record(make, engine, tmp_path, fields):
    make(**fields)
    record = logged(tmp_path / "out")
    assert all(item["identical"] for item in check_rerun(record, tmp_path / "out", engine=engine))
    again = rerun_frames(record, engine=engine)
    assert len(again) == 3


def test_img2img_animation_reruns_bit_exactly(make, engine, tmp_path):
    init = tmp_path / "out" / "inputs" / "init.png"  # a re-run reads images only inside the audited folder
    init.parent.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    make(mode="slerp", frames=3, seed_end=2, init_image=str(init), strength=0.7, steps=3)
    record = logged(tmp_path / "out")
    assert all(item["identical"] for item in check_rerun(record, tmp_path / "out", engine=engine))
    (tmp_path / "out" / record["init_image"]["path"]).write_bytes(b"changed")  # the copy the job kept
    with pytest.raises(InputError, match="changed since the job"):
        rerun_frames(record, engine=engine, folder=tmp_path / "out")


def test_stop_keeps_finished_frames_and_records_interrupted(make, engine, tmp_path):
    seen = []

    def should_stop():
        return any(p["chunk"] == 2 and p["step"] == 1 for p in seen)

    result = make(frames=3, batch_size=1, steps=3, on_progress=seen.append, should_stop=should_stop)
    out = tmp_path / "out"
    assert result.status == "interrupted" and len(result.frames) == 1
    record = logged(out)
    assert record["status"] == "interrupted" and [f["index"] for f in record["frames"]] == [0]
    assert any("stopped at step 1 of chunk 2" in e for e in record["events"])
    assert sorted(p.name for p in out.glob("*_frame_*.png")) == [result.paths[0].name]
    assert [a["frames"] for a in record["animations"]] == [1, 1] and record["grid"] is not None
    assert check_rerun(record, out, engine=engine)[0]["identical"]


def test_progress_counts_frames(make):
    seen = []
    make(frames=4, batch_size=2, steps=2, on_progress=seen.append)
    assert [(p["chunk"], p["step"], p["images_done"]) for p in seen] == [(1, 1, 0), (1, 2, 0), (2, 1, 2), (2, 2, 2)]
    assert all(p["batch"] == 4 and p["images_in_chunk"] == 2 and p["chunks"] == 2 for p in seen)


def test_frames_arrive_as_each_call_finishes(make):
    arrived = []
    make(frames=3, batch_size=2, on_frames=lambda done: arrived.append([frame["index"] for frame, _ in done]))
    assert arrived == [[0, 1], [2]]


@pytest.mark.parametrize("fields, message", [
    (dict(frames=1), "frames 1 is out of range"),
    (dict(mode="slerp", frames=1, seed_end=2), "frames 1 is out of range"),
    (dict(fps=0), "fps 0 is out of range"),
    (dict(mode="slerp"), "slerp needs a seed end"),
    (dict(mode="prompt-travel"), "prompt-travel needs a prompt end"),
    (dict(colour="red"), "unknown animation field 'colour'"),
])
def test_bad_input_is_rejected_with_nothing_written(make, tmp_path, fields, message):
    out = tmp_path / "never"
    with pytest.raises(InputError, match=re.escape(message)):
        make(out_dir=out, **fields)
    assert not out.exists()


def test_batching_speed_comparison_runs_the_same_frames_both_ways(engine):
    from sdxl_nb.jobs.animate.speed import measure_batching

    report = measure_batching(frames=3, batch_size=3, width=64, height=64, steps=2, engine=engine)
    assert report["calls"] == [[0, 1, 2]] and report["batched_s"] > 0 and report["per_frame_s"] > 0
    assert report["speedup"] == report["per_frame_s"] / report["batched_s"]
