"""Base + refiner: the embedded tiny refiner, the hand-off at a switch point in every mode, shared modules, records,
PNG parameters, the ComfyUI graph, the lab form and queue, and bit-exact re-run audits."""

import dataclasses
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import find_model, model_presets, refiner_ids
from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
from sdxl_nb.errors import InputError
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import PYTHON, REPO, SMALL, pixels, python_env

REFINER = TINY_REFINER_ID


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refiner-inputs")
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return {"txt2img": {}, "img2img": {"init_image": str(folder / "init.png"), "strength": 0.9},
            "inpaint": {"init_image": str(folder / "init.png"), "mask_image": str(folder / "mask.png"),
                        "strength": 0.9}}


def test_the_tiny_refiner_is_listed_as_a_refiner_and_never_as_a_base():
    presets = load_presets()
    table = model_presets(presets)
    assert REFINER in refiner_ids(table) and "tiny-sdxl" not in refiner_ids(table)
    assert find_model(REFINER, presets).available
    with pytest.raises(InputError, match="is a refiner") as caught:
        prepare(GenerationRequest(prompt="x", model=REFINER))
    assert "\n" not in str(caught.value) and "tiny-sdxl" in str(caught.value)


def test_the_tiny_refiner_has_the_refiner_architecture():
    from sdxl_nb.config.tiny_refiner import ensure_tiny_refiner

    folder = ensure_tiny_refiner()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLImg2ImgPipeline"
    assert index["text_encoder"] == [None, None] and index["tokenizer"] == [None, None]
    assert index["requires_aesthetics_score"] is True
    unet = json.loads((folder / "unet" / "config.json").read_text())
    # Five time ids (size, crop, aesthetic score) x 8 + the second encoder's pooled width 32; cross-attention on
    # the second encoder alone.
    assert unet["projection_class_embeddings_input_dim"] == 5 * 8 + 32 and unet["cross_attention_dim"] == 32


def test_the_tiny_refiner_builds_deterministically_with_tiny_sdxls_vae_and_second_encoder(tmp_path):
    import hashlib

    from sdxl_nb.config.tiny import content_revision, ensure_tiny_model
    from sdxl_nb.config.tiny_refiner import ensure_tiny_refiner

    first, second = ensure_tiny_refiner(tmp_path / "a"), ensure_tiny_refiner(tmp_path / "b")
    assert content_revision(first) == content_revision(second)
    base = ensure_tiny_model()

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    for name in ("vae/diffusion_pytorch_model.safetensors", "text_encoder_2/model.safetensors"):
        assert digest(first / name) == digest(base / name), name
    assert digest(first / "unet/diffusion_pytorch_model.safetensors") != digest(
        base / "unet/diffusion_pytorch_model.safetensors")


@pytest.mark.parametrize("fields, message", [
    ({"refiner": "no/such"}, "unknown refiner 'no/such'; accepted: tiny-sdxl-refiner"),
    ({"refiner": "tiny-sdxl"}, "unknown refiner 'tiny-sdxl'"),
    ({"refiner": REFINER, "refiner_switch": 0}, "refiner switch 0 is out of range; accepted: greater than 0, at most 1"),
    ({"refiner": REFINER, "refiner_switch": 1.5}, "refiner switch 1.5 is out of range"),
    ({"refiner": REFINER, "refiner_switch": float("nan")}, "refiner switch must be a number"),
    ({"refiner_switch": 0.5}, "refiner switch needs a refiner"),
])
def test_bad_refiner_settings_are_one_line(fields, message):
    with pytest.raises(InputError) as caught:
        prepare(GenerationRequest(prompt="x", **SMALL, **fields))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_img2img_whose_strength_starts_after_the_switch_is_refused(inputs):
    with pytest.raises(InputError, match="strength 0.1 starts after the refiner switch 0.8"):
        prepare(GenerationRequest(prompt="x", width=64, height=64, steps=20, init_image=inputs["img2img"]["init_image"],
                                  strength=0.1, refiner=REFINER))


