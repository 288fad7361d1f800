"""A1111-compatible `parameters` text: build it for saved PNGs and parse it back."""

from __future__ import annotations

import json
import re

# diffusers class -> the A1111 sampler it is (k-diffusion / A1111's own code does the same steps), for schedulers
# named by presets or shipped by a model as its "Default". The DPM-Solver families are named from their config below.
_A1111_SAMPLERS = {
    "EulerDiscreteScheduler": "Euler",
    "EDMEulerScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "LMSDiscreteScheduler": "LMS",
    "DPMSolverSDEScheduler": "DPM++ SDE",  # a port of k-diffusion's sample_dpmpp_sde, Brownian-tree noise included
    "UniPCMultistepScheduler": "UniPC",
    "DDIMScheduler": "DDIM",
    "LCMScheduler": "LCM",
}
# Samplers A1111 does not have: written under their own name, never as another A1111 sampler (a reader that sends
# the image back to A1111 then keeps its own sampler instead of silently running a different one).
_OWN_NAMES = {"DEISMultistepScheduler": "DEIS", "TCDScheduler": "TCD", "DDPMScheduler": "DDPM"}
_SCHEDULES = {"karras": "Karras", "exponential": "Exponential"}
_PARAM_RE = re.compile(r'\s*([\w][\w \-/+]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def a1111_sampler(class_name: str, config: dict) -> tuple[str, str]:
    """(Sampler, Schedule type) for a diffusers scheduler class and config, as A1111 writes them.

    Exact equivalents get A1111's name (table above; DPMSolverMultistep and EDMDPMSolverMultistep: "DPM++ 2M",
    "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"). A sampler A1111 lacks keeps a name of its own that is
    not on A1111's list: DPMSolverSinglestep is "DPM++ 2S" ("... SDE" for sde-dpmsolver++; A1111's "DPM++ 2S a" is
    ancestral, its "DPM++ SDE" is DPMSolverSDEScheduler), multistep orders A1111 lacks are "DPM++ 3M" / "DPM 2M",
    PNDM without skip_prk_steps is "PNDM" (with it, A1111's "PLMS"), DEIS, TCD and DDPM their own; any other
    class its class name.
    """
    sampler = _A1111_SAMPLERS.get(class_name) or _OWN_NAMES.get(class_name) or _dpm_solver(class_name, config)
    if class_name == "PNDMScheduler":
        sampler = "PLMS" if config.get("skip_prk_steps") else "PNDM"
    sampler = sampler or class_name
    if class_name.startswith("EDM"):
        schedule = _SCHEDULES.get(str(config.get("sigma_schedule", "karras")), "Automatic")
    elif config.get("use_karras_sigmas"):
        schedule = "Karras"
    elif config.get("use_exponential_sigmas"):
        schedule = "Exponential"
    elif config.get("use_beta_sigmas"):
        schedule = "Beta"
    elif config.get("timestep_spacing") == "trailing":
        schedule = "SGM Uniform"
    else:
        schedule = "Automatic"
    return sampler, schedule


def _dpm_solver(class_name: str, config: dict) -> str | None:
    """DPM-Solver names from the config: ++ or not, the order, multistep (M) or singlestep (S), SDE, Heun."""
    kind = {"DPMSolverMultistepScheduler": "M", "EDMDPMSolverMultistepScheduler": "M",
            "DPMSolverSinglestepScheduler": "S"}.get(class_name)
    if kind is None:
        return None
    algorithm = str(config.get("algorithm_type") or "dpmsolver++")
    order = config.get("solver_order") or 2
    name = f"DPM{'++' if algorithm.endswith('++') else ''} {order}{kind}"
    if algorithm.startswith("sde-"):
        name += " SDE"
    if config.get("solver_type") == "heun":
        name += " Heun"  # "DPM++ 2M SDE Heun" is A1111's; the others are not on its list
    return name


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
