"""A job as code: each recorded job of the tiny models written as a standalone diffusers script, run in a fresh
interpreter without sdxl_nb (python -I), saves the recorded images bit for bit; jobs that cannot be written are
refused in one line, and nothing is written."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import PYTHON, SMALL


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("code_inputs")
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[20:36, 24:44] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    control = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(control).rectangle((16, 16, 47, 47), fill="black")
    control.save(folder / "square.png")
    return folder


@pytest.fixture(scope="module")
def embeddings_folder(tmp_path_factory):
    """Two embeddings in an A1111 root's embeddings/ folder, found by name in prompts."""
    from sdxl_nb.config.tiny_lora import tiny_embedding_tensors, write_lora

    root = tmp_path_factory.mktemp("webui")
    write_lora(root / "embeddings" / "mystyle.safetensors", tiny_embedding_tensors(3, seed=1))
    write_lora(root / "embeddings" / "badhands.safetensors", tiny_embedding_tensors(2, seed=2))
    return root / "embeddings"


@pytest.fixture(scope="module")
def jobs(engine, inputs, embeddings_folder, tmp_path_factory):
    """One job per mode, made once: name -> its result (record and saved paths). The embeddings' folder is the
    user's while the module runs (a record's files are used from the user's folders only)."""
    from sdxl_nb.api import convert

    checkpoints = tmp_path_factory.mktemp("checkpoints")
    convert("tiny-sdxl", checkpoints / "tiny-ckpt.safetensors")  # tiny-sdxl as one original-layout file
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SDXL_NB_EMBEDDINGS", str(embeddings_folder.parent))
        patch.setenv("SDXL_NB_CHECKPOINTS", str(checkpoints))
        yield made_jobs(engine, inputs, tmp_path_factory)


def made_jobs(engine, inputs, tmp_path_factory) -> dict:
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.config.controlnets import TINY_CONTROLNET
    from sdxl_nb.config.loras import DEMO_LORA
    from sdxl_nb.config.tiny_ip_adapter import DEMO_IP_ADAPTER
    from sdxl_nb.jobs.animate import animate
    from sdxl_nb.jobs.generate import generate
    from sdxl_nb.jobs.upscale import upscale

    out = tmp_path_factory.mktemp("code_jobs")
    init, mask = str(inputs / "init.png"), str(inputs / "mask.png")
    made = {}
    for name, fields in {
        "txt2img": dict(prompt="a lighthouse at dusk", batch=2, scheduler="Euler a"),
        # DPM++ SDE: each image's Brownian tree is seeded by its seed (core.seed_brownian_noise)
        "weighting": dict(prompt="a (red:1.3) [cat], long BREAK blue sky", negative_prompt="(blurry:1.2)", batch=2,
                          scheduler="DPM++ SDE Karras"),
        "lora": dict(prompt=f"a fox <lora:{DEMO_LORA}:0.8>"),
        "img2img": dict(prompt="a harbour", init_image=init, strength=0.6, model="tiny-ckpt"),  # a checkpoint file
        # A1111's "latent noise" fill of the cropped "Only masked" area, pasted back over the original
        "inpaint": dict(prompt="a fox inpainted", init_image=init, mask_image=mask, strength=0.75, batch=2,
                        masked_content="latent noise", inpaint_area="Only masked"),
        "hires": dict(prompt="a castle", hires_scale=2, hires_steps=2, hires_denoise=0.5),
        "refiner": dict(prompt="a (fox:1.2) in snow", steps=4, refiner="tiny-sdxl-refiner", refiner_switch=0.5),
        # the refiner takes over within the hires pass (A1111's default)
        "hires_refiner": dict(prompt="a cat", steps=3, hires_scale=2, hires_steps=2, hires_denoise=0.5,
                              refiner="tiny-sdxl-refiner", refiner_switch=0.8),
        "controlnet": dict(prompt="a box", controlnets=[{"model": TINY_CONTROLNET, "image": str(inputs / "square.png"),
                                                         "preprocessor": "canny", "weight": 0.8, "end": 0.9}]),
        # Its own engine: an adapter loaded into the shared one would stay in the other tests' model.
        "ip_adapter": dict(prompt="a fox", ip_adapter=DEMO_IP_ADAPTER, ip_images=[init], ip_scale=0.7,
                           engine=Engine(device="cpu")),
    }.items():
        fields = {"engine": engine, **SMALL, "seed": 11, **fields}
        made[name] = generate(out_dir=out / name, **fields)
    assert made["img2img"].record["model"]["source"] == "checkpoint"
    # An animation (noise slerp and prompt travel, per-image pipelines); its middle frame is written as code.
    made["animation"] = animate(out_dir=out / "animation", engine=engine, **SMALL, prompt="a red fox", seed=5,
                                mode="prompt-travel", frames=3, prompt_end="a blue whale", seed_end=8, batch_size=2)
    made["upscale"] = upscale(made["txt2img"].paths[0], scale=2, out_dir=out / "upscale", engine=engine)  # Lanczos
    made["embedding"] = generate(out_dir=out / "embedding", engine=engine, **SMALL, seed=3,
                                 prompt="a fox, mystyle", negative_prompt="badhands")
    return made


