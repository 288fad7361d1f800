"""presets.json: the shipped file's content, and validation errors that name file, key and accepted values."""

import json

import pytest

from sdxl_nb.config.presets import load_presets, parse_presets
from sdxl_nb.errors import PresetError
from tests.conftest import REPO

ORIGINAL_MODELS = [
    "stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/sdxl-turbo", "SG161222/RealVisXL_V5.0",
    "John6666/cyberrealistic-xl-v58-sdxl", "cagliostrolab/animagine-xl-4.0", "stablediffusionapi/juggernautxl",
]
STYLES = [
    "Photoreal", "Cinematic", "Anime / Vibrant", "Soft Illustration", "R-Rated", "Pencil Sketch", "Black & White",
    "35mm Film", "Rotoscoping", "None / Raw", "Tim Burton Style", "Frank Frazetta Fantasy", "Ralph Bakshi Animation",
    "H.R. Giger Biomechanical", "Dark Fantasy / Grimdark", "Few-step (Lightning / Hyper)",
]
SCHEDULERS = ["Default", "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ 2M SDE Karras", "UniPC", "DDIM",
              "Heun", "LMS", "DPM++ SDE", "DPM++ SDE Karras", "DPM++ 2M SDE", "DPM++ 3M SDE", "DPM2", "DPM2 a", "LCM",
              "TCD", "DDPM", "DEIS"]


def raw_presets():
    return json.loads((REPO / "presets.json").read_text(encoding="utf-8"))


