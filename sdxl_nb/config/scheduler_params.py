"""The config keywords each diffusers scheduler class accepts, with their types and values; no torch.

presets.json's scheduler `kwargs` go to `Cls.from_config(config, **kwargs)` at run time, where a wrong
name is dropped with a warning and a wrong value fails the job. This table lets them be checked when
the presets are read, without importing diffusers. tests/test_scheduler_params.py compares it with the
installed diffusers' `__init__` signatures (names and Literal values), so a diffusers upgrade that adds or
renames a keyword fails a test instead of a job.
"""

from __future__ import annotations

import math
from typing import Any

# A kind is "int", "float", "bool", "floats" (a list of numbers), "ints", or a tuple of accepted strings;
# a trailing "?" (or None in the tuple) also accepts null.
_KINDS: dict[str, Any] = {
    "num_train_timesteps": "int", "beta_start": "float", "beta_end": "float",
    "beta_schedule": ("linear", "scaled_linear", "squaredcos_cap_v2"), "trained_betas": "floats?",
    "prediction_type": ("epsilon", "sample", "v_prediction"), "timestep_spacing": ("linspace", "leading", "trailing"),
    "steps_offset": "int", "rescale_betas_zero_snr": "bool", "clip_sample": "bool", "clip_sample_range": "float",
    "set_alpha_to_one": "bool", "thresholding": "bool", "dynamic_thresholding_ratio": "float",
    "sample_max_value": "float", "solver_order": "int", "lower_order_final": "bool", "euler_at_final": "bool",
    "use_karras_sigmas": "bool", "use_exponential_sigmas": "bool", "use_beta_sigmas": "bool",
    "use_flow_sigmas": "bool", "use_lu_lambdas": "bool", "flow_shift": "float", "use_dynamic_shifting": "bool",
    "time_shift_type": ("exponential",), "final_sigmas_type": ("zero", "sigma_min"), "lambda_min_clipped": "float",
    "variance_type": (None, "learned", "learned_range"), "solver_type": ("midpoint", "heun"),
    "algorithm_type": ("dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"),
    "sigma_min": "float?", "sigma_max": "float?", "sigma_data": "float", "rho": "float",
    "sigma_schedule": ("karras", "exponential"), "original_inference_steps": "int", "timestep_scaling": "float",
    "skip_prk_steps": "bool", "predict_x0": "bool", "disable_corrector": "ints", "shift_terminal": "float?",
    "interpolation_type": ("linear", "log_linear"), "timestep_type": ("discrete", "continuous"),
    "noise_sampler_seed": "int?",
}

_BETAS = "num_train_timesteps beta_start beta_end beta_schedule trained_betas"
_SIGMAS = "use_karras_sigmas use_exponential_sigmas use_beta_sigmas"
_THRESHOLD = "thresholding dynamic_thresholding_ratio sample_max_value"
_SOLVER = f"solver_order prediction_type {_THRESHOLD} algorithm_type solver_type lower_order_final"
_FLOW = "use_flow_sigmas flow_shift use_dynamic_shifting time_shift_type"
_LCM = (f"{_BETAS} original_inference_steps clip_sample clip_sample_range set_alpha_to_one steps_offset "
        f"prediction_type {_THRESHOLD} timestep_spacing timestep_scaling rescale_betas_zero_snr")
_KDPM = f"{_BETAS} {_SIGMAS} prediction_type timestep_spacing steps_offset"
_EDM = "sigma_min sigma_max sigma_data sigma_schedule num_train_timesteps prediction_type rho"
_SCHEDULE = ("linear", "scaled_linear", "squaredcos_cap_v2")

