"""Bad input, everywhere: the same table through the Python API and the CLI; one line, exit 2, nothing written."""

import errno
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.cli import main
from sdxl_nb.config.tiny import ensure_tiny_model
from sdxl_nb.errors import GenerationError, InputError
from sdxl_nb.record.joblog import read_records
from tests.conftest import PYTHON, REPO, python_env
from tests.hf_cache import add_to_cache

BASE = "stabilityai/stable-diffusion-xl-base-1.0"


def png(path, size=(64, 64)):
    Image.fromarray(np.zeros((size[1], size[0], 3), dtype=np.uint8)).save(path)
    return str(path)


def presets_file(tmp, monkeypatch, edit):
    raw = json.loads((REPO / "presets.json").read_text(encoding="utf-8"))
    text = edit(raw)
    path = tmp / "presets.json"
    path.write_text(text if isinstance(text, str) else json.dumps(raw), encoding="utf-8")
    monkeypatch.setenv("SDXL_NB_PRESETS", str(path))


def declared_png(path, width, height):
    """A PNG whose header declares width x height over a few bytes of pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return {"init_image": str(path)}


def sde_preset(tmp, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec  # torchsde is a dependency: hidden here, as in an install that lacks it
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchsde" else find_spec(name, *a))
    return {"scheduler": "DPM++ SDE"}  # a shipped preset


def cached_base(tmp, monkeypatch, damage):
    cache = tmp / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snapshot = add_to_cache(cache, BASE, ensure_tiny_model())
    damage(snapshot / "unet" / "diffusion_pytorch_model.safetensors")


def truncate(path):
    data = path.read_bytes()
    real = os.path.realpath(path)
    os.unlink(real)
    with open(real, "wb") as handle:
        handle.write(data[: len(data) // 2])


def unreadable(tmp, monkeypatch):
    from pathlib import Path

    path = png(tmp / "secret.png")
    real = Path.read_bytes

    def deny(self):
        if self.name == "secret.png":  # root reads anything: simulate the permission check failing
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    return {"init_image": path}


def no_write_permission(tmp, monkeypatch):
    from sdxl_nb.record import store

    real = os.access
    monkeypatch.setattr(store.os, "access", lambda p, mode: False if str(p).startswith(str(tmp)) else real(p, mode))
    return {}


def under_a_file(tmp, monkeypatch):
    (tmp / "a-file").write_text("x", encoding="utf-8")
    return {"out": tmp / "a-file" / "images"}


# id -> (setup(tmp, monkeypatch) -> extra request fields, fields, expected message fragment)
CASES = {
    "width not a multiple of 8": (None, dict(width=100, height=64), "width 100 must be a positive multiple of 8 (e.g. 96 or 104)"),
    "zero size": (None, dict(width=0, height=64), "width 0 must be a positive multiple of 8"),
    "negative size": (None, dict(width=64, height=-64), "height -64 must be a positive multiple of 8"),
    "tiny size": (None, dict(width=32, height=64), "width 32 is out of range; accepted: multiples of 8 from 64 to 4096"),
    "steps 0": (None, dict(steps=0), "steps 0 is out of range; accepted: 1 to 500"),
    "negative cfg": (None, dict(cfg=-1.0), "cfg -1.0 is out of range; accepted: 0 to 50"),
    "batch 0": (None, dict(batch=0), "batch 0 is out of range; accepted: 1 to 64"),
    "absurd batch": (None, dict(batch=1_000_000), "batch 1000000 is out of range; accepted: 1 to 64"),
    "strength 0": (lambda t, m: {"init_image": png(t / "i.png")}, dict(strength=0.0),
                   "strength 0.0 is out of range; accepted: greater than 0, at most 1"),
    "strength above 1": (lambda t, m: {"init_image": png(t / "i.png")}, dict(strength=1.5), "strength 1.5 is out of range"),
    "strength without init": (None, dict(strength=0.5), "strength applies only to img2img and inpaint"),
    "unknown model": (None, dict(model="no/such"), "unknown model 'no/such'; accepted: tiny-sdxl, " + BASE),
    "unknown scheduler": (None, dict(scheduler="Nope"), "unknown scheduler 'Nope'; accepted: Default, Euler, Euler a"),
    "unknown style": (None, dict(style="Nope"), "unknown style 'Nope'; accepted: None / Raw, Photoreal"),
    "missing init image": (None, dict(init_image="/no/such.png"), "init image '/no/such.png' does not exist"),
    "unreadable init image": (unreadable, {}, "secret.png' is not readable (permission denied)"),
    "init image not an image": (lambda t, m: (t / "notes.png").write_text("text", encoding="utf-8") and
                                {"init_image": str(t / "notes.png")}, {},
                                "notes.png' is not a readable image (UnidentifiedImageError); accepted: PNG, JPEG"),
    "mask of another size": (lambda t, m: {"init_image": png(t / "i.png"), "mask_image": png(t / "m.png", (32, 32))}, {},
                             "mask image is 32x32 but the init image is 64x64; they must match"),
    "mask without init": (lambda t, m: {"mask_image": png(t / "m.png")}, {}, "a mask image needs an init image"),
    "presets invalid JSON": (lambda t, m: presets_file(t, m, lambda raw: "{ nope"), {},
                             "presets.json: invalid JSON at line 1 column 3"),
    "presets wrong type": (lambda t, m: presets_file(t, m, lambda raw: raw["models"][0].update(steps="four")), {},
                           "presets.json: models[0].steps:"),
    "presets unknown scheduler class": (
        lambda t, m: presets_file(t, m, lambda raw: raw["schedulers"][1].update({"class": "NopeScheduler"})), {},
        "presets.json: schedulers[1].class: unknown scheduler class 'NopeScheduler'; accepted: DDIMScheduler"),
    "missing weight file": (lambda t, m: cached_base(t, m, os.unlink), dict(model=BASE),
                            "is missing unet/diffusion_pytorch_model.safetensors; re-fetch it"),
    "truncated weight file": (lambda t, m: cached_base(t, m, truncate), dict(model=BASE),
                              "unet/diffusion_pytorch_model.safetensors is truncated"),
    "control characters": (None, dict(prompt="a\x00cat\x1b[31m"), "prompt contains control characters (U+0000, U+001B)"),
    "not UTF-8": (None, dict(prompt="caf\udce9"), "prompt is not valid UTF-8 text"),
    "output folder not writable": (no_write_permission, {}, "is not writable (no write permission on"),
    "output folder under a file": (under_a_file, {}, "is not usable: "),
    "output folder under /proc": (lambda t, m: {"out": Path("/proc/sdxl_nb_test/images")}, {},
                                  "output folder '/proc/sdxl_nb_test/images' cannot be written: No such file or directory"),
    "no denoising step": (lambda t, m: {"init_image": png(t / "i.png")}, dict(steps=2, strength=0.1),
                          "steps 2 x strength 0.1 leaves no denoising step (img2img and inpaint run int(steps x "
                          "strength) = 0 steps); accepted: steps x strength of at least 1, e.g. steps 10 or strength 0.5"),
    "1x1 init image": (lambda t, m: {"init_image": png(t / "one.png", (1, 1))}, {},
                       "width 1 of the init image (or pass width and height to resize it) must be a positive multiple "
                       "of 8 (e.g. 64); accepted: 64 to 4096"),
    "decompression bomb": (lambda t, m: declared_png(t / "bomb.png", 30000, 30000), {},
                           "bomb.png' declares more pixels than Pillow accepts (a decompression bomb)"),
    "init image above the pixel budget": (lambda t, m: declared_png(t / "big.png", 9000, 9000), {},
                                          "big.png' is 9000x9000 (81 megapixels); accepted: at most 67 megapixels"),
    "presets NaN default": (lambda t, m: presets_file(t, m, lambda raw: raw["defaults"].update(cfg=float("nan"))), {},
                            "presets.json: defaults.cfg: expected a finite number, got NaN"),
    "presets default out of range": (lambda t, m: presets_file(t, m, lambda raw: raw["defaults"].update(strength=1.5)),
                                     {}, "presets.json: defaults.strength: 1.5 is out of range; accepted: greater than 0"),
    "presets unknown schema": (lambda t, m: presets_file(t, m, lambda raw: raw.update(schema=2)), {},
                               "presets.json: schema: unknown version 2; accepted: 1"),
    "presets scheduler kwarg name": (
        lambda t, m: presets_file(t, m, lambda raw: raw["schedulers"][4].update(kwargs={"use_karras_sigma": True})), {},
        "presets.json: schedulers[4].kwargs: 'use_karras_sigma' is not a DPMSolverMultistepScheduler setting; accepted:"),
    "presets scheduler kwarg type": (
        lambda t, m: presets_file(t, m, lambda raw: raw["schedulers"][4].update(kwargs={"use_karras_sigmas": "yes"})),
        {}, 'presets.json: schedulers[4].kwargs: use_karras_sigmas "yes" must be true or false'),
    "scheduler needs a missing package": (sde_preset, {}, "needs the package 'torchsde', which is not installed"),
}


def cli_args(fields: dict) -> list[str]:
    flags = {"init_image": "--init-image", "mask_image": "--mask", "negative_prompt": "--negative"}
    args = []
    for key, value in fields.items():
        args += [flags.get(key, "--" + key.replace("_", "-")), str(value)]
    return args


@pytest.fixture
def case(request, tmp_path, monkeypatch):
    setup, fields, message = CASES[request.param]
    extra = dict(setup(tmp_path, monkeypatch) or {}) if setup else {}
    out = extra.pop("out", tmp_path / "out")
    return {"prompt": "a cat", **fields, **extra}, out, message


def nothing_written(out):
    return not out.exists()


@pytest.mark.parametrize("case", list(CASES), indirect=True)
def test_api(case, engine):
    from sdxl_nb.jobs.generate import generate

    fields, out, message = case
    with pytest.raises(InputError) as caught:
        generate(out_dir=out, engine=engine, **fields)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert nothing_written(out)


@pytest.mark.parametrize("case", list(CASES), indirect=True)
def test_cli(case, capsys):
    fields, out, message = case
    code = main(["generate", *cli_args(fields), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("sdxl-nb generate: error: ")
    assert message in captured.err
    assert nothing_written(out)


@pytest.mark.slow
def test_cli_non_utf8_argument_is_one_line(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([PYTHON.encode(), b"-m", b"sdxl_nb", b"generate", b"--prompt", b"caf\xe9 \xff",
                             b"--out", str(out).encode()], capture_output=True, timeout=120, env=python_env())
    assert result.returncode == 2
    assert result.stderr == b"sdxl-nb generate: error: prompt is not valid UTF-8 text\n"
    assert not out.exists()


def test_a_prompt_with_path_separators_stays_in_its_folder(run, tmp_path):
    result = run(prompt="../../etc/passwd \\ C:\\x /tmp/y", out_dir=tmp_path / "out")
    (path,) = result.paths
    assert path.parent == tmp_path / "out" and "_etc-passwd-c-x-tmp-y_seed1_01.png" in path.name
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == [path.name]


class FullDisk:
    """Writes that fail with ENOSPC from the `after`-th on, as a full disk does."""

    def __init__(self, after):
        self.after, self.count = after, 0

    def open(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        if "x" not in mode or "probe" in str(path):  # the folder's probe before the job found room (tests/test_disk_full)
            return handle
        self.count += 1
        if self.count < self.after:
            return handle
        real_write = handle.write

        def write(data):
            real_write(data[: len(data) // 3])
            raise OSError(errno.ENOSPC, "No space left on device")

        handle.write = write
        return handle


def test_full_disk_while_saving_keeps_no_image_and_records_the_failure(run, tmp_path, monkeypatch):
    from sdxl_nb.record import store

    monkeypatch.setattr(store, "open", FullDisk(after=2).open, raising=False)  # the 2nd image hits the wall
    out = tmp_path / "out"
    with pytest.raises(GenerationError) as caught:
        run(prompt="full", batch=3, out_dir=out)
    message = str(caught.value)
    assert message == f"could not save images to {out}: No space left on device; no image of this job was kept"
    assert not list(out.glob("*.png")) and not list(out.glob(".sdxl_nb-tmp-*")) and not list(out.glob(".sdxl_nb-job-*"))
    (record,) = read_records(out / "jobs.log")  # whole, and honest: failed, no image
    assert record["status"] == "failed" and record["error"] == message and record["images"] == []


def test_full_disk_everywhere_writes_nothing(run, tmp_path, monkeypatch):
    from sdxl_nb.record import joblog, store

    out = tmp_path / "out"
    run(prompt="before", out_dir=out)  # the folder exists with one job
    log_before = (out / "jobs.log").read_bytes()
    monkeypatch.setattr(store, "open", FullDisk(after=1).open, raising=False)
    real_write = os.write

    def full_write(fd, data):
        real_write(fd, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(joblog.os, "write", full_write)
    with pytest.raises(GenerationError, match="no image of this job was kept \\(the job could not be recorded either\\)"):
        run(prompt="full", out_dir=out)
    monkeypatch.undo()
    assert (out / "jobs.log").read_bytes() == log_before  # no partial line either
    assert len(list(out.glob("*.png"))) == 1 and not list(out.glob(".sdxl_nb-*-*"))


def test_cli_full_disk_is_a_runtime_failure(tmp_path, monkeypatch, capsys):
    from sdxl_nb.record import store

    monkeypatch.setattr(store, "open", FullDisk(after=1).open, raising=False)
    out = tmp_path / "out"
    code = main(["generate", "--prompt", "full", "--width", "64", "--height", "64", "--steps", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err == (f"sdxl-nb generate: failed: could not save images to {out}: No space left on device; "
                            "no image of this job was kept\n")
    assert not list(out.glob("*.png"))