def test_the_switch_defaults_to_a1111s_and_is_said():
    r = prepare(GenerationRequest(prompt="x", **SMALL, refiner=REFINER))
    assert r.refiner.id == REFINER and r.refiner_switch == 0.8
    assert "refiner switch 0.8 (lab default)" in r.notes


def test_the_refiner_shares_the_base_vae_and_second_text_encoder(engine):
    from sdxl_nb.backends.local.refiner import load_refiner

    presets = load_presets()
    loaded = engine.load(find_model("tiny-sdxl", presets))
    before = {name: {id(p) for p in getattr(loaded.pipe, name).parameters()} for name in ("vae", "text_encoder_2")}
    refiner = load_refiner(engine, loaded, find_model(REFINER, presets))
    assert refiner.shared == ("text_encoder_2", "vae")
    assert refiner.pipe.vae is loaded.pipe.vae and refiner.pipe.text_encoder_2 is loaded.pipe.text_encoder_2
    assert refiner.pipe.unet is not loaded.pipe.unet and refiner.pipe.text_encoder is None
    assert {name: {id(p) for p in getattr(loaded.pipe, name).parameters()} for name in before} == before
    assert refiner.pipe.vae.dtype == refiner.pipe.unet.dtype == loaded.pipe.unet.dtype
    unet_bytes = sum(t.numel() * t.element_size() for t in [*refiner.pipe.unet.parameters(), *refiner.pipe.unet.buffers()])
    assert refiner.extra_bytes == unet_bytes  # the shared VAE and text encoder cost nothing
    assert load_refiner(engine, loaded, find_model(REFINER, presets)) is refiner  # loaded once
    inpaint = refiner.pipeline("inpaint")
    assert inpaint.unet is refiner.pipe.unet and inpaint.vae is loaded.pipe.vae


def test_a_refiner_with_another_vae_loads_its_own(engine, tmp_path, monkeypatch):
    from sdxl_nb.backends.local import refiner as module
    from sdxl_nb.config.tiny_refiner import ensure_tiny_refiner

    folder = tmp_path / "refiner"
    shutil.copytree(ensure_tiny_refiner(), folder)
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file, save_file

    tensors = load_file(vae)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1
    save_file(tensors, vae)
    monkeypatch.setattr(module, "embedded_refiner_folder", lambda _id: folder)
    presets = load_presets()
    loaded = engine.load(find_model("tiny-sdxl", presets))
    loaded.refiners.pop(REFINER, None)
    own_vae = loaded.vae
    try:
        refiner = module.load_refiner(engine, loaded, find_model(REFINER, presets))
        assert refiner.shared == ("text_encoder_2",) and refiner.pipe.vae is not loaded.pipe.vae
        assert refiner.pipe.vae.dtype == loaded.pipe.vae.dtype
        # A base running a dedicated VAE (the fp16 fix) decodes the refiner's latents with it too.
        loaded.refiners.pop(REFINER)
        loaded.vae = {"id": "madebyollin/sdxl-vae-fp16-fix", "revision": "r"}
        refiner = module.load_refiner(engine, loaded, find_model(REFINER, presets))
        assert refiner.shared == ("text_encoder_2", "vae") and refiner.pipe.vae is loaded.pipe.vae
    finally:
        loaded.refiners.pop(REFINER, None)
        loaded.vae = own_vae


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_refiner_hand_off_at_05_08_and_10(run, tmp_path, inputs, mode):
    fields = dict(prompt="a fox", steps=4, seed=7, **inputs[mode])
    plain = run(**fields, out_dir=tmp_path / "plain")
    results = {switch: run(**fields, refiner=REFINER, refiner_switch=switch, out_dir=tmp_path / str(switch))
               for switch in (0.5, 0.8, 1.0)}
    # switch 1.0: the refiner does not run (nor load), bit for bit the base alone.
    assert np.array_equal(pixels(results[1.0].images[0]), pixels(plain.images[0]))
    assert not any(e.startswith("refiner ") for e in results[1.0].record["events"])
    assert results[1.0].record["refiner"]["switch"] == 1.0
    for switch in (0.5, 0.8):
        record = results[switch].record
        assert record["status"] == "ok" and record["mode"] == mode
        assert record["refiner"]["id"] == REFINER and record["refiner"]["switch"] == switch
        assert record["refiner"]["revision"] and not np.array_equal(pixels(results[switch].images[0]),
                                                                    pixels(plain.images[0]))
        assert any(e.startswith(f"refiner {REFINER}: base") for e in record["events"])
    assert not np.array_equal(pixels(results[0.5].images[0]), pixels(results[0.8].images[0]))
    again = run(**fields, refiner=REFINER, refiner_switch=0.5, out_dir=tmp_path / "again")
    assert np.array_equal(pixels(again.images[0]), pixels(results[0.5].images[0]))


