"""The refiner of a request and where it takes over (A1111's switch by timestep or by sampling steps); no torch."""

from __future__ import annotations

from sdxl_nb.config.limits import check_number
from sdxl_nb.config.presets import ModelPreset
from sdxl_nb.errors import InputError

DEFAULT_REFINER_SWITCH = 0.8  # A1111's default "Refiner switch at"
# How a switch is read, as A1111's sd_samplers_common.apply_refiner: on the model's timesteps (its default), or by
# sampling steps (option refiner_switch_by_sample_steps). The split itself: backends/local/refiner_split.py.
REFINER_SWITCH_BY = ("timestep", "steps")


def resolve_refiner(request, models: dict[str, ModelPreset], mode: str, strength: float | None, hires,
                    notes: list[str]) -> tuple[ModelPreset | None, float | None, str | None]:
    """(refiner, switch, switch_by) of a request (all None without a refiner); one InputError line for a bad one."""
    by = request.refiner_switch_by
    if request.refiner is None:
        if request.refiner_switch is not None or by is not None:
            what = "refiner switch" if request.refiner_switch is not None else "refiner switch by"
            raise InputError(f"{what} needs a refiner (give refiner= / --refiner MODEL)")
        return None, None, None
    refiners = {name: preset for name, preset in models.items() if preset.refiner}
    if not isinstance(request.refiner, str) or request.refiner not in refiners:
        raise InputError(f"unknown refiner {request.refiner!r}; accepted: {', '.join(refiners) or 'none installed'}")
    if by is not None and by not in REFINER_SWITCH_BY:
        raise InputError(f"refiner switch by {by!r} is not known; accepted: {', '.join(REFINER_SWITCH_BY)} "
                         "(timestep: a point on the model's timesteps, A1111's default; steps: a fraction of the sampling steps)")
    by = by or REFINER_SWITCH_BY[0]
    if request.refiner_switch is None:
        switch = DEFAULT_REFINER_SWITCH
        notes.append(f"refiner switch {switch:g} (lab default)")
    else:
        switch = check_number(request.refiner_switch, "refiner switch")
        if not 0 < switch <= 1:
            raise InputError(f"refiner switch {request.refiner_switch} is out of range; accepted: greater than 0, at "
                             "most 1 (the fraction of the schedule the base model runs; 1: the refiner does not run)")
    # img2img (and the hires pass) start strength x the schedule from its end; on timesteps the refiner takes the
    # last (1 - switch) of it (a switch by steps is a fraction of the steps the pass runs: the base always has some).
    denoise, what = (hires.denoise, "hires denoise") if hires is not None else (strength, "strength")
    if denoise is not None and by == "timestep" and switch < 1 and denoise <= 1 - switch:
        raise InputError(f"{what} {denoise:g} starts after the refiner switch {switch:g}, so the base model would run no "
                         f"step; accepted: {what} greater than {1 - switch:.3g}, a switch greater than {1 - denoise:.3g}, "
                         "or the switch by steps")
    return refiners[request.refiner], switch, by
