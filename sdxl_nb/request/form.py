"""The rules behind the generate form (style-aware negative text, effective defaults, aspect matching,
uploaded inputs); pure, so panels stay views and the same rules can be tested without widgets."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb.config.input_image import INPUTS_DIR, KEPT_FORMATS, keep_input, uploads_for_one_request  # noqa: F401
from sdxl_nb.config.presets import Presets, StylePreset
from sdxl_nb.errors import InputError
from sdxl_nb.request.resolve import MAX_SIZE, MIN_SIZE, GenerationRequest, decode_image, resolve


@dataclass(frozen=True)
class StyleSettings:
    """What a style makes the request use when the user sets nothing: shown in the form's widgets."""

    scheduler: str
    steps: int
    cfg: float


def style_settings(presets: Presets, model_presets: dict, model_id: str, style_name: str) -> StyleSettings:
    """The scheduler/steps/cfg a request with this model and style resolves to (resolve()'s own rules)."""
    resolved = resolve(GenerationRequest(prompt="", model=model_id, style=style_name, seed=0, width=64, height=64),
                       presets, model_presets)
    return StyleSettings(resolved.scheduler.name, resolved.steps, resolved.cfg)


def user_negative(shown: str, style: StylePreset) -> str | None:
    """The user's own part of a negative box that shows `style`'s effective negative; None when the box
    no longer ends with the style's negative (the user edited that part)."""
    shown = shown.strip()
    if not style.negative:
        return shown
    if shown == style.negative:
        return ""
    suffix = ", " + style.negative
    return shown[: -len(suffix)].strip() if shown.endswith(suffix) else None


def effective_negative(user_part: str, style: StylePreset) -> str:
    """What the pipeline receives as negative prompt: the user's text then the style's negative."""
    return style.apply("", user_part)[1]


def restyle_negative(shown: str, old: StylePreset | None, new: StylePreset) -> str:
    """The negative box's text after switching styles: the user's part kept, the style's part swapped."""
    own = shown.strip() if old is None else user_negative(shown, old)
    return effective_negative(shown.strip() if own is None else own, new)


def styled_prompt(prompt: str, style: StylePreset) -> str:
    return style.apply(prompt, "")[0]


def match_aspect(reference: tuple[int, int], like: tuple[int, int]) -> tuple[int, int]:
    """A size with the reference image's aspect ratio and about `like`'s pixel count, in multiples of 8
    (what SDXL accepts), kept inside the lab's size range."""
    ref_w, ref_h = reference
    if ref_w <= 0 or ref_h <= 0:
        raise InputError(f"reference image size {ref_w}x{ref_h} is not usable")
    if like[0] <= 0 or like[1] <= 0:
        raise InputError(f"size {like[0]}x{like[1]} is not usable; accepted: {MIN_SIZE} to {MAX_SIZE} per side")
    pixels = like[0] * like[1]
    width = math.sqrt(pixels * ref_w / ref_h)
    height = width * ref_h / ref_w
    scale = min(1.0, MAX_SIZE / max(width, height))
    scale = max(scale, MIN_SIZE / min(width * scale, height * scale))
    return tuple(min(MAX_SIZE, max(MIN_SIZE, round(side * scale / 8) * 8)) for side in (width, height))


def aspect_note(reference: tuple[int, int], size: tuple[int, int]) -> str:
    return (f"size {size[0]}x{size[1]}: the aspect ratio of the {reference[0]}x{reference[1]} reference image, "
            f"snapped to multiples of 8")


def save_upload(data: bytes, out_dir: str | os.PathLike, label: str = "upload") -> Path:
    """Keep an uploaded image under <out_dir>/inputs/<sha256><ext> (config.input_image.keep_input) so records point
    at a lasting file. A file that is not a readable image raises InputError and nothing is written."""
    return keep_input(data, out_dir, KEPT_FORMATS[upload_format(data, label)], label)


def upload_format(data: bytes, label: str = "upload") -> str:
    """The format of uploaded image bytes that decode within the pixel budget (bombs refused); else InputError."""

    from PIL import Image

    decode_image(data, label)
    with Image.open(io.BytesIO(data)) as image:
        kind = image.format
    if kind not in KEPT_FORMATS:
        raise InputError(f"{label} is a {kind} image; accepted: {', '.join(KEPT_FORMATS)}")
    return kind
