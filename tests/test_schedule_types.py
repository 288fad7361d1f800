"""Sampler x schedule type (A1111's and ComfyUI's names -> diffusers options): built or refused in one line, written
and read back as A1111 writes them, exported to ComfyUI, run through the API, the CLI, a sweep and a re-run."""

import importlib.util
import json
import subprocess

import pytest

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.schedule_types import AUTOMATIC, BY_LABEL, SCHEDULE_TYPES, schedule_label
from sdxl_nb.config.scheduler_params import EXTRA_REQUIREMENTS
from sdxl_nb.errors import InputError
from sdxl_nb.request.resolve import GenerationRequest, resolve
from tests.conftest import PYTHON, REPO, SMALL, python_env

PRESETS = load_presets(REPO / "presets.json", user_layer=False)
SAMPLERS = [name for name, s in PRESETS.schedulers.items() if s.cls]
LABELS = [s.label for s in SCHEDULE_TYPES]


def _resolve(scheduler: str, schedule_type: str | None):
    return resolve(GenerationRequest(prompt="a fox", model="tiny-sdxl", scheduler=scheduler,
                                     schedule_type=schedule_type, seed=1, **SMALL), PRESETS)


def _tiny_scheduler():
    """The tiny model's own scheduler (config/tiny.py: SDXL's EulerDiscrete config, leading spacing)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading")


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_x_schedule_pair_builds_its_options_or_is_refused_in_one_line(sampler):
    import diffusers

    base = _tiny_scheduler()
    preset = PRESETS.schedulers[sampler]
    built = 0
    for label in LABELS:
        try:
            r = _resolve(sampler, label)
        except InputError as exc:
            text = str(exc)
            assert "\n" not in text and "accepted" in text and repr(label) in text, text
            continue
        package = EXTRA_REQUIREMENTS.get(r.scheduler.cls)
        if package and importlib.util.find_spec(package) is None:
            continue  # refused at run time in one line (tests/test_schedulers.py)
        scheduler = getattr(diffusers, r.scheduler.cls).from_config(base.config, **r.scheduler.kwargs)
        assert BY_LABEL[label].options.items() <= r.scheduler.kwargs.items(), (sampler, label)
        for key, value in r.scheduler.kwargs.items():
            assert scheduler.config[key] == value, (sampler, label, key)
        scheduler.set_timesteps(3)  # the schedule diffusers makes from it
        built += 1
    assert built or EXTRA_REQUIREMENTS.get(preset.cls)


@pytest.mark.parametrize("sampler, label, expected", [
    ("Euler", "Karras", {"use_karras_sigmas": True}),
    ("Euler", "SGM Uniform", {"timestep_spacing": "trailing"}),
    ("Euler", "Simple", {"timestep_spacing": "trailing"}),
    ("Euler", "Normal", {"timestep_spacing": "linspace"}),
    ("Euler", "DDIM", {"timestep_spacing": "leading", "steps_offset": 1}),
    ("DPM++ 2M", "Exponential", {"use_exponential_sigmas": True}),
    ("DPM++ 2M SDE", "Beta", {"algorithm_type": "sde-dpmsolver++", "use_beta_sigmas": True}),
    ("DPM2 a", "Karras", {"use_karras_sigmas": True}),
    ("DEIS", "karras", {"use_karras_sigmas": True}),  # ComfyUI's spelling
])
def test_pairs_map_to_diffusers_options(sampler, label, expected):
    r = _resolve(sampler, label)
    assert r.scheduler.kwargs == expected and r.schedule_type == schedule_label(label)


@pytest.mark.parametrize("sampler, label, words", [
    ("DDIM", "Beta", "schedule type 'Beta' cannot be made with DDIM in diffusers"),
    ("Euler a", "Karras", "accepted for Euler a: Automatic, Uniform, SGM Uniform"),
    ("LCM", "SGM Uniform", "accepted for LCM: Automatic"),
    ("Euler", "Polyexponential", "no diffusers option"),
    ("Euler", "Align Your Steps", "no diffusers scheduler option"),
    ("Euler", "kl_optimal", "KL Optimal"),
    ("Euler", "linear_quadratic", "Linear Quadratic"),
    ("Default", "Karras", "accepted for Default: Automatic"),
    ("DPM++ 2M Karras", "Exponential", "the sampler 'DPM++ 2M' with schedule type 'Exponential'"),
    ("Euler", "Cosine", "unknown schedule type 'Cosine'"),
])
def test_pairs_diffusers_cannot_make_are_refused_in_one_line(sampler, label, words):
    with pytest.raises(InputError) as caught:
        _resolve(sampler, label)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_existing_preset_names_keep_their_meaning():
    assert _resolve("DPM++ 2M Karras", None).scheduler == PRESETS.schedulers["DPM++ 2M Karras"]
    assert _resolve("DPM++ 2M Karras", None).schedule_type == "Karras"
    assert _resolve("DPM++ 2M Karras", "Karras").scheduler.kwargs == _resolve("DPM++ 2M", "Karras").scheduler.kwargs
    assert _resolve("Euler", None).scheduler == PRESETS.schedulers["Euler"]  # Automatic: the preset as it was


# ---- A1111 text written and read back ----
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_a1111_text_names_each_pair_as_a1111_writes_it(sampler):
    from sdxl_nb.record.metadata import a1111_sampler

    preset = PRESETS.schedulers[sampler]
    for label in LABELS:
        try:
            r = _resolve(sampler, label)
        except InputError:
            continue
        config = {**_tiny_scheduler().config, **r.scheduler.kwargs}
        written = a1111_sampler(r.scheduler.cls, config, r.schedule_type)
        own = preset.a1111[1] if label == AUTOMATIC else label
        assert written == (preset.a1111[0], own), (sampler, label)


A1111_TEXTS = [  # (Sampler, Schedule type) as A1111 1.6-1.10 wrote them -> (scheduler, schedule_type) here
    ("Euler", "SGM Uniform", ("Euler", "SGM Uniform")),
    ("DPM++ 2M", "Exponential", ("DPM++ 2M", "Exponential")),
    ("DPM++ 2M", "Karras", ("DPM++ 2M Karras", None)),
    ("DPM++ 2M Karras", None, ("DPM++ 2M Karras", None)),  # 1.6-1.8: the schedule in the sampler's name
    ("DPM++ 2M SDE Exponential", None, ("DPM++ 2M SDE", "Exponential")),
    ("DPM++ 2M SDE Karras", None, ("DPM++ 2M SDE Karras", None)),
    ("DPM++ 3M SDE", "Exponential", ("DPM++ 3M SDE", "Exponential")),
    ("DPM++ SDE Karras", None, ("DPM++ SDE Karras", None)),
    ("DPM2 a Karras", None, ("DPM2 a", "Karras")),
    ("DPM2", "Karras", ("DPM2", "Karras")),
    ("Euler a", None, ("Euler a", None)),
    ("Euler", "Automatic", ("Euler", None)),
    ("LMS Karras", None, ("LMS", "Karras")),
    ("UniPC", "Beta", ("UniPC", "Beta")),
    ("Euler", "SGMUniform", ("Euler", "SGM Uniform")),  # A1111's alias
    ("DDIM", "DDIM", ("DDIM", "DDIM")),
    ("LCM", None, ("LCM", None)),
]


@pytest.mark.parametrize("sampler, schedule, expected", A1111_TEXTS)
def test_png_info_reads_a1111_samplers_and_schedule_types_in_both_forms(sampler, schedule, expected, tmp_path):
    from sdxl_nb.record.png_params import read_png_parameters
    from tests.hostile import png_with_chunks

    line = f"Steps: 20, Sampler: {sampler}, " + (f"Schedule type: {schedule}, " if schedule else "")
    text = f"a fox\n{line}CFG scale: 7, Seed: 5, Size: 64x64"
    fields = read_png_parameters(png_with_chunks(tmp_path / "a.png", {"parameters": text}), PRESETS).fields
    assert (fields.get("scheduler"), fields.get("schedule_type")) == expected
    _resolve(fields["scheduler"], fields.get("schedule_type"))  # and the pair runs


@pytest.mark.parametrize("sampler, schedule, why", [
    ("Euler a", "Karras", "cannot be made with Euler a"), ("Restart", None, "no scheduler here matches"),
    ("Euler", "Polyexponential", "no diffusers option"), ("Euler", "Karras Dynamic", "not one this lab knows"),
])
def test_pairs_png_info_cannot_run_are_listed_with_the_reason(sampler, schedule, why, tmp_path):
    from sdxl_nb.record.png_params import read_png_parameters
    from tests.hostile import png_with_chunks

    line = f"Steps: 20, Sampler: {sampler}, " + (f"Schedule type: {schedule}, " if schedule else "")
    read = read_png_parameters(png_with_chunks(tmp_path / "a.png", {"parameters": f"a fox\n{line}Seed: 5"}), PRESETS)
    assert "scheduler" not in read.fields and why in read.unmapped["Sampler"]


# ---- ComfyUI ----
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_comfy_export_names_each_pair(sampler):
    from sdxl_nb.backends.comfy.workflow import comfy_sampler

    preset = PRESETS.schedulers[sampler]
    for label in LABELS:
        try:
            r = _resolve(sampler, label)
        except InputError:
            continue
        name, scheduler, note = comfy_sampler(r)
        if preset.comfy is None:
            assert note and sampler in note
            continue
        assert (name, scheduler) == (preset.comfy[0], preset.comfy[1] if label == AUTOMATIC else BY_LABEL[label].comfy)


@pytest.mark.parametrize("pair, expected", [
    (("euler", "sgm_uniform"), ("Euler", "SGM Uniform")), (("dpmpp_2m", "exponential"), ("DPM++ 2M", "Exponential")),
    (("dpmpp_2m", "karras"), ("DPM++ 2M Karras", None)), (("dpmpp_3m_sde", "simple"), ("DPM++ 3M SDE", "Simple")),
    (("ddim", "ddim_uniform"), ("DDIM", None)), (("lcm", "sgm_uniform"), ("LCM", None)),
    (("dpm_2_ancestral", "beta"), ("DPM2 a", "Beta")),
])
def test_png_info_reads_comfy_graphs_to_the_pair(pair, expected, tmp_path):
    from sdxl_nb.record.png_params import read_png_parameters
    from tests.hostile import png_with_chunks

    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 4, "cfg": 5.0, "sampler_name": pair[0],
                                                         "scheduler": pair[1], "denoise": 1.0}}}
    read = read_png_parameters(png_with_chunks(tmp_path / "c.png", {"prompt": json.dumps(graph)}), PRESETS)
    assert (read.fields.get("scheduler"), read.fields.get("schedule_type")) == expected


# ---- real jobs ----
def test_a_pair_runs_through_the_api_and_is_recorded_and_written(engine, tmp_path):
    from PIL import Image

    from sdxl_nb.analysis import read_logged_records
    from sdxl_nb.audit import BIT_EXACT, rerun_jobs, select_for_rerun
    from sdxl_nb.jobs.generate import generate
    from sdxl_nb.record.png_params import read_png_parameters

    result = generate(out_dir=tmp_path, engine=engine, prompt="a lighthouse", seed=4, scheduler="Euler",
                      schedule_type="Karras", **SMALL)
    assert result.status == "ok"
    record = result.record
    assert record["schedule_type"] == "Karras" and record["scheduler"]["config"]["use_karras_sigmas"] is True
    text = Image.open(result.paths[0]).text["parameters"]
    assert "Sampler: Euler, Schedule type: Karras" in text
    fields = read_png_parameters(result.paths[0]).fields
    assert (fields["scheduler"], fields["schedule_type"]) == ("Euler", "Karras")
    # The re-run audit makes the same pixels from the record.
    records, _ = read_logged_records(tmp_path)
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert table["verdict"].tolist() == [BIT_EXACT], table["note"].tolist()


def test_a_pair_runs_through_the_cli_and_a_bad_pair_exits_2_in_one_line(tmp_path):
    def cli(*args):
        return subprocess.run([PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "a fox", "--model", "tiny-sdxl",
                               "--width", "64", "--height", "64", "--steps", "2", "--seed", "3", "--out",
                               str(tmp_path), *args], capture_output=True, text=True, timeout=300, env=python_env())

    ran = cli("--scheduler", "DPM++ 2M", "--schedule-type", "sgm_uniform")
    assert ran.returncode == 0, ran.stderr
    [line] = (tmp_path / "jobs.log").read_text().splitlines()
    record = json.loads(line)
    assert record["schedule_type"] == "SGM Uniform" and record["scheduler"]["config"]["timestep_spacing"] == "trailing"
    bad = cli("--scheduler", "DDIM", "--schedule-type", "Beta")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "cannot be made with DDIM" in bad.stderr
    assert len((tmp_path / "jobs.log").read_text().splitlines()) == 1  # nothing more written


def test_a_sweep_over_schedule_type(engine, tmp_path):
    from sdxl_nb.jobs.sweep import SWEEPABLE, parse_axis, plan_sweep, run_sweep

    assert "schedule_type" in SWEEPABLE
    base = GenerationRequest(prompt="a fox", model="tiny-sdxl", scheduler="Euler", seed=2, **SMALL)
    with pytest.raises(InputError, match="cannot be made with Euler"):
        plan_sweep(base, parse_axis("schedule_type=Karras,Polyexponential"))
    result = run_sweep(base, x=parse_axis("schedule_type=Automatic,Karras,SGM Uniform"), out_dir=tmp_path,
                       engine=engine)
    from sdxl_nb.record.joblog import read_records

    cells = [r for r in read_records(tmp_path / "jobs.log") if r.get("mode") == "txt2img"]
    assert [r["schedule_type"] for r in cells] == ["Automatic", "Karras", "SGM Uniform"]
    assert [r["status"] for r in cells] == ["ok"] * 3 and result is not None


def test_the_few_step_defaults():
    turbo = PRESETS.models["stabilityai/sdxl-turbo"]
    assert (turbo.scheduler, turbo.schedule_type, turbo.steps, turbo.cfg) == ("Euler a", "SGM Uniform", 4, 0.0)
    r = resolve(GenerationRequest(prompt="a fox", model="stabilityai/sdxl-turbo", style="Cinematic", seed=1),
                PRESETS)
    assert (r.scheduler.name, r.schedule_type, r.scheduler.kwargs) == ("Euler a", "SGM Uniform",
                                                                        {"timestep_spacing": "trailing"})
    style = _resolve_style("Few-step (Lightning / Hyper)")
    assert (style.scheduler.name, style.schedule_type, style.steps, style.cfg) == ("Euler", "SGM Uniform", 8, 1.0)


def _resolve_style(name):
    return resolve(GenerationRequest(prompt="a fox", model="tiny-sdxl", style=name, seed=1), PRESETS)


def test_a_style_schedule_type_must_be_makeable_with_its_scheduler(tmp_path):
    from sdxl_nb.config.presets import parse_presets
    from sdxl_nb.errors import PresetError

    raw = json.loads((REPO / "presets.json").read_text())
    raw["styles"][0].update(scheduler="DDIM", schedule_type="Beta")
    with pytest.raises(PresetError, match="schedule_type.*cannot be made with DDIM"):
        parse_presets(raw, "presets.json")


def test_the_lab_form_dropdown_reaches_the_request():
    pytest.importorskip("ipywidgets")
    from sdxl_nb.ui.request_form import RequestForm

    form = RequestForm("tiny-sdxl")
    assert "Karras" in form.schedule_type.options and "Polyexponential" not in form.schedule_type.options
    fields, _ = form.fields()
    assert fields["schedule_type"] is None  # the defaults shown: nothing set
    form.scheduler.value, form.schedule_type.value = "Euler", "Karras"
    fields, _ = form.fields()
    assert (fields["scheduler"], fields["schedule_type"]) == ("Euler", "Karras")
    r = resolve(GenerationRequest(**{**fields, "prompt": "a fox"}), PRESETS)
    assert r.scheduler.kwargs == {"use_karras_sigmas": True}
    assert form.load({"scheduler": "DPM++ 2M", "schedule_type": "sgm_uniform"}) == []
    assert form.schedule_type.value == "SGM Uniform"


def test_dpm_sde_noise_is_seeded_by_each_image_so_jobs_come_back(engine, tmp_path):
    """DPM++ SDE's Brownian tree is seeded by each image's seed (A1111's create_noise_sampler, ComfyUI's
    sample_dpmpp_sde), not by the global RNG: a job comes back whatever that RNG holds, and a batch re-runs
    bit-exact."""
    import numpy as np
    import torch

    from sdxl_nb.analysis import read_logged_records
    from sdxl_nb.audit import BIT_EXACT, rerun_jobs, select_for_rerun
    from sdxl_nb.jobs.generate import generate

    fields = dict(prompt="a lighthouse", scheduler="DPM++ SDE", schedule_type="Karras", width=64, height=64, steps=3)
    generate(out_dir=tmp_path / "batch", engine=engine, seed=4, batch=2, **fields)
    runs = []
    for global_seed in (1, 12345):  # the global RNG must not matter
        torch.manual_seed(global_seed)
        runs.append(np.asarray(generate(out_dir=tmp_path / "alone", engine=engine, seed=5, **fields).images[0]))
    assert np.array_equal(*runs)
    records, _ = read_logged_records(tmp_path / "batch")
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert table["verdict"].tolist() == [BIT_EXACT] * 2, table["note"].tolist()
