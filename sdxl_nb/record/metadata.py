"""A1111-compatible `parameters` text: build it for saved PNGs and parse it back."""

from __future__ import annotations

import json
import re

# diffusers class -> A1111 sampler name, for schedulers that came with a model ("Default").
_A1111_SAMPLERS = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "UniPCMultistepScheduler": "UniPC",
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "LCMScheduler": "LCM",
}
_PARAM_RE = re.compile(r'\s*([\w][\w \-/+]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def a1111_sampler(class_name: str, config: dict) -> tuple[str, str]:
    """(Sampler, Schedule type) for a diffusers scheduler class and config."""
    sampler = _A1111_SAMPLERS.get(class_name, class_name)
    if class_name == "DPMSolverMultistepScheduler" and "sde" in str(config.get("algorithm_type", "")):
        sampler = "DPM++ 2M SDE"
    if config.get("use_karras_sigmas"):
        schedule = "Karras"
    elif config.get("use_exponential_sigmas"):
        schedule = "Exponential"
    elif config.get("timestep_spacing") == "trailing":
        schedule = "SGM Uniform"
    else:
        schedule = "Automatic"
    return sampler, schedule


def _quote(value: object) -> str:
    text = str(value)
    # A1111 JSON-quotes a value only when it would break the comma/colon list.
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def build_parameters(prompt: str, negative: str, fields: dict[str, object]) -> str:
    """The `parameters` chunk: prompt, optional negative line, then `Key: value, ...`."""
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields.items() if value is not None))
    return "\n".join(lines)


def parse_parameters(text: str) -> dict[str, str]:
    """Parse A1111 `parameters` text into {"Prompt", "Negative prompt", key: value...} (values as text)."""
    *head, last = text.strip("\n").split("\n")
    found = _PARAM_RE.findall(last)
    if len(found) < 3:  # no parameter line: the whole text is the prompt
        head, found = head + [last], []
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in head:
        if line.startswith("Negative prompt:") and not negative_lines:
            negative_lines.append(line[len("Negative prompt:"):].lstrip(" "))
        elif negative_lines:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)
    result = {"Prompt": "\n".join(prompt_lines), "Negative prompt": "\n".join(negative_lines)}
    for key, value in found:
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) > 1:
            value = json.loads(value)
        result[key.strip()] = value
    return result
