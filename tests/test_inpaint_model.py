"""9-channel inpainting models: the tiny twin, the diffusers folder and the single file, every mode, records, export."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.cli import main
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import find_model, list_models
from sdxl_nb.config.tiny_inpaint import TINY_INPAINT_ID, ensure_tiny_inpaint
from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import read_records
from tests.conftest import SMALL, pixels

INPAINT_REPO = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """An init image and a mask (a square in the middle), kept where a re-run reads inputs (the job folder)."""
    folder = tmp_path_factory.mktemp("inpaint-model") / "out" / "inputs"
    folder.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return {"init_image": str(folder / "init.png"), "mask_image": str(folder / "mask.png"), "out": folder.parent}


def test_the_twin_builds_byte_identical_with_a_9_channel_unet(tmp_path):
    from sdxl_nb.config.tiny import content_revision, ensure_tiny_model

    a, b = ensure_tiny_inpaint(tmp_path / "a"), ensure_tiny_inpaint(tmp_path / "b")
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert content_revision(a) == content_revision(b) and _sha256(a / weights) == _sha256(b / weights)
    unet = json.loads((a / "unet" / "config.json").read_text(encoding="utf-8"))
    assert unet["in_channels"] == 9 and unet["out_channels"] == 4
    tiny = ensure_tiny_model()
    base = json.loads((tiny / "unet" / "config.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in unet.items() if k != "in_channels"} == {k: v for k, v in base.items() if k != "in_channels"}
    # the same recipe as tiny-sdxl: its VAE and text encoders are the very same bytes
    for part in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert _sha256(a / part) == _sha256(tiny / part)
    assert json.loads((a / "model_index.json").read_text(encoding="utf-8"))["_class_name"] == \
        "StableDiffusionXLInpaintPipeline"


def test_listed_as_an_inpainting_model(capsys):
    infos = {info.id: info for info in list_models(load_presets())}
    assert infos[TINY_INPAINT_ID].available and infos[TINY_INPAINT_ID].preset.inpainting
    assert infos[INPAINT_REPO].preset.inpainting and not infos["tiny-sdxl"].preset.inpainting
    assert main(["models", "--json"]) == 0
    listed = {entry["id"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed[TINY_INPAINT_ID]["inpainting"] is True and listed["tiny-sdxl"]["inpainting"] is False
    assert main(["models"]) == 0
    assert any(line.startswith("i tiny-sdxl-inpaint") for line in capsys.readouterr().out.splitlines())


def test_every_mode_runs_through_the_api_and_records_the_model(run, images):
    out = images["out"]
    files = {key: images[key] for key in ("init_image", "mask_image")}
    painted = run(prompt="a red door", model=TINY_INPAINT_ID, strength=1.0, out_dir=out, **files)
    model = painted.record["model"]
    assert painted.record["status"] == "ok" and painted.record["mode"] == "inpaint"
    assert model["id"] == TINY_INPAINT_ID and model["inpainting"] is True and model["source"] == "embedded"
    text = Image.open(painted.paths[0]).info["parameters"]
    assert "Model: tiny-sdxl-inpaint" in text
    img2img = run(prompt="a red door", model=TINY_INPAINT_ID, init_image=files["init_image"], strength=0.5, out_dir=out)
    assert img2img.record["mode"] == "img2img" and img2img.record["model"]["inpainting"] is True
    # txt2img on an inpainting model is an inpaint with a full mask from pure noise (A1111's
    # txt2img_image_conditioning: mask of ones, masked image 0.5 gray): any init image gives the same pixels.
    txt2img = run(prompt="a red door", model=TINY_INPAINT_ID, out_dir=out)
    white = out / "inputs" / "white.png"
    Image.new("L", (64, 64), 255).save(white)
    full = run(prompt="a red door", model=TINY_INPAINT_ID, init_image=files["init_image"], mask_image=str(white),
               strength=1.0, out_dir=out)
    assert txt2img.record["mode"] == "txt2img" and txt2img.record["status"] == "ok"
    assert (pixels(txt2img.images[0]) == pixels(full.images[0])).all()
    # a model without the flag keeps it out of its record
    assert "inpainting" not in run(prompt="a red door", out_dir=out).record["model"]


def test_the_rerun_audit_is_bit_exact(run, images, engine):
    from sdxl_nb.analysis import read_logged_records
    from sdxl_nb.audit import BIT_EXACT, check_integrity, rerun_jobs, select_for_rerun

    out = images["out"]
    run(prompt="an audited door", model=TINY_INPAINT_ID, strength=0.9, out_dir=out,
        init_image=images["init_image"], mask_image=images["mask_image"])
    records, problems = read_logged_records(out)
    assert problems == [] and check_integrity(records).ok  # with the other test's txt2img and img2img jobs here
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert set(table["verdict"]) == {BIT_EXACT}, table["note"].tolist()


def test_the_cli_runs_an_inpaint_and_refuses_what_it_cannot_run(kernel_engine, images, tmp_path, capsys):
    common = ["--model", TINY_INPAINT_ID, "--width", "64", "--height", "64", "--steps", "2", "--seed", "3"]
    assert main(["generate", "--prompt", "a door", "--init-image", images["init_image"], "--mask",
                 images["mask_image"], "--out", str(tmp_path / "cli"), *common]) == 0
    (record,) = read_records(tmp_path / "cli" / "jobs.log")
    assert record["mode"] == "inpaint" and record["model"]["inpainting"] is True
    capsys.readouterr()
    assert main(["generate", "--prompt", "a door", "--hires-scale", "2", "--out", str(tmp_path / "refused"),
                 *common]) == 2
    err = capsys.readouterr().err.strip()
    assert "inpainting model" in err and "hires fix" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "refused").exists()


def test_hires_and_animations_are_refused_before_work(run, tmp_path):
    with pytest.raises(InputError, match="inpainting model and cannot run hires fix"):
        run(prompt="a door", model=TINY_INPAINT_ID, hires_scale=2.0, out_dir=tmp_path / "no")
    assert not (tmp_path / "no").exists()


def test_the_lab_picks_and_runs_the_inpainting_model(engine, images, tmp_path):
    from sdxl_nb.ui.uploads import upload_value
    from tests.ui_helpers import lab_for, small_form

    lab = lab_for(engine, tmp_path / "lab")
    labels = {value: text for text, value in lab.model.dropdown.options}
    assert "[inpainting]" in labels[TINY_INPAINT_ID] and "[inpainting]" not in labels["tiny-sdxl"]
    lab.model.dropdown.value = TINY_INPAINT_ID
    panel = lab.generate
    small_form(panel.form, seed=4)
    panel.form.mode.value = "inpaint"
    panel.form.init_upload.value = upload_value(images["init_image"])
    panel.form.mask_upload.value = upload_value(images["mask_image"])
    panel.generate.click()
    assert panel.wait(120)
    (record,) = read_records(tmp_path / "lab" / "jobs.log")
    assert record["status"] == "ok" and record["mode"] == "inpaint"
    assert record["model"]["id"] == TINY_INPAINT_ID and record["model"]["inpainting"] is True


@pytest.fixture
def single_file(tmp_path, monkeypatch):
    """tiny-sdxl-inpaint written as one original-layout .safetensors file in a ComfyUI checkpoints folder."""
    from sdxl_nb.api import convert

    folder = tmp_path / "ComfyUI" / "models" / "checkpoints"
    folder.mkdir(parents=True)
    convert(TINY_INPAINT_ID, folder / "my-inpaint.safetensors")
    monkeypatch.setenv("SDXL_NB_CHECKPOINTS", str(tmp_path / "ComfyUI"))
    return folder / "my-inpaint.safetensors"


def test_a_single_file_inpainting_checkpoint_loads_and_matches_the_twin(single_file, run, images, tmp_path):
    from safetensors import safe_open

    with safe_open(str(single_file), framework="pt") as handle:
        assert list(handle.get_slice("model.diffusion_model.input_blocks.0.0.weight").get_shape())[1] == 9
    info = find_model("my-inpaint", load_presets())
    assert info.available and info.preset.inpainting and "inpainting checkpoint" in info.description
    files = {key: images[key] for key in ("init_image", "mask_image")}
    ours = run(prompt="a door", model="my-inpaint", strength=1.0, out_dir=tmp_path / "file", **files)
    twin = run(prompt="a door", model=TINY_INPAINT_ID, strength=1.0, cfg=5.0, out_dir=tmp_path / "twin", **files)
    assert ours.record["model"]["inpainting"] is True and ours.record["model"]["sha256"] == info.sha256
    assert f"Model hash: {info.sha256[:10]}" in Image.open(ours.paths[0]).info["parameters"]
    assert (pixels(ours.images[0]) == pixels(twin.images[0])).all()


def test_the_diffusers_inpainting_folder_in_the_cache_loads_and_runs(run, images, tmp_path, monkeypatch):
    from tests.hf_cache import add_to_cache

    hub = tmp_path / "hub"
    add_to_cache(hub, INPAINT_REPO, ensure_tiny_inpaint())
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    info = find_model(INPAINT_REPO, load_presets())
    assert info.available and info.preset.inpainting and info.source == "hf-cache"
    files = {key: images[key] for key in ("init_image", "mask_image")}
    cached = run(prompt="a door", model=INPAINT_REPO, strength=1.0, cfg=5.0, out_dir=tmp_path / "cached", **files)
    twin = run(prompt="a door", model=TINY_INPAINT_ID, strength=1.0, cfg=5.0, out_dir=tmp_path / "twin", **files)
    assert cached.record["model"]["inpainting"] is True and cached.record["model"]["revision"] == info.revision
    assert (pixels(cached.images[0]) == pixels(twin.images[0])).all()


def test_the_comfy_export_conditions_an_inpainting_model(images, tmp_path):
    common = ["--prompt", "a door", "--init-image", images["init_image"], "--mask", images["mask_image"],
              "--width", "64", "--height", "64", "--steps", "2"]
    assert main(["comfy-export", "--model", TINY_INPAINT_ID, *common, "-o", str(tmp_path / "wf.json")]) == 0
    graph = json.loads((tmp_path / "wf.json").read_text(encoding="utf-8"))
    kinds = [node["class_type"] for node in graph.values()]
    assert "InpaintModelConditioning" in kinds and "SetLatentNoiseMask" not in kinds and "VAEEncode" not in kinds
    node_id = next(key for key, node in graph.items() if node["class_type"] == "InpaintModelConditioning")
    assert graph[node_id]["inputs"]["noise_mask"] is False
    (sampler,) = [node for node in graph.values() if node["class_type"] == "KSamplerAdvanced"]
    assert [sampler["inputs"][key] for key in ("positive", "negative", "latent_image")] == \
        [[node_id, 0], [node_id, 1], [node_id, 2]]
    # a model that is no inpainting one keeps the noise mask
    assert main(["comfy-export", "--model", "tiny-sdxl", *common, "-o", str(tmp_path / "plain.json")]) == 0
    plain = [node["class_type"] for node in json.loads((tmp_path / "plain.json").read_text(encoding="utf-8")).values()]
    assert "SetLatentNoiseMask" in plain and "InpaintModelConditioning" not in plain


def test_the_comfy_backend_runs_the_inpainting_graph(images, tmp_path):
    from sdxl_nb.backends.comfy.backend import generate_remote
    from tests.fake_comfy import FakeComfy
    from tests.local_server import LocalServer

    name = "tiny-sdxl-inpaint.safetensors"
    with LocalServer(FakeComfy(checkpoints=(name,)).app()) as server:
        result = generate_remote(url=server.url, out_dir=tmp_path / "out", prompt="a door", model=TINY_INPAINT_ID,
                                 init_image=images["init_image"], mask_image=images["mask_image"], strength=1.0,
                                 **SMALL)
    assert result.status == "ok" and result.record["model"]["id"] == TINY_INPAINT_ID
    shutil.rmtree(tmp_path / "out")
