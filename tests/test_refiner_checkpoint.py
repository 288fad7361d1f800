"""Single-file SDXL refiners (A1111's sd_xl_refiner_1.0.safetensors): recognised from the header, listed as refiners,
loaded offline with the bundled refiner configs, the same pixels as the diffusers folder, recorded with path and
hash, A1111's `Refiner: NAME [HASH]`, ComfyUI's file name, bit-exact re-runs, convert both ways, one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.cli import main
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import SMALL, pixels

NAME = "tiny-refiner-file"
FIELDS = dict(prompt="a fox (at dusk:1.2)", width=64, height=64, steps=4, seed=5)


pytestmark = pytest.mark.usefixtures("kernel_engine")  # the CLI runs on the session's engine


@pytest.fixture(scope="module")
def refiner_file(tmp_path_factory):
    """The tiny refiner written as one original-layout .safetensors file (by convert)."""
    from sdxl_nb.api import convert

    out = tmp_path_factory.mktemp("refiner-file") / f"{NAME}.safetensors"
    result = convert(TINY_REFINER_ID, out)
    assert result.kind == "checkpoint" and result.source == TINY_REFINER_ID
    return out


@pytest.fixture
def webui(refiner_file, tmp_path, monkeypatch):
    """An A1111 root holding the refiner file (in a sub-folder, as users sort them), named by SDXL_NB_CHECKPOINTS."""
    folder = tmp_path / "webui" / "models" / "Stable-diffusion"
    (folder / "sdxl").mkdir(parents=True)
    shutil.copy(refiner_file, folder / "sdxl" / refiner_file.name)
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(tmp_path / "webui"))
    return folder


def _info(model_id):
    from sdxl_nb.config.registry import find_model

    return find_model(model_id, load_presets())


# ---- the file ----
def test_the_file_has_the_refiner_layout_and_is_deterministic(refiner_file, tmp_path):
    from sdxl_nb.api import convert
    from sdxl_nb.config.safetensors_file import safetensors_header

    header = safetensors_header(refiner_file)
    text = [key for key in header if key.startswith("conditioner.")]
    # bigG alone, as the first embedder (OpenCLIP names), as sd_xl_refiner_1.0.safetensors holds it.
    assert text and all(key.startswith("conditioner.embedders.0.model.") for key in text)
    assert "conditioner.embedders.0.model.text_projection" in header
    assert header["model.diffusion_model.label_emb.0.0.weight"]["shape"][1] == 5 * 8 + 32  # five time ids of 8, pooled bigG 32
    again = convert(TINY_REFINER_ID, tmp_path / "again.safetensors")
    assert again.out != str(refiner_file) and (tmp_path / "again.safetensors").read_bytes() == refiner_file.read_bytes()


def test_the_bundled_refiner_configs_describe_sd_xl_refiner_1_0(tmp_path):
    from sdxl_nb.backends.local.checkpoint_load import config_for, expected_shapes
    from sdxl_nb.config.sdxl_refiner import ensure_sdxl_refiner_config
    from tests.test_checkpoints import _sparse_checkpoint

    bundled = ensure_sdxl_refiner_config()
    index = json.loads((bundled / "model_index.json").read_text(encoding="utf-8"))
    assert index["_class_name"] == "StableDiffusionXLImg2ImgPipeline" and index["requires_aesthetics_score"] is True
    assert index["text_encoder"] == [None, None] and (bundled / "tokenizer_2" / "vocab.json").is_file()
    shapes = expected_shapes(bundled)
    # The names and shapes of sd_xl_refiner_1.0.safetensors (384 channels, 4 levels, adm 2560, bigG first).
    for key, shape in {"model.diffusion_model.input_blocks.0.0.weight": [384, 4, 3, 3],
                       "model.diffusion_model.label_emb.0.0.weight": [1536, 2560],
                       "model.diffusion_model.input_blocks.4.1.transformer_blocks.3.attn2.to_k.weight": [768, 1280],
                       "first_stage_model.encoder.mid.attn_1.q.weight": [512, 512, 1, 1],
                       "conditioner.embedders.0.model.transformer.resblocks.31.attn.in_proj_weight": [3840, 1280],
                       "conditioner.embedders.0.model.text_projection": [1280, 1280]}.items():
        assert shapes[key] == shape, key
    assert not any(key.startswith("conditioner.embedders.1.") for key in shapes)
    path = tmp_path / "sd_xl_refiner_like.safetensors"
    _sparse_checkpoint(path, {**shapes, "conditioner.embedders.0.model.logit_scale": []})
    assert config_for(path, refiner=True) == bundled
    from sdxl_nb.config.checkpoints import looks_refiner, looks_tiny

    assert looks_refiner(path) and not looks_tiny(path)
    from sdxl_nb.config.checkpoints import checkpoint_from_path
    from sdxl_nb.config.registry import _checkpoint_preset

    preset = _checkpoint_preset(checkpoint_from_path(path), load_presets())
    assert preset.refiner and preset.heavy and preset.source == "checkpoint"


# ---- listing: a refiner, never a base ----
def test_listed_as_a_refiner_and_never_offered_or_accepted_as_a_base(webui, engine, tmp_path, capsys):
    from sdxl_nb.config.registry import base_model_ids, default_model_id, model_presets, refiner_ids

    info = _info(NAME)
    assert info.source == "checkpoint" and info.available and info.preset.refiner and not info.preset.heavy
    table = model_presets(load_presets())
    assert NAME in refiner_ids(table) and NAME not in base_model_ids(table)
    assert default_model_id(load_presets()) != NAME
    assert main(["models", "--json"]) == 0
    listed = {entry["id"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed[NAME]["role"] == "refiner"
    assert main(["models"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if NAME in line]
    assert line.lstrip().startswith("r")
    out = tmp_path / "as-base"
    assert main(["generate", "--prompt", "x", "--model", NAME, "--out", str(out), "--width", "64", "--height", "64",
                 "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a refiner" in err and not out.exists()
    from tests.ui_helpers import lab_for

    lab = lab_for(engine, tmp_path / "lab")
    assert NAME not in lab.model.models  # the lab's model picker: bases only
    assert (NAME, NAME) in lab.generate.form.refiner.options  # its refiner picker reads the registry


# ---- the same pixels as the folder, recorded as A1111 writes it ----
def test_the_file_draws_what_the_folder_draws_and_shares_the_base_modules(webui, run, engine, tmp_path):
    from sdxl_nb.backends.local.refiner import load_refiner

    from_file = run(**FIELDS, refiner=NAME, refiner_switch=0.5, out_dir=tmp_path / "file")
    from_folder = run(**FIELDS, refiner=TINY_REFINER_ID, refiner_switch=0.5, out_dir=tmp_path / "folder")
    plain = run(**FIELDS, out_dir=tmp_path / "plain")
    assert np.array_equal(pixels(from_file.images[0]), pixels(from_folder.images[0]))
    assert not np.array_equal(pixels(from_file.images[0]), pixels(plain.images[0]))
    loaded = engine.load(_info("tiny-sdxl"))
    refiner = load_refiner(engine, loaded, _info(NAME))
    assert set(refiner.shared) == {"vae", "text_encoder_2"}
    assert refiner.pipe.vae is loaded.pipe.vae and refiner.pipe.text_encoder_2 is loaded.pipe.text_encoder_2
    assert refiner.pipe.unet is not loaded.refiners[TINY_REFINER_ID].pipe.unet
    record = from_file.record
    path = webui / "sdxl" / f"{NAME}.safetensors"
    sha256 = _info(NAME).sha256
    split = {"by": "timestep", "pass": "first", "schedule_steps": 4, "start_step": 0, "base_steps": 2,
             "refiner_steps": 2, "switch_step": 2}
    assert record["refiner"] == {"id": NAME, "revision": sha256, "switch": 0.5, "switch_by": "timestep",
                                 "split": split, "path": str(path), "sha256": sha256, "hash": sha256[:10]}
    assert any(e.startswith(f"refiner {NAME}: base 2 step(s), refiner 2; shares") for e in record["events"])
    with Image.open(from_file.paths[0]) as image:
        text = image.text["parameters"]
    assert f"Refiner: {NAME} [{sha256[:10]}], Refiner switch at: 0.5" in text
    from sdxl_nb.record.png_params import read_png_parameters

    fields = read_png_parameters(from_file.paths[0]).fields
    assert fields["refiner"] == NAME and fields["refiner_switch"] == 0.5
    from sdxl_nb.record.png_params import _a1111

    renamed = text.replace(f"Refiner: {NAME} [", "Refiner: sd_xl_refiner_1.0_renamed [")
    assert _a1111(renamed, load_presets()).fields["refiner"] == NAME  # found by its short hash
    jsonschema = pytest.importorskip("jsonschema")
    from tests.conftest import REPO

    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(json.dumps(record)), schema, format_checker=jsonschema.FormatChecker())


def test_cli_api_and_queue_take_the_file_and_audit_reruns_bit_exact(webui, engine, tmp_path, capsys):
    from sdxl_nb.api import generate
    from sdxl_nb.jobs.queue import JobQueue

    out = tmp_path / "jobs"
    assert main(["generate", "--prompt", "an owl", "--refiner", NAME, "--refiner-switch", "0.5", "--out", str(out),
                 "--width", "64", "--height", "64", "--steps", "4", "--seed", "2"]) == 0
    api = generate(prompt="an owl", refiner=NAME, refiner_switch=0.75, engine=engine, out_dir=out, width=64, height=64,
                   steps=4, seed=3)
    queue = JobQueue(engine=engine, out_dir=out)
    job = queue.submit(GenerationRequest(prompt="an owl", **{**SMALL, "steps": 4}, seed=4, refiner=NAME,
                                         refiner_switch=0.5))
    assert queue.wait_idle(120) and job.status == "ok", job.error
    records = read_records(out / "jobs.log")
    assert [r["refiner"]["id"] for r in records] == [NAME] * 3 and api.record["refiner"]["switch"] == 0.75
    capsys.readouterr()
    assert main(["verify", "--out", str(out)]) == 0
    assert main(["audit", str(out), "--rerun", "all"]) == 0
    report = capsys.readouterr().out
    assert "RESULT: intact and bit-exact" in report, report


def test_a_refiner_file_that_changed_since_the_job_is_loaded_again_and_noted(webui, run, engine, tmp_path):
    from sdxl_nb.backends.local.replay import replay
    from sdxl_nb.jobs.convert import convert

    result = run(**FIELDS, refiner=NAME, refiner_switch=0.5, out_dir=tmp_path / "jobs")
    assert (pixels(replay(result.record, tmp_path / "jobs", engine).images[0]) == pixels(result.images[0])).all()
    target = webui / "sdxl" / f"{NAME}.safetensors"
    target.unlink()
    convert(TINY_REFINER_ID, target, dtype="bfloat16")  # same name, other bytes
    again = replay(result.record, tmp_path / "jobs", engine)  # as a changed base checkpoint: re-run, and say so
    (note,) = [n for n in again.notes if "changed since the job" in n]
    assert str(target) in note and "\n" not in note
    assert not (pixels(again.images[0]) == pixels(result.images[0])).all()  # the new bytes ran, not the kept ones
    later = run(**FIELDS, refiner=NAME, refiner_switch=0.5, out_dir=tmp_path / "later")
    assert later.record["refiner"]["sha256"] != result.record["refiner"]["sha256"]
    assert (pixels(later.images[0]) == pixels(again.images[0])).all()  # a job records and runs the file it found


# ---- files that cannot be this refiner: one line, exit 2, nothing written ----
def test_a_truncated_refiner_or_a_base_file_as_refiner_is_one_line(webui, refiner_file, tmp_path, capsys):
    from sdxl_nb.api import convert

    cut = webui / "cut-refiner.safetensors"
    cut.write_bytes(refiner_file.read_bytes()[: refiner_file.stat().st_size // 2])
    convert("tiny-sdxl", webui / "a-base.safetensors")
    assert _info("cut-refiner").preset.refiner and not _info("cut-refiner").available
    for name, message in (("cut-refiner", "is truncated"), ("a-base", "unknown refiner 'a-base'")):
        out = tmp_path / f"out-{name}"
        assert main(["generate", "--prompt", "x", "--refiner", name, "--out", str(out), "--width", "64", "--height",
                     "64", "--steps", "4"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and not out.exists(), err
    assert "cut-refiner.safetensors" in str(_info("cut-refiner").reason)
    from sdxl_nb.backends.local.checkpoint_load import load_refiner_checkpoint
    from sdxl_nb.errors import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="is not an SDXL refiner"):
        load_refiner_checkpoint(webui / "a-base.safetensors", None)


# ---- ComfyUI: the refiner's CheckpointLoaderSimple names the file as ComfyUI lists it ----
def test_comfy_export_names_the_refiner_file(webui, tmp_path):
    out = tmp_path / "wf.json"
    assert main(["comfy-export", "--prompt", "a fox", "--refiner", NAME, "--refiner-switch", "0.5", "-o", str(out)]) == 0
    graph = json.loads(out.read_text(encoding="utf-8"))
    names = [node["inputs"]["ckpt_name"] for node in graph.values() if node["class_type"] == "CheckpointLoaderSimple"]
    assert f"sdxl/{NAME}.safetensors" in names and len(names) == 2


def test_the_comfy_backend_sends_the_refiner_file_and_records_it(webui, tmp_path):
    from sdxl_nb.backends.comfy.backend import generate_remote
    from tests.fake_comfy import FakeComfy
    from tests.local_server import LocalServer

    name = f"sdxl/{NAME}.safetensors"
    fake = FakeComfy(checkpoints=("tiny-sdxl.safetensors", name))
    with LocalServer(fake.app()) as server:
        result = generate_remote(url=server.url, prompt="remote", **SMALL, seed=2, refiner=NAME, refiner_switch=0.5,
                                 out_dir=tmp_path / "out", model="tiny-sdxl")
    assert result.status == "ok" and result.record["refiner"]["sha256"] == _info(NAME).sha256
    (sent,) = fake.prompts.values()
    assert name in [node["inputs"]["ckpt_name"] for node in sent["graph"].values()
                    if node["class_type"] == "CheckpointLoaderSimple"]


# ---- convert both ways ----
def test_convert_the_file_to_a_diffusers_folder_and_back(refiner_file, tmp_path):
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from sdxl_nb.api import convert
    from sdxl_nb.backends.local.refiner import same_tensors
    from sdxl_nb.config.tiny_refiner import ensure_tiny_refiner

    folder = convert(str(refiner_file), tmp_path / "as-folder")
    assert folder.kind == "diffusers"
    mine = StableDiffusionXLImg2ImgPipeline.from_pretrained(folder.out, torch_dtype=torch.float32)
    theirs = StableDiffusionXLImg2ImgPipeline.from_pretrained(ensure_tiny_refiner(), torch_dtype=torch.float32)
    assert mine.config.requires_aesthetics_score and mine.text_encoder is None
    for name in ("unet", "vae", "text_encoder_2"):
        assert same_tensors(getattr(mine, name), getattr(theirs, name)), name
    back = convert(str(refiner_file), tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes()[8:] != b"" and back.sha256
    from safetensors import safe_open

    with safe_open(back.out, "pt") as a, safe_open(str(refiner_file), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())


def test_the_memory_check_counts_the_files_unet(webui):
    from sdxl_nb.config.refiners import refiner_unet_bytes
    from sdxl_nb.config.safetensors_file import safetensors_header

    header = safetensors_header(webui / "sdxl" / f"{NAME}.safetensors")
    unet = sum(np.prod(e["shape"]) for k, e in header.items() if k.startswith("model.diffusion_model."))
    assert refiner_unet_bytes(NAME, "checkpoint", "float32") == unet * 4
    assert refiner_unet_bytes(NAME, "checkpoint", "float16") == unet * 2


def test_the_bad_refiner_request_from_the_queue_is_refused_before_queueing(webui, engine, tmp_path):
    from sdxl_nb.jobs.queue import JobQueue

    queue = JobQueue(engine=engine, out_dir=tmp_path)
    with pytest.raises(InputError, match="unknown refiner 'tiny-sdxl'"):
        queue.submit(GenerationRequest(prompt="x", **SMALL, refiner="tiny-sdxl"))
    assert not (tmp_path / "jobs.log").exists()


def test_the_refiner_unet_layout_maps_to_names_diffusers_reads_back():
    """sd_xl_refiner's 4 levels (attention in the middle two): its original names through the config-driven map,
    and diffusers' own single-file reader gives every key back."""
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    from sdxl_nb.backends.local.checkpoint_keys import UNET_PREFIX, unet_key_map
    from sdxl_nb.config.sdxl_refiner import CONFIGS

    config = {k: v for k, v in CONFIGS["unet/config.json"].items() if not k.startswith("_")}
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    state = unet.state_dict()
    original = {UNET_PREFIX + v: k for k, v in unet_key_map(dict(unet.config), state).items()}
    for name in ("input_blocks.9.0.op.weight", "input_blocks.11.0.in_layers.0.weight", "output_blocks.2.1.conv.weight",
                 "output_blocks.5.2.conv.weight", "output_blocks.8.2.conv.weight",
                 "middle_block.1.transformer_blocks.3.attn2.to_k.weight", "label_emb.0.0.weight"):
        assert UNET_PREFIX + name in original, name
    back = convert_ldm_unet_checkpoint({k: k for k in original}, dict(unet.config))
    assert back == {diffusers_key: original_key for original_key, diffusers_key in original.items()}