def test_shipped_presets_hold_the_lab_configuration():
    p = load_presets(REPO / "presets.json")
    refiners = {"tiny-sdxl-refiner", "stabilityai/stable-diffusion-xl-refiner-1.0"}
    inpainting = {"tiny-sdxl-inpaint", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"}
    assert set(ORIGINAL_MODELS) | {"tiny-sdxl"} | refiners | inpainting == set(p.models)
    assert {m for m in p.models if p.models[m].refiner} == refiners
    assert {m for m in p.models if p.models[m].inpainting} == inpainting
    assert all(p.models[m].description for m in p.models)
    assert p.models["stabilityai/sdxl-turbo"].turbo and p.models["stabilityai/sdxl-turbo"].cfg == 0
    assert p.models["stabilityai/sdxl-turbo"].native_size == (512, 512)
    assert p.models["stabilityai/stable-diffusion-xl-base-1.0"].vae == "madebyollin/sdxl-vae-fp16-fix"
    assert sorted(p.styles) == sorted(STYLES)
    assert list(p.schedulers) == SCHEDULERS
    assert p.schedulers["DPM++ 2M SDE Karras"].kwargs == {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}
    assert {"1024x1024", "1152x896", "896x1152", "1216x832", "832x1216", "1344x768", "768x1344", "1536x640"} == set(p.resolutions)
    default = p.resolutions[p.defaults.resolution]
    assert default.width > default.height  # widescreen
    assert p.motion_phrases


def test_style_applies_template_suffix_and_negative():
    p = load_presets(REPO / "presets.json")
    styled, negative = p.styles["Cinematic"].apply("a fox", "blurry")
    assert styled.startswith("cinematic film still, a fox,")
    assert negative.startswith("blurry, ") and "watermark" in negative
    assert p.styles["None / Raw"].apply("a fox", "") == ("a fox", "")


def test_style_hash_follows_content_not_description():
    from dataclasses import replace

    style = load_presets(REPO / "presets.json").styles["Photoreal"]
    assert replace(style, description="other words").content_hash == style.content_hash
    assert replace(style, negative=style.negative + ", extra").content_hash != style.content_hash


def _broken(mutate):
    raw = raw_presets()
    mutate(raw)
    return raw


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["schedulers"][1].update({"class": "NoSuchScheduler"}), ["schedulers[1].class", "NoSuchScheduler", "EulerDiscreteScheduler"]),
    (lambda r: r["models"][0].update({"steps": "four"}), ["models[0].steps", "expected int"]),
    (lambda r: r["styles"][2].update({"scheduler": "Nope"}), ["styles[2].scheduler", "accepted:", "Euler a"]),
    (lambda r: r["styles"][0].update({"colour": "red"}), ["styles[0].colour", "unknown key", "accepted:"]),
    (lambda r: r["styles"].append(dict(r["styles"][0])), ["duplicate name"]),
    (lambda r: r["defaults"].update({"style": "Missing"}), ["defaults.style", "accepted:", "Photoreal"]),
    (lambda r: r["resolutions"][0].update({"width": 1001}), ["resolutions[0]", "multiples of 8"]),
    (lambda r: r["models"][1].update({"source": "s3"}), ["models[1].source", "accepted: hf, embedded"]),
    (lambda r: r.pop("styles"), ["styles", "non-empty list"]),
    # What used to pass here and fail at run time (or never): wrong kwargs, NaN, out of range, unknown schema.
    (lambda r: r["schedulers"][0].update({"kwargs": {"use_karras_sigmas": True}}),
     ["schedulers[0].kwargs", "needs a class"]),
    (lambda r: r["schedulers"][2].update({"kwargs": {"timestep_spacing": "sideways"}}),
     ["schedulers[2].kwargs", "timestep_spacing \"sideways\" is not accepted; accepted: linspace, leading, trailing"]),
    (lambda r: r["schedulers"][5].update({"kwargs": {"algorithm_type": "sde-dpmsolver++", "solver_order": "2"}}),
     ["schedulers[5].kwargs", "solver_order \"2\" must be a whole number"]),
    (lambda r: r["defaults"].update({"steps": 501}), ["defaults.steps", "501 is out of range; accepted: 1 to 500"]),
    (lambda r: r["defaults"].update({"cfg": float("inf")}), ["defaults.cfg", "expected a finite number, got Infinity"]),
    (lambda r: r["defaults"].update({"strength": 0}), ["defaults.strength", "accepted: greater than 0, at most 1"]),
    (lambda r: r["models"][0].update({"cfg": 80.0}), ["models[0].cfg", "80 is out of range; accepted: 0 to 50"]),
    (lambda r: r["styles"][1].update({"steps": 9000}), ["styles[1].steps", "9000 is out of range"]),
    (lambda r: r["resolutions"][0].update({"width": 8192}), ["resolutions[0]", "accepted: multiples of 8 from 64 to 4096"]),
    (lambda r: r.update({"schema": 7}), ["schema: unknown version 7; accepted: 1"]),
    (lambda r: r.update({"schema": "1"}), ["schema: unknown version \"1\""]),
])
def test_invalid_presets_name_file_key_and_accepted_values(mutate, expected):
    with pytest.raises(PresetError) as info:
        parse_presets(_broken(mutate), "/x/presets.json")
    message = str(info.value)
    assert message.startswith("/x/presets.json: ") and "\n" not in message
    for part in expected:
        assert part in message


def test_nan_written_by_pythons_json_is_refused(tmp_path):
    raw = raw_presets()
    raw["defaults"]["strength"] = float("nan")
    path = tmp_path / "presets.json"
    path.write_text(json.dumps(raw), encoding="utf-8")  # Python writes NaN, and its reader takes it back
    with pytest.raises(PresetError, match=r"defaults.strength: expected a finite number, got NaN"):
        load_presets(path)


def test_the_shipped_presets_pass_every_check():
    presets = load_presets(REPO / "presets.json", user_layer=False)
    assert presets.schedulers["DPM++ 2M SDE Karras"].kwargs == {"algorithm_type": "sde-dpmsolver++",
                                                                "use_karras_sigmas": True}


def test_invalid_json_and_missing_file(tmp_path):
    bad = tmp_path / "presets.json"
    bad.write_text('{"models": [', encoding="utf-8")
    with pytest.raises(PresetError, match=r"presets.json: invalid JSON at line 1"):
        load_presets(bad)
    with pytest.raises(PresetError, match="not found"):
        load_presets(tmp_path / "missing.json")
