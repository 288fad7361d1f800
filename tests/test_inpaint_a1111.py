"""Inpaint as A1111 does it (processing.py StableDiffusionProcessingImg2Img.init / apply_overlay, masking.py): the
original kept outside the blurred mask, masked content, only masked, recorded, in its infotext, exported, re-run."""

import json
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sdxl_nb.errors import InputError
from sdxl_nb.request.inpaint import MASKED_CONTENT, InpaintSettings
from sdxl_nb.request.inpaint_image import blurred_mask, crop_region, expand_crop_region, prepare
from tests.conftest import PYTHON, REPO, python_env


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inpaint_inputs")
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[20:36, 24:44] = 255  # about 8% of the image
    Image.fromarray(mask).save(folder / "mask.png")
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(folder / "blank.png")
    return folder


def _inpaint(run, inputs, **fields):
    return run(prompt="a fox inpainted", init_image=str(inputs / "init.png"), mask_image=str(inputs / "mask.png"),
               **fields)


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _blurred(inputs, blur):
    return np.asarray(blurred_mask(Image.open(inputs / "mask.png").convert("L"), blur))


def test_default_inpaint_keeps_every_pixel_outside_the_blurred_mask(run, inputs):
    result = _inpaint(run, inputs)
    out, init = _pixels(result.paths[0]), _pixels(inputs / "init.png")
    outside = _blurred(inputs, 4) == 0
    assert outside.mean() > 0.6
    assert np.array_equal(out[outside], init[outside])  # exactly the init image where the blurred mask is 0
    inside = _blurred(inputs, 4) > 200  # the core (a 16 px band blurred at sigma 4 never reaches 255)
    assert np.abs(out[inside] - init[inside]).mean() > 5  # and repainted where it is fully white
    assert result.record["inpaint"] == {"mask_blur": 4, "masked_content": "original", "inpaint_area": "Whole picture",
                                        "only_masked_padding": 32, "overlay": True}


def test_mask_blur_zero_keeps_everything_outside_the_painted_mask(run, inputs):
    out = _pixels(_inpaint(run, inputs, mask_blur=0).paths[0])
    outside = _blurred(inputs, 0) == 0
    assert np.array_equal(out[outside], _pixels(inputs / "init.png")[outside])


def test_the_blur_is_a1111s_separable_gaussian():
    mask = Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 12))
    blurred = np.asarray(blurred_mask(mask, 4))
    import cv2

    kernel = 2 * int(2.5 * 4 + 0.5) + 1  # 21: A1111's kernel for sigma 4
    expected = cv2.GaussianBlur(cv2.GaussianBlur(np.asarray(mask), (kernel, 1), 4), (1, kernel), 4)
    assert np.array_equal(blurred, expected) and blurred[16, 16] > 0 and blurred[0, 0] == 0


def test_each_masked_content_changes_what_it_should(inputs):
    init = Image.open(inputs / "init.png").convert("RGB")
    mask = Image.open(inputs / "mask.png").convert("L")
    original = prepare(init, mask, InpaintSettings(masked_content="original"), 64, 64)
    filled = prepare(init, mask, InpaintSettings(masked_content="fill"), 64, 64)
    assert original.image.tobytes() == init.tobytes()  # original: the init image as it is
    changed = np.any(np.asarray(filled.image) != np.asarray(init), axis=2)
    job_mask = np.asarray(filled.mask)
    assert changed[job_mask == 255].all() and not changed[job_mask == 0].any()  # fill: only under the mask
    for mode in ("latent noise", "latent nothing"):  # the pixels are filled too (A1111: inpainting_fill != 1)
        assert prepare(init, mask, InpaintSettings(masked_content=mode), 64, 64).image.tobytes() == \
            filled.image.tobytes()


