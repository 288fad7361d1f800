"""Hypothesis strategies for every request field, shared by the property tests of the API, the CLI and the form.

Each field draws from values a tiny job runs cheaply (64-128 px, 1-3 steps, batch 1-2) and from values that
must be refused (out of range, wrong type, NaN, control characters, broken or hostile images). Large valid
values (a 4096 px size, 500 steps) are left out on purpose: they are valid and would only make the tests slow.
A new request field joins FIELDS (and CLI_FLAGS when the CLI takes it); every property test then covers it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from sdxl_nb.config.presets import load_presets

PRESETS = load_presets()
SCHEDULERS = list(PRESETS.schedulers)
STYLES = [name for name in PRESETS.styles if name != "Dark Fantasy / Grimdark"]  # 35 steps: valid, only slow
NOT_CACHED_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"  # known, never in the tests' empty cache

nan, inf = float("nan"), float("inf")
BAD_NUMBERS = st.sampled_from([nan, inf, -inf, True, "2", "two", [2], 10**30])


def text(*, printable_only: bool = False) -> st.SearchStrategy[str]:
    """Prompts: plain words, A1111 syntax, newlines (the events log must escape them), a line that A1111
    readers take for the negative prompt, unicode; unless printable_only, control characters and surrogates."""
    plain = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=40)
    special = st.sampled_from(["a fox", "(cat:1.3), [dog]", "a\nNegative prompt: x", "line\r\n[2030] RECOVERED",
                               "猫 🐈‍⬛", "", "  ", "\\(x\\)", "x" * 400, "a\u2028b", "-x", "--steps"])
    hostile = st.sampled_from(["a\x00b", "\x1b[31mred", "caf\udce9", "a\x7fb"])
    return st.one_of(plain, special) if printable_only else st.one_of(plain, special, hostile)


# Each field: (values a tiny job runs cheaply, values that must be refused). Large valid values (4096 px,
# 500 steps) are left out on purpose: valid, and only slow.
FIELDS = {
    "prompt": (text(printable_only=True), st.sampled_from(["a\x00b", "\x1b[31mred", "caf\udce9", "a\x7fb", 7])),
    "negative_prompt": (text(printable_only=True), st.sampled_from(["\x00", "caf\udce9", 3])),
    "model": (st.sampled_from(["tiny-sdxl"]), st.sampled_from([NOT_CACHED_MODEL, "no/such-model", 5])),
    "scheduler": (st.sampled_from(SCHEDULERS), st.sampled_from(["Nope", "euler", 1])),
    "style": (st.sampled_from(STYLES), st.sampled_from(["Nope", 2])),
    "steps": (st.integers(1, 3), st.one_of(st.sampled_from([0, -1, 501, 10**12]), BAD_NUMBERS)),
    "cfg": (st.floats(0, 12), st.one_of(st.sampled_from([-0.5, 50.5, 1e308]), BAD_NUMBERS)),
    "width": (st.sampled_from([64, 72, 128]), st.sampled_from([0, 1, -64, 63, 100, 4104, 10**9, 64.0, "64", True])),
    "height": (st.sampled_from([64, 80, 128]), st.sampled_from([0, 7, -8, 65, 4100, 64.5, "x", False])),
    "resolution": (st.nothing(), st.sampled_from(["nope", "1024x1024", 3])),  # a valid one alone is a 1024 px job
    "batch": (st.integers(1, 2), st.one_of(st.sampled_from([0, -1, 65, 10**6]), BAD_NUMBERS)),
    "seed": (st.integers(0, 2**32 - 2), st.one_of(st.sampled_from([-1, 2**32, 2**64]), BAD_NUMBERS)),
    "strength": (st.floats(0.5, 1.0), st.one_of(st.sampled_from([0.0, 0.01, 0.1, -0.5, 1.0000001, 2.0]), BAD_NUMBERS)),
}


def png_bytes(width: int, height: int, mode: str = "RGB", value: int = 90) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3) if mode == "RGB" else (height, width), value, dtype=np.uint8),
                    mode).save(buffer, format="PNG")
    return buffer.getvalue()


def declared_png(width: int, height: int) -> bytes:
    """A PNG header declaring width x height over a few bytes (a decompression bomb's shape)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# What an init or mask image may be: fine, the wrong size, too small, a bomb, not an image, gone.
IMAGES = {
    "64x64": lambda: png_bytes(64, 64), "72x64": lambda: png_bytes(72, 64), "64x64 grey": lambda: png_bytes(64, 64, "L"),
    "1x1": lambda: png_bytes(1, 1), "70x64": lambda: png_bytes(70, 64), "bomb": lambda: declared_png(30000, 30000),
    "too many pixels": lambda: declared_png(9000, 9000), "truncated": lambda: png_bytes(64, 64)[:60],
    "text": lambda: b"not an image", "empty": lambda: b"",
}
image_kinds = st.sampled_from([None, None, *IMAGES, "missing", "a folder"])


def image_file(kind: str | None, folder: Path, name: str) -> str | None:
    """The path a request names for an image of this kind (written under `folder`, never the output folder)."""
    if kind is None:
        return None
    path = folder / name
    if kind == "a folder":
        path.mkdir()
    elif kind != "missing":
        path.write_bytes(IMAGES[kind]())
    return str(path)


@st.composite
def request_fields(draw) -> dict:
    """Keyword fields of a GenerationRequest (prompt always given) plus "init"/"mask" image kinds: about half
    the time every field is valid, else one or more are spoiled."""
    optional = [name for name in FIELDS if name not in ("prompt", "resolution")]
    names = draw(st.sets(st.sampled_from(optional), max_size=6))
    spoil = draw(st.sampled_from(["none", "none", "none", "one", "one", "many"]))
    fields = {}
    for name in ["prompt", *sorted(names)]:
        bad = spoil == "many" and draw(st.booleans())
        fields[name] = draw(FIELDS[name][1] if bad else FIELDS[name][0])
    if spoil == "one":
        name = draw(st.sampled_from(sorted(FIELDS)))
        fields[name] = draw(FIELDS[name][1])
    if spoil == "none" and ("width" in fields) != ("height" in fields):  # both or neither, as resolve() asks
        fields.setdefault("width", 64)
        fields.setdefault("height", 64)
    if spoil == "none":  # inputs that fit: the init image's own size, or a mask of the same size
        fields["init"] = draw(st.sampled_from([None, None, "64x64", "72x64", "64x64 grey"]))
        fields["mask"] = draw(st.sampled_from([None, "64x64"])) if fields["init"] in ("64x64", "64x64 grey") else None
    else:
        fields["init"] = draw(image_kinds)
        fields["mask"] = draw(image_kinds if fields["init"] else st.sampled_from([None, None, "64x64"]))
    if fields.get("resolution") == "1024x1024" and fields.get("width") is None:
        fields["width"] = 64  # a valid resolution alone would be a 1024 px job: valid, and too slow for a test
    return fields


# The CLI's flag for each field, and how its value is written on the command line.
CLI_FLAGS = {"prompt": "--prompt", "negative_prompt": "--negative", "model": "--model", "scheduler": "--scheduler",
             "style": "--style", "steps": "--steps", "cfg": "--cfg", "width": "--width", "height": "--height",
             "resolution": "--resolution", "batch": "--batch", "seed": "--seed", "strength": "--strength"}


def cli_value(value) -> str:
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


# The generate form's widgets: (values a tiny job runs cheaply, values that must be refused). Sizes other than
# the model's (128 px) and small custom ones are left out: valid and slow.
FORM = {
    "prompt": (text(printable_only=True), st.sampled_from(["a\x00b", "caf\udce9"])),
    "negative": (text(printable_only=True), st.sampled_from(["\x1b[1m"])),
    "style": (st.sampled_from(STYLES), st.nothing()),
    "scheduler": (st.sampled_from(SCHEDULERS), st.nothing()),
    "width": (st.sampled_from([64, 72, 128]), st.sampled_from([0, 63, -8, 5000, 10**7])),
    "height": (st.sampled_from([64, 96, 128]), st.sampled_from([1, 100, -64, 4104])),
    "steps": (st.integers(1, 3), st.sampled_from([0, -1, 600, 10**9])),
    "cfg": (st.floats(0, 12), st.sampled_from([-1.0, 60.0, nan, inf])),
    "batch": (st.integers(1, 2), st.sampled_from([0, -2, 70])),
    "at_once": (st.sampled_from([0, 1, 2, 4, 8]), st.nothing()),
    "seed": (st.integers(0, 2**32 - 2), st.sampled_from([-1, 2**32, 2**40])),
    "strength": (st.floats(0.5, 1.0), st.sampled_from([0.0, 0.1, 1.5, nan, -0.2])),
}


@st.composite
def form_values(draw) -> dict:
    """Widget values for the generate form, plus its mode, size choice, seed choice and uploads (image kinds)."""
    spoil = draw(st.sampled_from(["none", "none", "one", "many"]))
    values = {}
    for name, (good, bad) in FORM.items():
        spoiled = spoil == "many" and bad is not st.nothing() and draw(st.booleans())
        values[name] = draw(bad if spoiled else good)
    if spoil == "one":
        name = draw(st.sampled_from([n for n, (_good, bad) in FORM.items() if bad is not st.nothing()]))
        values[name] = draw(FORM[name][1])
    values["mode"] = draw(st.sampled_from(["txt2img", "img2img", "inpaint"]))
    values["resolution"] = draw(st.sampled_from(["model", "custom"]))
    values["random_seed"] = draw(st.booleans())
    fitting = st.sampled_from(["64x64", "72x64", "64x64 grey"])
    values["init"] = draw(st.one_of(st.none(), fitting) if spoil == "none" else image_kinds)
    values["mask"] = draw(st.sampled_from([None, "64x64"]) if spoil == "none" else image_kinds)
    if values["init"] in ("missing", "a folder"):
        values["init"] = None  # an upload is bytes: no path to lose
    if values["mask"] in ("missing", "a folder"):
        values["mask"] = None
    # Matching the aspect ratio scales a custom size: only small valid ones (and never a bomb, see test_properties).
    values["match_aspect"] = draw(st.booleans()) and values["init"] != "bomb" and (
        values["resolution"] == "model" or (values["width"] in (64, 72, 128) and values["height"] in (64, 96, 128)))
    return values
