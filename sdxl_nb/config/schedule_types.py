"""Schedule types as A1111 and ComfyUI name them, mapped to diffusers scheduler options; no torch.

A sampler (a presets.json scheduler) and a schedule type make one diffusers scheduler: the schedule type adds
the keywords below to the sampler's `kwargs`, and `Cls.from_config(config, **kwargs)` builds it. Each row was
checked against the peers' source:

- A1111 modules/sd_schedulers.py (`schedulers`: label, name, function) and ComfyUI comfy/samplers.py
  (`SCHEDULER_HANDLERS`: normal_scheduler, simple_scheduler, ddim_scheduler, beta_scheduler...).
- Uniform / Normal / ComfyUI normal: t = linspace(t_max, t_min, n) then 0 (A1111 `uniform` is
  `inner_model.get_sigmas(n)`, the same points); diffusers `timestep_spacing="linspace"`.
- SGM Uniform / Simple / ComfyUI sgm_uniform, simple: n points of t from t_max down by 1000/n, the last point
  dropped (`normal_scheduler(sgm=True)`, `simple_scheduler`); diffusers `timestep_spacing="trailing"`
  (round(1000 - i * 1000 / n) - 1: the same timesteps up to rounding).
- DDIM / ComfyUI ddim_uniform: t = 1, 1 + 1000 // n, ... reversed (`ddim_scheduler`); diffusers
  `timestep_spacing="leading"` with `steps_offset=1` (arange(n) * (1000 // n) + 1, reversed).
- Karras, Exponential: k-diffusion's get_sigmas_karras (rho 7) / get_sigmas_exponential between the model's
  sigma_min and sigma_max; diffusers `use_karras_sigmas` / `use_exponential_sigmas` (the same formulas).
- Beta: `beta_scheduler` with alpha = beta = 0.6 (A1111's beta_dist_alpha/beta defaults, ComfyUI's); diffusers
  `use_beta_sigmas` (the same scipy.stats.beta.ppf formula, alpha = beta = 0.6).
- Polyexponential, KL Optimal, Align Your Steps, ComfyUI linear_quadratic: no diffusers scheduler option makes
  them; they are refused in one line (a custom `sigmas` list reaches only some schedulers through the pipeline,
  so the same name would mean a different schedule per sampler).

"Automatic" keeps the sampler preset as it is (its own kwargs; the model's timestep spacing): every record
written before schedule types existed re-runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdxl_nb.errors import InputError

AUTOMATIC = "Automatic"


@dataclass(frozen=True)
class ScheduleType:
    label: str  # A1111's label (what its infotext writes); the canonical name here
    name: str  # A1111's internal name
    comfy: str | None  # ComfyUI's KSampler `scheduler`; None: none (Automatic: the sampler preset's own)
    options: dict  # diffusers keywords added to the sampler's kwargs
    missing: str | None = None  # why diffusers cannot make it (None: it can)
    aliases: tuple[str, ...] = ()


SCHEDULE_TYPES: tuple[ScheduleType, ...] = (
    ScheduleType(AUTOMATIC, "automatic", None, {}),
    ScheduleType("Uniform", "uniform", "normal", {"timestep_spacing": "linspace"}),
    ScheduleType("Karras", "karras", "karras", {"use_karras_sigmas": True}),
    ScheduleType("Exponential", "exponential", "exponential", {"use_exponential_sigmas": True}),
    ScheduleType("Polyexponential", "polyexponential", None, {},
                 "k-diffusion's polyexponential sigmas have no diffusers option"),
    ScheduleType("SGM Uniform", "sgm_uniform", "sgm_uniform", {"timestep_spacing": "trailing"},
                 aliases=("SGMUniform",)),
    ScheduleType("KL Optimal", "kl_optimal", "kl_optimal", {}, "the KL-optimal schedule has no diffusers option"),
    ScheduleType("Align Your Steps", "align_your_steps", None, {},
                 "Align Your Steps' fixed sigma tables have no diffusers scheduler option"),
    ScheduleType("Simple", "simple", "simple", {"timestep_spacing": "trailing"}),
    ScheduleType("Normal", "normal", "normal", {"timestep_spacing": "linspace"}),
    ScheduleType("DDIM", "ddim", "ddim_uniform", {"timestep_spacing": "leading", "steps_offset": 1},
                 aliases=("ddim_uniform",)),
    ScheduleType("Beta", "beta", "beta", {"use_beta_sigmas": True}),
    ScheduleType("Linear Quadratic", "linear_quadratic", "linear_quadratic", {},
                 "ComfyUI's linear_quadratic schedule has no diffusers option"),
)
BY_LABEL = {s.label: s for s in SCHEDULE_TYPES}
# Every spelling a user, an A1111 infotext or a ComfyUI graph may use, case-insensitive -> the label.
_SPELLINGS = {spelling.lower(): s.label for s in SCHEDULE_TYPES for spelling in (s.label, s.name, *s.aliases)}
_SPELLINGS.update({s.comfy: s.label for s in SCHEDULE_TYPES if s.comfy and s.comfy not in _SPELLINGS})
# The keywords a schedule type sets: a sampler preset that sets one of them carries a schedule of its own.
SCHEDULE_KEYS = frozenset(key for s in SCHEDULE_TYPES for key in s.options)
# diffusers' LCM and TCD pick their timesteps from original_inference_steps: timestep_spacing is stored, never used.
_SPACING_UNUSED = frozenset({"LCMScheduler", "TCDScheduler"})


def schedule_label(value: object) -> str:
    """The A1111 label for any accepted spelling (A1111 label or name, ComfyUI name); InputError otherwise."""
    if not isinstance(value, str) or value.strip().lower() not in _SPELLINGS:
        raise InputError(f"unknown schedule type {value!r}; accepted: {', '.join(BY_LABEL)} (or ComfyUI's "
                         f"{', '.join(sorted({s.comfy for s in SCHEDULE_TYPES if s.comfy}))})")
    return _SPELLINGS[value.strip().lower()]


def find_label(value: str) -> str | None:
    """schedule_label without the error: None for an unknown spelling."""
    return _SPELLINGS.get(value.strip().lower()) if isinstance(value, str) else None


def name_suffixes() -> list[tuple[str, str]]:
    """(suffix, label) pairs an old A1111 sampler name may end with ("DPM++ 2M Karras"), longest first (A1111's
    sd_samplers.get_sampler_and_scheduler tries each schedule's label, name and aliases)."""
    pairs = [(spelling, s.label) for s in SCHEDULE_TYPES if s.label != AUTOMATIC
             for spelling in (s.label, s.name, *s.aliases)]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def unmade_reason(label: str, class_name: str | None) -> str | None:
    """Why `label` cannot be made with a diffusers class (None: it can); torch-free (config/scheduler_params)."""
    from sdxl_nb.config.scheduler_params import scheduler_params

    schedule = BY_LABEL[label]
    if schedule.missing:
        return schedule.missing
    if label == AUTOMATIC:
        return None
    if class_name is None:
        return "the model's own scheduler is known only once the model loads"
    accepted = scheduler_params(class_name)
    lacking = [key for key in schedule.options if key not in accepted]
    if lacking:
        return f"{class_name} has no {' or '.join(lacking)}"
    if class_name in _SPACING_UNUSED and "timestep_spacing" in schedule.options:
        return f"{class_name} picks its own timesteps (original_inference_steps) and ignores timestep_spacing"
    return None


def accepted_for(class_name: str | None) -> list[str]:
    """The schedule types that can be made with a class, in A1111's order."""
    return [s.label for s in SCHEDULE_TYPES if unmade_reason(s.label, class_name) is None]


def own_schedule(kwargs: dict, a1111: tuple[str, str] | None) -> str:
    """The schedule type a sampler preset already carries: its A1111 pair's, or Automatic."""
    if a1111 and a1111[1] in BY_LABEL and a1111[1] != AUTOMATIC:
        return a1111[1]
    return AUTOMATIC


def combine(preset, label: str):
    """The SchedulerPreset for a sampler preset with a schedule type (the preset itself for Automatic or its own
    schedule), or InputError in one line naming what is accepted for that sampler."""
    from dataclasses import replace

    own = own_schedule(preset.kwargs, preset.a1111)
    if label in (AUTOMATIC, own):
        return preset
    if own != AUTOMATIC:
        raise InputError(f"scheduler {preset.name!r} already uses schedule type {own!r}; accepted: schedule type "
                         f"{AUTOMATIC} or {own}, or the sampler {preset.a1111[0]!r} with schedule type {label!r}")
    why = unmade_reason(label, preset.cls)
    if why:
        accepted = ", ".join(accepted_for(preset.cls))
        raise InputError(f"schedule type {label!r} cannot be made with {preset.name} in diffusers ({why}); accepted "
                         f"for {preset.name}: {accepted}")
    kwargs = {**{k: v for k, v in preset.kwargs.items() if k not in SCHEDULE_KEYS}, **BY_LABEL[label].options}
    a1111 = (preset.a1111[0], label) if preset.a1111 else None
    comfy = (preset.comfy[0], BY_LABEL[label].comfy) if preset.comfy and BY_LABEL[label].comfy else None
    return replace(preset, kwargs=kwargs, a1111=a1111, comfy=comfy)