@pytest.mark.parametrize("content", ["fill", "latent noise", "latent nothing"])
def test_masked_content_modes_run_keep_the_outside_and_differ_from_original(run, inputs, content):
    original = _pixels(_inpaint(run, inputs, seed=7).paths[0])
    result = _inpaint(run, inputs, seed=7, masked_content=content)
    out = _pixels(result.paths[0])
    outside = _blurred(inputs, 4) == 0
    assert np.array_equal(out[outside], _pixels(inputs / "init.png")[outside])
    assert not np.array_equal(out, original)
    assert result.record["inpaint"]["masked_content"] == content


def test_latent_nothing_zeroes_and_latent_noise_seeds_the_masked_latents(engine, inputs):
    import torch

    from sdxl_nb.backends.base import ImageSpec
    from sdxl_nb.backends.local.inpaint_area import InpaintInputs
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.request.resolve import GenerationRequest, resolve

    presets = load_presets()
    r = resolve(GenerationRequest(prompt="x", init_image=str(inputs / "init.png"), mask_image=str(inputs / "mask.png"),
                                  masked_content="latent nothing", steps=2), presets)
    pipe = engine.pipeline(engine.load(find_model(r.model.id, presets)), "inpaint")
    spec = ImageSpec(index=0, seed=11, prompt="x")
    nothing = InpaintInputs(pipe, r).per_call([spec])["image"]
    grid = torch.from_numpy(np.asarray(Image.fromarray(np.asarray(
        InpaintInputs(pipe, r).prepared.mask)).convert("RGB").resize(
        (nothing.shape[3], nothing.shape[2]), Image.Resampling.BICUBIC))[..., 0] / 255).round().bool()
    assert grid.any() and (nothing[0][:, grid] == 0).all() and (nothing[0][:, ~grid] != 0).any()
    noise_r = resolve(GenerationRequest(prompt="x", init_image=str(inputs / "init.png"),
                                        mask_image=str(inputs / "mask.png"), masked_content="latent noise", steps=2),
                      presets)
    noise = InpaintInputs(pipe, noise_r).per_call([spec])["image"]
    expected = torch.randn(nothing.shape, generator=torch.Generator("cpu").manual_seed(11))
    assert torch.equal(noise[0][:, grid], expected[0][:, grid].to(noise.dtype))  # the image's own seed noise
    assert torch.equal(noise[0][:, ~grid], nothing[0][:, ~grid])  # the init latents outside


def test_only_masked_crops_pastes_back_and_leaves_the_rest(run, inputs):
    result = _inpaint(run, inputs, inpaint_area="Only masked", only_masked_padding=4, mask_blur=2)
    out, init = _pixels(result.paths[0]), _pixels(inputs / "init.png")
    assert out.shape == init.shape
    blurred = Image.fromarray(_blurred(inputs, 2))
    x1, y1, x2, y2 = expand_crop_region(crop_region(blurred, 4), 64, 64, 64, 64)
    outside = np.ones((64, 64), dtype=bool)
    outside[y1:y2, x1:x2] = False
    assert outside.any() and np.array_equal(out[outside], init[outside])  # outside the crop: untouched
    inside = np.asarray(blurred) > 200
    assert np.abs(out[inside] - init[inside]).mean() > 5
    assert result.record["inpaint"]["inpaint_area"] == "Only masked"


def test_crop_region_matches_a1111_masking():
    mask = Image.fromarray(np.pad(np.full((10, 30), 255, np.uint8), ((40, 78), (20, 78))))  # 128 x 128
    region = crop_region(mask, 8)
    assert region == (12, 32, 58, 58)
    # wider than the 1:1 job: the height grows by the difference, split around it (masking.expand_crop_region)
    assert expand_crop_region(region, 64, 64, 128, 128) == (12, 22, 58, 68)
    assert crop_region(Image.new("L", (16, 16)), 4) is None


@settings(max_examples=60, deadline=None)
@given(x=st.integers(0, 60), y=st.integers(0, 60), w=st.integers(1, 40), h=st.integers(1, 40),
       pad=st.integers(0, 256), size=st.sampled_from([(64, 64), (64, 32), (32, 64)]))