def test_progress_counts_both_models_steps(run):
    seen = []
    run(prompt="steps", steps=4, refiner=REFINER, refiner_switch=0.5, on_progress=seen.append)
    assert [p["step"] for p in seen] == [1, 2, 3, 4] and {p["total"] for p in seen} == {4}


def test_png_parameters_name_the_refiner_as_a1111_does(run):
    result = run(prompt="png", refiner=REFINER, refiner_switch=0.8)
    with Image.open(result.paths[0]) as image:
        text = image.text["parameters"]
    assert f"Refiner: {REFINER}, Refiner switch at: 0.8" in text
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(json.dumps(result.record)), schema, format_checker=jsonschema.FormatChecker())
    with pytest.raises(jsonschema.ValidationError):  # the schema knows the field: a switch of 0 is not one
        jsonschema.validate({**result.record, "refiner": {**result.record["refiner"], "switch": 0}}, schema)
    from sdxl_nb.record.png_params import read_png_parameters

    fields = read_png_parameters(result.paths[0]).fields
    assert fields["refiner"] == REFINER and fields["refiner_switch"] == 0.8


def test_refiner_fields_with_a_file_hash_and_from_a1111_text():
    from sdxl_nb.record.job_record import refiner_fields
    from sdxl_nb.record.png_params import read_png_parameters

    record = {"refiner": {"id": "stabilityai/stable-diffusion-xl-refiner-1.0", "revision": "x", "switch": 0.8,
                          "hash": "7440042bbdc8"}}
    assert refiner_fields(record) == {"Refiner": "stable-diffusion-xl-refiner-1.0 [7440042bbd]",
                                      "Refiner switch at": "0.8"}
    assert refiner_fields({"refiner": None}) == {}
    assert refiner_fields({"refiner": {**record["refiner"], "switch": 1.0}}) == {}  # never switched: as A1111
    text = ("a fox\nSteps: 30, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 1024x1024, "
            "Model: sd_xl_base_1.0, Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.7")
    info = Image.new("RGB", (8, 8))
    chunk = PngInfo()
    chunk.add_text("parameters", text)
    buffer = io.BytesIO()
    info.save(buffer, "PNG", pnginfo=chunk)
    fields = read_png_parameters(buffer.getvalue()).fields
    assert fields["refiner"] == "stabilityai/stable-diffusion-xl-refiner-1.0" and fields["refiner_switch"] == 0.7


