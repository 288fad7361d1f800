"""Hires fix and upscalers: validation, the second pass in latent, Lanczos and model modes, tiling, the record and
PNG parameters, the CLI, the lab form and queue, the ComfyUI export and backend, audit and bit-exact re-runs."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, rerun_jobs, run_audit, select_for_rerun
from sdxl_nb.cli import main
from sdxl_nb.config.hires import schedule_steps
from sdxl_nb.config.limits import strength_steps
from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.metadata import parse_parameters
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import SMALL, pixels
from tests.tiny_upscaler import RECEPTIVE_RADIUS, write_tiny_esrgan, write_tiny_upscaler

HIRES = dict(hires_scale=2, hires_steps=2, hires_denoise=0.5)


def check_schema(record: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from tests.conftest import REPO

    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(json.dumps(record)), schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(autouse=True)
def engine_settings_kept(engine):
    """The lab turns auto-tuning on for the shared engine; later test files expect it as it was."""
    saved = engine.auto_tune
    yield
    engine.auto_tune = saved


@pytest.fixture(scope="module")
def upscaler_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upscalers")
    write_tiny_upscaler(folder / "tiny-compact.safetensors", scale=2)
    write_tiny_upscaler(folder / "tiny-compact-x4.pth", scale=4, seed=1)
    write_tiny_esrgan(folder / "tiny-esrgan.pth")
    (folder / "garbage.pth").write_bytes(b"not a model at all")
    from safetensors.numpy import save_file

    save_file({"weight": np.zeros((2, 2), np.float32)}, str(folder / "unknown.safetensors"))
    return folder


@pytest.fixture
def upscalers(upscaler_dir, monkeypatch):
    monkeypatch.setenv("SDXL_NB_UPSCALERS", str(upscaler_dir))
    return upscaler_dir


def resolved(**fields):
    return prepare(GenerationRequest(**{"prompt": "a fox", "model": "tiny-sdxl", **SMALL, **fields}))


# ---- validation (no torch) ----
@pytest.mark.parametrize(("fields", "message"), [
    ({"hires_steps": 3}, "hires steps needs a hires scale"),
    ({"hires_upscaler": "Lanczos"}, "hires upscaler needs a hires scale"),
    ({"hires_scale": 1.3}, r"hires size 83x83 \(64x64 x 1.3\) must be multiples of 8 .*accepted scales at this size: "
                           r"1.25, 1.5, 2, 3, 4"),
    ({"hires_scale": 0.5}, "hires scale 0.5 is out of range; accepted: 1 to 4"),
    ({"hires_scale": 5}, "hires scale 5 is out of range"),
    ({"hires_scale": "2"}, "hires scale must be a number"),
    ({"hires_scale": 2, "hires_denoise": 0}, "hires denoise 0 is out of range"),
    ({"hires_scale": 2, "hires_denoise": 1.5}, "hires denoise 1.5 is out of range"),
    ({"hires_scale": 2, "hires_steps": 0}, "hires steps 0 is out of range"),
    ({"hires_scale": 2, "hires_steps": 10, "hires_denoise": 0.005}, "need a 2000-step schedule; accepted: hires "
                                                                    r"steps / denoise at most 1000 \(e.g. denoise 0.01\)"),
    ({"hires_scale": 2, "hires_upscaler": "ESRGAN_4x"}, "unknown upscaler 'ESRGAN_4x'.*accepted: Latent, "),
    ({"hires_scale": 4, "width": 2048, "height": 1024}, "hires size 8192x4096"),
])
def test_bad_hires_settings_are_one_line_input_errors(fields, message):
    with pytest.raises(InputError, match=message) as info:
        resolved(**fields)
    assert "\n" not in str(info.value)


def test_hires_is_txt2img_only_as_in_a1111(tmp_path):
    Image.new("RGB", (64, 64), "gray").save(tmp_path / "init.png")
    with pytest.raises(InputError, match="hires fix runs in txt2img only"):
        resolved(init_image=str(tmp_path / "init.png"), strength=0.5, hires_scale=2)


def test_defaults_follow_a1111():
    r = resolved(hires_scale=1.5)
    assert (r.width, r.height, r.output_size) == (64, 64, (96, 96))
    assert (r.hires.steps, r.hires.denoise, r.hires.upscaler.name) == (r.steps, 0.7, "Latent")
    assert resolved().hires is None and resolved().output_size == (64, 64)


@settings(max_examples=300, deadline=None)
@given(steps=st.integers(1, 150), denoise=st.floats(0.01, 1.0))
def test_the_second_pass_runs_exactly_the_hires_steps(steps, denoise):
    # A1111 and ComfyUI count the hires steps that run; diffusers runs int(n x strength) of an n-step schedule.
    n = schedule_steps(steps, denoise)
    assert strength_steps(n, denoise) == steps and n >= steps
    assert n - 1 < steps or strength_steps(n - 1, denoise) < steps  # the shortest such schedule


@settings(max_examples=200, deadline=None)
@given(side=st.integers(8, 512).map(lambda n: n * 8), scale=st.one_of(st.floats(0, 6), st.just(float("nan"))),
       denoise=st.one_of(st.none(), st.floats(-1, 2)), steps=st.one_of(st.none(), st.integers(-2, 600)))
def test_any_hires_request_resolves_to_valid_sizes_or_one_line(side, scale, denoise, steps):
    from sdxl_nb.config.hires import resolve_hires

    try:
        fix = resolve_hires(scale, steps, denoise, None, mode="txt2img", width=side, height=64, base_steps=4)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert fix.width % 8 == 0 and fix.height % 8 == 0 and max(fix.width, fix.height) <= 4096
    assert fix.width >= side and 0 < fix.denoise <= 1 and 1 <= fix.schedule_steps <= 1000


def test_lint_warns_of_low_denoise_latent_upscales():
    from sdxl_nb.request.lint import lint

    assert any("latent upscales stay blurry" in w for w in lint(resolved(hires_scale=2, hires_denoise=0.3)))
    assert not any("blurry" in w for w in lint(resolved(hires_scale=2, hires_denoise=0.3, hires_upscaler="Lanczos")))


def test_the_memory_check_sizes_the_second_pass():
    from pathlib import Path

    from sdxl_nb.request.preflight import memory_check

    facts = {"component_bytes": {"unet": 10}, "dtype": "float32", "vae_force_upcast": False, "free_bytes": 2**40,
             "in_use_bytes": 0}
    plain = memory_check(resolved(), facts, images_at_once=1, device_name="cpu", folder=Path("/nonexistent"))
    hires = memory_check(resolved(**HIRES), facts, images_at_once=1, device_name="cpu", folder=Path("/nonexistent"))
    assert hires.suggestion[:2] == (128, 128) and plain.suggestion[:2] == (64, 64)
    assert hires.estimate.peak_bytes > plain.estimate.peak_bytes


# ---- upscaler models ----
def test_upscalers_are_listed_and_bad_files_named_in_one_line(upscalers, capsys):
    from sdxl_nb.backends.local.upscale import load_upscaler
    from sdxl_nb.config.upscalers import find_upscaler

    assert main(["upscalers", "--check", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["Latent"]["kind"] == "latent" and rows["Lanczos"]["kind"] == "pixel"
    assert rows["tiny-compact"]["architecture"] == "RealESRGAN Compact x2"
    assert rows["tiny-compact-x4"]["architecture"] == "RealESRGAN Compact x4"
    assert rows["tiny-esrgan"]["architecture"] == "ESRGAN x4"
    for name in ("garbage", "unknown"):
        assert f"upscaler {name!r}" in rows[name]["problem"] and str(upscalers) in rows[name]["problem"]
        with pytest.raises(InputError, match=f"upscaler '{name}' .* is not an upscaler model spandrel recognises"):
            load_upscaler(find_upscaler(name))


@pytest.mark.parametrize("tile", [8, 13, 32])
def test_tiling_matches_the_untiled_model_within_float_rounding(upscalers, tile):
    import torch

    from sdxl_nb.backends.local.upscale import load_upscaler, run_tiled
    from sdxl_nb.config.upscalers import find_upscaler

    model = load_upscaler(find_upscaler("tiny-compact"))
    pixels_in = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model(pixels_in)
    tiled = run_tiled(model, pixels_in, tile=tile, overlap=RECEPTIVE_RADIUS)
    # With the overlap at the receptive radius every output pixel sees the same inputs: equal up to rounding.
    assert tiled.shape == whole.shape == (1, 3, 80, 112)
    assert float((tiled - whole).abs().max()) <= 1e-5
    cut = run_tiled(model, pixels_in, tile=tile, overlap=0)  # no context: the seams differ (the test can fail)
    assert float((cut - whole).abs().max()) > 1e-4


def test_upscale_to_runs_the_model_then_lanczos_to_the_exact_size(upscalers):
    from sdxl_nb.backends.local.upscale import upscale_to
    from sdxl_nb.config.upscalers import find_upscaler

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    # x2 twice reaches 128x96, then Lanczos to 100x72 (A1111's rule: upscale until large enough, then resize).
    assert upscale_to(image, find_upscaler("tiny-compact"), (100, 72)).size == (100, 72)
    assert upscale_to(image, find_upscaler("Lanczos"), (64, 48)).size == (64, 48)


# ---- the engine ----
@pytest.mark.parametrize("upscaler", ["Latent", "Latent (nearest-exact)", "Lanczos", "tiny-compact", "tiny-esrgan"])
def test_hires_jobs_run_record_and_rerun_bit_exact(run, engine, upscalers, tmp_path, upscaler):
    folder = tmp_path / "jobs"
    plain = run(prompt="a fox", out_dir=tmp_path / "plain")
    result = run(prompt="a fox", batch=2, hires_upscaler=upscaler, out_dir=folder, **HIRES)
    assert result.status == "ok" and [image.size for image in result.images] == [(128, 128)] * 2
    record = result.record
    assert (record["width"], record["height"]) == (64, 64)  # the first pass's size, as A1111's Size
    check_schema(record)
    hires = record["hires"]
    assert (hires["scale"], hires["steps"], hires["denoise"], hires["width"], hires["height"]) == (2, 2, 0.5, 128, 128)
    assert hires["first_pass"] == [64, 64] and hires["upscaler"]["name"] == upscaler
    if upscaler == "tiny-compact":
        from sdxl_nb.config.loras import file_sha256

        assert hires["upscaler"]["sha256"] == file_sha256(upscalers / "tiny-compact.safetensors")
    with Image.open(result.paths[0]) as image:
        params = parse_parameters(image.text["parameters"])
        assert json.loads(image.text["sdxl_nb"])["hires"] == hires
    assert params["Size"] == "64x64" and params["Hires upscale"] == "2" and params["Hires steps"] == "2"
    assert params["Hires upscaler"] == upscaler and params["Denoising strength"] == "0.5"
    first = np.asarray(plain.images[0].resize((128, 128), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(pixels(result.images[0]).astype(int) - first).mean() > 1  # the second pass changed the image
    records, _ = read_logged_records(folder)
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT] * 2
    report = run_audit(folder)
    assert report.problems() == []
    assert main(["verify", "--out", str(folder)]) == 0


def test_a1111_parameter_text_is_exact(run):
    steps = []
    result = run(prompt="a fox", hires_scale=1.5, hires_steps=3, hires_denoise=0.55, hires_upscaler="Lanczos",
                 on_progress=steps.append)
    # Progress counts both passes: the first pass's 2 steps, then the hires pass's 3.
    assert [(p["step"], p["total"]) for p in steps] == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    with Image.open(result.paths[0]) as image:
        text = image.text["parameters"]
    assert ", Size: 64x64, " in text and ", Denoising strength: 0.55, " in text
    assert ", Hires upscale: 1.5, Hires steps: 3, Hires upscaler: Lanczos, " in text
    assert result.images[0].size == (96, 96)


def test_a_changed_upscaler_model_refuses_the_rerun(run, engine, upscaler_dir, tmp_path, monkeypatch):
    folder = tmp_path / "changing"
    monkeypatch.setenv("SDXL_NB_UPSCALERS", str(folder))
    write_tiny_upscaler(folder / "changing.safetensors", seed=3)
    run(prompt="a fox", hires_upscaler="changing", out_dir=tmp_path / "jobs", **HIRES)
    write_tiny_upscaler(folder / "changing.safetensors", seed=4)
    records, _ = read_logged_records(tmp_path / "jobs")
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert "changed since the job" in table["note"][0]
    from sdxl_nb.audit import file_drift

    assert file_drift(records)[["kind", "name", "jobs"]].values.tolist() == [["upscaler", "changing", 1]]


def test_a_damaged_upscaler_model_is_refused_before_any_work(run, kernel_engine, upscalers, tmp_path, capsys):
    with pytest.raises(InputError, match="upscaler 'garbage' .* is not an upscaler model spandrel") as info:
        run(prompt="a fox", hires_upscaler="garbage", out_dir=tmp_path / "jobs", **HIRES)
    assert "\n" not in str(info.value) and not (tmp_path / "jobs").exists()  # nothing loaded, run or written
    capsys.readouterr()
    assert main(["generate", "--prompt", "a fox", "--width", "64", "--height", "64", "--hires-scale", "2",
                 "--hires-upscaler", "garbage", "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not an upscaler model" in err and not (tmp_path / "cli").exists()


# ---- the CLI ----
def test_cli_generate_with_hires(kernel_engine, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--width", "64", "--height", "64",
                 "--steps", "2", "--seed", "3", "--hires-scale", "2", "--hires-steps", "2", "--hires-denoise", "0.5",
                 "--hires-upscaler", "Latent (nearest-exact)", "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["hires"]["upscaler"]["method"] == "nearest-exact"
    assert Image.open(out / record["images"][0]["path"]).size == (128, 128)
    assert main(["generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--width", "64", "--height", "64",
                 "--hires-scale", "2", "--dry-run"]) == 0
    assert "then hires fix: Latent x2 to 128x128" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--hires-scale", "1.3"], "hires size 83x83"),
    (["--hires-steps", "4"], "hires steps needs a hires scale"),
    (["--hires-scale", "2", "--hires-upscaler", "nope"], "unknown upscaler 'nope'"),
    (["--hires-scale", "2", "--hires-denoise", "2"], "hires denoise 2 is out of range"),
    (["--hires-scale", "x"], "argument --hires-scale: invalid float value"),
])
def test_cli_bad_hires_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) if args[-1] == "x" else _no_raise() as _:
        code = main(["generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--width", "64", "--height", "64",
                     "--out", str(out), *args])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---- the lab form and the queue ----
def test_lab_form_queues_a_hires_job_and_reuse_fills_it_back(engine, tmp_path, upscalers):
    from tests.ui_helpers import lab_for, small_form

    lab = lab_for(engine, tmp_path / "out")
    form = lab.generate.form
    small_form(form, seed=5)
    assert form.sections["Hires fix"].widget.layout.display != "none"
    form.hires.enabled.value = True  # ticking it lists the upscalers again
    assert "tiny-compact" in form.hires.upscaler.options
    form.hires.scale.value, form.hires.steps.value, form.hires.denoise.value = 2.0, 2, 0.5
    form.hires.upscaler.value = "tiny-compact"
    lab.generate.generate.click()
    assert lab.generate.wait(120)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["status"] == "ok" and record["hires"]["upscaler"]["name"] == "tiny-compact"
    form.hires.enabled.value = False
    from sdxl_nb.record.png_params import read_png_parameters

    skipped = form.load(read_png_parameters(tmp_path / "out" / record["images"][0]["path"]).fields)
    assert skipped == [] and form.hires.enabled.value and form.hires.upscaler.value == "tiny-compact"
    form.mode.value = "img2img"
    assert form.sections["Hires fix"].widget.layout.display == "none"  # txt2img only, as in A1111


def test_queue_runs_hires_requests(engine, tmp_path):
    from sdxl_nb.jobs.queue import JobQueue

    queue = JobQueue(engine=engine, out_dir=tmp_path / "out")
    job = queue.submit(GenerationRequest(prompt="a fox", model="tiny-sdxl", seed=2, **SMALL, **HIRES))
    assert queue.wait_idle(120) and job.status == "ok"
    assert job.result.images[0].size == (128, 128)
    with pytest.raises(InputError, match="hires size"):
        queue.submit(GenerationRequest(prompt="a fox", model="tiny-sdxl", seed=2, **SMALL, hires_scale=1.1))


# ---- ComfyUI ----
def test_comfy_export_cli_writes_the_hires_graph(upscalers, capsys):
    assert main(["comfy-export", "--prompt", "a fox", "--model", "tiny-sdxl", "--width", "64", "--height", "64",
                 "--steps", "2", "--seed", "1", "--hires-scale", "2", "--hires-upscaler", "tiny-compact"]) == 0
    graph = json.loads(capsys.readouterr().out)
    graph = graph.get("prompt", graph)
    classes = [node["class_type"] for node in graph.values()]
    assert "UpscaleModelLoader" in classes and classes.count("KSampler") == 2


def test_comfy_export_latent_and_model_graphs(upscalers):
    from sdxl_nb.backends.comfy.workflow import build_workflow

    latent = build_workflow(resolved(**HIRES)).graph
    classes = [node["class_type"] for node in latent.values()]
    assert classes.count("KSampler") == 2 and "LatentUpscaleBy" in classes
    up = next(n for n in latent.values() if n["class_type"] == "LatentUpscaleBy")["inputs"]
    assert (up["upscale_method"], up["scale_by"]) == ("bilinear", 2)
    second = [n for n in latent.values() if n["class_type"] == "KSampler"][1]["inputs"]
    assert (second["steps"], second["denoise"], second["latent_image"][0]) == (2, 0.5, next(
        k for k, n in latent.items() if n["class_type"] == "LatentUpscaleBy"))
    model = build_workflow(resolved(**HIRES, hires_upscaler="tiny-compact")).graph
    by_class = {node["class_type"]: node["inputs"] for node in model.values()}
    assert by_class["UpscaleModelLoader"]["model_name"] == "tiny-compact.safetensors"
    assert (by_class["ImageScale"]["width"], by_class["ImageScale"]["height"]) == (128, 128)
    assert {"ImageUpscaleWithModel", "VAEEncode"} <= set(by_class)


@pytest.mark.parametrize("upscaler", ["Latent", "tiny-compact"])
def test_comfy_backend_runs_hires_on_the_fake_server(upscalers, tmp_path, upscaler):
    from sdxl_nb.backends.comfy.backend import generate_remote
    from tests.fake_comfy import FakeComfy
    from tests.local_server import LocalServer

    fake = FakeComfy(upscale_models=["tiny-compact.safetensors"])
    with LocalServer(fake.app()) as server:
        result = generate_remote(url=server.url, checkpoint="sd_xl_base_1.0.safetensors", out_dir=tmp_path / "out",
                                 prompt="a fox", seed=4, hires_upscaler=upscaler, **SMALL, **HIRES)
    assert result.status == "ok" and result.images[0].size == (128, 128)
    assert result.record["hires"]["upscaler"]["name"] == upscaler
    if upscaler == "tiny-compact":  # a server without the upscaler file: one line before any work
        from sdxl_nb.errors import ModelUnavailableError

        fake = FakeComfy(upscale_models=[])
        with LocalServer(fake.app()) as server, pytest.raises(ModelUnavailableError, match="upscaler tiny-compact"
                                                              ".safetensors is not on the ComfyUI server"):
            generate_remote(url=server.url, checkpoint="sd_xl_base_1.0.safetensors", out_dir=tmp_path / "missing",
                            prompt="a fox", seed=4, hires_upscaler=upscaler, **SMALL, **HIRES)
        assert fake.prompts == {} and not (tmp_path / "missing").exists()


# ---- upscale jobs ----
def test_upscale_cli_records_its_own_job_and_reruns_bit_exact(kernel_engine, run, upscalers, tmp_path, capsys):
    from sdxl_nb.record.store import sha256_file

    folder = tmp_path / "jobs"
    source = run(prompt="a fox", out_dir=folder).paths[0]
    capsys.readouterr()
    assert main(["upscale", str(source), "--scale", "2", "--upscaler", "tiny-compact", "--out", str(folder),
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["mode"] == "upscale" and record["status"] == "ok"
    check_schema(record)
    assert record["model"] == {"id": "tiny-compact", "revision": record["upscale"]["upscaler"]["sha256"],
                               "source": "upscaler", "dtype": "float32", "vae": None}
    kept = folder / record["init_image"]["path"]
    assert kept.parent.name == "inputs" and record["init_image"]["sha256"] == sha256_file(source) == sha256_file(kept)
    assert (record["width"], record["height"], record["upscale"]["source_size"]) == (128, 128, [64, 64])
    with Image.open(folder / record["images"][0]["path"]) as image:
        assert image.size == (128, 128)
        assert image.text["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: tiny-compact"
        assert image.text["parameters"] == Image.open(source).text["parameters"]  # what made it stays with it
    from sdxl_nb.record.png_params import read_png_parameters

    read = read_png_parameters(folder / record["images"][0]["path"])  # PNG Info / Reuse: what made the source
    assert read.fields["prompt"] == "a fox" and read.fields["seed"] == 1 and read.fields["width"] == 64
    assert read.unmapped["upscale"].startswith("upscaled x2 with tiny-compact to 128x128")
    assert read.record["mode"] == "upscale"
    assert main(["upscale", str(source), "--scale", "1.3", "--out", str(folder), "--json"]) == 0  # Lanczos
    odd = json.loads(capsys.readouterr().out)
    assert (odd["width"], odd["upscale"]["upscaler"]["name"]) == (83, "Lanczos")  # any size: no latents here
    check_schema(odd)
    assert main(["audit", str(folder), "--rerun", "all"]) == 0
    out = capsys.readouterr().out
    assert "3 bit-exact" in out and "RESULT: intact and bit-exact" in out and "preset(s) changed" in out
    assert "0 preset(s) changed" in out
    assert main(["verify", "--out", str(folder)]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--scale", "1"], "scale 1 is out of range; accepted: greater than 1, at most 8"),
    (["--upscaler", "Latent"], "upscaler 'Latent' works on latents during a generation"),
    (["--upscaler", "garbage"], "upscaler 'garbage' .* is not an upscaler model spandrel recognises"),
    (["--scale", "200"], "scale 200 is out of range"),
])
def test_upscale_bad_input_exits_2_with_one_line_and_writes_nothing(upscalers, tmp_path, capsys, args, message):
    import re

    Image.new("RGB", (32, 32), "gray").save(tmp_path / "in.png")
    out = tmp_path / "never"
    code = main(["upscale", str(tmp_path / "in.png"), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err) and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["upscale", str(tmp_path / "missing.png"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()


def test_gallery_upscale_action_queues_an_upscale_job(engine, tmp_path, upscalers):
    from tests.ui_helpers import gallery_images, lab_for, small_form

    lab = lab_for(engine, tmp_path / "out")
    panel = lab.generate
    small_form(panel.form, seed=5)
    panel.generate.click()
    assert panel.wait(120)
    panel.form.hires.refresh()
    panel.form.hires.upscaler.value = "tiny-compact"
    cell = panel.results.gallery.children[0]
    (action,) = [b for row in cell.children[2:] for b in row.children if "sdxl-action-upscale" in b._dom_classes]
    action.click()
    assert "upscale 2x with tiny-compact queued" in panel.results.images.note.value
    assert lab.queue.wait_idle(120)
    records = read_records(tmp_path / "out" / "jobs.log")
    assert [r["mode"] for r in records] == ["txt2img", "upscale"] and records[1]["status"] == "ok"
    assert [image.size for image, _ in gallery_images(panel)] == [(128, 128)]


# ---- other backends ----
def test_replicas_run_hires_and_the_audit_reruns_it_bit_exact(engine, tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.replicas import ReplicaEngine
    from sdxl_nb.jobs.generate import generate

    replicas = ReplicaEngine(engines=[engine, Engine(device="cpu")])
    out = tmp_path / "out"
    result = generate(prompt="a fox", batch=3, seed=8, out_dir=out, engine=replicas, hires_upscaler="Lanczos",
                      **SMALL, **HIRES)
    assert result.status == "ok" and [image.size for image in result.images] == [(128, 128)] * 3
    check_schema(result.record)
    report = run_audit(out, rerun="all", engine=engine)
    assert report.ok, report.problems()
    assert list(report.reruns["verdict"]) == [BIT_EXACT] * 3


def test_a_backend_without_hires_refuses_it_in_one_line(tmp_path):
    from sdxl_nb.backends.base import Capabilities, RunPlan, check_plan

    class NoHires:
        name, capabilities = "plain", Capabilities()

    with pytest.raises(InputError, match=r"the plain backend cannot run hires fix \(a second, upscaled pass\)"):
        check_plan(NoHires(), RunPlan.for_request(resolved(**HIRES)))
    check_plan(NoHires(), RunPlan.for_request(resolved()))


def test_a1111_hires_parameters_are_read_back_as_request_fields(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    from sdxl_nb.record.png_params import read_png_parameters

    info = PngInfo()
    info.add_text("parameters", "a fox\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 512x768, "
                                "Denoising strength: 0.45, Hires upscale: 1.5, Hires steps: 12, "
                                "Hires upscaler: Latent (nearest-exact), Version: v1.10.1")
    Image.new("RGB", (8, 8)).save(tmp_path / "a1111.png", pnginfo=info)
    fields = read_png_parameters(tmp_path / "a1111.png").fields
    assert (fields["width"], fields["height"]) == (512, 768)
    assert (fields["hires_scale"], fields["hires_steps"], fields["hires_denoise"], fields["hires_upscaler"]) == (
        1.5, 12, 0.45, "Latent (nearest-exact)")


def test_a_stop_in_the_hires_pass_discards_that_chunk_and_keeps_the_finished_ones(run):
    steps = []
    # Chunks of one image: the first finishes both passes; the stop comes in the second image's hires pass.
    result = run(prompt="a (fox:1.2)", batch=2, chunk_size=1, on_progress=steps.append,
                 should_stop=lambda: len(steps) >= 7, **HIRES)
    record = result.record
    assert record["status"] == "interrupted" and [image["index"] for image in record["images"]] == [0]
    assert result.images[0].size == (128, 128)
    # Steps count on through both passes: the first pass's 2, then the hires pass's first.
    assert any("stopped at step 3 of chunk 2" in event for event in record["events"]), record["events"]


def test_a_sweep_varies_the_hires_denoise(kernel_engine, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--x", "hires_denoise=0.4,0.8", "--prompt", "a fox", "--model", "tiny-sdxl", "--width", "64",
                 "--height", "64", "--steps", "2", "--seed", "4", "--hires-scale", "2", "--hires-steps", "2",
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [job["hires"]["denoise"] for job in result["jobs"]] == [0.4, 0.8]
    assert Image.open(result["grid"]).width > 2 * 128  # two 128 px cells and their labels