def test_expanded_region_stays_in_the_image_and_holds_the_mask(x, y, w, h, pad, size):
    mask = np.zeros((96, 80), dtype=np.uint8)
    mask[y:y + h, x:x + w] = 255
    region = crop_region(Image.fromarray(mask), pad)
    x1, y1, x2, y2 = expand_crop_region(region, *size, 80, 96)
    assert 0 <= x1 < x2 <= 80 and 0 <= y1 < y2 <= 96
    assert x1 <= x and y1 <= y and x2 >= min(x + w, 80) and y2 >= min(y + h, 96)


@pytest.mark.parametrize("fields, message", [
    ({"mask_blur": 65}, "mask blur 65 is out of range; accepted: 0 to 64"),
    ({"mask_blur": 2.5}, "mask blur must be a whole number"),
    ({"mask_blur": -1}, "mask blur -1 is out of range"),
    ({"only_masked_padding": 257}, "only masked padding 257 is out of range; accepted: 0 to 256"),
    ({"masked_content": "nothing"}, "unknown masked content 'nothing'; accepted: fill, original, latent noise"),
    ({"inpaint_area": "Masked only"}, "unknown inpaint area 'Masked only'; accepted: Whole picture, Only masked"),
])
def test_bad_settings_are_one_line_before_work(inputs, fields, message):
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.request.resolve import GenerationRequest, resolve

    with pytest.raises(InputError) as caught:
        resolve(GenerationRequest(prompt="x", init_image=str(inputs / "init.png"),
                                  mask_image=str(inputs / "mask.png"), **fields), load_presets())
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_settings_without_a_mask_and_only_masked_on_a_blank_mask_are_refused(inputs):
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.request.resolve import GenerationRequest, resolve

    with pytest.raises(InputError, match="mask blur applies only to inpaint"):
        resolve(GenerationRequest(prompt="x", init_image=str(inputs / "init.png"), mask_blur=4), load_presets())
    with pytest.raises(InputError, match="the mask is blank"):
        resolve(GenerationRequest(prompt="x", init_image=str(inputs / "init.png"), mask_image=str(inputs / "blank.png"),
                                  inpaint_area="Only masked"), load_presets())


def test_masked_content_names_are_a1111s_inpainting_fill_order():
    assert MASKED_CONTENT == ("fill", "original", "latent noise", "latent nothing")
    assert InpaintSettings(masked_content="latent noise").fill_index == 2


