"""Request resolution: defaults and their provenance, seeds, and the validation table (no torch)."""

import pytest
from PIL import Image

from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import InputError
from sdxl_nb.request.resolve import GenerationRequest, resolve
from tests.conftest import REPO


@pytest.fixture(scope="module")
def presets():
    return load_presets(REPO / "presets.json")


@pytest.fixture
def images(tmp_path):
    Image.new("RGB", (96, 64), "red").save(tmp_path / "init.png")
    Image.new("L", (96, 64), 255).save(tmp_path / "mask.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "small_mask.png")
    Image.new("RGB", (100, 70), "red").save(tmp_path / "odd.png")
    (tmp_path / "text.png").write_text("not an image", encoding="utf-8")
    return tmp_path


def req(**fields):
    return GenerationRequest(**{"prompt": "a fox", "model": "tiny-sdxl", **fields})


def test_defaults_come_from_style_then_model_and_say_so(presets):
    r = resolve(req(style="Cinematic", seed=5), presets)
    assert r.scheduler.name == "DPM++ 2M Karras"  # the style's override
    assert (r.steps, r.cfg, r.width, r.height) == (4, 5.0, 128, 128)  # the tiny model's defaults
    assert "scheduler DPM++ 2M Karras from style Cinematic" in r.notes
    assert "steps 4 from model tiny-sdxl" in r.notes
    explicit = resolve(req(style="Cinematic", scheduler="Euler", steps=3, cfg=2, width=64, height=96), presets)
    assert (explicit.scheduler.name, explicit.steps, explicit.cfg, explicit.width, explicit.height) == ("Euler", 3, 2.0, 64, 96)


def test_real_models_default_to_the_widescreen_resolution(presets):
    r = resolve(req(model="stabilityai/stable-diffusion-xl-base-1.0", seed=1), presets)
    assert (r.width, r.height, r.steps) == (1344, 768, 30)
    assert resolve(req(resolution="832x1216", seed=1), presets).width == 832


def test_effective_negative_is_visible_before_running(presets):
    r = resolve(req(style="Photoreal", negative_prompt="extra fingers", seed=1), presets)
    assert r.effective_negative_prompt.startswith("extra fingers, cartoon")
    assert r.styled_prompt.startswith("a fox, photorealistic")


def test_seeds_are_base_plus_index_and_random_seed_is_concrete(presets):
    assert resolve(req(seed=10, batch=3), presets).seeds == (10, 11, 12)
    r = resolve(req(batch=2), presets)
    assert r.seeds == (r.seed, r.seed + 1)
    assert any(note.startswith(f"seed {r.seed} drawn at random") for note in r.notes)


def test_modes_follow_the_inputs(presets, images):
    assert resolve(req(seed=1), presets).mode == "txt2img"
    r = resolve(req(seed=1, init_image=str(images / "init.png")), presets)
    assert (r.mode, r.width, r.height, r.strength) == ("img2img", 96, 64, 0.75)
    assert len(r.init_image.sha256) == 64
    r = resolve(req(seed=1, init_image=str(images / "init.png"), mask_image=str(images / "mask.png"), strength=0.5), presets)
    assert (r.mode, r.strength) == ("inpaint", 0.5)
    r = resolve(req(seed=1, init_image=str(images / "odd.png"), width=96, height=64), presets)
    assert r.init_resized and "init image resized from 100x70 to 96x64" in r.notes


BAD = [
    (dict(width=100, height=64), "width 100 must be a positive multiple of 8"),
    (dict(width=0, height=64), "width 0 must be a positive multiple of 8"),
    (dict(width=-64, height=64), "multiple of 8"),
    (dict(width=8192, height=64), "accepted: multiples of 8 from 64 to 4096"),
    (dict(width=64), "give both width and height"),
    (dict(width=64, height=64, resolution="1024x1024"), "either a resolution name or width and height"),
    (dict(resolution="999x999"), "unknown resolution '999x999'; accepted: 1024x1024"),
    (dict(steps=0), "steps 0 is out of range; accepted: 1 to 500"),
    (dict(steps=2.5), "steps must be a whole number"),
    (dict(cfg=-1), "cfg -1 is out of range; accepted: 0 to 50"),
    (dict(cfg=float("nan")), "cfg must be a number"),
    (dict(batch=0), "batch 0 is out of range; accepted: 1 to 64"),
    (dict(batch=100000), "batch 100000 is out of range; accepted: 1 to 64"),
    (dict(seed=-1), "seed -1 is out of range"),
    (dict(seed=2**32), "seed 4294967296 is out of range"),
    (dict(strength=0.5), "strength applies only to img2img and inpaint"),
    (dict(model="nope/model"), "unknown model 'nope/model'; accepted: tiny-sdxl, stabilityai/"),
    (dict(scheduler="Euler b"), "unknown scheduler 'Euler b'; accepted: Default, Euler, Euler a"),
    (dict(style="Vaporwave"), "unknown style 'Vaporwave'; accepted: None / Raw, Photoreal"),
    (dict(prompt="a\x00fox"), "prompt contains control characters (U+0000)"),
    (dict(prompt="bad \udcff bytes"), "prompt is not valid UTF-8 text"),
    (dict(negative_prompt=5), "negative prompt must be text"),
]


@pytest.mark.parametrize("fields, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_clear_line(presets, fields, message):
    with pytest.raises(InputError) as info:
        resolve(req(**fields), presets)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


BAD_IMAGES = [
    (dict(init_image="missing.png"), "does not exist"),
    (dict(init_image="text.png"), "is not a readable image"),
    (dict(init_image="init.png", strength=0), "strength 0 is out of range"),
    (dict(init_image="init.png", strength=1.5), "strength 1.5 is out of range"),
    (dict(mask_image="mask.png"), "a mask image needs an init image"),
    (dict(init_image="init.png", mask_image="small_mask.png"), "mask image is 64x64 but the init image is 96x64"),
    (dict(init_image="odd.png"), "width 100 of the init image (or pass width and height to resize it)"),
]


@pytest.mark.parametrize("fields, message", BAD_IMAGES, ids=[m for _, m in BAD_IMAGES])
def test_bad_images_are_rejected(presets, images, fields, message):
    fields = {k: (str(images / v) if k.endswith("image") else v) for k, v in fields.items()}
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(req(**fields), presets)



@pytest.mark.parametrize("steps, strength, runs", [(10, 0.1, 1), (3, 0.34, 1), (3, 0.33, 0), (2, 0.1, 0),
                                                   (7, 0.3, 2), (1, 1.0, 1), (500, 0.001, 0), (1, 0.99, 0)])
def test_img2img_needs_a_denoising_step_as_diffusers_counts_them(presets, images, steps, strength, runs):
    """diffusers' get_timesteps runs int(steps x strength) steps; 0 would crash inside the pipeline."""
    request = req(init_image=str(images / "init.png"), steps=steps, strength=strength, seed=1)
    if runs:
        assert resolve(request, presets).strength == strength
        return
    with pytest.raises(InputError) as refused:
        resolve(request, presets)
    message = str(refused.value)
    assert message.startswith(f"steps {steps} x strength {strength:g} leaves no denoising step")
    # Each setting the message suggests is accepted.
    suggestions = message.rsplit("e.g. ", 1)[1].split(" or ")
    for suggestion in suggestions:
        name, value = suggestion.split(" ")
        fixed = {"steps": steps, "strength": strength, name: int(value) if name == "steps" else float(value)}
        assert resolve(req(init_image=str(images / "init.png"), seed=1, **fixed), presets).steps >= 1
