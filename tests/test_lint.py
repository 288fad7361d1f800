"""Quality lint (table), and warnings shown before the run: API preflight, CLI --dry-run and stderr, the record."""

import subprocess

import pytest

from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.request.lint import lint
from sdxl_nb.request.preflight import preflight
from sdxl_nb.request.resolve import GenerationRequest, resolve
from tests.conftest import PYTHON, REPO, python_env

BASE = "stabilityai/stable-diffusion-xl-base-1.0"
TURBO = "stabilityai/sdxl-turbo"


def resolved(**fields):
    presets = load_presets(REPO / "presets.json")
    return resolve(GenerationRequest(prompt="a cat", seed=1, **fields), presets)


@pytest.mark.parametrize("fields, context, expected", [
    (dict(model=BASE), {}, []),
    (dict(model=BASE, cfg=12), {}, ["cfg 12 is above 9: SDXL images come out grainy and over-saturated; "
                                    "suggested: cfg 7-8 (DPM++ 2M SDE Karras, 30 steps, cfg 7-8)"]),
    (dict(model=BASE, cfg=9), {}, []),
    (dict(model=BASE, steps=15), {}, [f"15 steps is few for {BASE} (not a turbo model): images stay noisy and "
                                      "unfinished; suggested: 30 steps (DPM++ 2M SDE Karras, 30 steps, cfg 7-8)"]),
    (dict(model=BASE, steps=20), {}, []),
    (dict(model=BASE, scheduler="LMS", steps=20), {},
     ["sampler LMS (LMS) is noisy below 30 steps (20 asked); suggested: DPM++ 2M SDE Karras, 30 steps, cfg 7-8"]),
    (dict(model=BASE, scheduler="LMS", steps=30), {}, []),
    (dict(model=BASE, scheduler="DDIM", steps=10), {}, ["10 steps is few", "sampler DDIM (DDIM) is noisy below 25"]),
    (dict(model=BASE, scheduler="DPM++ 2M SDE Karras", steps=20), {}, []),
    (dict(model=TURBO), {}, []),
    (dict(model=TURBO, cfg=1), {}, []),
    (dict(model=TURBO, cfg=2), {}, [f"cfg 2 on turbo model {TURBO}: turbo is distilled for cfg 0 and burns the image "
                                    "above 1; suggested: cfg 0"]),
    (dict(model=TURBO, cfg=12, steps=10), {}, ["cfg 12 on turbo model", "10 steps on turbo model"]),
    (dict(model=TURBO, steps=8), {}, []),
    (dict(model=TURBO, steps=2, scheduler="LMS"), {}, []),  # turbo's few steps are its design
    (dict(model="tiny-sdxl", steps=2), {}, []),  # the demo model's tiny defaults are deliberate
    (dict(model="tiny-sdxl", steps=2, scheduler="LMS"), {}, []),
    (dict(model="tiny-sdxl", cfg=12), {}, ["cfg 12 is above 9"]),
    (dict(model=BASE), dict(dtype="float16", vae_upcasts=False), [
        "the VAE runs in float16 without an fp16-safe VAE: SDXL's VAE overflows in float16 (black or NaN images; the "
        "lab then decodes again in float32, slower); suggested: the dedicated VAE madebyollin/sdxl-vae-fp16-fix "
        "(hf download madebyollin/sdxl-vae-fp16-fix)"]),
    (dict(model=BASE), dict(dtype="float16", vae_upcasts=False, dedicated_vae="madebyollin/sdxl-vae-fp16-fix"), []),
    (dict(model=BASE), dict(dtype="float16", vae_upcasts=True), []),  # diffusers decodes it in float32
    (dict(model=BASE), dict(dtype="float32", vae_upcasts=False), []),
    (dict(model=BASE), dict(dtype="float16"), []),  # VAE unknown: no guess
])
def test_lint_table(fields, context, expected):
    warnings = lint(resolved(**fields), **context)
    assert len(warnings) == len(expected), warnings
    for warning, start in zip(warnings, expected, strict=True):
        assert warning.startswith(start)
        assert "suggested: " in warning  # every warning names what to use instead


def test_preflight_lists_lint_warnings_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check = preflight(GenerationRequest(prompt="word " * 80, cfg=12, seed=1, width=64, height=64))
    assert check.resolved.cfg == 12 and check.resolved.model.id == "tiny-sdxl"
    # A prompt longer than CLIP's window is read whole (in chunks): no cut-off warning any more.
    assert [w.split(":")[0] for w in check.warnings] == ["cfg 12 is above 9"]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="steps 0 is out of range"):
        preflight(GenerationRequest(prompt="x", steps=0))


def test_preflight_with_a_loaded_engine_knows_the_vae(engine, run):
    run(prompt="load")  # the engine holds tiny-sdxl now
    check = preflight(GenerationRequest(prompt="x", seed=1), engine=engine)
    assert check.warnings == []  # float32 on the CPU: no VAE warning


def test_generate_records_lint_warnings_and_reports_them_first(run, tmp_path):
    seen = []
    result = run(prompt="high cfg", cfg=12, on_warning=seen.append, out_dir=tmp_path)
    assert seen and seen[0].startswith("cfg 12 is above 9")
    assert read_records(tmp_path / "jobs.log")[0]["warnings"] == result.record["warnings"] == seen


def cli(*args):
    return subprocess.run([PYTHON, "-m", "sdxl_nb", "generate", *args], capture_output=True, text=True, timeout=180,
                          env=python_env())


@pytest.mark.slow
def test_cli_dry_run_prints_warnings_and_what_would_run(tmp_path):
    result = cli("--prompt", "word " * 80, "--cfg", "12", "--seed", "3", "--batch", "2", "--dry-run",
                 "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("warning: cfg 12 is above 9") and "suggested: cfg 7-8" in lines[0]
    assert not any("CLIP reads" in line for line in lines)  # a long prompt is read whole: nothing to warn
    assert result.stdout.startswith("would run txt2img with tiny-sdxl, Default, 4 steps, cfg 12, 128x128, seeds 3, 4")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_prints_each_warning_once_before_the_paths(tmp_path):
    result = cli("--prompt", "word " * 80, "--cfg", "12", "--seed", "3", "--width", "64", "--height", "64",
                 "--steps", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1  # the cfg lint; the long prompt is read whole, in chunks
    (record,) = read_records(tmp_path / "jobs.log")
    assert [f"warning: {w}" for w in record["warnings"]] == warnings