@pytest.mark.parametrize("mode", ["txt2img", "img2img"])
def test_comfy_workflow_hands_off_between_two_advanced_samplers(inputs, mode):
    from sdxl_nb.backends.comfy.workflow import build_workflow

    r = prepare(GenerationRequest(prompt="a fox", negative_prompt="blur", steps=10, seed=3, width=64, height=64,
                                  refiner=REFINER, refiner_switch=0.8, **inputs[mode]))
    graph = build_workflow(r).graph
    samplers = [node for node in graph.values() if node["class_type"] == "KSamplerAdvanced"]
    assert len(samplers) == 2 and not any(node["class_type"] == "KSampler" for node in graph.values())
    base, refiner = (node["inputs"] for node in samplers)
    start = 0 if mode == "txt2img" else 1  # strength 0.9 of 10 steps: the last 9
    assert (base["start_at_step"], base["end_at_step"], base["return_with_leftover_noise"], base["add_noise"]) == (
        start, 8, "enable", "enable")
    assert (refiner["start_at_step"], refiner["end_at_step"], refiner["add_noise"]) == (8, 10000, "disable")
    assert refiner["latent_image"][0] in graph and graph[refiner["latent_image"][0]] is samplers[0]
    loader = graph[refiner["model"][0]]
    assert loader["class_type"] == "CheckpointLoaderSimple" and loader["inputs"]["ckpt_name"] == f"{REFINER}.safetensors"
    positive, negative = graph[refiner["positive"][0]], graph[refiner["negative"][0]]
    assert positive["class_type"] == negative["class_type"] == "CLIPTextEncodeSDXLRefiner"
    assert (positive["inputs"]["ascore"], negative["inputs"]["ascore"]) == (6.0, 2.5)
    assert positive["inputs"]["text"] == "a fox" and negative["inputs"]["text"] == "blur"
    assert positive["inputs"]["clip"] == [refiner["model"][0], 1]
    one = build_workflow(dataclasses.replace(r, refiner_switch=1.0)).graph  # switch 1: no refiner nodes
    assert not any(node["class_type"] == "CLIPTextEncodeSDXLRefiner" for node in one.values())


def test_comfy_backend_runs_a_refiner_workflow(tmp_path):
    from sdxl_nb.backends.comfy.backend import ComfyBackend, generate_remote
    from tests.fake_comfy import FakeComfy
    from tests.local_server import LocalServer

    fake = FakeComfy(checkpoints=("tiny-sdxl.safetensors", f"{REFINER}.safetensors"))
    with LocalServer(fake.app()) as server:
        backend = ComfyBackend(server.url, poll_interval_s=0.05)
        result = generate_remote(backend=backend, prompt="remote", **SMALL, seed=2, refiner=REFINER,
                                 refiner_switch=0.5, out_dir=tmp_path, model="tiny-sdxl")
    assert result.record["refiner"]["switch"] == 0.5 and result.status == "ok"
    (sent,) = fake.prompts.values()
    graph = sent["graph"]
    assert sum(node["class_type"] == "KSamplerAdvanced" for node in graph.values()) == 2
    assert backend.capabilities.refiner
    from sdxl_nb.errors import ModelUnavailableError

    fake = FakeComfy(checkpoints=("tiny-sdxl.safetensors",))  # the server lacks the refiner's checkpoint
    with LocalServer(fake.app()) as server, pytest.raises(ModelUnavailableError) as error:
        generate_remote(url=server.url, prompt="remote", **SMALL, seed=2, refiner=REFINER, refiner_switch=0.5,
                        out_dir=tmp_path / "missing", model="tiny-sdxl")
    assert f"refiner checkpoint {REFINER}.safetensors is not on the ComfyUI server" in str(error.value)
    assert "\n" not in str(error.value) and fake.prompts == {} and not (tmp_path / "missing").exists()


def test_capabilities_declare_the_refiner():
    from sdxl_nb.backends.base import Capabilities, RunPlan, check_plan
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.replicas import ReplicaEngine

    assert Engine.capabilities.refiner and ReplicaEngine.capabilities.refiner and not Capabilities().refiner
    r = prepare(GenerationRequest(prompt="x", **SMALL, refiner=REFINER))
    plan = RunPlan.for_request(r)
    assert "refiner" in plan.needs()

    class Plain:
        name, capabilities = "plain", Capabilities()

    with pytest.raises(InputError, match="cannot run a refiner model"):
        check_plan(Plain(), plan)


