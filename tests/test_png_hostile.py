"""Hostile PNGs through PNG Info and Load into Generate: each problem is a line, never a traceback, a hang or a
local file read; an honest PNG of ours still loads everything, its init image from the output folder's inputs/."""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import struct
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sdxl_nb.config import bounded_json
from sdxl_nb.errors import InputError
from sdxl_nb.record.png_inputs import find_input, local_inputs
from sdxl_nb.record.png_params import read_png_parameters
from sdxl_nb.record.png_text import MAX_TEXT_CHUNK, text_chunks
from tests.conftest import PYTHON, python_env
from tests.hostile import cyclic_comfy_graph, deep_json, png_with_chunks, time_bound

GOOD_A1111 = "a fox\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x64"
SAMPLER = {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 4, "cfg": 5.0, "model": ["4", 0]}}
WRONG_TYPES = {"job_id": "x", "mode": 7, "steps": "x", "seed": [1], "model": 5, "prompt": {"a": 1}, "cfg": 1e999,
               "width": 10**30, "height": True, "image": "not an object", "init_image": {"path": 5},
               "controlnets": [1, {"weight": "w", "model": {"name": ["m"]}}], "ip_adapter": {"name": 3},
               "ip_images": "none", "hires": {"scale": "big"}, "style": ["Cinematic"], "refiner": {"switch": "0.5"}}


# name -> (chunks, compressed, source, phrase): what a stranger's PNG can carry (each a known way to hang or crash a
# naive reader), and what it must give: the source read and a phrase among its "not read" lines, or (source None)
# one InputError line holding the phrase
HOSTILE = {
    "colonless-900kb-parameters": ({"parameters": "word " * 180_000}, True, "A1111", None),
    "deep-json-record": ({"sdxl_nb": deep_json(), "parameters": GOOD_A1111}, True, "A1111",
                         "the sdxl_nb record: nested 100000 levels deep; at most 64 are read"),
    "deep-json-record-alone": ({"sdxl_nb": deep_json()}, True, None,
                               "not read: the sdxl_nb record: nested 100000 levels deep"),
    "invalid-json-record": ({"sdxl_nb": "{not json", "parameters": GOOD_A1111}, True, "A1111",
                            "the sdxl_nb record: invalid JSON at line 1"),
    "record-not-an-object": ({"sdxl_nb": "[1, 2]"}, True, None, "not read: the sdxl_nb record ([1, 2] is not an object)"),
    "wrong-field-types": ({"sdxl_nb": json.dumps(WRONG_TYPES)}, True, "sdxl_nb",
                          "not read: steps ('x' is not a whole number)"),
    "a1111-bad-escapes": ({"parameters": 'p\nSteps: 2, Sampler: "\\x", CFG scale: "unbalanced, Seed: "a\\"b, '
                                         'Size: 64x64, Model: "\\u12", Hires upscale: "\\"'}, False, "A1111", None),
    "a1111-5000-digit-seed": ({"parameters": "p\nSteps: 2, Seed: " + "9" * 5000 + ", CFG scale: nan, Size: 1x2x3"},
                              True, "A1111", "not read: Seed ("),
    "cyclic-comfy-graph": ({"prompt": json.dumps(cyclic_comfy_graph())}, True, "ComfyUI", None),
    "comfy-inputs-a-list": ({"prompt": json.dumps({"3": {"class_type": "KSampler", "inputs": [1, 2]}})}, True,
                            "ComfyUI", "not read: the inputs of node '3' ([1, 2] is not an object)"),
    "comfy-ckpt-a-number": ({"prompt": json.dumps({"3": SAMPLER, "4": {"class_type": "CheckpointLoaderSimple",
                                                                      "inputs": {"ckpt_name": 5}}})}, True,
                            "ComfyUI", "not read: the checkpoint name (5 is not text)"),
    "comfy-wrong-types": ({"prompt": json.dumps({"3": {"class_type": "KSampler", "inputs": {
        "seed": "s", "steps": 1e300, "cfg": [1], "positive": [["x"], 0], "latent_image": [{"a": 1}, 0],
        "model": [10**40, 0]}}, "99" * 3000: {"class_type": "KSampler", "inputs": {}}})}, True, "ComfyUI",
        "not read: the sampler's seed ('s' is not a whole number)"),
    "comfy-deep-json": ({"prompt": deep_json()}, True, None, "the PNG's ComfyUI 'prompt' chunk: nested 100000 levels deep"),
    "inflating-50mb-parameters": ({"parameters": b"a" * 50_000_000}, True, None,
                                  "not read: the 'parameters' chunk (over 1,048,576 bytes when decompressed"),
    "inflating-50mb-record": ({"sdxl_nb": b"{" * 50_000_000, "parameters": GOOD_A1111}, True, "A1111",
                              "not read: the 'sdxl_nb' chunk (over 1,048,576 bytes when decompressed"),
}
# Reads one PNG in a fresh process: a hang is the subprocess timeout, any exception but InputError a traceback.
WORKER = """import json, sys
from sdxl_nb.errors import InputError
from sdxl_nb.record.png_params import read_png_parameters
try:
    read = read_png_parameters(sys.argv[1])
    print(json.dumps({"source": read.source, "fields": read.fields, "problems": read.problems}))
except InputError as exc:
    print(json.dumps({"error": str(exc)}))"""


