"""Single-file SDXL checkpoints: discovery, hashes, listing, offline loading, convert, PNG Model hash, audit re-runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import sdxl_nb
from sdxl_nb.cli import main
from sdxl_nb.config.presets import load_presets
from sdxl_nb.record.joblog import read_records
from tests.conftest import REPO, SMALL, pixels, python_env

CKPT = "tiny-ckpt"


pytestmark = pytest.mark.usefixtures("kernel_engine")  # the CLI runs on the session's engine


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """tiny-sdxl written as one original-layout .safetensors file (by the API's convert)."""
    from sdxl_nb.api import convert

    out = tmp_path_factory.mktemp("converted") / f"{CKPT}.safetensors"
    result = convert("tiny-sdxl", out)
    assert result.kind == "checkpoint" and out.is_file()
    return out


@pytest.fixture
def a1111_root(tiny_file, tmp_path, monkeypatch):
    """An A1111 root holding the tiny checkpoint, named by SDXL_NB_CHECKPOINTS."""
    folder = tmp_path / "webui" / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    shutil.copy(tiny_file, folder / tiny_file.name)
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(tmp_path / "webui"))
    return folder


def _model(model_id: str):
    from sdxl_nb.config.registry import find_model

    return find_model(model_id, load_presets())


# ---- discovery, hashes, listing ----
def test_discovery_in_a1111_comfyui_and_plain_folders(tiny_file, tmp_path, monkeypatch):
    from sdxl_nb.backends.comfy.workflow import default_checkpoint
    from sdxl_nb.config.checkpoints import list_checkpoints

    a1111 = tmp_path / "a1111" / "models" / "Stable-diffusion"
    comfy = tmp_path / "comfy" / "models" / "checkpoints" / "sdxl"
    plain = tmp_path / "plain"
    for folder, name in ((a1111, "from-a1111"), (comfy, "from-comfy"), (plain, "from-plain")):
        folder.mkdir(parents=True)
        shutil.copy(tiny_file, folder / f"{name}.safetensors")
    (plain / "notes.txt").write_text("not a checkpoint")
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", os.pathsep.join(str(p) for p in (tmp_path / "a1111", tmp_path / "comfy",
                                                                                plain)))
    found = {c.name: c for c in list_checkpoints()}
    assert set(found) == {"from-a1111", "from-comfy", "from-plain"}
    assert found["from-a1111"].folder == str(a1111)
    # ComfyUI's CheckpointLoaderSimple names a file by its path inside models/checkpoints.
    assert default_checkpoint("from-comfy") == "sdxl/from-comfy.safetensors"
    assert default_checkpoint("stabilityai/stable-diffusion-xl-base-1.0") == "stable-diffusion-xl-base-1.0.safetensors"
    monkeypatch.delenv("SDXL_NB_CHECKPOINTS")
    assert list_checkpoints() == []


def test_model_hash_is_the_files_sha256_and_is_computed_once(tiny_file, tmp_path, monkeypatch):
    import sdxl_nb.config.checkpoints as checkpoints

    path = tmp_path / "h.safetensors"
    shutil.copy(tiny_file, path)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert checkpoints.checkpoint_sha256(path) == expected
    assert checkpoints.checkpoint_from_path(path).model_hash == expected[:10]

    def no_hashing(_path, offset=0):
        raise AssertionError("hashed again")

    monkeypatch.setattr(checkpoints, "_sha256_from", no_hashing)
    checkpoints._memory.clear()  # a new process: the hash comes from the cache file, not the 7 GB read
    assert checkpoints.checkpoint_sha256(path) == expected
    with open(path, "ab") as handle:  # new content (size and mtime change): hashed again
        handle.write(b"\0")
    with pytest.raises(AssertionError, match="hashed again"):
        checkpoints.checkpoint_sha256(path)