def test_audit_is_clean_and_rerun_is_bit_exact(run, tmp_path, inputs, engine):
    from sdxl_nb.analysis import read_logged_records
    from sdxl_nb.audit import BIT_EXACT, check_integrity, rerun_jobs, select_for_rerun

    out = tmp_path / "audited"
    for mode in ("txt2img", "img2img", "inpaint"):  # weighted prompts: the refiner's CLIP-G reads A1111's weights too
        run(prompt=f"(audit:1.2) {mode} BREAK more", steps=4, refiner=REFINER, refiner_switch=0.5, out_dir=out, **inputs[mode])
    records, problems = read_logged_records(out)
    assert problems == [] and check_integrity(records).ok
    for source in (inputs["inpaint"]["init_image"], inputs["inpaint"]["mask_image"]):
        Path(source).unlink()  # each job kept its own copy of its inputs: the re-run reads those
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert table["verdict"].tolist() == [BIT_EXACT] * 3, table["note"].tolist()
    assert (table["note"] == "").all()


def test_a_record_without_its_refiner_cannot_be_rerun(tmp_path):
    from sdxl_nb.audit.replay_request import ReplayError, recorded_refiner

    presets = load_presets()
    assert recorded_refiner({"refiner": None}, presets) == {}
    with pytest.raises(ReplayError, match="refiner 'gone/refiner' is not installed here"):
        recorded_refiner({"refiner": {"id": "gone/refiner", "revision": "x", "switch": 0.8}}, presets)
    with pytest.raises(ReplayError, match="has no id and switch"):
        recorded_refiner({"refiner": {"id": REFINER, "switch": 2}}, presets)


def test_the_lab_form_picks_a_refiner_and_the_queue_runs_it(engine, tmp_path):
    from sdxl_nb.record.joblog import read_records
    from tests.ui_helpers import lab_for, small_form

    lab = lab_for(engine, tmp_path / "out")
    assert REFINER not in lab.model.models  # never offered as a base
    form = lab.generate.form
    assert form.refiner_row in form.sections["Refiner"].widget.children and form.refiner_switch.disabled
    assert form.refiner.options[0] == ("none", "") and (REFINER, REFINER) in form.refiner.options
    gone = "stabilityai/stable-diffusion-xl-refiner-1.0"  # listed, marked: it is not in the test's empty cache
    assert (f"✗ {gone} (not available)", gone) in form.refiner.options
    assert "Refiner" not in lab.panels["Animate"].form.sections
    small_form(form, seed=4, steps=4)
    assert "refiner" not in form.fields()[0]
    form.refiner.value = REFINER
    form.refiner_switch.value = 0.5
    assert not form.refiner_switch.disabled
    assert form.fields()[0]["refiner"] == REFINER and form.fields()[0]["refiner_switch"] == 0.5
    lab.generate.generate.click()
    assert lab.generate.wait(120)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["status"] == "ok" and record["refiner"]["id"] == REFINER and record["refiner"]["switch"] == 0.5
    # Reusing its parameters fills the refiner back in; a refiner this lab lacks is said, not dropped silently.
    form.refiner.value = ""
    assert form.load({"refiner": REFINER, "refiner_switch": 0.7}) == []
    assert form.refiner.value == REFINER and form.refiner_switch.value == 0.7
    (skipped,) = form.load({"refiner": "gone/refiner"})
    assert "not one of this lab's refiners" in skipped and form.refiner.value == REFINER


def test_the_queue_refuses_a_bad_switch_before_queueing(engine, tmp_path):
    from sdxl_nb.jobs.queue import JobQueue

    queue = JobQueue(engine=engine, out_dir=tmp_path)
    with pytest.raises(InputError, match="refiner switch 2 is out of range"):
        queue.submit(GenerationRequest(prompt="x", **SMALL, refiner=REFINER, refiner_switch=2))
    from sdxl_nb.errors import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="refiner model 'stabilityai/stable-diffusion-xl-refiner-1.0' is not in"):
        queue.submit(GenerationRequest(prompt="x", **SMALL, refiner="stabilityai/stable-diffusion-xl-refiner-1.0"))
    assert not (tmp_path / "jobs.log").exists()