def run_script(text: str, folder: Path) -> subprocess.CompletedProcess:
    """The script in a fresh, isolated interpreter (no PYTHONPATH, no environment settings) in an empty folder."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "job.py"
    script.write_text(text, encoding="utf-8")
    return subprocess.run([PYTHON, "-I", str(script), "out"], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.slow  # a python + torch start per script
@pytest.mark.parametrize("name", ["txt2img", "weighting", "lora", "img2img", "inpaint", "hires", "refiner", "hires_refiner",
                                  "controlnet", "ip_adapter", "animation", "embedding", "upscale"])
def test_the_script_saves_the_recorded_pixels_without_sdxl_nb(jobs, name, tmp_path):
    from sdxl_nb import code

    result = jobs[name]
    text = code(result.paths[0])
    assert "import sdxl_nb" not in text and "from sdxl_nb" not in text
    done = run_script(text, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "may differ" not in done.stderr  # the same library versions as the job
    for path in result.paths:
        again = tmp_path / "out" / Path(path).name
        assert np.array_equal(pixels(again), pixels(path)), f"{name}: {Path(path).name} differs"


def test_the_embedded_functions_are_the_engines_own(jobs):
    """The script carries the engine's source text, taken at generation time: it cannot drift from it."""
    from sdxl_nb import code
    from sdxl_nb.backends.local.calls import CallArguments
    from sdxl_nb.backends.local.conditioning import PromptEncoder
    from sdxl_nb.backends.local.core import seed_brownian_noise
    from sdxl_nb.backends.local.decode import decode_guarded
    from sdxl_nb.request.prompt_syntax import parse_attention

    text = code(jobs["inpaint"].paths[0])
    for function in (CallArguments, PromptEncoder, seed_brownian_noise, decode_guarded, parse_attention):
        # Line for line, but for its sdxl_nb imports inside functions (their names are embedded above them).
        lines = [".*" if "from sdxl_nb" in line else re.escape(line) for line in inspect.getsource(function).splitlines()]
        assert re.search("\n".join(lines), text), function.__name__


def test_the_bundle_is_closed():
    """Every name the embedded definitions use is defined in the script (or left out on purpose)."""
    from types import SimpleNamespace

    from sdxl_nb.codegen.bundle import Bundle, unresolved_names
    from sdxl_nb.codegen.script import ENGINE_PARTS, REFINER_PARTS, left_out

    every_mode = SimpleNamespace(controlnets=(object(),), mode="inpaint", inpaint=object())
    bundle = Bundle(leave_out=left_out(every_mode, refiner={}))
    for part in ENGINE_PARTS + REFINER_PARTS + ("sdxl_nb.backends.local.hires:HiresPass",):
        bundle.add(part)
    assert unresolved_names(bundle) == []
    assert set(bundle.stubs) == {"load_state_dict", "WeightsRefused", "check_weights_folder", "load_controlnet_file",
                                 "annotate"}


def test_cli_writes_the_script_and_refuses_in_one_line(jobs, tmp_path, kernel_engine, capsys):
    from sdxl_nb.cli import main

    result = jobs["txt2img"]
    folder = Path(result.paths[0]).parent
    job_id = result.record["job_id"]
    target = tmp_path / "job.py"
    assert main(["code", job_id[:8], "--out-dir", str(folder), "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8").startswith('"""Job ' + job_id)
    assert capsys.readouterr().out.strip() == str(target)
    assert main(["code", job_id, "--out-dir", str(folder)]) == 0
    assert capsys.readouterr().out.startswith('"""Job ' + job_id)
    # A job of a mode written as no code: exit 2, one line, no file.
    log = folder / "jobs.log"
    record = json.loads(log.read_text().splitlines()[0])
    refused = tmp_path / "refused"
    refused.mkdir()
    made_elsewhere = {**record, "job_id": "feedbeef", "backend": {"name": "comfy", "server": "http://gpu:8188"}}
    (refused / "jobs.log").write_text(json.dumps(made_elsewhere) + "\n")
    refused_script = tmp_path / "refused.py"
    assert main(["code", "feedbeef", "--out-dir", str(refused), "-o", str(refused_script)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be written as plain code yet: it was made on the comfy" in err
    assert not refused_script.exists()


def test_a_script_never_holds_a_secret_of_the_environment(jobs, monkeypatch):
    from sdxl_nb import code
    from sdxl_nb.codegen import NotWritable

    result = jobs["txt2img"]
    monkeypatch.setenv("HF_TOKEN", "hf_secretvalue123")
    assert "hf_secretvalue123" not in code(result.paths[0])
    leaked = {**result.record, "styled_prompt": "a lighthouse, hf_secretvalue123"}
    with pytest.raises(NotWritable, match="cannot be written as plain code yet: its record holds a value of a secret"):
        code(leaked, out_dir=Path(result.paths[0]).parent)


@pytest.mark.slow  # a python + torch start
def test_other_library_versions_are_said(jobs, tmp_path):
    from sdxl_nb import code

    result = jobs["txt2img"]
    record = {**result.record, "env": {**result.record["env"], "diffusers": "0.1.0"}}
    done = run_script(code(record, out_dir=Path(result.paths[0]).parent), tmp_path)
    assert done.returncode == 0 and "(the job: 0.1.0); the pixels may differ from the recorded ones" in done.stderr


def test_a_received_record_cannot_put_code_in_the_script(jobs, tmp_path):
    """A job id carrying a triple quote stays text in the script's docstring (it would end the docstring else)."""
    import ast

    from sdxl_nb import code

    result = jobs["txt2img"]
    marker = tmp_path / "ran"
    hostile = {**result.record, "job_id": f'abc"""\nopen({str(marker)!r}, "w")\n"""'}
    tree = ast.parse(code(hostile, out_dir=Path(result.paths[0]).parent))
    assert f"open({str(marker)!r}" in ast.get_docstring(tree)  # the payload is words of the docstring
    calls = [node for node in tree.body if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)]
    assert all("open" not in ast.unparse(node) for node in calls)  # and no statement of the script