def test_cli_bad_values_exit_2_with_one_line(inputs, tmp_path):
    for option, value in (("--mask-blur", "99"), ("--masked-content", "blur"), ("--inpaint-area", "Some"),
                          ("--only-masked-padding", "-3")):
        done = subprocess.run([PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "x", "--init-image", str(inputs / "init.png"),
                               "--mask", str(inputs / "mask.png"), option, value, "--out", str(tmp_path / "o")],
                              capture_output=True, text=True, env=python_env(), cwd=REPO, timeout=300)
        assert done.returncode == 2, (option, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.png"))


def test_record_round_trips_through_json(run, inputs):
    result = _inpaint(run, inputs, mask_blur=6, masked_content="fill", inpaint_area="Only masked",
                      only_masked_padding=12)
    assert json.loads(json.dumps(result.record))["inpaint"]["only_masked_padding"] == 12
    import jsonschema

    jsonschema.validate(result.record, json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8")))


# ---- ComfyUI export ----
def _flow(inputs, **fields):
    from sdxl_nb.backends.comfy.workflow import build_workflow
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    return build_workflow(prepare(GenerationRequest(
        prompt="x", model="stabilityai/stable-diffusion-xl-base-1.0", init_image=str(inputs / "init.png"),
        mask_image=str(inputs / "mask.png"), seed=1, **fields)))


def test_comfy_export_blurs_masks_and_pastes_the_original_back(inputs):
    from tests.fake_comfy import FakeComfy
    from tests.test_comfy_workflow import check_links, only

    flow = _flow(inputs)
    graph = flow.graph
    check_links(graph)
    blur = only(graph, "ImageBlur")[1]["inputs"]
    assert (blur["blur_radius"], blur["sigma"]) == (10, 4.0)  # A1111's kernel 21 for sigma 4
    noise_id, _ = only(graph, "SetLatentNoiseMask")
    assert only(graph, "KSamplerAdvanced")[1]["inputs"]["latent_image"] == [noise_id, 0]
    paste_id, paste = only(graph, "ImageCompositeMasked")
    decode_id, _ = only(graph, "VAEDecode")
    overlay_id, overlay = only(graph, "MaskComposite")
    assert paste["inputs"]["source"] == [decode_id, 0] and paste["inputs"]["mask"] == [overlay_id, 0]
    assert overlay["inputs"]["operation"] == "add"  # A1111's Whole picture overlay: the blurred mask doubled
    assert only(graph, "SaveImage")[1]["inputs"]["images"] == [paste_id, 0]
    fake = FakeComfy(checkpoints=["stable-diffusion-xl-base-1.0.safetensors"])
    fake.uploads.update({"init.png": b"x", "mask.png": b"x"})
    assert fake._validate(graph) is None


@pytest.mark.parametrize("content", ["fill", "latent noise", "latent nothing"])
def test_comfy_export_fill_like_content_uses_vae_encode_for_inpaint(inputs, content):
    from tests.test_comfy_workflow import only

    flow = _flow(inputs, masked_content=content, mask_blur=0)
    assert only(flow.graph, "VAEEncodeForInpaint")[1]["inputs"]["grow_mask_by"] == 0
    assert not [n for n in flow.graph.values() if n["class_type"] in ("ImageBlur", "SetLatentNoiseMask")]
    assert any(content in note and "VAEEncodeForInpaint" in note for note in flow.notes)


def test_comfy_export_refuses_only_masked_and_large_blur_in_one_line(inputs):
    with pytest.raises(InputError, match="'Only masked' cannot be exported to ComfyUI") as caught:
        _flow(inputs, inpaint_area="Only masked")
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="mask blur 20 cannot be exported to ComfyUI"):
        _flow(inputs, mask_blur=20)


# ---- record, A1111 text, PNG Info, re-run ----
def test_a1111_fields_as_a1111_writes_them_and_png_info_reads_them_back(run, inputs):
    from sdxl_nb.record.metadata import parse_parameters
    from sdxl_nb.record.png_params import read_png_parameters

    plain = _inpaint(run, inputs)
    values = parse_parameters(Image.open(plain.paths[0]).info["parameters"])
    assert values["Mask blur"] == "4"
    assert not {"Masked content", "Inpaint area", "Masked area padding"} & set(values)  # A1111 writes no defaults
    cropped = _inpaint(run, inputs, mask_blur=0, masked_content="latent noise", inpaint_area="Only masked",
                       only_masked_padding=12)
    text = Image.open(cropped.paths[0]).info["parameters"]
    values = parse_parameters(text)
    assert "Mask blur" not in values  # A1111 1.8+ writes it only above 0
    assert (values["Masked content"], values["Inpaint area"], values["Masked area padding"]) == \
        ("latent noise", "Only masked", "12")
    ours = read_png_parameters(cropped.paths[0]).fields
    assert {k: ours[k] for k in ("mask_blur", "masked_content", "inpaint_area", "only_masked_padding")} == \
        {"mask_blur": 0, "masked_content": "latent noise", "inpaint_area": "Only masked", "only_masked_padding": 12}
    a1111 = read_png_parameters(_png_with_parameters(text, cropped.paths[0].parent / "a1111.png")).fields
    assert {k: a1111[k] for k in ("mask_blur", "masked_content", "inpaint_area", "only_masked_padding")} == \
        {"mask_blur": 0, "masked_content": "latent noise", "inpaint_area": "Only masked", "only_masked_padding": 12}
    default = read_png_parameters(_png_with_parameters(
        "a fox\nSteps: 20, Sampler: Euler, Seed: 1, Size: 64x64, Denoising strength: 0.75, Mask blur: 4",
        cropped.paths[0].parent / "a1111_default.png")).fields
    assert (default["mask_blur"], default["masked_content"]) == (4, "original") and "inpaint_area" not in default


def _png_with_parameters(text, path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def test_rerun_of_each_inpaint_setting_is_bit_exact(engine, inputs, tmp_path):
    from sdxl_nb.analysis import read_logged_records
    from sdxl_nb.audit import BIT_EXACT, rerun_jobs, select_for_rerun
    from sdxl_nb.jobs.generate import generate

    folder = tmp_path / "out"
    (folder / "inputs").mkdir(parents=True)
    for name in ("init.png", "mask.png"):
        (folder / "inputs" / name).write_bytes((inputs / name).read_bytes())
    common = dict(prompt="a fox", init_image=str(folder / "inputs" / "init.png"),
                  mask_image=str(folder / "inputs" / "mask.png"), out_dir=folder, engine=engine, width=64, height=64,
                  steps=3, seed=4)
    generate(**common)
    generate(**common, masked_content="latent noise", inpaint_area="Only masked", only_masked_padding=8, mask_blur=2)
    records, _ = read_logged_records(folder)
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert table["verdict"].tolist() == [BIT_EXACT] * 2, table["note"].tolist()
    from sdxl_nb.audit.replay_request import request_from_record

    record = records[0].record
    assert request_from_record(dict(record, inpaint={**record["inpaint"], "mask_blur": 0}), folder).inpaint.mask_blur == 0
    assert request_from_record({k: v for k, v in record.items() if k != "inpaint"}, folder).inpaint is None  # as it ran


# ---- the lab's form ----
def test_the_lab_form_shows_the_settings_in_inpaint_mode_and_sends_them(engine, inputs, tmp_path):
    from sdxl_nb.ui.uploads import upload_value
    from tests.ui_helpers import lab_for, small_form

    lab = lab_for(engine, tmp_path / "out")
    form = lab.generate.form
    small_form(form, seed=3)
    section = form.sections["Inpaint"].widget  # the mask and these settings, in their own section
    assert form.inpaint.widget in section.children[0].children
    assert section.layout.display == "none"  # txt2img: hidden
    form.mode.value = "img2img"
    assert section.layout.display == "none"
    form.mode.value = "inpaint"
    assert section.layout.display is None and section.selected_index == 0  # shown, and open
    assert form.inpaint.padding.layout.display == "none"  # shown only for Only masked
    form.init_upload.value = upload_value(inputs / "init.png")
    form.mask_upload.value = upload_value(inputs / "mask.png")
    form.inpaint.mask_blur.value = 7
    form.inpaint.masked_content.value = "latent nothing"
    form.inpaint.inpaint_area.value = "Only masked"
    assert form.inpaint.padding.layout.display is None
    form.inpaint.padding.value = 16
    request, _ = form.request(tmp_path / "out")
    assert (request.mask_blur, request.masked_content, request.inpaint_area, request.only_masked_padding) == \
        (7, "latent nothing", "Only masked", 16)
    form.inpaint.mask_blur.value = 99  # a box never clamps: the request is refused in one line
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.request.resolve import resolve

    with pytest.raises(InputError, match="mask blur 99 is out of range"):
        resolve(form.request(tmp_path / "out")[0], load_presets())
    form.mode.value = "img2img"
    assert form.request(tmp_path / "out")[0].mask_blur is None  # other modes send none of them
    assert form.load({"mask_blur": 2, "masked_content": "fill", "inpaint_area": "Whole picture",
                      "only_masked_padding": 40}) == []
    assert (form.inpaint.mask_blur.value, form.inpaint.masked_content.value, form.inpaint.padding.value) == \
        (2, "fill", 40)
