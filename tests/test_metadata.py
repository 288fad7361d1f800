"""A1111 `parameters` text: our writer, our parser, and a third-party reader agree."""

import pytest

from sdxl_nb.record.metadata import a1111_sampler, build_parameters, parse_parameters


@pytest.mark.parametrize("prompt, negative", [
    ("a fox", ""),
    ("a fox, in snow: night", "blurry, lowres"),
    ("line one\nline two", "neg one\nneg two"),
    ('quotes "inside", and commas', "x"),
])
def test_parameters_round_trip(prompt, negative):
    fields = {"Steps": 30, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": "7", "Seed": 123,
              "Size": "1024x768", "Model": "sd_xl_base_1.0", "Style": "Dark Fantasy / Grimdark",
              "Version": "sdxl_nb 0.1.0, build: x"}
    parsed = parse_parameters(build_parameters(prompt, negative, fields))
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == negative
    for key, value in fields.items():
        assert parsed[key] == str(value)


def test_negative_line_is_omitted_when_empty():
    text = build_parameters("p", "", {"Steps": 1, "Seed": 2, "Size": "64x64"})
    assert text == "p\nSteps: 1, Seed: 2, Size: 64x64"


@pytest.mark.parametrize("cls, config, expected", [
    ("EulerDiscreteScheduler", {}, ("Euler", "Automatic")),
    ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, ("DPM++ 2M", "Karras")),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}, ("DPM++ 2M SDE", "Karras")),
    ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}, ("Euler a", "SGM Uniform")),
    # Schedulers a model may ship as its "Default": the A1111 sampler each really is, or a name of its own.
    ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}, ("DPM++ SDE", "Karras")),
    ("DPMSolverSinglestepScheduler", {}, ("DPM++ 2S", "Automatic")),
    ("DPMSolverSinglestepScheduler", {"algorithm_type": "sde-dpmsolver++"}, ("DPM++ 2S SDE", "Automatic")),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun",
                                     "use_exponential_sigmas": True}, ("DPM++ 2M SDE Heun", "Exponential")),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}, ("DPM++ 3M SDE", "Automatic")),
    ("DPMSolverMultistepScheduler", {"solver_order": 3}, ("DPM++ 3M", "Automatic")),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver"}, ("DPM 2M", "Automatic")),
    ("EDMDPMSolverMultistepScheduler", {"sigma_schedule": "karras"}, ("DPM++ 2M", "Karras")),
    ("EDMDPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "sigma_schedule": "exponential"},
     ("DPM++ 2M SDE", "Exponential")),
    ("EDMEulerScheduler", {}, ("Euler", "Karras")),
    ("DEISMultistepScheduler", {}, ("DEIS", "Automatic")),
    ("TCDScheduler", {"timestep_spacing": "trailing"}, ("TCD", "SGM Uniform")),
    ("LCMScheduler", {}, ("LCM", "Automatic")),
    ("DDPMScheduler", {}, ("DDPM", "Automatic")),
    ("PNDMScheduler", {"skip_prk_steps": True}, ("PLMS", "Automatic")),
    ("PNDMScheduler", {}, ("PNDM", "Automatic")),
    ("UniPCMultistepScheduler", {"use_beta_sigmas": True}, ("UniPC", "Beta")),
    ("FlowMatchEulerDiscreteScheduler", {}, ("FlowMatchEulerDiscreteScheduler", "Automatic")),
])
def test_sampler_names(cls, config, expected):
    assert a1111_sampler(cls, config) == expected


# A1111's samplers (modules/sd_samplers_kdiffusion.py and sd_samplers_timesteps.py, v1.10).
A1111_SAMPLERS = {"DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
                  "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM",
                  "DDIM CFG++", "PLMS", "UniPC", "LCM"}


def test_every_known_class_with_its_default_config_gets_a_name_and_only_true_a1111_names():
    from sdxl_nb.config.presets import KNOWN_SCHEDULER_CLASSES

    exact = {"EulerDiscreteScheduler", "EDMEulerScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
             "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "LMSDiscreteScheduler", "DPMSolverSDEScheduler",
             "UniPCMultistepScheduler", "DDIMScheduler", "LCMScheduler", "DPMSolverMultistepScheduler",
             "EDMDPMSolverMultistepScheduler"}
    for cls in KNOWN_SCHEDULER_CLASSES:
        sampler, _schedule = a1111_sampler(cls, {})
        assert not sampler.endswith("Scheduler"), cls  # never a raw class name
        assert (sampler in A1111_SAMPLERS) == (cls in exact), (cls, sampler)


def test_scheduler_presets_declare_the_a1111_names_their_images_carry():
    from sdxl_nb.config.presets import load_presets

    for preset in load_presets(user_layer=False).schedulers.values():
        if preset.cls and preset.a1111:
            assert a1111_sampler(preset.cls, preset.kwargs) == preset.a1111, preset.name


def test_a_prompt_line_that_reads_as_the_negative_is_warned_and_kept_exact(run, tmp_path):
    import json

    from PIL import Image

    prompt = "a poster that says\nNegative prompt: none at all"
    result = run(prompt=prompt, negative_prompt="blurry", out_dir=tmp_path)
    (warning,) = [w for w in result.record["warnings"] if "Negative prompt:" in w]
    assert "A1111-format readers" in warning and "sdxl_nb chunk" in warning
    with Image.open(result.paths[0]) as image:
        misread = parse_parameters(image.text["parameters"])
        chunk = json.loads(image.text["sdxl_nb"])
    assert misread["Prompt"] == "a poster that says"  # what every A1111 reader sees: the format cannot escape it
    assert chunk["prompt"] == chunk["styled_prompt"] == prompt and chunk["negative_prompt"] == "blurry"