# class -> (its keywords, kinds that differ from _KINDS for it)
_CLASSES: dict[str, tuple[str, dict]] = {
    "DDIMScheduler": (f"{_BETAS} clip_sample set_alpha_to_one steps_offset prediction_type {_THRESHOLD} "
                      "clip_sample_range timestep_spacing rescale_betas_zero_snr", {}),
    "DDPMScheduler": (f"{_BETAS} variance_type clip_sample prediction_type {_THRESHOLD} clip_sample_range "
                      "timestep_spacing steps_offset rescale_betas_zero_snr",
                      {"beta_schedule": (*_SCHEDULE, "sigmoid"),
                       "variance_type": ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log",
                                         "learned", "learned_range")}),
    "DEISMultistepScheduler": (f"{_BETAS} {_SOLVER} {_SIGMAS} {_FLOW} timestep_spacing steps_offset",
                               {"prediction_type": ("epsilon", "sample", "v_prediction", "flow_prediction"),
                                "algorithm_type": ("deis",), "solver_type": ("logrho",)}),
    "DPMSolverMultistepScheduler": (
        f"{_BETAS} {_SOLVER} euler_at_final {_SIGMAS} use_lu_lambdas {_FLOW} final_sigmas_type lambda_min_clipped "
        "variance_type timestep_spacing steps_offset rescale_betas_zero_snr",
        {"prediction_type": ("epsilon", "sample", "v_prediction", "flow_prediction")}),
    "DPMSolverSDEScheduler": (f"{_BETAS} prediction_type {_SIGMAS} noise_sampler_seed timestep_spacing steps_offset",
                              {}),
    "DPMSolverSinglestepScheduler": (
        f"{_BETAS} {_SOLVER} {_SIGMAS} {_FLOW} final_sigmas_type lambda_min_clipped variance_type",
        {"prediction_type": ("epsilon", "sample", "v_prediction", "flow_prediction"),
         "algorithm_type": ("dpmsolver", "dpmsolver++", "sde-dpmsolver++")}),
    "EDMDPMSolverMultistepScheduler": (f"{_EDM} {_SOLVER} euler_at_final final_sigmas_type",
                                       {"sigma_min": "float", "sigma_max": "float",
                                        "algorithm_type": ("dpmsolver++", "sde-dpmsolver++")}),
    "EDMEulerScheduler": (f"{_EDM} final_sigmas_type", {"sigma_min": "float", "sigma_max": "float",
                                                        "prediction_type": ("epsilon", "v_prediction")}),
    "EulerAncestralDiscreteScheduler": (f"{_BETAS} prediction_type timestep_spacing steps_offset "
                                        "rescale_betas_zero_snr", {}),
    "EulerDiscreteScheduler": (f"{_BETAS} prediction_type interpolation_type {_SIGMAS} sigma_min sigma_max "
                               "timestep_spacing timestep_type steps_offset rescale_betas_zero_snr final_sigmas_type",
                               {name: "bool?" for name in _SIGMAS.split()}),
    "HeunDiscreteScheduler": (f"{_BETAS} prediction_type {_SIGMAS} clip_sample clip_sample_range timestep_spacing "
                              "steps_offset", {"beta_schedule": (*_SCHEDULE, "exp")}),
    "KDPM2AncestralDiscreteScheduler": (_KDPM, {}),
    "KDPM2DiscreteScheduler": (_KDPM, {}),
    "LCMScheduler": (_LCM, {}),
    "LMSDiscreteScheduler": (f"{_BETAS} {_SIGMAS} prediction_type timestep_spacing steps_offset", {}),
    "PNDMScheduler": (f"{_BETAS} skip_prk_steps set_alpha_to_one prediction_type timestep_spacing steps_offset",
                      {"prediction_type": ("epsilon", "v_prediction")}),
    "TCDScheduler": (_LCM, {}),
    # solver_p (another scheduler object) cannot come from JSON and is left out on purpose.
    "UniPCMultistepScheduler": (
        f"{_BETAS} solver_order prediction_type {_THRESHOLD} predict_x0 solver_type lower_order_final "
        f"disable_corrector {_SIGMAS} {_FLOW} timestep_spacing steps_offset final_sigmas_type "
        "rescale_betas_zero_snr sigma_min sigma_max shift_terminal",
        {"prediction_type": ("epsilon", "sample", "v_prediction", "flow_prediction"), "solver_type": ("bh1", "bh2")}),
}

# Packages a class needs beyond the declared dependencies (diffusers gives a stand-in class without them).
EXTRA_REQUIREMENTS = {"DPMSolverSDEScheduler": "torchsde"}


def scheduler_params(class_name: str) -> dict[str, Any]:
    """{keyword: kind} for a scheduler class of the table (KeyError for another class)."""
    names, overrides = _CLASSES[class_name]
    return {name: overrides.get(name, _KINDS[name]) for name in names.split()}


def known_classes() -> frozenset[str]:
    return frozenset(_CLASSES)


def check_kwargs(class_name: str, kwargs: dict) -> str | None:
    """None when `kwargs` are keywords `class_name` accepts with values of the right kind, else the problem
    (one line: the keyword, what was given, what is accepted)."""
    accepted = scheduler_params(class_name)
    for name, value in kwargs.items():
        if name not in accepted:
            return f"{name!r} is not a {class_name} setting; accepted: {', '.join(sorted(accepted))}"
        problem = _check_value(value, accepted[name])
        if problem:
            return f"{name} {_show(value)} {problem}"
    return _check_together(class_name, kwargs)


def _check_together(class_name: str, kwargs: dict) -> str | None:
    """The rules diffusers' constructors and set_timesteps enforce across keywords."""
    sigmas = [name for name in _SIGMAS.split() if kwargs.get(name)]
    if len(sigmas) > 1:
        return f"{' and '.join(sigmas)} cannot both be true; choose one kind of sigmas"
    order = kwargs.get("solver_order")
    highest = None if class_name == "UniPCMultistepScheduler" else 3
    if order is not None and (order < 1 or (highest and order > highest)):
        return f"solver_order {order} is out of range; accepted: 1 to {highest or 'any'}"
    algorithm = kwargs.get("algorithm_type")
    if algorithm in ("dpmsolver", "sde-dpmsolver") and kwargs.get("final_sigmas_type", "zero") == "zero":
        return f'algorithm_type "{algorithm}" needs "final_sigmas_type": "sigma_min" (diffusers refuses "zero")'
    if kwargs.get("shift_terminal") is not None and not kwargs.get("use_flow_sigmas"):
        return "shift_terminal needs use_flow_sigmas true"
    return None


def _check_value(value: Any, kind: Any) -> str | None:
    if isinstance(kind, tuple):
        if value in kind and (value is None or isinstance(value, str)):
            return None
        return "is not accepted; accepted: " + ", ".join("null" if v is None else v for v in kind)
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        return None if optional else f"must be {_KIND_WORDS[kind]}"
    ok = {"int": _is_int(value), "bool": isinstance(value, bool), "float": _is_number(value),
          "floats": isinstance(value, list) and all(_is_number(v) for v in value),
          "ints": isinstance(value, list) and all(_is_int(v) for v in value)}[kind]
    return None if ok else f"must be {_KIND_WORDS[kind]}" + (" or null" if optional else "")


_KIND_WORDS = {"int": "a whole number", "bool": "true or false", "float": "a finite number",
               "floats": "a list of finite numbers", "ints": "a list of whole numbers"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    import json

    try:
        return json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)