@pytest.mark.slow
def test_a_full_size_refiner_file_loads_offline_with_the_bundled_configs(tmp_path):
    """sd_xl_refiner_1.0's layout (a sparse file of zeros: no disk, pages shared) loads as an img2img refiner with
    SDXL refiner 1.0's sizes, with an empty Hugging Face cache and no network."""
    import torch

    from sdxl_nb.backends.local.checkpoint_load import expected_shapes, load_refiner_checkpoint
    from sdxl_nb.config.sdxl_refiner import ensure_sdxl_refiner_config
    from tests.test_checkpoints import _sparse_checkpoint

    path = tmp_path / "sd_xl_refiner_1.0.safetensors"
    _sparse_checkpoint(path, expected_shapes(ensure_sdxl_refiner_config()))
    pipe = load_refiner_checkpoint(path, torch.float16)
    counts = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in ("unet", "vae", "text_encoder_2")}
    assert counts == {"unet": 2_259_526_660, "vae": 83_653_863, "text_encoder_2": 694_659_840}
    assert pipe.text_encoder is None and pipe.config.requires_aesthetics_score
    assert pipe.tokenizer_2("a fox").input_ids == [49406, 320, 3240, 49407]
    del pipe
    path.unlink()


def test_a_single_file_base_takes_either_refiner_and_shares_its_modules(refiner_file, tmp_path, monkeypatch, run):
    """A checkpoint base (tiny-sdxl as one file) with the refiner folder or the refiner file: the VAE and text
    encoder are the base's own objects (compared weight by weight), the pixels those of tiny-sdxl + refiner."""
    from sdxl_nb.api import convert

    folder = tmp_path / "ckpts"
    folder.mkdir()
    shutil.copy(refiner_file, folder / refiner_file.name)
    convert("tiny-sdxl", folder / "tiny-base-file.safetensors")
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(folder))
    reference = run(**FIELDS, refiner=TINY_REFINER_ID, refiner_switch=0.5, out_dir=tmp_path / "reference")
    for refiner in (TINY_REFINER_ID, NAME):
        result = run(**FIELDS, model="tiny-base-file", refiner=refiner, refiner_switch=0.5, out_dir=tmp_path / refiner)
        assert np.array_equal(pixels(result.images[0]), pixels(reference.images[0])), refiner
        (event,) = [e for e in result.record["events"] if e.startswith(f"refiner {refiner}: ")]
        assert "shares vae, text_encoder_2 with the base" in event or "shares text_encoder_2, vae" in event, event
