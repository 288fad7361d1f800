"""Painted inpaint masks without a browser: strokes -> mask, eraser, invert, feather, an uploaded base, kept by hash."""

import hashlib

import pytest
from PIL import Image

from sdxl_nb.errors import InputError
from sdxl_nb.request.mask import MaskPaint, Stroke, coverage, load_base, mask_png, save_mask


def test_a_stroke_paints_a_band_with_round_ends():
    mask = MaskPaint((64, 48), [Stroke(((10, 20), (40, 20)), radius=4)]).render()
    assert mask.mode == "L" and mask.size == (64, 48)
    assert mask.getpixel((25, 20)) == 255 and mask.getpixel((25, 23)) == 255  # on the line, inside the radius
    assert mask.getpixel((25, 30)) == 0 and mask.getpixel((60, 20)) == 0  # away from it
    assert mask.getpixel((43, 20)) == 255  # the round end goes past the last point
    assert 0.05 < coverage(mask) < 0.10


def test_the_eraser_takes_paint_away_and_a_single_click_is_a_dot():
    paint = MaskPaint((32, 32), [Stroke(((4, 16), (28, 16)), 3), Stroke(((16, 16),), 5, erase=True)])
    mask = paint.render()
    assert mask.getpixel((16, 16)) == 0 and mask.getpixel((6, 16)) == 255
    dot = MaskPaint((32, 32), [Stroke(((8, 8),), 2)]).render()
    assert dot.getpixel((8, 8)) == 255 and dot.getpixel((8, 11)) == 0


def test_invert_and_feather():
    paint = MaskPaint((64, 64), [Stroke(((32, 32),), 12)])
    plain = paint.render()
    paint.inverted = True
    inverted = paint.render()
    assert inverted.getpixel((32, 32)) == 0 and inverted.getpixel((2, 2)) == 255
    assert abs(coverage(plain) + coverage(inverted) - 1) < 1e-9
    paint.inverted, paint.feather = False, 4
    soft = paint.render()
    edge = [soft.getpixel((32 + dx, 32)) for dx in range(8, 17)]
    assert soft.getpixel((32, 32)) > 240 and any(0 < v < 255 for v in edge)  # a soft edge, a solid middle
    paint.feather = 65
    with pytest.raises(InputError, match="feather 65 is out of range; accepted: 0 to 64 px"):
        paint.render()


def test_an_uploaded_mask_is_the_base_and_strokes_edit_it():
    uploaded = Image.new("RGB", (32, 32), "black")
    uploaded.paste((255, 255, 255), (0, 0, 16, 32))  # left half: repaint
    base = load_base(mask_png(uploaded), (64, 64))  # the init image is larger: the base follows it
    paint = MaskPaint((64, 64), base=base)
    assert paint.untouched_base() and not paint.blank
    assert paint.render().getpixel((10, 10)) == 255 and paint.render().getpixel((50, 10)) == 0
    paint.strokes.append(Stroke(((10, 10),), 4, erase=True))
    assert not paint.untouched_base() and paint.render().getpixel((10, 10)) == 0
    assert MaskPaint((8, 8)).blank


def test_a_painted_mask_is_kept_under_inputs_by_its_hash(tmp_path):
    mask = MaskPaint((64, 64), [Stroke(((20, 20), (40, 40)), 6)]).render()
    path = save_mask(mask, tmp_path / "out")
    data = path.read_bytes()
    assert path.parent == tmp_path / "out" / "inputs" and path.name == hashlib.sha256(data).hexdigest() + ".png"
    assert save_mask(mask.copy(), tmp_path / "out") == path  # the same mask is one file
    assert Image.open(path).tobytes() == mask.tobytes()
