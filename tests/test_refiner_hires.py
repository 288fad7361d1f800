"""Refiner + hires fix in one job and the switch by sampling steps, as A1111 runs them (modules/processing.py
StableDiffusionProcessingTxt2Img.sample / sample_hr_pass and sd_samplers_common.apply_refiner with its default
hires_fix_refiner_pass "second pass": the first pass is the base's, the refiner takes over within the hires pass):
recorded, written in A1111's text, read back by PNG Info, re-run bit-exact, offered by the CLI and the lab."""

import json
import subprocess

import pytest
from PIL import Image

from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
from sdxl_nb.errors import InputError
from sdxl_nb.record.metadata import parse_parameters
from sdxl_nb.record.png_params import read_png_parameters
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import PYTHON, REPO, python_env

REFINER = TINY_REFINER_ID
HIRES = dict(hires_scale=2, hires_steps=3, hires_denoise=0.7)
JOBS = {"refiner-hires": dict(steps=2, refiner=REFINER, refiner_switch=0.7, **HIRES),
        "by-steps": dict(steps=4, refiner=REFINER, refiner_switch=0.6, refiner_switch_by="steps"),
        "refiner-hires-by-steps": dict(steps=2, refiner=REFINER, refiner_switch=0.5, refiner_switch_by="steps",
                                       **HIRES)}


@pytest.fixture(scope="module")
def jobs(engine, tmp_path_factory):
    from sdxl_nb.jobs.generate import generate

    out = tmp_path_factory.mktemp("refiner_hires")
    results = {name: generate(out_dir=out, engine=engine, prompt="a fox", width=64, height=64, seed=3, **fields)
               for name, fields in JOBS.items()}
    return out, results


def test_the_record_says_where_the_refiner_ran(jobs):
    _out, results = jobs
    hires = results["refiner-hires"].record
    assert hires["status"] == "ok" and hires["hires"]["width"] == 128
    assert hires["refiner"]["switch_by"] == "timestep"
    assert hires["refiner"]["split"]["pass"] == "hires"
    assert hires["refiner"]["split"]["schedule_steps"] == hires["hires"]["schedule_steps"]
    split = hires["refiner"]["split"]
    assert split["base_steps"] + split["refiner_steps"] == 3 and split["switch_step"] == split["start_step"] + \
        split["base_steps"]
    by_steps = results["by-steps"].record["refiner"]
    # A1111: the refiner takes the first step k with k / 4 >= 0.6: step 3 (the base ran steps 0, 1, 2).
    assert by_steps["switch_by"] == "steps" and by_steps["split"]["base_steps"] == 3
    with Image.open(results["refiner-hires"].paths[0]) as image:
        assert image.size == (128, 128)


def test_a1111_text_and_png_info_carry_the_switch_mode(jobs, tmp_path):
    _out, results = jobs
    for name, fields in JOBS.items():
        with Image.open(results[name].paths[0]) as image:
            text = image.text["parameters"]
        params = parse_parameters(text)
        by_steps = fields.get("refiner_switch_by") == "steps"
        assert params.get("Refiner switch by sampling steps") == ("True" if by_steps else None)
        assert "Hires refiner" not in params  # the second pass is A1111's default: it writes nothing
        read = read_png_parameters(results[name].paths[0]).fields
        assert read["refiner_switch_by"] == fields.get("refiner_switch_by", "timestep")
        a1111 = read_png_parameters(_a1111_png(text, tmp_path / f"{name}.png")).fields
        assert a1111.get("refiner_switch_by", "timestep") == fields.get("refiner_switch_by", "timestep")
        assert a1111["refiner"] == REFINER and ("hires_scale" in a1111) == ("hires_scale" in fields)


def _a1111_png(text: str, path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def test_png_info_notes_a_hires_refiner_pass_it_does_not_run(tmp_path):
    text = ("a fox\nSteps: 4, Sampler: Euler, CFG scale: 5, Seed: 1, Size: 64x64, Model: tiny-sdxl, "
            f"Refiner: {REFINER}, Refiner switch at: 0.8, Hires refiner: both passes, Hires upscale: 2, "
            "Hires steps: 3, Hires upscaler: Latent, Denoising strength: 0.7")
    read = read_png_parameters(_a1111_png(text, tmp_path / "a.png"))
    assert "second pass" in read.unmapped["Hires refiner"] and "refiner_switch_by" not in read.fields


def test_rerun_is_bit_exact(jobs, engine):
    from sdxl_nb.analysis import read_logged_records
    from sdxl_nb.audit import BIT_EXACT, check_integrity, rerun_jobs, select_for_rerun

    out, _results = jobs
    records, problems = read_logged_records(out)
    assert problems == [] and check_integrity(records).ok
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert table["verdict"].tolist() == [BIT_EXACT] * len(JOBS), table["note"].tolist()


@pytest.mark.parametrize("fields, message", [
    (dict(refiner=REFINER, refiner_switch_by="sigma"), "refiner switch by 'sigma' is not known; accepted: timestep, "
                                                       "steps"),
    (dict(refiner_switch_by="steps"), "refiner switch by needs a refiner"),
    (dict(refiner=REFINER, refiner_switch=0.8, **HIRES | {"hires_denoise": 0.15}),
     "hires denoise 0.15 starts after the refiner switch 0.8"),
])
def test_bad_settings_are_one_line_before_any_work(fields, message):
    with pytest.raises(InputError) as info:
        prepare(GenerationRequest(prompt="a fox", width=64, height=64, steps=4, **fields))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_switch_by_steps_has_no_strength_limit():
    """By steps the switch is a fraction of the steps the pass runs: the base always has some."""
    r = prepare(GenerationRequest(prompt="a fox", width=64, height=64, steps=4, refiner=REFINER, refiner_switch=0.8,
                                  refiner_switch_by="steps", **HIRES | {"hires_denoise": 0.2, "hires_steps": 2}))
    assert r.refiner_switch_by == "steps" and r.hires is not None


def test_cli_offers_the_switch_mode(tmp_path):
    args = [PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "a fox", "--width", "64", "--height", "64", "--steps",
            "2", "--refiner", REFINER, "--refiner-switch", "0.5", "--refiner-switch-by", "steps", "--hires-scale", "2",
            "--dry-run", "--json"]
    done = subprocess.run(args, capture_output=True, text=True, env=python_env(), cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    request = json.loads(done.stdout)["request"]
    assert request["refiner_switch_by"] == "steps" and request["hires"]["scale"] == 2
    bad = subprocess.run(args[:-3] + ["--refiner-switch-by", "sigma"], capture_output=True, text=True,
                         env=python_env(), cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_lab_form_offers_switch_by_steps_beside_the_refiner(tmp_path):
    from sdxl_nb.ui.generate_form import GenerateForm

    form = GenerateForm()
    assert form.refiner_by_steps in form.refiner_row.children and form.refiner_by_steps.disabled
    form.prompt.value = "a fox"
    form.refiner.value = REFINER
    form.refiner_by_steps.value = True
    form.hires.enabled.value = True  # refiner and hires fix together: the form no longer refuses them
    request, _adjusted = form.request(tmp_path)
    assert request.refiner_switch_by == "steps" and request.refiner == REFINER and request.hires_scale
    resolved = prepare(request)
    assert resolved.refiner is not None and resolved.hires is not None
    form.load({"refiner": REFINER, "refiner_switch": 0.6})
    assert form.refiner_by_steps.value is False
    form.load({"refiner": REFINER, "refiner_switch": 0.6, "refiner_switch_by": "steps"})
    assert form.refiner_by_steps.value is True
