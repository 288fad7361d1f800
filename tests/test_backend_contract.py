"""One contract, three backends: the local engine, 2 CPU replicas and a ComfyUI server run the same cases the same way."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import pytest
from PIL import Image

from sdxl_nb.errors import GenerationError, InputError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.metadata import parse_parameters
from sdxl_nb.record.recovery import verify_folder
from sdxl_nb.record.store import sha256_file
from tests.conftest import REPO, SMALL
from tests.fake_comfy import FakeComfy
from tests.local_server import LocalServer

CKPT = "sd_xl_base_1.0.safetensors"
BACKENDS = ["local", "replicas", "comfy"]


@dataclass
class Subject:
    """A backend under test and how to make it fail."""

    name: str
    backend: object
    fake: FakeComfy | None = None
    engines: tuple = ()  # the local engines behind it (their fault_hook makes a run fail)


@pytest.fixture(scope="module")
def second_engine(isolated_env):
    from sdxl_nb.backends.local import Engine

    return Engine(device="cpu")


@pytest.fixture(scope="module")
def comfy_server():
    fake = FakeComfy()
    with LocalServer(fake.app(), lifetime_s=1800) as running:
        yield fake, running


@pytest.fixture(params=BACKENDS)
def subject(request, engine, second_engine, comfy_server):
    if request.param == "local":
        yield Subject("local", engine, engines=(engine,))
    elif request.param == "replicas":
        from sdxl_nb.backends.replicas import ReplicaEngine

        yield Subject("replicas", ReplicaEngine(engines=[engine, second_engine]), engines=(engine, second_engine))
    else:
        from sdxl_nb.backends.comfy.backend import ComfyBackend

        fake, server = comfy_server
        fake.fail_in_node, fake.step_delay_s = None, 0.005
        yield Subject("comfy", ComfyBackend(server.url, checkpoint=CKPT, poll_interval_s=0.05), fake=fake)
        fake.fail_in_node, fake.step_delay_s = None, 0.005
    for local in (engine, second_engine):
        local.fault_hook = None


def expected_chunk_size(subject: Subject, batch: int) -> int:
    """Images per pipeline call as recorded: the whole batch locally, a replica's share, one per ComfyUI prompt."""
    return {"local": batch, "replicas": -(-batch // 2), "comfy": 1}[subject.name]


def check_saved_images(folder, record: dict, seed: int) -> None:
    """Every image the record names exists with its sha256; image i has seed + i; PNG chunks say the same."""
    assert [image["index"] for image in record["images"]] == sorted(image["index"] for image in record["images"])
    for image in record["images"]:
        path = folder / image["path"]
        assert sha256_file(path) == image["sha256"], path
        assert image["seed"] == seed + image["index"]
        with Image.open(path) as png:
            params = parse_parameters(png.text["parameters"])
            chunk = json.loads(png.text["sdxl_nb"])
        assert params["Seed"] == str(image["seed"]) and params["Size"] == f"{record['width']}x{record['height']}"
        assert params["Steps"] == str(record["steps"])
        assert chunk["job_id"] == record["job_id"] and chunk["image"]["seed"] == image["seed"]
        assert chunk["image"]["index"] == image["index"] and chunk["scheduler"] == record["scheduler"]


def logged(folder) -> dict:
    return read_records(folder / "jobs.log")[-1]


def test_a_job_through_the_api_is_recorded_the_same_on_every_backend(subject, tmp_path):
    import sdxl_nb.api

    out = tmp_path / "out"
    result = sdxl_nb.api.generate(prompt=f"contract {subject.name}", batch=3, seed=21, out_dir=out,
                                  engine=subject.backend, **SMALL)
    record = result.record
    assert result.status == "ok" and record["error"] is None
    assert record["seeds"] == [21, 22, 23] and [i["seed"] for i in record["images"]] == [21, 22, 23]
    assert [p.name for p in result.paths] == [i["path"] for i in record["images"]]
    check_saved_images(out, record, 21)
    assert record["chunk_size"] == expected_chunk_size(subject, 3)
    scheduler = record["scheduler"]
    assert scheduler["name"] == "Default" and isinstance(scheduler["class"], str) and isinstance(scheduler["config"], dict)
    if subject.name == "comfy":
        assert record["backend"] == {"name": "comfy", "server": subject.backend.client.server, "checkpoint": CKPT}
        assert record["device"]["type"] == "comfy" and record["env"]["comfyui"]
    else:
        assert "backend" not in record and record["device"]["type"] == "cpu"
        assert record["env"]["torch"] and record["env"]["diffusers"]
    if subject.name == "replicas":
        assert [r["device"] for r in record["device"]["replicas"]] == ["cpu", "cpu"]
    assert record["env"]["sdxl_nb"] == sdxl_nb.__version__
    assert logged(out) == json.loads(json.dumps(record))
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(record, schema, format_checker=jsonschema.FormatChecker())
    assert verify_folder(out).ok


def test_a_job_through_the_labs_queue_runs_with_a_preview_listener(subject, tmp_path):
    """The lab's queue always attaches a preview hook: a backend without previews must ignore it, not fail."""
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.request.resolve import GenerationRequest

    out = tmp_path / "out"
    queue = JobQueue(engine=subject.backend, out_dir=out)
    events = []
    queue.subscribe(events.append)
    job = queue.submit(GenerationRequest(prompt=f"queued {subject.name}", batch=2, seed=31, **SMALL))
    assert queue.wait_idle(timeout=300)
    assert (job.status, job.error) == ("ok", None), job.error
    record = job.result.record
    assert record["status"] == "ok" and [i["seed"] for i in record["images"]] == [31, 32]
    check_saved_images(out, record, 31)
    previews = [event for event in events if event["type"] == "preview"]
    if subject.backend.capabilities.previews:
        assert previews and all(isinstance(event["image"], Image.Image) for event in previews)
    else:
        assert previews == []
    kinds = [event["type"] for event in events if event["job_id"] == job.id]
    assert kinds[0] == "queued" and kinds[-1] == "finished" and "progress" in kinds
    assert logged(out)["job_id"] == record["job_id"] and verify_folder(out).ok


def test_the_queue_runs_every_kind_of_job_on_the_backend_chosen_in_engine_settings(subject, engine, tmp_path):
    """As the lab's engine settings do: the queue starts on the local engine and is switched to the backend."""
    from sdxl_nb.jobs.animate import AnimationRequest
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.jobs.sweep import axis
    from sdxl_nb.request.resolve import GenerationRequest

    out = tmp_path / "out"
    queue = JobQueue(engine=engine, out_dir=out)
    events = []
    queue.subscribe(events.append)
    queue.configure(backend=subject.backend, auto_tune=False)
    jobs = [queue.submit(GenerationRequest(prompt="kinds", seed=81, **SMALL)),
            queue.submit_animation(AnimationRequest(prompt="kinds", frames=2, seed=82, **SMALL)),
            queue.submit_sweep(GenerationRequest(prompt="kinds", seed=83, **SMALL), axis("cfg", [2, 6]))]
    assert queue.wait_idle(timeout=300)
    assert [(job.kind, job.status, job.error) for job in jobs] == [
        ("generate", "ok", None), ("animate", "ok", None), ("sweep", "ok", None)]
    records = read_records(out / "jobs.log")
    assert [r["mode"] for r in records] == ["txt2img", "animate", "txt2img", "txt2img", "sweep"]
    expected_device = "comfy" if subject.name == "comfy" else "cpu"
    assert all(r["status"] == "ok" and r["device"]["type"] == expected_device for r in records)
    assert jobs[2].result.grid_path.exists() and verify_folder(out).ok
    if not subject.backend.capabilities.previews:
        assert not [event for event in events if event["type"] == "preview"]


def test_stop_mid_job_keeps_finished_images_and_records_interrupted(subject, tmp_path):
    out = tmp_path / "out"
    if subject.fake is not None:
        subject.fake.step_delay_s = 0.05  # the stop lands while the server samples the next image
    stop = threading.Event()

    def progress(p: dict) -> None:
        if p["images_done"] >= 1:  # an image is saved: stop during the next one
            stop.set()

    import sdxl_nb.api

    result = sdxl_nb.api.generate(prompt=f"stop {subject.name}", batch=4, seed=41, chunk_size=1, out_dir=out,
                                  engine=subject.backend, on_progress=progress, should_stop=stop.is_set,
                                  steps=4, width=64, height=64)
    record = result.record
    assert result.status == "interrupted" and record["seeds"] == [41, 42, 43, 44]
    assert 1 <= len(record["images"]) < 4
    check_saved_images(out, record, 41)
    assert logged(out)["status"] == "interrupted" and len(logged(out)["images"]) == len(record["images"])
    assert verify_folder(out).ok


def make_it_fail(subject: Subject) -> None:
    """The backend's run fails after (locally) the first image is saved; the message has two lines."""
    if subject.fake is not None:
        subject.fake.fail_in_node = "KSampler"
        return

    def broken(stage, indices, **_context):
        if stage == "denoise" and 1 in indices:
            raise RuntimeError("the UNet broke\nsecond line of a traceback-ish message")

    for local in subject.engines:
        local.fault_hook = broken


def test_a_failing_job_is_recorded_failed_with_one_line_and_raises(subject, tmp_path):
    import sdxl_nb.api

    out = tmp_path / "out"
    make_it_fail(subject)
    with pytest.raises(GenerationError) as failed:
        sdxl_nb.api.generate(prompt=f"fail {subject.name}", batch=2, seed=51, chunk_size=1, out_dir=out,
                             engine=subject.backend, **SMALL)
    message = str(failed.value)
    assert message and "\n" not in message
    record = failed.value.result.record
    assert record["status"] == "failed" and record["error"] and "\n" not in record["error"]
    expected = "CUDA out of memory" if subject.fake is not None else "the UNet broke"
    assert expected in record["error"] and expected in message
    check_saved_images(out, record, 51)
    if subject.fake is None:  # locally the image before the failure is kept
        assert [i["seed"] for i in record["images"]] == [51]
    assert logged(out)["status"] == "failed" and logged(out)["error"] == record["error"]
    assert verify_folder(out).ok


def test_an_animation_runs_on_every_backend(subject, tmp_path):
    from sdxl_nb.jobs.animate import animate

    out = tmp_path / "out"
    result = animate(prompt=f"walk {subject.name}", mode="seed-walk", frames=3, seed=61, out_dir=out,
                     engine=subject.backend, **SMALL)
    record = result.record
    assert result.status == "ok" and record["mode"] == "animate"
    assert [f["seed"] for f in record["frames"]] == [61, 62, 63] and len(result.paths) == 3
    check_saved_images(out, record, 61)
    for entry in [*record["frames"], record["grid"], *record["animations"]]:
        assert sha256_file(out / entry["path"]) == entry["sha256"]
    assert {a["format"] for a in record["animations"]} == {"gif", "webp"}
    assert result.gif_path.exists() and result.webp_path.exists() and result.grid_path.exists()
    assert logged(out)["job_id"] == record["job_id"] and verify_folder(out).ok


@pytest.mark.parametrize("mode, needs", [("slerp", "noise_mix"), ("prompt-travel", "prompt_blend")])
def test_an_animation_the_backend_cannot_run_is_refused_in_one_line(subject, tmp_path, mode, needs):
    from sdxl_nb.jobs.animate import animate

    out = tmp_path / "out"
    fields = dict(prompt="a", mode=mode, frames=3, seed=71, out_dir=out, engine=subject.backend, **SMALL)
    fields.update(seed_end=72) if mode == "slerp" else fields.update(prompt_end="b")
    if getattr(subject.backend.capabilities, needs):
        assert animate(**fields).status == "ok" and verify_folder(out).ok
        return
    with pytest.raises(InputError) as refused:
        animate(**fields)
    message = str(refused.value)
    assert "\n" not in message and "cannot run" in message and "ComfyUI" in message
    assert not out.exists() or not any(out.rglob("*"))  # nothing written


def test_the_audit_reruns_a_job_bit_exact_on_the_backend_that_made_it(subject, tmp_path):
    import sdxl_nb.api
    from sdxl_nb.audit.report import run_audit

    out = tmp_path / "out"
    sdxl_nb.api.generate(prompt=f"audit {subject.name}", batch=3, seed=91, out_dir=out, engine=subject.backend,
                         **SMALL)
    auditor = subject.backend
    if subject.name == "comfy":  # an audit in a later session: a new client of the same server
        from sdxl_nb.backends.comfy.backend import ComfyBackend

        auditor = ComfyBackend(subject.backend.client.server, checkpoint=CKPT)
    report = run_audit(out, rerun="all", engine=auditor)
    assert report.ok, report.problems()
    assert list(report.reruns["verdict"]) == ["bit-exact"] * 3
    assert report.environment_drift.empty, list(report.environment_drift["differences"])


def test_the_audit_skips_a_job_made_on_another_kind_of_backend_and_says_where_it_ran(subject, engine, comfy_server,
                                                                                   tmp_path):
    """A ComfyUI server and this machine's engine are different implementations: re-running one's job on the other
    could only 'diverge'. The audit says where the job ran instead."""
    import sdxl_nb.api
    from sdxl_nb.audit.report import run_audit
    from sdxl_nb.backends.comfy.backend import ComfyBackend

    out = tmp_path / "out"
    sdxl_nb.api.generate(prompt=f"elsewhere {subject.name}", seed=95, out_dir=out, engine=subject.backend, **SMALL)
    _fake, server = comfy_server
    other = engine if subject.name == "comfy" else ComfyBackend(server.url, checkpoint=CKPT)
    report = run_audit(out, rerun="all", engine=other)
    (row,) = report.reruns.itertuples()
    if subject.name == "comfy":  # a remote job is never re-run here: "not re-run (remote backend)", with its server
        from sdxl_nb.audit.backends import NOT_RERUN_REMOTE

        assert row.verdict == NOT_RERUN_REMOTE and f"ran on the comfy server {server.url}" in row.note, row.note
        return
    assert row.verdict == "skipped"
    assert row.note == "made on this machine's engine; re-run it on that backend", row.note


def test_a_batch_split_unevenly_across_replicas_reruns_bit_exact_on_one_engine(engine, second_engine, tmp_path):
    """7 images on 3 replicas run as calls of 3, 2 and 2: the record keeps each image's call, so a re-run on one
    engine repeats those calls (batching moves last bits, so a chunk size of 3 would not give the same pixels)."""
    from sdxl_nb.audit.report import run_audit
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.replicas import ReplicaEngine
    from sdxl_nb.jobs.generate import generate

    replicas = ReplicaEngine(engines=[engine, second_engine, Engine(device="cpu")])
    record = generate(prompt="uneven", batch=7, seed=1, out_dir=tmp_path, engine=replicas, **SMALL).record
    calls: dict[int, list[int]] = {}
    for image in record["images"]:
        calls.setdefault(image["call"], []).append(image["index"])
    assert sorted(calls.values()) == [[0, 1, 2], [3, 4], [5, 6]]
    report = run_audit(tmp_path, rerun="all", engine=engine)
    assert report.ok, report.problems()
    assert list(report.reruns["verdict"]) == ["bit-exact"] * 7


def test_a_stopped_animation_keeps_its_finished_frames_and_their_grid(subject, tmp_path):
    from sdxl_nb.jobs.animate import animate

    out = tmp_path / "out"
    if subject.fake is not None:
        subject.fake.step_delay_s = 0.05
    stop = threading.Event()

    def progress(p: dict) -> None:
        if p["images_done"] >= 1:
            stop.set()

    result = animate(prompt=f"stopped {subject.name}", frames=4, seed=101, batch_size=1, out_dir=out,
                     engine=subject.backend, on_progress=progress, should_stop=stop.is_set, steps=4, width=64,
                     height=64)
    record = result.record
    assert result.status == "interrupted" and 1 <= len(record["frames"]) < 4
    assert sorted(f["index"] for f in record["frames"]) == sorted(i["index"] for i in record["images"])
    check_saved_images(out, record, 101)
    assert record["grid"] and {a["format"] for a in record["animations"]} == {"gif", "webp"}
    assert logged(out)["status"] == "interrupted" and verify_folder(out).ok


def test_a_failing_animation_is_recorded_failed_and_raises(subject, tmp_path):
    from sdxl_nb.jobs.animate import AnimationResult, animate

    out = tmp_path / "out"
    make_it_fail(subject)
    with pytest.raises(GenerationError) as failed:
        animate(prompt=f"failing {subject.name}", frames=3, seed=111, batch_size=1, out_dir=out,
                engine=subject.backend, **SMALL)
    assert "\n" not in str(failed.value)
    result = failed.value.result
    assert isinstance(result, AnimationResult) and result.status == "failed"
    record = logged(out)
    assert record["status"] == "failed" and record["error"] == result.record["error"] and "\n" not in record["error"]
    check_saved_images(out, record, 111)
    assert verify_folder(out).ok


def test_a_job_that_lost_an_image_to_the_nan_guard_reruns_its_saved_ones_bit_exact(engine, tmp_path):
    """Images 1 and 2 were saved from one call of 3 (image 0 came out NaN): the re-run batches all 3 again, since
    a batch of 2 would move last bits."""
    import torch

    from sdxl_nb.audit.report import run_audit
    from sdxl_nb.jobs.generate import generate

    def poison_first_image(stage, indices, **context):
        if stage == "latents":
            return context["latents"].index_fill(0, torch.tensor([0]), float("nan"))
        return None

    engine.fault_hook = poison_first_image
    try:
        with pytest.raises(GenerationError, match="NaN or black"):
            generate(prompt="nan", batch=3, seed=7, out_dir=tmp_path, engine=engine, **SMALL)
    finally:
        engine.fault_hook = None
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "failed" and [(i["index"], i["call"]) for i in record["images"]] == [(1, 0), (2, 0)]
    report = run_audit(tmp_path, rerun="all", engine=engine)
    assert report.ok and list(report.reruns["verdict"]) == ["bit-exact"] * 2, report.problems()


def test_a_refiner_job_runs_on_every_backend_and_reruns_bit_exact(subject, tmp_path):
    import sdxl_nb.api

    out = tmp_path / "out"
    if subject.fake is not None:  # the server holds the refiner's checkpoint under its default file name
        subject.fake.checkpoints.append("tiny-sdxl-refiner.safetensors")
    assert subject.backend.capabilities.refiner
    result = sdxl_nb.api.generate(prompt=f"refined {subject.name}", batch=2, seed=95, out_dir=out,
                                  engine=subject.backend, refiner="tiny-sdxl-refiner", refiner_switch=0.5,
                                  **{**SMALL, "steps": 4})
    record = result.record
    assert result.status == "ok" and record["refiner"]["id"] == "tiny-sdxl-refiner"
    assert record["refiner"]["switch"] == 0.5 and record["refiner"]["revision"]
    check_saved_images(out, record, 95)
    if subject.fake is not None:
        graph = list(subject.fake.prompts.values())[-1]["graph"]
        assert [n["class_type"] for n in graph.values()].count("KSamplerAdvanced") == 2


def test_a_controlnet_job_runs_is_recorded_and_reruns_bit_exact_on_every_backend(subject, tmp_path):
    """The same ControlNet unit through the queue on each backend: the map saved and named, the A1111 parameters,
    the schema, verify clean, and the audit's re-run bit-exact on the backend that made it."""
    from PIL import ImageDraw

    from sdxl_nb.audit.report import run_audit
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.request.resolve import GenerationRequest

    control = tmp_path / "out" / "inputs" / "control.png"  # a re-run reads images only inside the audited folder
    control.parent.mkdir(parents=True)
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse((12, 12, 52, 52), fill="black")
    image.save(control)
    out = tmp_path / "out"
    queue = JobQueue(engine=subject.backend, out_dir=out)
    job = queue.submit(GenerationRequest(prompt=f"controlnet {subject.name}", batch=2, seed=41, controlnets=[
        {"model": "tiny-sdxl-controlnet", "image": str(control), "preprocessor": "canny", "weight": 0.9}], **SMALL))
    assert queue.wait_idle(timeout=300)
    assert (job.status, job.error) == ("ok", None), job.error
    record = logged(out)
    check_saved_images(out, record, 41)
    (entry,) = record["controlnets"]
    assert entry["map"] == record["control_maps"][0]["path"] and (out / entry["map"]).is_file()
    with Image.open(out / record["images"][0]["path"]) as png:
        assert parse_parameters(png.text["parameters"])["ControlNet 0"].startswith("Module: canny, Model: tiny-sdxl-")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(record, schema, format_checker=jsonschema.FormatChecker())
    assert verify_folder(out).ok
    auditor = subject.backend
    if subject.name == "comfy":
        from sdxl_nb.backends.comfy.backend import ComfyBackend

        auditor = ComfyBackend(subject.backend.client.server, checkpoint=CKPT)
    report = run_audit(out, rerun="all", engine=auditor)
    assert report.ok, report.problems()
    assert list(report.reruns["verdict"]) == ["bit-exact"] * 2


def test_an_ip_adapter_job_runs_where_declared_and_is_refused_in_one_line_elsewhere(subject, tmp_path):
    import numpy as np

    from sdxl_nb.jobs.generate import generate

    ref = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), "teal").save(ref)
    plain = dict(prompt="a fox", seed=3, batch=2, **SMALL)
    guided = dict(plain, ip_adapter="tiny-sdxl-ip-adapter", ip_images=[str(ref)], ip_scale=0.7)
    if not subject.backend.capabilities.ip_adapter:
        with pytest.raises(InputError, match="cannot run IP-Adapter") as caught:
            generate(out_dir=tmp_path / "out", engine=subject.backend, **guided)
        assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()
        return
    result = generate(out_dir=tmp_path / "out", engine=subject.backend, chunk_size=1, **guided)
    without = generate(out_dir=tmp_path / "plain", engine=subject.backend, chunk_size=1, **plain)
    assert result.record["ip_adapter"]["scale"] == 0.7 and verify_folder(tmp_path / "out").ok
    for a, b in zip(result.images, without.images, strict=True):  # every replica ran it with the adapter
        assert not np.array_equal(np.asarray(a), np.asarray(b))
