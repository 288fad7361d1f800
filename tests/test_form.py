"""The rules behind the generate form: style-aware negatives, style settings, aspect matching, uploads."""

import pytest
from PIL import Image

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import model_presets
from sdxl_nb.errors import InputError
from sdxl_nb.request import form


@pytest.fixture(scope="module")
def presets():
    return load_presets()


def test_switching_styles_keeps_the_users_negative_and_swaps_the_styles(presets):
    cinematic, pencil, raw = (presets.styles[n] for n in ("Cinematic", "Pencil Sketch", "None / Raw"))
    shown = form.restyle_negative("blurry", None, cinematic)
    assert shown == f"blurry, {cinematic.negative}"
    assert form.user_negative(shown, cinematic) == "blurry"
    shown = form.restyle_negative(shown, cinematic, pencil)
    assert shown == f"blurry, {pencil.negative}"
    assert form.restyle_negative(shown, pencil, raw) == "blurry"
    assert form.restyle_negative("", raw, cinematic) == cinematic.negative
    assert form.user_negative("blurry, something else", cinematic) is None


def test_style_settings_follow_resolve(presets):
    models = model_presets(presets)
    assert form.style_settings(presets, models, "tiny-sdxl", "Cinematic").scheduler == "DPM++ 2M Karras"
    assert form.style_settings(presets, models, "tiny-sdxl", "Pencil Sketch").cfg == 6.0
    assert form.style_settings(presets, models, "tiny-sdxl", "Dark Fantasy / Grimdark").steps == 35
    turbo = form.style_settings(presets, models, "stabilityai/sdxl-turbo", "Dark Fantasy / Grimdark")
    assert (turbo.steps, turbo.cfg) == (4, 0.0)  # a turbo model keeps its own steps and cfg


@pytest.mark.parametrize("reference, like, expected", [
    ((1500, 1000), (1024, 1024), (1256, 840)),
    ((1000, 1000), (1344, 768), (1016, 1016)),
    ((100, 1000), (128, 128), (64, 640)),  # the short side stays at the 64 px minimum
])
def test_match_aspect_keeps_pixels_and_snaps_to_multiples_of_8(reference, like, expected):
    size = form.match_aspect(reference, like)
    assert size == expected
    assert all(side % 8 == 0 for side in size)


def test_uploads_are_kept_under_inputs_by_content_and_non_images_write_nothing(tmp_path):
    image = tmp_path / "in.png"
    Image.new("RGB", (16, 8), "red").save(image)
    data = image.read_bytes()
    path = form.save_upload(data, tmp_path / "out")
    assert path.parent == tmp_path / "out" / "inputs" and path.suffix == ".png" and path.read_bytes() == data
    assert form.save_upload(data, tmp_path / "out") == path
    with pytest.raises(InputError, match="mask image is not a readable image"):
        form.save_upload(b"not an image", tmp_path / "other", "mask image")
    assert not (tmp_path / "other").exists()
