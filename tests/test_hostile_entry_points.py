"""Every CLI entry point in a world where each configured folder holds hostile files: nothing runs, nothing hangs,
one line for what is refused, and the good files and the tiny model keep working."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import hostile
from tests.conftest import PYTHON, python_env
from tests.tiny_upscaler import write_tiny_upscaler

pytestmark = pytest.mark.slow

PAYLOAD_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
# Each configured folder and the file kinds its loader would look at.
FOLDERS = {"SDXL_NB_LORAS": "loras", "SDXL_NB_EMBEDDINGS": "embeddings", "SDXL_NB_CHECKPOINTS": "checkpoints",
           "SDXL_NB_UPSCALERS": "upscalers", "SDXL_NB_CONTROLNETS": "controlnets",
           "SDXL_NB_IP_ADAPTERS": "ip_adapters", "SDXL_NB_ANNOTATORS": "annotators"}
# Annotator weight files are looked up by fixed names: payloads take those names.
ANNOTATOR_FILES = ("sk_model.pth", "sk_model2.pth", "netG.pth", "dpt_hybrid-midas-501f0c75.pt")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(env, root): every model folder full of payloads and abused headers, a broken user presets file, and one
    good tiny upscaler; payloads write into root/markers if their code ever runs."""
    root = tmp_path_factory.mktemp("hostile_world")
    markers = root / "markers"
    markers.mkdir()
    env = {}
    for variable, name in FOLDERS.items():
        folder = root / name
        folder.mkdir()
        env[variable] = str(folder)
        for suffix in PAYLOAD_SUFFIXES:
            hostile.torchscript_payload(folder / f"evil-ts{suffix}", markers / f"{name}-ts{suffix}")
            hostile.pickle_payload(folder / f"evil-pickle{suffix}", markers / f"{name}-pickle{suffix}")
        hostile.abused_safetensors(folder)
    for file in ANNOTATOR_FILES:
        hostile.torchscript_payload(root / "annotators" / file, markers / f"annotator-{file}")
    write_tiny_upscaler(root / "upscalers" / "good-x2.safetensors")
    (root / "user_presets.json").write_text(hostile.deep_json(), encoding="utf-8")
    env["SDXL_NB_USER_PRESETS"] = str(root / "user_presets.json")
    return env, root


def cli(world, *args, timeout=240):
    env, _ = world
    result = subprocess.run([PYTHON, "-m", "sdxl_nb", *args], capture_output=True, text=True, timeout=timeout,
                            env=python_env(env))
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    return result


def no_markers(world):
    _, root = world
    assert sorted(p.name for p in (root / "markers").iterdir()) == [], "a hostile file's code ran"


@pytest.mark.parametrize("command", [["models"], ["loras"], ["upscalers"], ["upscalers", "--check"],
                                     ["controlnets"], ["ip-adapters"], ["presets"]])
def test_listings_list_the_rest_and_run_nothing(world, command):
    result = cli(world, *command)
    assert result.returncode == 0, result.stderr
    if command[0] == "upscalers":
        assert "good-x2" in result.stdout and "Lanczos" in result.stdout
    if command[0] == "models":
        assert "tiny-sdxl" in result.stdout
    no_markers(world)


def test_the_tiny_model_still_generates_with_a_good_upscaler(world, tmp_path):
    result = cli(world, "generate", "--prompt", "fox", "--width", "64", "--height", "64", "--steps", "2",
                 "--hires-scale", "2", "--hires-steps", "2", "--hires-denoise", "0.5", "--hires-upscaler", "good-x2",
                 "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 1
    no_markers(world)


@pytest.mark.parametrize("args", [
    *[["--hires-scale", "2", "--hires-upscaler", f"evil-{kind}"] for kind in ("ts", "pickle")],
    *[["--hires-scale", "2", "--hires-upscaler", name] for name in ("entry-is-number", "offsets-outside")],
    *[["--lora", f"{name}:0.5"] for name in ("entry-is-number", "shape-mismatch", "deep-json", "dtype-unknown")],
    ["--model", str(Path("checkpoints") / "entry-is-number.safetensors")],
], ids=lambda args: "-".join(a for a in args if not a.startswith("--"))[:40])
def test_generate_refuses_a_hostile_file_in_one_line_and_writes_nothing(world, tmp_path, args):
    _, root = world
    args = [str(root / a) if a.startswith("checkpoints") else a for a in args]
    out = tmp_path / "out"
    result = cli(world, "generate", "--prompt", "fox", "--width", "64", "--height", "64", "--steps", "2",
                 "--out", str(out), *args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists() or not any(out.rglob("*.png")) and not (out / "jobs.log").exists()
    no_markers(world)


@pytest.mark.parametrize("upscaler", ["evil-ts", "evil-pickle", "length-huge", "shape-huge"])
def test_upscale_refuses_a_hostile_upscaler(world, tmp_path, upscaler):
    from PIL import Image

    source = tmp_path / "source.png"
    Image.new("RGB", (32, 32), (40, 80, 120)).save(source)
    out = tmp_path / "out"
    result = cli(world, "upscale", str(source), "--scale", "2", "--upscaler", upscaler, "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists() or not any(out.rglob("*.png"))
    no_markers(world)


@pytest.mark.parametrize("name", ["entry-is-number", "offsets-outside", "deep-json", "length-past-end"])
def test_convert_refuses_a_hostile_checkpoint(world, tmp_path, name):
    _, root = world
    result = cli(world, "convert", str(root / "checkpoints" / f"{name}.safetensors"), str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "out").exists()
    no_markers(world)


def test_the_lab_opens_lists_and_generates_in_the_hostile_world(world, engine, tmp_path, monkeypatch):
    from tests.ui_helpers import gallery_images, lab_for, small_form, status_kind

    env, _ = world
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    lab = lab_for(engine, tmp_path / "out")
    form = lab.generate.form
    for picker in (form.ip_adapter, form.lora_picker, form.controlnets):
        picker.refresh.click()
    form.hires.refresh()
    assert "good-x2" in form.hires.upscaler.options
    small_form(form, seed=3)
    lab.generate.generate.click()
    assert lab.generate.wait(120)
    assert status_kind(lab.generate.message) == "ok", lab.generate.message.value
    assert [caption for _, caption in gallery_images(lab.generate)] == ["seed 3"]
    no_markers(world)
