"""One bad model file never stops the others: every listing (API, CLI, lab pickers) shows each malformed file as
unusable with its reason, the other models keep working, and using a bad one by name is one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdxl_nb.config.loras import demo_lora
from sdxl_nb.config.tiny_lora import tiny_embedding_tensors, write_lora
from sdxl_nb.errors import InputError
from tests.hostile import ABUSED_HEADERS, abused_safetensors

BAD = sorted(ABUSED_HEADERS)
FOLDERS = {"SDXL_NB_LORAS": "loras", "SDXL_NB_CHECKPOINTS": "checkpoints", "SDXL_NB_EMBEDDINGS": "embeddings",
           "SDXL_NB_UPSCALERS": "upscalers", "SDXL_NB_CONTROLNETS": "controlnets", "SDXL_NB_IP_ADAPTERS": "ip"}


@pytest.fixture
def bad_folders(tmp_path, monkeypatch):
    """Every configured model folder holds every abused file, beside a good file where the kind has one."""
    root = tmp_path / "models"
    for variable, name in FOLDERS.items():
        abused_safetensors(root / name)
        monkeypatch.setenv(variable, str(root / name))
    (root / "loras" / "good-lora.safetensors").write_bytes(Path(demo_lora().path).read_bytes())
    write_lora(root / "embeddings" / "mystyle.safetensors", tiny_embedding_tensors(2, seed=1))
    return root


def _one_line(text: str) -> bool:
    return bool(text) and "\n" not in text and "Traceback" not in text


def test_every_api_listing_shows_bad_files_unusable_and_good_ones_usable(bad_folders, engine):
    from sdxl_nb.config.ip_adapters import ip_adapter_listing
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import list_models
    from sdxl_nb.config.upscalers import list_upscalers
    from sdxl_nb.jobs.control_listing import controlnet_listing
    from sdxl_nb.jobs.networks import embedding_listing, lora_listing

    listings = {
        "loras": lora_listing("tiny-sdxl", backend=engine),
        "embeddings": embedding_listing(),
        "upscalers": list_upscalers(),
        "controlnets": controlnet_listing(),
        "ip-adapters": ip_adapter_listing("tiny-sdxl"),
    }
    good = {"loras": ["tiny-sdxl-lora", "good-lora"], "embeddings": ["mystyle"], "upscalers": ["Latent", "Lanczos"],
            "controlnets": ["tiny-sdxl-controlnet"], "ip-adapters": ["tiny-sdxl-ip-adapter"]}
    for kind, rows in listings.items():
        by_name = {row["name"]: row for row in rows}
        for name in BAD:
            assert by_name[name]["usable"] is False and _one_line(by_name[name]["problem"]), (kind, name)
        for name in good[kind]:
            assert by_name[name]["usable"] is True and by_name[name]["problem"] is None, (kind, name)
    models = {info.id: info for info in list_models(load_presets())}
    assert models["tiny-sdxl"].available
    for name in BAD:
        assert not models[name].available and _one_line(models[name].reason), name


def _cli(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "sdxl_nb", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_cli_listings_exit_0_with_every_bad_file_marked(bad_folders):
    for command in (["models"], ["loras", "--no-check"], ["upscalers"], ["controlnets"], ["ip-adapters", "--no-check"]):
        done = _cli(*command)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert "Traceback" not in done.stdout + done.stderr
        lines = done.stdout.splitlines()
        for name in BAD:
            row = next(i for i, line in enumerate(lines) if f"{os.sep}{name}.safetensors" in line
                       or line.split()[:1] == [name])
            assert "UNUSABLE" in lines[row] or "unusable" in lines[row], (command, lines[row])
            assert lines[row + 1].startswith("    "), (command, name)  # the reason, on the next line
    loras = _cli("loras", "--no-check").stdout
    assert "good-lora" in loras and "embedding mystyle" in loras


def test_generate_works_beside_a_bad_checkpoint_and_bad_names_are_one_line(bad_folders, run, tmp_path):
    result = run(prompt="a fox", model="tiny-sdxl", out_dir=tmp_path / "ok")
    assert result.paths and result.record["status"] == "ok"
    refused = {
        "checkpoint": dict(model="entry-is-number"),
        "LoRA": dict(loras=["entry-is-number:0.5"]),
        "embedding": dict(prompt="a fox, entry-is-number"),
        "upscaler": dict(hires_scale=2, hires_upscaler="entry-is-number"),
        "IP-Adapter": dict(ip_adapter="offsets-outside", ip_images=[str(result.paths[0])]),
        "ControlNet": dict(controlnets=[{"model": "deep-json", "image": str(result.paths[0])}]),
    }
    for kind, fields in refused.items():
        folder = tmp_path / kind
        with pytest.raises(InputError) as caught:
            run(**{"prompt": "a fox", "model": "tiny-sdxl", **fields, "out_dir": folder})
        message = str(caught.value)
        assert _one_line(message) and ("entry-is-number" in message or "offsets-outside" in message
                                       or "deep-json" in message), (kind, message)
        assert not folder.exists(), kind


def test_cli_generate_with_a_bad_checkpoint_and_a_bad_lora(bad_folders, tmp_path):
    done = _cli("generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--steps", "2", "--width", "64",
                "--height", "64", "--out", str(tmp_path / "ok"))
    assert done.returncode == 0, done.stderr[-2000:]
    done = _cli("generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--lora", "entry-is-number:0.5",
                "--out", str(tmp_path / "bad"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "LoRA 'entry-is-number' is unusable" in done.stderr and not (tmp_path / "bad").exists()
    done = _cli("generate", "--prompt", "a fox", "--model", "entry-is-number", "--out", str(tmp_path / "bad"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "entry-is-number" in done.stderr


def test_the_lab_opens_and_its_pickers_mark_bad_files(bad_folders, engine, tmp_path):
    import ipywidgets as w

    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.ui.controlnet_picker import ControlNetPicker
    from sdxl_nb.ui.hires_form import HiresFields
    from sdxl_nb.ui.ip_adapter_picker import IpAdapterPicker
    from sdxl_nb.ui.lora_picker import LoraPicker
    from sdxl_nb.ui.model_panel import ModelPanel
    from tests.ui_helpers import lab_for, status_kind

    lab_for(engine, tmp_path / "lab")  # the whole lab opens beside the bad files

    panel = ModelPanel(queue=JobQueue(engine=engine, out_dir=tmp_path / "q"), out_dir=tmp_path / "q")
    labels = dict((value, label) for label, value in panel.dropdown.options)
    assert labels["entry-is-number"] == "✗ entry-is-number (unusable)" and not labels["tiny-sdxl"].startswith("✗")
    panel.dropdown.value = "entry-is-number"
    assert "entry-is-number" in panel.status.value and panel.load_button.disabled

    prompt = w.Textarea(value="a fox")
    picker = LoraPicker(prompt, model="tiny-sdxl", backend=engine)
    labels = dict((value, label) for label, value in picker.choice.options)
    assert all(labels[name] == f"✗ {name} (unusable)" for name in BAD)
    picker.choice.value = "entry-is-number"
    assert "entry-is-number.safetensors" in picker.info.value and picker.insert_tag() is None
    assert status_kind(picker.status) == "error" and prompt.value == "a fox"
    picker.choice.value = "good-lora"
    assert picker.insert_tag() == "a fox <lora:good-lora:0.8>"

    adapters = IpAdapterPicker(model=lambda: "tiny-sdxl")
    adapters.load()
    labels = dict((value, label) for label, value in adapters.choice.options)
    assert all(labels[name] == f"✗ {name} (unusable)" for name in BAD)
    adapters.choice.value = "deep-json"
    assert status_kind(adapters.status) == "error" and "deep-json" in adapters.status.value
    with pytest.raises(InputError, match="unusable"):
        adapters.fields(tmp_path / "inputs")

    controls = ControlNetPicker(size=lambda: (64, 64))
    controls.load()
    assert controls.names == ["tiny-sdxl-controlnet"]
    assert all(f"✗ {name} (unusable" in controls.status.value for name in BAD)
    assert controls.add_unit().model.value == "tiny-sdxl-controlnet"

    hires = HiresFields()
    assert list(hires.upscaler.options) == ["Latent", "Latent (bicubic)", "Latent (nearest-exact)", "Lanczos"]
    assert all(f"✗ {name} (unusable" in hires.notes.value for name in BAD)
