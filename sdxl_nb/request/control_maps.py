"""Control maps: a control image -> the map a ControlNet reads (canny edges as cv2.Canny, or the image as is); no torch."""

from __future__ import annotations

import io

from sdxl_nb.config.limits import check_int
from sdxl_nb.errors import InputError
from sdxl_nb.request.annotators import ALIASES, ANNOTATORS, PROCESSOR_RES, annotate

# A1111's defaults for canny (Threshold A / Threshold B), and OpenCV's accepted range for 8-bit images.
CANNY_DEFAULTS = {"low_threshold": 100, "high_threshold": 200}
THRESHOLD_RANGE = (1, 255)
PREPROCESSORS = ("canny", "none", *ANNOTATORS)
_ELSEWHERE = ("is not run here; make the map elsewhere and pass it with preprocessor 'none'; accepted here: "
              + ", ".join(PREPROCESSORS))
# A1111 modules this lab does not run (other annotator models, random or segmentation ones): one line says what to do.
ANNOTATOR_PREPROCESSORS = {name: f"preprocessor {name!r} {_ELSEWHERE}" for name in (
    "depth_zoe", "depth_anything", "depth_leres", "dw_openpose_full", "scribble", "scribble_hed", "seg",
    "seg_ofade20k", "tile", "tile_resample", "shuffle", "mediapipe_face", "invert", "reference_only", "ip-adapter")}


def canonical(preprocessor: str) -> str:
    """A1111's module name for a preprocessor name or its short form (depth -> depth_midas)."""
    return ALIASES.get(preprocessor, preprocessor)


def check_preprocessor_settings(preprocessor: str, fields: dict, label: str) -> tuple[tuple[str, int], ...]:
    """The preprocessor's settings (defaults filled), or InputError; settings of another preprocessor are refused."""
    given = {key: fields.get(key) for key in CANNY_DEFAULTS if fields.get(key) is not None}
    if preprocessor != "canny":
        if given:
            raise InputError(f"{label}: {', '.join(given)} apply only to preprocessor canny, not {preprocessor}")
        return (("processor_res", PROCESSOR_RES),) if preprocessor in ANNOTATORS else ()
    low, high = (check_int(given.get(key, default), f"{label} {key.replace('_', ' ')}", *THRESHOLD_RANGE)
                 for key, default in CANNY_DEFAULTS.items())
    if low > high:
        raise InputError(f"{label} low threshold {low} is above its high threshold {high}; accepted: low <= high")
    return (("low_threshold", low), ("high_threshold", high))


def control_map(source, preprocessor: str, settings: dict | tuple, size: tuple[int, int]):
    """The RGB map a ControlNet reads, at the job's size: the image (a path, or bytes) stretched to it ("Just
    Resize"), then preprocessed. Canny runs cv2.Canny on the RGB image with the two thresholds, as A1111's canny
    module does. The lab shows this map before a job runs; the job saves it."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        rgb = image.convert("RGB")
    if rgb.size != tuple(size):
        rgb = rgb.resize(tuple(size), Image.Resampling.LANCZOS)
    if preprocessor == "none":
        return rgb
    if preprocessor == "canny":
        import cv2

        values = dict(settings)
        edges = cv2.Canny(np.asarray(rgb), values["low_threshold"], values["high_threshold"])
        return Image.fromarray(edges).convert("RGB")
    if preprocessor in ANNOTATORS:
        return annotate(preprocessor, rgb, tuple(size))
    raise InputError(ANNOTATOR_PREPROCESSORS.get(preprocessor) or f"unknown preprocessor {preprocessor!r}")


def map_png(image) -> bytes:
    """A map as PNG bytes with no text chunks: the same map is the same file."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def unit_map(unit, size: tuple[int, int]):
    """The map of a resolved ControlUnit at a job's size."""
    return control_map(unit.image_path, unit.preprocessor, unit.settings, size)