def test_listing_shows_checkpoints_beside_cache_models(a1111_root, capsys):
    from sdxl_nb.api import list_models

    infos = {info.id: info for info in list_models()}
    info = infos[CKPT]
    sha = hashlib.sha256((a1111_root / f"{CKPT}.safetensors").read_bytes()).hexdigest()
    assert (info.source, info.available, info.sha256, info.model_hash) == ("checkpoint", True, sha, sha[:10])
    assert info.path == str(a1111_root / f"{CKPT}.safetensors") and "tiny-sdxl" in infos
    assert sdxl_nb.default_model() == "tiny-sdxl"  # a converted tiny model is a demo, never the default
    assert main(["models", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[CKPT]["model_hash"] == sha[:10] and rows[CKPT]["source"] == "checkpoint"
    assert main(["models"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if f" {CKPT} " in line)
    assert sha[:10] in line and "available" in line


def test_lab_model_picker_lists_the_checkpoint_with_its_hash(a1111_root):
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.ui.model_panel import ModelPanel

    panel = ModelPanel(queue=JobQueue(), out_dir=a1111_root.parent / "out")
    assert CKPT in [value for _label, value in panel.dropdown.options]
    panel.dropdown.value = CKPT
    assert f"Model hash {_model(CKPT).model_hash}" in panel.info.value


def test_png_info_finds_a_renamed_checkpoint_by_its_model_hash(a1111_root):
    from sdxl_nb.record.png_params import read_png_parameters
    from tests.test_png_params import png_with

    model_hash = _model(CKPT).model_hash
    text = f"a fox\nSteps: 4, Seed: 1, Size: 64x64, Model hash: {model_hash}, Model: renamed_since, Version: v1.10.1"
    read = read_png_parameters(png_with(parameters=text))
    assert read.fields["model"] == CKPT and "Model hash" not in read.unmapped
    unknown = read_png_parameters(png_with(parameters=text.replace(model_hash, "0123456789")))
    assert "model" not in unknown.fields and "renamed_since" in unknown.unmapped["Model"]


def test_an_id_clash_is_refused_in_one_line_not_picked(a1111_root, tmp_path, monkeypatch):
    from sdxl_nb.config.registry import list_models
    from sdxl_nb.errors import InputError

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(a1111_root / f"{CKPT}.safetensors", other / f"{CKPT}.safetensors")
    shutil.copy(a1111_root / f"{CKPT}.safetensors", other / "tiny-sdxl.safetensors")
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", os.pathsep.join([str(a1111_root), str(other)]))
    for model_id in (CKPT, "tiny-sdxl"):
        with pytest.raises(InputError, match="ambiguous") as caught:
            _model(model_id)
        assert "\n" not in str(caught.value) and str(other) in str(caught.value)
    listed = [info for info in list_models(load_presets()) if info.id in (CKPT, "tiny-sdxl")]
    assert listed and not any(info.available for info in listed)
    assert main(["generate", "--prompt", "a fox", "--model", CKPT, "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


# ---- loading and the round trip ----
def test_round_trip_is_bit_identical_and_recorded(a1111_root, run, tmp_path):
    from sdxl_nb.record.metadata import parse_parameters

    base = run(prompt="a red fox", model="tiny-sdxl", out_dir=tmp_path / "base")
    checkpoint = run(prompt="a red fox", model=CKPT, out_dir=tmp_path / "ckpt")
    assert (pixels(Image.open(base.paths[0])) == pixels(Image.open(checkpoint.paths[0]))).all()
    info = _model(CKPT)
    record = checkpoint.record
    assert record["model"]["source"] == "checkpoint"
    assert (record["model"]["path"], record["model"]["sha256"], record["model"]["revision"]) == (
        info.path, info.sha256, info.sha256)
    jsonschema.validate(record, json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8")))
    fields = parse_parameters(Image.open(checkpoint.paths[0]).info["parameters"])
    assert fields["Model hash"] == info.sha256[:10] and fields["Model"] == CKPT
    assert "Model hash" not in parse_parameters(Image.open(base.paths[0]).info["parameters"])


def test_a_lora_on_a_checkpoint_draws_what_it_draws_on_the_same_model(a1111_root, run, tmp_path):
    prompt = "a red fox <lora:tiny-sdxl-lora:0.8>"
    base = run(prompt=prompt, model="tiny-sdxl", out_dir=tmp_path / "base")
    checkpoint = run(prompt=prompt, model=CKPT, out_dir=tmp_path / "ckpt")
    assert checkpoint.record["loras"] and (pixels(Image.open(base.paths[0])) ==
                                           pixels(Image.open(checkpoint.paths[0]))).all()


def test_an_animation_from_a_checkpoint_reruns_from_the_recorded_file(a1111_root, engine, tmp_path, monkeypatch):
    from sdxl_nb.jobs.animate import animate, check_rerun
    from sdxl_nb.record.metadata import parse_parameters

    result = animate(out_dir=tmp_path / "anim", engine=engine, prompt="a fox", model=CKPT, frames=2, seed=4, **SMALL)
    (record,) = [r for r in read_records(tmp_path / "anim" / "jobs.log") if r["mode"] == "animate"]
    assert record["model"]["sha256"] == _model(CKPT).sha256
    with Image.open(result.paths[0]) as image:
        assert parse_parameters(image.text["parameters"])["Model hash"] == _model(CKPT).model_hash
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(tmp_path / "elsewhere"))  # no longer listed: the path is used
    assert all(frame["identical"] for frame in check_rerun(record, tmp_path / "anim", engine))


def test_replicas_run_a_checkpoint_with_the_single_engine_pixels(a1111_root, engine, run, tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.replicas import ReplicaEngine
    from sdxl_nb.jobs.generate import generate

    single = run(prompt="replicas", model=CKPT, batch=2, seed=8, chunk_size=1, out_dir=tmp_path / "single")
    replicas = ReplicaEngine(engines=[engine, Engine(device="cpu")])
    split = generate(out_dir=tmp_path / "split", engine=replicas, prompt="replicas", model=CKPT, batch=2, seed=8,
                     chunk_size=1, **SMALL)
    assert split.record["model"]["sha256"] == single.record["model"]["sha256"]
    for ours, theirs in zip(single.paths, split.paths, strict=True):
        assert (pixels(Image.open(ours)) == pixels(Image.open(theirs))).all()


def test_audit_and_verify_clean_and_rerun_bit_exact(a1111_root, run, tmp_path, capsys):
    folder = tmp_path / "jobs"
    run(prompt="an owl", model=CKPT, out_dir=folder, batch=2)
    assert main(["verify", "--out", str(folder)]) == 0
    assert main(["audit", str(folder), "--rerun", "all", "--json"]) == 0
    report = capsys.readouterr().out
    assert "bit-exact" in report and "diverged" not in report


def test_rerun_reloads_the_recorded_file_and_says_when_it_changed(a1111_root, run, engine, tmp_path, monkeypatch):
    from sdxl_nb.backends.local.replay import replay
    from sdxl_nb.config.trusted_folders import OUTSIDE_MODEL_FOLDERS, NotTrusted
    from sdxl_nb.jobs.convert import convert

    result = run(prompt="a heron", model=CKPT, out_dir=tmp_path / "jobs")
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(tmp_path / "elsewhere"))  # no longer listed: the path is not loaded
    with pytest.raises(NotTrusted, match=re.escape(OUTSIDE_MODEL_FOLDERS)):
        replay(result.record, tmp_path / "jobs", engine)
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(a1111_root))
    again = replay(result.record, tmp_path / "jobs", engine)
    assert again.notes == [] and (pixels(again.images[0]) == pixels(Image.open(result.paths[0]))).all()
    target = a1111_root / f"{CKPT}.safetensors"
    target.unlink()
    convert("tiny-sdxl", target, dtype="bfloat16")  # same name, other bytes
    changed = replay(result.record, tmp_path / "jobs", engine)
    assert any("changed since the job" in note and str(target) in note for note in changed.notes)


def test_offline_with_an_empty_hf_cache_in_a_fresh_process(a1111_root, tmp_path):
    env = python_env({"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty_hub"),
                      "HF_ENDPOINT": "http://127.0.0.1:9", "SDXL_NB_CHECKPOINTS": str(a1111_root)})
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "sdxl_nb", "generate", "--prompt", "a fox", "--model", CKPT, "--out", str(out),
                           "--width", "64", "--height", "64", "--steps", "2", "--seed", "3"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not any((tmp_path / "empty_hub").rglob("*.json"))  # nothing was fetched into the hub cache
    assert len(list(out.rglob("*.png"))) == 1


def test_comfy_backend_and_export_name_the_real_checkpoint_file(tiny_file, tmp_path, monkeypatch, capsys):
    from sdxl_nb.backends.comfy.backend import generate_remote
    from tests.fake_comfy import FakeComfy
    from tests.local_server import LocalServer

    folder = tmp_path / "ComfyUI" / "models" / "checkpoints" / "sdxl"
    folder.mkdir(parents=True)
    shutil.copy(tiny_file, folder / tiny_file.name)
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(tmp_path / "ComfyUI"))
    name = f"sdxl/{CKPT}.safetensors"
    assert main(["comfy-export", "--prompt", "a fox", "--model", CKPT, "-o", str(tmp_path / "wf.json")]) == 0
    graph = json.loads((tmp_path / "wf.json").read_text(encoding="utf-8"))
    assert [node["inputs"]["ckpt_name"] for node in graph.values()
            if node["class_type"] == "CheckpointLoaderSimple"] == [name]
    fake = FakeComfy(checkpoints=(name,))
    with LocalServer(fake.app()) as server:
        result = generate_remote(url=server.url, out_dir=tmp_path / "out", prompt="a fox", model=CKPT, **SMALL)
    assert result.status == "ok" and result.record["backend"]["checkpoint"] == name


def test_the_lab_queue_runs_a_checkpoint_job(a1111_root, engine, tmp_path):
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.request.resolve import GenerationRequest

    queue = JobQueue(engine=engine, out_dir=tmp_path / "q")
    job = queue.submit(GenerationRequest(prompt="a fox", model=CKPT, seed=2, **SMALL))
    assert queue.wait_idle(120) and job.status == "ok", job.error
    assert job.result.record["model"]["sha256"] == _model(CKPT).sha256


# ---- files that cannot be an SDXL checkpoint ----
def _truncated(source, folder):
    path = folder / "cut.safetensors"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return path


def _unrelated(_source, folder):
    import torch
    from safetensors.torch import save_file

    path = folder / "unrelated.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(path))
    return path


def _wrong_layout(_source, folder):
    import torch
    from safetensors.torch import save_file

    path = folder / "wrong.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(48, 4, 3, 3)}, str(path))
    return path


@pytest.mark.parametrize(("make", "message"), [(_truncated, "is truncated"), (_unrelated, "not an SDXL checkpoint"),
                                               (_wrong_layout, "does not match any local SDXL architecture")])
def test_a_bad_file_gives_one_line_naming_it(tiny_file, engine, tmp_path, monkeypatch, capsys, make, message):
    from sdxl_nb.errors import ModelUnavailableError

    folder = tmp_path / "ckpts"
    folder.mkdir()
    path = make(tiny_file, folder)
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(folder))
    info = _model(path.stem)
    with pytest.raises(ModelUnavailableError) as caught:
        if not info.available:
            raise ModelUnavailableError(info.reason)
        engine.load(info)
    assert message in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)
    out = tmp_path / "out"
    assert main(["generate", "--prompt", "a fox", "--model", path.stem, "--out", str(out), "--width", "64", "--height", "64",
                 "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err
    assert main(["convert", str(path), str(tmp_path / "as-folder")]) == 2
    assert str(path) in capsys.readouterr().err and not (tmp_path / "as-folder").exists()


# ---- convert ----
def test_convert_a_checkpoint_to_a_diffusers_folder(tiny_file, tmp_path, capsys):
    import torch
    from diffusers import StableDiffusionXLPipeline

    from sdxl_nb.config.tiny import ensure_tiny_model

    out = tmp_path / "as-diffusers"
    assert main(["convert", str(tiny_file), str(out)]) == 0
    assert "a diffusers folder" in capsys.readouterr().out
    converted = StableDiffusionXLPipeline.from_pretrained(out, local_files_only=True)
    original = StableDiffusionXLPipeline.from_pretrained(ensure_tiny_model(), local_files_only=True)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        ours, theirs = getattr(converted, name).state_dict(), getattr(original, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
    # And back: the folder's weights as one file are the same bytes as the first conversion's.
    again = tmp_path / "again.safetensors"
    assert main(["convert", str(tiny_file), str(again)]) == 0
    from safetensors.torch import load_file

    first, second = load_file(str(tiny_file)), load_file(str(again))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize(("args", "message"), [
    (["tiny-sdxl", "{existing}"], "already exists"),
    (["tiny-sdxl", "{tmp}/no/such/folder/x.safetensors"], "does not exist"),
    (["no-such-model", "{tmp}/x.safetensors"], "unknown model"),
    (["{tmp}/missing.safetensors", "{tmp}/x"], "does not exist"),
    (["tiny-sdxl", "{tmp}/x.ckpt"], "must be a .safetensors file"),
    (["tiny-sdxl", "{tmp}/x.safetensors", "--dtype", "int8"], "unknown dtype"),
    (["tiny-sdxl", "{full}"], "not an empty folder"),
])
def test_bad_convert_arguments_exit_2_in_one_line_writing_nothing(tmp_path, capsys, args, message):
    existing = tmp_path / "existing.safetensors"
    existing.write_bytes(b"keep")
    full = tmp_path / "full"
    full.mkdir()
    (full / "file").write_text("keep")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = [a.format(tmp=tmp_path, existing=existing, full=full) for a in args]
    assert main(["convert", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert existing.read_bytes() == b"keep"


def test_key_map_matches_sdxl_base_names_and_diffusers_reader():
    """SDXL base's block layout (3 levels x 2 resnets) through the same config-driven map: diffusers' own reader
    gives every key back, and the names are those of sd_xl_base_1.0.safetensors."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from sdxl_nb.backends.local.checkpoint_keys import UNET_PREFIX, VAE_PREFIX, unet_key_map, vae_key_map

    unet_config = dict(block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
                       attention_head_dim=(5, 10, 20), cross_attention_dim=2048, addition_embed_type="text_time",
                       addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
                       use_linear_projection=True, sample_size=128,
                       down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                       up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4)
    state = unet.state_dict()
    mapping = unet_key_map(dict(unet.config), state)
    original = {UNET_PREFIX + mapping[k]: k for k in state}
    for name in ("input_blocks.3.0.op.weight", "input_blocks.6.0.op.weight", "output_blocks.2.2.conv.weight",
                 "output_blocks.5.2.conv.weight", "middle_block.1.transformer_blocks.9.attn2.to_k.weight",
                 "input_blocks.8.1.transformer_blocks.9.ff.net.2.bias", "label_emb.0.2.weight",
                 "output_blocks.8.0.skip_connection.weight"):
        assert UNET_PREFIX + name in original, name
    back = convert_ldm_unet_checkpoint({k: k for k in original}, dict(unet.config))
    assert back == {diffusers_key: original_key for original_key, diffusers_key in original.items()}
    vae_state = vae.state_dict()
    vae_original = {VAE_PREFIX + v: k for k, v in vae_key_map(dict(vae.config), vae_state).items()}
    assert VAE_PREFIX + "decoder.up.3.upsample.conv.weight" in vae_original
    assert VAE_PREFIX + "encoder.mid.attn_1.proj_out.weight" in vae_original
    vae_back = convert_ldm_vae_checkpoint({k: torch.zeros(1, 1, 1, 1) for k in vae_original}, dict(vae.config))
    assert set(vae_back) == set(vae_state)


# ---- real SDXL checkpoints: the bundled SDXL base configs ----
def test_bundled_sdxl_base_tokenizers_are_clips():
    from transformers import CLIPTokenizer

    from sdxl_nb.config.sdxl_base import ensure_sdxl_base_config

    folder = ensure_sdxl_base_config()
    first = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    second = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True)
    # CLIP's published ids for "a photo of a cat"; SDXL pads its second tokenizer with "!" (id 0).
    for tokenizer in (first, second):
        assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
        assert (len(tokenizer), tokenizer.model_max_length) == (49408, 77)
    assert (first.pad_token_id, second.pad_token_id) == (49407, 0)


def _sparse_checkpoint(path, shapes: dict) -> None:
    """A .safetensors file with these tensors' header and zero bytes behind it (sparse: no disk used)."""
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = 2
        for dim in shape:
            size *= dim
        header[key] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(len(raw).to_bytes(8, "little") + raw)
        handle.truncate(8 + len(raw) + offset)


def test_an_sdxl_base_layout_file_is_described_by_the_bundled_configs(tmp_path):
    from sdxl_nb.backends.local.checkpoint_load import config_for, expected_shapes
    from sdxl_nb.config.sdxl_base import ensure_sdxl_base_config

    bundled = ensure_sdxl_base_config()
    shapes = expected_shapes(bundled)
    # The names and shapes of sd_xl_base_1.0.safetensors as A1111 and ComfyUI load it.
    for key, shape in {"model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
                       "model.diffusion_model.label_emb.0.0.weight": [1280, 2816],
                       "model.diffusion_model.output_blocks.2.2.conv.weight": [1280, 1280, 3, 3],
                       "first_stage_model.encoder.mid.attn_1.q.weight": [512, 512, 1, 1],
                       "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [49408, 768],
                       "conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight": [3840, 1280],
                       "conditioner.embedders.1.model.text_projection": [1280, 1280]}.items():
        assert shapes[key] == shape, key
    assert sum(key.startswith("model.diffusion_model.") for key in shapes) == 1680
    path = tmp_path / "sd_xl_like.safetensors"
    _sparse_checkpoint(path, {**shapes, "conditioner.embedders.1.model.logit_scale": []})
    assert config_for(path) == bundled


@st.composite
def unet_layouts(draw):
    """Small UNet2DConditionModel layouts: 1-3 levels, 1-3 resnets each, attention on any level."""
    levels = draw(st.integers(1, 3))
    attention = [draw(st.booleans()) for _ in range(levels)]
    return dict(
        block_out_channels=tuple(16 * (i + 1) for i in range(levels)), layers_per_block=draw(st.integers(1, 3)),
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        transformer_layers_per_block=tuple(draw(st.integers(1, 2)) for _ in range(levels)),
        attention_head_dim=tuple(2 for _ in range(levels)), norm_num_groups=8, cross_attention_dim=32,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32)


@settings(max_examples=25, deadline=None, database=None, derandomize=bool(os.environ.get("CI")))
@given(layout=unet_layouts())
def test_any_unet_layout_maps_to_names_diffusers_reads_back(layout):
    """The block map comes from the config: for any layout, diffusers' own single-file reader inverts it."""
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    from sdxl_nb.backends.local.checkpoint_keys import UNET_PREFIX, unet_key_map

    with torch.device("meta"):
        unet = UNet2DConditionModel(**layout)
    mapping = unet_key_map(dict(unet.config), unet.state_dict())
    assert len(set(mapping.values())) == len(mapping)  # no two weights share a name
    original = {UNET_PREFIX + name: key for key, name in mapping.items()}
    assert convert_ldm_unet_checkpoint({name: name for name in original}, dict(unet.config)) == {
        key: name for name, key in original.items()}