@pytest.fixture(scope="module")
def hostile_pngs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("hostile")
    return {name: png_with_chunks(folder / f"{name}.png", chunks, compressed=compressed)
            for name, (chunks, compressed, _source, _phrase) in HOSTILE.items()}


def text_chunk(kind: bytes, key: str, value: str) -> bytes:
    if kind == b"iTXt":  # compressed, UTF-8: what Pillow writes for text beyond Latin-1
        payload = key.encode("latin-1") + b"\0\1\0\0\0" + zlib.compress(value.encode("utf-8"))
    elif kind == b"zTXt":
        payload = key.encode("latin-1") + b"\0\0" + zlib.compress(value.encode("latin-1", "replace"))
    else:
        payload = key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace")
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(*chunks: bytes) -> bytes:
    """An 8x8 PNG in memory with these chunks before its IEND."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "grey").save(buffer, format="PNG")
    body = buffer.getvalue()
    end = body.rindex(b"IEND") - 4
    return body[:end] + b"".join(chunks) + body[end:]


# ---- the reader, each hostile PNG in its own process ----
@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_png_gives_lines_not_exceptions_and_ends(hostile_pngs, name):
    done = subprocess.run([PYTHON, "-c", WORKER, str(hostile_pngs[name])], capture_output=True, text=True,
                          env=python_env(), timeout=30)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    read = json.loads(done.stdout)
    source, phrase = HOSTILE[name][2:]
    if source is None:
        assert "source" not in read and phrase in read["error"] and "\n" not in read["error"]
        return
    assert read["source"] == source
    if phrase:
        assert any(phrase in line for line in read["problems"]), read["problems"]
    assert all(line.startswith("not read: ") and "\n" not in line for line in read["problems"])


def test_what_a_hostile_png_leaves_readable_still_reads(hostile_pngs):
    with time_bound(20):
        long = read_png_parameters(hostile_pngs["colonless-900kb-parameters"])
        assert long.fields["prompt"] == ("word " * 180_000).strip("\n") and long.problems == []
        deep = read_png_parameters(hostile_pngs["deep-json-record"])
        assert (deep.fields["prompt"], deep.fields["steps"], deep.fields["seed"]) == ("a fox", 20, 5)
        typed = read_png_parameters(hostile_pngs["wrong-field-types"])
        cyclic = read_png_parameters(hostile_pngs["cyclic-comfy-graph"])
        escapes = read_png_parameters(hostile_pngs["a1111-bad-escapes"])
    # a field of the wrong type never reaches the form: it is a line
    assert typed.fields == {"controlnets": []}  # the list, with no unit that could be read
    for name in ("steps", "seed", "model", "prompt", "cfg", "width", "height", "mode", "image", "init_image path",
                 "controlnets[0]", "controlnets[1] weight", "ip_adapter name", "hires scale", "style",
                 "refiner switch"):
        assert any(line.startswith(f"not read: {name} (") for line in typed.problems), name
    assert (cyclic.fields["seed"], cyclic.fields["steps"], cyclic.fields["cfg"]) == (1, 2, 5.0)
    assert escapes.fields["steps"] == 2 and escapes.unmapped["Sampler"].startswith('"\\x"')  # kept as written


# ---- the chunk reader ----
def test_text_chunks_are_capped_each_and_read_once():
    big = "x" * (MAX_TEXT_CHUNK + 1)
    found, problems = text_chunks(png_bytes(text_chunk(b"tEXt", "parameters", big), text_chunk(b"iTXt", "sdxl_nb",
                                  "{" * (MAX_TEXT_CHUNK + 10)), text_chunk(b"zTXt", "prompt", "{}"),
                                  text_chunk(b"zTXt", "prompt", "[]")), ("parameters", "sdxl_nb", "prompt"))
    assert found == {"prompt": "{}"}
    assert problems == ["not read: the 'parameters' chunk (1,048,577 bytes of text; at most 1,048,576 are read)",
                        "not read: the 'sdxl_nb' chunk (over 1,048,576 bytes when decompressed; at most that is read)",
                        "not read: a second 'prompt' chunk (only the first one is read)"]
    damaged = bytearray(png_bytes(text_chunk(b"tEXt", "parameters", GOOD_A1111)))
    damaged[damaged.index(b"Steps")] ^= 1
    assert text_chunks(bytes(damaged), ("parameters",)) == ({}, [
        "not read: the 'parameters' chunk (its checksum is wrong: a damaged file)"])
    whole = png_bytes(text_chunk(b"tEXt", "parameters", GOOD_A1111), text_chunk(b"tEXt", "prompt", "{}"))
    cut = whole[:whole.index(b"prompt\0") + 1]
    assert text_chunks(cut, ("parameters", "prompt")) == ({"parameters": GOOD_A1111}, [
        "not read: the rest of the file (it ends inside a chunk: a truncated PNG)"])


def test_a_file_past_the_cap_or_not_a_file_is_one_line(tmp_path, monkeypatch):
    import sdxl_nb.record.png_text as png_text

    monkeypatch.setattr(png_text, "MAX_PNG_BYTES", 1000)
    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.truncate(2 * 2**30)  # sparse: 2 GiB that take no disk
    with time_bound(10), pytest.raises(InputError, match="PNG Info reads files up to 1,000"):
        read_png_parameters(big)
    os.mkfifo(fifo := tmp_path / "fifo.png")
    with time_bound(10), pytest.raises(InputError, match="not a regular file"):
        read_png_parameters(fifo)


def test_bounded_json_says_each_problem_in_one_line():
    assert bounded_json.loads('{"a": ["]", {"b": 1}]}', "x") == {"a": ["]", {"b": 1}]}
    for text, message in ((deep_json(), "x: nested 100000 levels deep; at most 64 are read"),
                          ("[" * 65 + "]" * 65, "x: nested 65 levels deep"),
                          ("9" * 5000, "x: a number with 5000 digits; accepted: at most 100 digits"),
                          ('"' + '\\"' * 1000, "x: invalid JSON at line 1"), (b"\xff", "x: not UTF-8 text"),
                          ("1" * (2**20 + 1), "x: 1,048,577 characters long")):
        with time_bound(10), pytest.raises(InputError, match=message):
            bounded_json.loads(text, "x")


# ---- Hypothesis: any text ends in a reading or an InputError, quickly ----
A1111_TOKENS = st.sampled_from(["Steps", ": ", ", ", '"', '\\"', "\\", "\n", "Negative prompt:", "Size: 64x64",
                                "Seed: 1", "Sampler: Euler a", " ", "x", "Hires upscale: 2", "Refiner: a [b]"])
JSON_TOKENS = st.sampled_from(['{', '}', '[', ']', '"', ':', ',', '1', '-', 'e9', 'null', 'true', '"a"', '\\',
                               '"steps"', '"image"', '"controlnets"', '"inputs"', '"class_type"', '"KSampler"'])
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=20)
RECORD_KEYS = st.sampled_from(["mode", "prompt", "negative_prompt", "style", "scheduler", "steps", "cfg", "seed",
                               "width", "height", "model", "strength", "refiner", "init_image", "mask_image", "hires",
                               "ip_adapter", "ip_images", "controlnets", "image", "upscale", "job_id"])
NODE_KEYS = st.sampled_from(["positive", "negative", "model", "latent_image", "seed", "steps", "cfg", "text",
                             "ckpt_name", "width", "height", "start_at_step", "conditioning", "samples"])


def _reads_or_says_why(data: bytes) -> None:
    with time_bound(10):
        try:
            read = read_png_parameters(data)
        except InputError as exc:
            assert "\n" not in str(exc)
            return
    assert all(line.startswith("not read: ") and "\n" not in line for line in read.problems)


@settings(max_examples=80, deadline=None)
@given(st.lists(A1111_TOKENS | st.text(max_size=6), max_size=60).map("".join))
def test_any_a1111_text_reads_or_says_why(text):
    _reads_or_says_why(png_bytes(text_chunk(b"iTXt", "parameters", text)))


@settings(max_examples=80, deadline=None)
@given(st.lists(JSON_TOKENS | st.text(max_size=4), max_size=60).map("".join), st.sampled_from(["sdxl_nb", "prompt"]))
def test_any_json_ish_chunk_reads_or_says_why(text, key):
    _reads_or_says_why(png_bytes(text_chunk(b"zTXt", key, text), text_chunk(b"tEXt", "parameters", GOOD_A1111)))
    _reads_or_says_why(png_bytes(text_chunk(b"iTXt", key, text)))


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(RECORD_KEYS, JSON_VALUES, max_size=8))
def test_any_record_reads_or_says_why(record):
    _reads_or_says_why(png_bytes(text_chunk(b"iTXt", "sdxl_nb", json.dumps(record))))


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(["1", "2", "3", "99"]), st.fixed_dictionaries(
    {"class_type": st.sampled_from(["KSampler", "KSamplerAdvanced", "CLIPTextEncode", "CheckpointLoaderSimple",
                                    "EmptyLatentImage", "VAEEncode", "ConditioningZeroOut"]) | JSON_VALUES,
     "inputs": st.dictionaries(NODE_KEYS, JSON_VALUES | st.tuples(st.sampled_from(["1", "2", "3", "99"]),
                                                                    st.integers(0, 2)).map(list), max_size=6)
     | JSON_VALUES}), max_size=4))
def test_any_comfy_graph_reads_or_says_why(graph):
    _reads_or_says_why(png_bytes(text_chunk(b"iTXt", "prompt", json.dumps(graph))))


# ---- input images: only from the output folder's inputs/, by sha256 ----
def test_an_input_is_found_only_in_inputs_by_its_sha256(tmp_path):
    inputs = tmp_path / "out" / "inputs"
    inputs.mkdir(parents=True)
    data = png_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    elsewhere = tmp_path / "init.png"
    elsewhere.write_bytes(data)
    assert find_input(inputs, sha256) is None  # the file the record names is not looked at
    (inputs / f"{sha256}.png").write_bytes(data + b"changed")  # a file under the name, other content
    assert find_input(inputs, sha256) is None
    (inputs / f"{sha256}.png").unlink()
    (inputs / f"{sha256}.png").symlink_to(elsewhere)  # a link is not followed
    assert find_input(inputs, sha256) is None
    (inputs / f"{sha256}.png").unlink()
    (inputs / f"{sha256}.png").write_bytes(data)
    assert find_input(inputs, sha256) == inputs / f"{sha256}.png"
    assert find_input(inputs, "../" + sha256) is None and find_input(inputs, "*") is None
    fields = {"mode": "img2img", "init_image": str(elsewhere), "ip_adapter": "a", "ip_images": ["/x", "/y"],
              "controlnets": [{"model": "m", "image": "/dev/zero"}, {"model": "n", "image": "/z"}]}
    hashes = {"init_image": sha256, "ip_images": ["0" * 64, sha256], "controlnets": [None, sha256]}
    loaded, lines = local_inputs(fields, hashes, tmp_path / "out")
    kept = str(inputs / f"{sha256}.png")
    assert loaded == {**fields, "init_image": kept, "ip_images": [kept],
                      "controlnets": [{"model": "n", "image": kept}]}
    assert lines == ["IP-Adapter image 1 not loaded: not in this output folder's inputs/",
                     "ControlNet unit 1 (m) not loaded: its control image has no sha256 in the record"]
    loaded, lines = local_inputs(fields, {}, tmp_path / "elsewhere")
    assert loaded["mode"] == "txt2img" and "init_image" not in loaded and loaded["ip_images"] == []
    assert lines[0] == "init image not loaded: the record names no sha256 to find it by (txt2img instead)"


def test_recovery_passes_over_a_hostile_record_chunk(tmp_path):
    from datetime import datetime

    from sdxl_nb.record.naming import timestamp
    from sdxl_nb.record.recovery import _job_images

    started = datetime(2024, 1, 2, 3, 4, 5)
    stamp = timestamp(started)
    base = {"job_id": "j1", "started_at": started.isoformat()}
    for name, chunk in (("deep", deep_json()), ("bad", "{x"), ("typed", json.dumps({"job_id": "j1", "image": [1]})),
                        ("seed", json.dumps({"job_id": "j1", "image": {"seed": "s", "index": 0}}))):
        png_with_chunks(tmp_path / f"{stamp}_{name}.png", {"sdxl_nb": chunk})
    os.mkfifo(tmp_path / f"{stamp}_fifo.png")  # never opened: it would block
    with time_bound(20):
        assert _job_images(tmp_path, base, 0.0)[0] == []


# ---- the lab's PNG Info tab and Load into Generate ----
@pytest.fixture
def lab(engine, tmp_path):
    pytest.importorskip("ipywidgets")
    from tests.ui_helpers import lab_for

    return lab_for(engine, tmp_path / "out")


def test_the_panel_shows_each_hostile_png_as_lines_and_no_traceback(lab, hostile_pngs):
    from sdxl_nb.ui.uploads import upload_value
    from tests.ui_helpers import status_kind

    panel = lab.panels["PNG Info"]
    for name, path in hostile_pngs.items():
        with time_bound(30):
            panel.upload.value = upload_value(path)
        shown = html.unescape(panel.status.value + panel.table.value)
        assert "Traceback" not in shown and panel.status.value.count("<div") == 1, name
        source, phrase = HOSTILE[name][2:]
        if source is None:
            assert status_kind(panel.status) == "error" and phrase in shown, name
            assert all(b.disabled for b in panel.load_buttons)
            continue
        assert f"written by {source}" in shown, name
        if phrase:
            assert status_kind(panel.status) == "warning" and "not read, listed below" in shown, name
            assert phrase.removeprefix("not read: ") in html.unescape(panel.table.value), name
            assert "sdxl-row-not-read" in panel.table.value  # a row of the table, marked as not read
        with time_bound(30):
            panel.load_buttons[0].click()  # whatever was read loads; nothing raises
        assert "Traceback" not in panel.status.value and lab.tabs.selected_index == 0, name


def test_load_into_generate_never_reads_a_path_the_png_names(lab, tmp_path):
    from sdxl_nb.ui.uploads import upload_value

    token = tmp_path / "token"
    token.write_text("hf_abcdefghijklmnopqrstuvwxyz0123456789")
    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.truncate(2 * 2**30)  # sparse
    os.mkfifo(fifo := tmp_path / "fifo.png")  # any open of it blocks: the time bound would say so
    real = {"sha256": hashlib.sha256(token.read_bytes()).hexdigest()}  # even the file's true hash finds nothing
    record = {"job_id": "x", "mode": "inpaint", "prompt": "a planted record", "steps": 3, "strength": 0.5,
              "init_image": {"path": str(token), **real}, "mask_image": {"path": str(fifo), "sha256": "0" * 64},
              "ip_adapter": {"name": "some-adapter", "scale": 0.5},
              "ip_images": [{"path": "/etc/hostname", **real}, {"path": str(big), "sha256": "f" * 64},
                            {"path": "/dev/zero"}],
              "controlnets": [{"model": {"name": "m"}, "image": {"path": "/dev/zero", "sha256": "1" * 64}}]}
    planted = png_with_chunks(tmp_path / "planted.png", {"sdxl_nb": json.dumps(record)})
    panel = lab.panels["PNG Info"]
    panel.upload.value = upload_value(planted)
    with time_bound(30):
        panel.load_buttons[0].click()
    form = lab.generate.form
    assert form.prompt.value == "a planted record" and form.steps.value == 3
    assert form.init_upload.value == () and form.mask_upload.value == () and form.mode.value == "txt2img"
    assert form.ip_adapter.images.value == () and form.controlnets.units == []
    said = html.unescape(panel.status.value)
    for line in ("init image not loaded: not in this output folder's inputs/ (txt2img instead)",
                 "mask not loaded: not in this output folder's inputs/",
                 "IP-Adapter image 1 not loaded: not in this output folder's inputs/",
                 "IP-Adapter image 2 not loaded: not in this output folder's inputs/",
                 "IP-Adapter image 3 not loaded: the record names no sha256 to find it by",
                 "ControlNet unit 1 (m) not loaded: its control image is not in this output folder's inputs/"):
        assert line in said, line
    assert "hf_" not in panel.table.value + panel.status.value  # the token's bytes were never read


def test_an_honest_png_of_ours_loads_everything_with_its_init_image_from_inputs(lab, run, tmp_path):
    from sdxl_nb.request.form import save_upload
    from sdxl_nb.ui.uploads import upload_value
    from tests.ui_helpers import status_kind

    out = tmp_path / "out"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buffer, format="PNG")
    init = buffer.getvalue()
    kept = save_upload(init, out, "init image")  # as the lab keeps an upload: inputs/<sha256>.png
    made = run(prompt="an honest heron", init_image=str(kept), strength=0.6, steps=4, seed=8, out_dir=out)
    assert made.record["init_image"]["sha256"] == hashlib.sha256(init).hexdigest()
    panel = lab.panels["PNG Info"]
    panel.upload.value = upload_value(made.paths[0])
    assert status_kind(panel.status) == "ok" and panel.params.problems == []
    panel.load_buttons[0].click()
    form = lab.generate.form
    assert status_kind(panel.status) == "ok" and panel.status.value.count("not loaded") == 0
    assert (form.prompt.value, form.seed.value, form.steps.value, form.mode.value) == ("an honest heron", 8, 4,
                                                                                       "img2img")
    assert bytes(form.init_upload.value[0]["content"]) == init and form.strength.value == 0.6
