"""PNG Info against A1111 1.6-1.10 infotexts: Hires resize, Model hash checks, LoRA/TI/ControlNet files found, other
or missing, the ControlNet extension's short hash; a hires_resize job through the API, CLI, record, text and re-run."""

import hashlib
import html
import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, rerun_jobs, select_for_rerun
from sdxl_nb.cli import main
from sdxl_nb.config.hires import resize_sizes
from sdxl_nb.config.tiny_lora import tiny_embedding_tensors, tiny_lora_tensors, write_lora
from sdxl_nb.errors import InputError
from sdxl_nb.record.metadata import parse_parameters
from sdxl_nb.record.png_params import read_png_parameters
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import pixels

RESIZE = dict(hires_resize=(128, 0), hires_steps=2, hires_denoise=0.5)


def png_with(text: str) -> bytes:
    info = PngInfo()
    info.add_text("parameters", text)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "grey").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def short_hash(path) -> str:
    """A1111's modules/sd_models.py model_hash, written independently: sha256 of 64 KiB at 1 MiB, 8 hex digits."""
    data = open(path, "rb").read()
    return hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def a1111_target(width, height, x, y):
    """A1111 1.10 calculate_target_resolution, as its source reads: (hr_upscale_to, final size after truncate)."""
    if x == 0 and y == 0:
        return None
    if y == 0:
        up = (x, x * height // width)
    elif x == 0:
        up = (y * width // height, y)
    else:
        up = (x, x * height // width) if width / height < x / y else (y * width // height, y)
        truncate = ((up[0] - x) // 8, (up[1] - y) // 8)
        return up, (up[0] - truncate[0] * 8, up[1] - truncate[1] * 8)
    return up, up


# Most random pairs upscale to a side that is no whole latent (refused before work): those are filtered out.
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.integers(8, 256).map(lambda v: v * 8), st.integers(8, 256).map(lambda v: v * 8),
       st.integers(0, 512).map(lambda v: v * 8), st.integers(0, 512).map(lambda v: v * 8))
def test_resize_sizes_follow_a1111(width, height, x, y):
    expected = a1111_target(width, height, x, y)
    # where the upscaled size is in whole latents (what resolve_hires accepts; anything else is one InputError)
    assume(expected is not None and all(side % 8 == 0 for side in expected[0]))
    assert resize_sizes(width, height, (x, y)) == expected


# ---- A1111 infotexts ----
A1111_RESIZE = ("a lighthouse at dusk <lora:filmgrain:0.6>\nNegative prompt: blurry\n"
                "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 42, Size: 1024x1024, "
                "Model hash: {model_hash}, Model: {model}, Denoising strength: 0.45, Hires resize: 1536x1536, "
                "Hires steps: 12, Hires upscaler: Latent (nearest-exact), Lora hashes: \"filmgrain: {lora_hash}\", "
                "TI hashes: \"{ti}\", Version: v1.10.1")


def test_a1111_hires_resize_reads_the_whole_hires_fix():
    read = read_png_parameters(png_with(A1111_RESIZE.format(model_hash="31e35c80fc", model="sd_xl_base_1.0",
                                                           lora_hash="0123456789ab", ti="easyneg: 0123456789ab")))
    fields = read.fields
    assert fields["hires_resize"] == (1536, 1536) and "hires_scale" not in fields
    assert (fields["hires_steps"], fields["hires_denoise"], fields["hires_upscaler"]) == (12, 0.45,
                                                                                       "Latent (nearest-exact)")
    assert "Denoising strength" not in read.unmapped and "img2img" not in json.dumps(read.unmapped)
    assert "Hires resize" not in read.unmapped and read.problems == []
    # A1111 1.6 (Hires upscale) and a one-sided resize read too; a broken size is one line, the rest still reads.
    old = read_png_parameters(png_with("a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x768, "
                                       "Denoising strength: 0.7, Hires upscale: 2, Hires upscaler: Latent, "
                                       "Version: v1.6.0"))
    assert old.fields["hires_scale"] == 2 and old.fields["hires_denoise"] == 0.7
    one = read_png_parameters(png_with("a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x768, "
                                       "Denoising strength: 0.5, Hires resize: 1024x0, Version: v1.8.0"))
    assert one.fields["hires_resize"] == (1024, 0)
    bad = read_png_parameters(png_with("a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, "
                                       "Denoising strength: 0.5, Hires resize: hugexhuge"))
    assert bad.problems == ["not read: Hires resize ('hugexhuge' is not WIDTHxHEIGHT)"] and bad.fields["steps"] == 20
    # img2img's Denoising strength (no hires) is still said as img2img's
    img2img = read_png_parameters(png_with("a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, "
                                           "Denoising strength: 0.5"))
    assert "img2img" in img2img.unmapped["Denoising strength"]


def test_an_a1111_hires_resize_png_runs_at_its_size():
    text = ("a fox\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x96, Model: tiny-sdxl, "
            "Denoising strength: 0.5, Hires resize: 128x128, Hires steps: 2, Hires upscaler: Latent, Version: v1.9.4")
    fields = read_png_parameters(png_with(text)).fields
    resolved = prepare(GenerationRequest(**fields))
    # A1111 upscales 64x96 to cover 128x128 (128x192), then crops the centre: the image is 128x128.
    assert resolved.hires.upscaled_size == (128, 192) and resolved.output_size == (128, 128)
    assert resolved.hires.crop == (0, 32)


@pytest.fixture
def files(tmp_path, monkeypatch):
    """An A1111 root with two checkpoints, a LoRA, an embedding and a ControlNet (files > 1 MiB where the short hash
    matters)."""
    root = tmp_path / "webui"
    ckpts = root / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for name in ("mymodel", "renamed"):
        (ckpts / f"{name}.safetensors").write_bytes(rng.bytes(0x120000))
    write_lora(root / "models" / "Lora" / "filmgrain.safetensors", tiny_lora_tensors(seed=3))
    write_lora(root / "embeddings" / "easyneg.safetensors", tiny_embedding_tensors(2, seed=4))
    control = root / "models" / "ControlNet"
    control.mkdir(parents=True)
    (control / "canny-sdxl.safetensors").write_bytes(rng.bytes(0x120000))
    for key in ("SDXL_NB_CHECKPOINTS", "SDXL_NB_LORAS", "SDXL_NB_EMBEDDINGS", "SDXL_NB_CONTROLNETS"):
        monkeypatch.setenv(key, str(root))
    return root


def checks(read) -> dict:
    return {check.label: (check.status, check.line) for check in read.checks}


def test_model_hash_match_and_mismatch(files):
    mine, renamed = (files / "models" / "Stable-diffusion" / f"{n}.safetensors" for n in ("mymodel", "renamed"))
    base = ("a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, Model hash: {h}, Model: {m}, "
            "Version: v1.7.0")

    def read(h, m):
        return read_png_parameters(png_with(base.format(h=h, m=m)))

    for png_hash in (sha256(mine)[:10], short_hash(mine)):  # AutoV2 (1.6+) and the old 8-hex short hash
        found = read(png_hash, "mymodel")
        assert found.fields["model"] == "mymodel" and checks(found)["Model"][0] == "found"
        assert "Model hash" not in found.unmapped
    # The name's file has another hash and no file has the PNG's: a warning naming both hashes, the name runs.
    other = read("abcdef0123", "mymodel")
    status, line = checks(other)["Model"]
    assert status == "other hash" and "abcdef0123" in line and sha256(mine)[:10] in line
    assert other.fields["model"] == "mymodel"
    # A file with the PNG's hash is preferred over the one with the name.
    preferred = read(sha256(renamed)[:10], "mymodel")
    status, line = checks(preferred)["Model"]
    assert preferred.fields["model"] == "renamed" and status == "other hash"
    assert "renamed has the PNG's hash" in line and sha256(mine)[:10] in line
    missing = read("fedcba9876", "nothere")
    assert checks(missing)["Model"][0] == "missing" and "model" not in missing.fields
    assert "nothere" in missing.unmapped["Model"]


def test_loras_and_embeddings_found_other_or_missing(files):
    from sdxl_nb.config.loras import a1111_lora_hash

    lora_hash = a1111_lora_hash(files / "models" / "Lora" / "filmgrain.safetensors")[:12]
    ti_hash = sha256(files / "embeddings" / "easyneg.safetensors")[:12]
    text = ("a fox <lora:filmgrain:0.6> <lora:gone:1>\nNegative prompt: easyneg\nSteps: 20, Sampler: Euler a, "
            "CFG scale: 7, Seed: 1, Size: 64x64, Lora hashes: \"filmgrain: {lh}, gone: 111111111111\", "
            "TI hashes: \"easyneg: {th}, badhand: 222222222222\", Version: v1.10.1")
    same = checks(read_png_parameters(png_with(text.format(lh=lora_hash, th=ti_hash))))
    assert same["LoRA filmgrain"][0] == "found" and same["TI easyneg"][0] == "found"
    assert same["LoRA gone"][0] == "missing" and same["TI badhand"][0] == "missing"
    changed = checks(read_png_parameters(png_with(text.format(lh="aaaaaaaaaaaa", th="bbbbbbbbbbbb"))))
    assert changed["LoRA filmgrain"][0] == "other hash" and lora_hash in changed["LoRA filmgrain"][1]
    assert changed["TI easyneg"][0] == "other hash" and ti_hash in changed["TI easyneg"][1]
    # three different lines for the three cases
    lines = {same["LoRA filmgrain"][1], changed["LoRA filmgrain"][1], same["LoRA gone"][1]}
    assert len(lines) == 3 and all("\n" not in line for line in lines)


def test_controlnet_units_found_by_either_hash_or_name(files):
    path = files / "models" / "ControlNet" / "canny-sdxl.safetensors"
    unit = ('ControlNet {n}: "Module: canny, Model: {name} [{h}], Weight: 1.0, Resize Mode: Crop and Resize, '
            'Low Vram: False, Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, '
            'Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced"')
    units = [unit.format(n=0, name="diffusers_xl_canny_mid", h=short_hash(path)),  # the extension's hash, renamed
             unit.format(n=1, name="old-name", h=sha256(path)[:8]),  # our older PNGs' sha256 prefix
             unit.format(n=2, name="canny-sdxl", h="00000000"),  # the name, another file
             unit.format(n=3, name="depth-xl", h="12345678")]  # nothing here
    text = "a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, " + ", ".join(units)
    found = checks(read_png_parameters(png_with(text)))
    assert found["ControlNet 0 model"][0] == "found" and "canny-sdxl" in found["ControlNet 0 model"][1]
    assert found["ControlNet 1 model"][0] == "found"
    assert found["ControlNet 2 model"][0] == "other hash"
    assert found["ControlNet 3 model"][0] == "missing"


def test_short_hash_is_the_extensions(tmp_path):
    from sdxl_nb.config.checkpoints import a1111_short_hash

    big, small = tmp_path / "big.safetensors", tmp_path / "small.safetensors"
    big.write_bytes(os.urandom(0x130000))
    small.write_bytes(os.urandom(1000))
    assert a1111_short_hash(big) == short_hash(big) and len(a1111_short_hash(big)) == 8
    assert a1111_short_hash(small) == hashlib.sha256(b"").hexdigest()[:8]  # nothing past 1 MiB: A1111 hashes b""


def test_our_controlnet_text_carries_the_short_hash(tmp_path):
    from sdxl_nb.record.control_params import control_unit_text

    weights = tmp_path / "cn.safetensors"
    weights.write_bytes(os.urandom(0x120000))
    unit = {"model": {"name": "cn", "path": str(weights), "sha256": sha256(weights)}, "preprocessor": "canny"}
    assert f"Model: cn [{short_hash(weights)}]" in control_unit_text(unit, 64, 64)
    gone = {"model": {"name": "cn", "path": str(tmp_path / "gone.safetensors"), "sha256": "ab" * 32}}
    assert "Model: cn [abababab]" in control_unit_text(gone, 64, 64)  # the record's hash where the file is gone


def test_the_panel_says_found_other_and_missing_apart(files):
    from sdxl_nb.config.loras import a1111_lora_hash
    from sdxl_nb.ui.png_info_panel import PngInfoPanel

    lora_hash = a1111_lora_hash(files / "models" / "Lora" / "filmgrain.safetensors")[:12]
    text = A1111_RESIZE.format(model_hash="abcdef0123", model="mymodel", lora_hash=lora_hash,
                               ti="easyneg: 999999999999, nothere: 111111111111")
    panel = PngInfoPanel()
    assert panel.read(png_with(text), "peer.png") is not None
    table = html.unescape(panel.table.value)
    assert "✓ found" in table and "⚠ other hash" in table and "✗ missing" in table
    assert "abcdef0123" in table and "nothere" in table


# ---- a job with hires_resize ----
def test_hires_resize_job_round_trips_and_reruns_bit_exact(run, engine, tmp_path):
    from tests.test_hires import check_schema

    folder = tmp_path / "jobs"
    result = run(prompt="a fox", out_dir=folder, **RESIZE)
    record = result.record
    check_schema(record)
    assert record["hires"]["resize"] == [128, 0] and (record["hires"]["width"], record["hires"]["height"]) == (128, 128)
    assert result.images[0].size == (128, 128)
    with Image.open(result.paths[0]) as image:
        text = image.text["parameters"]
    params = parse_parameters(text)
    assert params["Hires resize"] == "128x0" and "Hires upscale" not in params and params["Denoising strength"] == "0.5"
    ours = read_png_parameters(result.paths[0]).fields
    theirs = read_png_parameters(png_with(text)).fields  # the A1111 text alone
    for fields in (ours, theirs):
        assert fields["hires_resize"] == (128, 0) and "hires_scale" not in fields
        assert (fields["hires_steps"], fields["hires_denoise"]) == (2, 0.5)
    again = run(out_dir=tmp_path / "again", **{k: v for k, v in theirs.items() if k not in ("model", "mode")},
                model="tiny-sdxl")
    assert np.array_equal(pixels(again.images[0]), pixels(result.images[0]))
    records, _ = read_logged_records(folder)
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT]


@pytest.mark.parametrize("upscaler", ["Latent", "Lanczos"])
def test_hires_resize_to_another_ratio_crops_the_centre(run, engine, tmp_path, upscaler):
    result = run(prompt="a fox", out_dir=tmp_path / upscaler, hires_resize=(128, 96), hires_upscaler=upscaler,
                 hires_steps=2, hires_denoise=0.5)
    assert result.images[0].size == (128, 96) and result.record["hires"]["upscale_to"] == [128, 128]
    records, _ = read_logged_records(tmp_path / upscaler)
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT]


@pytest.mark.parametrize("bad, words", [
    ({"hires_resize": "12x"}, "is not WIDTHxHEIGHT"), ({"hires_resize": (0, 0)}, "sets no size"),
    ({"hires_resize": (96, 0), "width": 128, "height": 128}, "smaller than the first pass"), ({"hires_resize": (100, 0)}, "multiples of 8"),
    ({"hires_resize": (128, 0), "hires_scale": 2}, "not both"),
    ({"hires_resize": (128, 0), "mode": "img2img"}, "txt2img only"),
])
def test_bad_hires_resize_is_one_line(bad, words):
    from sdxl_nb.config.hires import resolve_hires

    fields = {**dict(prompt="a fox", model="tiny-sdxl", width=64, height=64, steps=2), **bad}
    with pytest.raises(InputError, match=words) as caught:
        if fields.pop("mode", None):  # img2img's init image aside, the rule is resolve_hires's
            resolve_hires(None, None, None, None, mode="img2img", width=64, height=64, base_steps=2, resize=(128, 0))
        prepare(GenerationRequest(**fields))
    assert "\n" not in str(caught.value)


def test_cli_hires_resize(kernel_engine, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--width", "64", "--height", "64", "--steps", "2",
            "--seed", "3", "--hires-steps", "2", "--hires-denoise", "0.5"]
    assert main([*base, "--hires-resize", "0x128", "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["hires"]["resize"] == [0, 128]
    assert Image.open(out / record["images"][0]["path"]).size == (128, 128)
    for bad in (["--hires-resize", "12x"], ["--hires-resize", "128x0", "--hires-scale", "2"]):
        assert main([*base, *bad, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "hires" in err and not (tmp_path / "bad").exists()


def test_comfy_graph_upscales_to_the_size_and_crops():
    from sdxl_nb.backends.comfy.workflow import build_workflow

    def classes(**hires):
        graph = build_workflow(prepare(GenerationRequest(prompt="a fox", model="tiny-sdxl", width=64, height=96,
                                                         steps=2, seed=1, hires_steps=2, **hires))).graph
        return {node["class_type"]: node["inputs"] for node in graph.values()}

    latent = classes(hires_resize=(128, 0))
    assert (latent["LatentUpscale"]["width"], latent["LatentUpscale"]["height"]) == (128, 192)
    assert "LatentCrop" not in latent and "LatentUpscaleBy" not in latent
    cropped = classes(hires_resize=(128, 128))
    assert {k: cropped["LatentCrop"][k] for k in ("width", "height", "x", "y")} == dict(width=128, height=128, x=0,
                                                                                        y=32)
    pixels_ = classes(hires_resize=(128, 128), hires_upscaler="Lanczos")
    assert (pixels_["ImageScale"]["width"], pixels_["ImageScale"]["height"]) == (128, 192)
    assert (pixels_["ImageCrop"]["y"], pixels_["ImageCrop"]["height"]) == (32, 128)
