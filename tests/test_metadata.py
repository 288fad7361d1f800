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
])
def test_sampler_names(cls, config, expected):
    assert a1111_sampler(cls, config) == expected