def test_replicas_run_the_refiner_like_one_engine(run, engine, tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.replicas import ReplicaEngine
    from sdxl_nb.jobs.generate import generate

    fields = dict(prompt="replicas", **SMALL, seed=9, batch=2, refiner=REFINER, refiner_switch=0.5)
    fields["steps"] = 4
    one = run(**fields, chunk_size=1)
    replicas = ReplicaEngine(engines=[engine, Engine(device="cpu")])
    two = generate(**fields, engine=replicas, out_dir=tmp_path / "replicas", chunk_size=1)
    assert two.record["refiner"] == one.record["refiner"]
    for a, b in zip(one.images, two.images, strict=True):
        assert np.array_equal(pixels(a), pixels(b))


@pytest.mark.slow
def test_cli_refiner_flags_and_one_line_errors(tmp_path):
    from sdxl_nb.record.joblog import read_records
    def cli(*args):
        return subprocess.run([PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "x", "--width", "64", "--height",
                               "64", "--steps", "4", "--seed", "1", *args], capture_output=True, text=True,
                              timeout=300, env=python_env())

    for args, message in ((["--refiner", "nope"], "unknown refiner 'nope'; accepted: tiny-sdxl-refiner"),
                          (["--refiner", REFINER, "--refiner-switch", "0"], "refiner switch 0.0 is out of range"),
                          (["--refiner-switch", "0.5"], "refiner switch needs a refiner"),
                          (["--model", REFINER], "is a refiner"),
                          (["--refiner", "stabilityai/stable-diffusion-xl-refiner-1.0"],
                           "refiner model 'stabilityai/stable-diffusion-xl-refiner-1.0' is not in the local Hugging")):
        out = tmp_path / "bad"
        result = cli("--out", str(out), *args)
        assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
        assert not out.exists()
    dry = cli("--refiner", REFINER, "--dry-run")
    assert dry.returncode == 0 and f"refiner {REFINER} from switch 0.8" in dry.stdout
    good = cli("--out", str(tmp_path / "good"), "--refiner", REFINER, "--refiner-switch", "0.8")
    assert good.returncode == 0, good.stderr
    (record,) = read_records(tmp_path / "good" / "jobs.log")
    assert record["refiner"]["id"] == REFINER and record["refiner"]["switch"] == 0.8
    audit = subprocess.run([PYTHON, "-m", "sdxl_nb", "audit", str(tmp_path / "good"), "--rerun", "all"],
                           capture_output=True, text=True, timeout=300, env=python_env())
    assert audit.returncode == 0 and "RESULT: intact and bit-exact" in audit.stdout, audit.stdout + audit.stderr
    verify = subprocess.run([PYTHON, "-m", "sdxl_nb", "verify", "--out", str(tmp_path / "good")], capture_output=True,
                            text=True, timeout=300, env=python_env())
    assert verify.returncode == 0 and verify.stdout.strip().endswith(": ok"), verify.stdout + verify.stderr


def test_the_refiner_reads_a1111_weights_on_its_second_encoder(engine):
    from sdxl_nb.backends.base import RunPlan
    from sdxl_nb.backends.local.refiner import RefinerStage, job_refiner

    presets = load_presets()
    loaded = engine.load(find_model("tiny-sdxl", presets))
    stages = {}
    for prompt in ("a fox", "a (fox:1.5)"):
        r = prepare(GenerationRequest(prompt=prompt, **SMALL, refiner=REFINER, refiner_switch=0.5))
        plan = RunPlan.for_request(r)
        stages[prompt] = RefinerStage(job_refiner(engine, loaded, r), r, lambda r=r: engine.make_scheduler(loaded, None, {}),
                                      plan.texts(), {})
    plain, weighted = stages["a fox"], stages["a (fox:1.5)"]
    assert not plain.weighted and weighted.weighted
    assert plain._conditioning(RunPlan.for_request(plain.r).images)["prompt"] == ["a fox"]  # a bare diffusers call
    embeds = weighted._conditioning(RunPlan.for_request(weighted.r).images)
    width = loaded.pipe.text_encoder_2.config.hidden_size  # CLIP-G alone, as the refiner's UNet reads it
    assert embeds["prompt_embeds"].shape[-1] == width and embeds["pooled_prompt_embeds"].shape == (1, width)
    unweighted = weighted.encoder.encode_one("a fox", 1, weighted.chunks).hidden
    assert not torch.equal(embeds["prompt_embeds"], unweighted)


def test_a_sweep_varies_the_refiner_switch_as_a1111s_xyz_plot_does():
    from sdxl_nb.jobs.sweep import parse_axis, plan_sweep

    plan = plan_sweep(GenerationRequest(prompt="x", **SMALL, refiner=REFINER), parse_axis("refiner_switch=0.5,0.8,1"))
    assert [cell.request.refiner_switch for cell in plan.cells] == [0.5, 0.8, 1.0]
    with pytest.raises(InputError, match="refiner switch 1.5 is out of range"):
        plan_sweep(GenerationRequest(prompt="x", **SMALL, refiner=REFINER), parse_axis("refiner_switch=0.5,1.5"))


def test_the_memory_check_counts_the_refiners_unet(engine, tmp_path):
    from sdxl_nb.backends.local.refiner import load_refiner
    from sdxl_nb.config.refiners import refiner_unet_bytes
    from sdxl_nb.request.preflight import memory_check

    presets = load_presets()
    loaded = engine.load(find_model("tiny-sdxl", presets))
    refiner = load_refiner(engine, loaded, find_model(REFINER, presets))
    assert refiner_unet_bytes(REFINER, "embedded", "float32") == pytest.approx(refiner.extra_bytes, rel=0.01)
    assert refiner_unet_bytes("gone/refiner", "hf", "float16") == 0
    facts = engine.memory_facts(loaded)
    plain = prepare(GenerationRequest(prompt="x", **SMALL))
    refined = prepare(GenerationRequest(prompt="x", **SMALL, refiner=REFINER, refiner_switch=0.5))
    unused = prepare(GenerationRequest(prompt="x", **SMALL, refiner=REFINER, refiner_switch=1))

    def peak(r):
        return memory_check(r, facts, images_at_once=1, device_name="cpu", folder=tmp_path).estimate.peak_bytes

    assert peak(refined) - peak(plain) == refiner_unet_bytes(REFINER, "embedded", "float32")
    assert peak(unused) == peak(plain)


def test_a_stop_during_the_refiners_steps_discards_the_unfinished_images(run, tmp_path):
    seen = []
    result = run(prompt="stop", steps=4, batch=2, chunk_size=1, refiner=REFINER, refiner_switch=0.5,
                 on_progress=seen.append, should_stop=lambda: any(p["step"] == 3 for p in seen))
    assert result.status == "interrupted" and result.images == []
    assert any("stopped at step 3 of chunk 1" in e for e in result.record["events"])


def test_a_comfy_graph_with_a_refiner_reads_back_as_one(inputs):
    from sdxl_nb.backends.comfy.workflow import build_workflow
    from sdxl_nb.record.png_params import read_png_parameters

    r = prepare(GenerationRequest(prompt="a fox", steps=10, seed=3, width=64, height=64, model="tiny-sdxl",
                                  refiner=REFINER, refiner_switch=0.8))
    chunk = PngInfo()
    chunk.add_text("prompt", json.dumps(build_workflow(r).graph))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=chunk)
    fields = read_png_parameters(buffer.getvalue()).fields
    assert (fields["model"], fields["refiner"], fields["refiner_switch"]) == ("tiny-sdxl", REFINER, 0.8)
    assert fields["prompt"] == "a fox" and fields["steps"] == 10
