"""A1111's (Sampler, Schedule type) and ComfyUI's (sampler_name, scheduler) -> this lab's scheduler preset and
schedule type, when diffusers can make the pair (PNG Info's reading of both peers)."""

from __future__ import annotations

from sdxl_nb.config.presets import Presets


def sampler_pair_from_a1111(sampler: str, schedule: str | None, presets: Presets):
    """((scheduler preset, schedule type or None), None) for A1111's Sampler and Schedule type, else (None, why).

    A1111 1.9+ writes them apart ("DPM++ 2M" + "Karras"); older releases put the schedule in the sampler's name
    ("DPM++ 2M Karras", "DPM++ 2M SDE Exponential"), split here as A1111's sd_samplers.get_sampler_and_scheduler
    does (a label, name or alias suffix). A preset named for the pair is used as it is (schedule type None);
    otherwise the sampler's preset with the schedule type, when diffusers can make that pair.
    """
    from sdxl_nb.config.schedule_types import AUTOMATIC, find_label, name_suffixes

    label = None
    if schedule:
        label = find_label(schedule)
        if label is None:
            return None, f"schedule type {schedule!r} is not one this lab knows"
    else:
        for suffix, suffix_label in name_suffixes():
            if sampler.endswith(" " + suffix) and _a1111_base(sampler.removesuffix(" " + suffix), presets):
                sampler, label = sampler.removesuffix(" " + suffix), suffix_label
                break
    return _pair(presets, label or AUTOMATIC, lambda s: s.a1111, sampler)


def _a1111_base(sampler: str, presets: Presets) -> bool:
    return any(s.a1111 and s.a1111[0] == sampler for s in presets.schedulers.values())


def _pair(presets: Presets, label: str, names, sampler: str):
    """The preset whose pair (names(preset)) is (sampler, label) exactly, else the sampler's plain preset combined
    with the schedule type; (None, why) when there is none or diffusers cannot make the pair."""
    from sdxl_nb.config.schedule_types import AUTOMATIC, BY_LABEL, combine, find_label, own_schedule
    from sdxl_nb.errors import InputError

    def schedule_of(s) -> str | None:
        pair = names(s)
        return find_label(pair[1]) if names is not _comfy_names else _comfy_label(pair[1])

    for s in presets.schedulers.values():
        if names(s) and names(s)[0] == sampler and schedule_of(s) == label:
            return (s.name, None), None
    base = next((s for s in presets.schedulers.values() if names(s) and names(s)[0] == sampler
                 and own_schedule(s.kwargs, s.a1111) == AUTOMATIC), None)
    if base is None or label not in BY_LABEL:
        return None, "no scheduler here matches"
    try:
        combine(base, label)
    except InputError as exc:
        return None, str(exc)
    return (base.name, label), None


def _comfy_names(s):
    return s.comfy


def _comfy_label(name: str) -> str | None:
    """A ComfyUI scheduler name's schedule type ("normal" is A1111's Normal: the same linspace timesteps)."""
    from sdxl_nb.config.schedule_types import SCHEDULE_TYPES

    return next((s.label for s in SCHEDULE_TYPES if s.comfy == name and s.label != "Uniform"), None)


def sampler_pair_from_comfy(sampler_name: str, scheduler: str, presets: Presets):
    """((scheduler preset, schedule type or None), None) for a ComfyUI KSampler's pair, else (None, why)."""
    label = _comfy_label(scheduler)
    return _pair(presets, label, _comfy_names, sampler_name) if label else (None, "no scheduler here matches")
