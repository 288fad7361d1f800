"""The request's sampler and schedule type: which one applies (request, style, model, lab default), combined into
one diffusers scheduler preset; no torch."""

from __future__ import annotations

from sdxl_nb.config.presets import ModelPreset, Presets, SchedulerPreset, StylePreset
from sdxl_nb.errors import InputError


def resolve_scheduler(request, presets: Presets, model: ModelPreset, style: StylePreset,
                      notes: list[str]) -> tuple[SchedulerPreset, str]:
    """The sampler and schedule type: the request's, else the style's, else the model's, else the lab default (a
    turbo model's own pair wins over a style's, as its steps and cfg do), combined into one diffusers scheduler."""
    from sdxl_nb.config.schedule_types import AUTOMATIC, combine, own_schedule, schedule_label

    if request.scheduler is not None:
        name, source = request.scheduler, None
    elif model.scheduler and (model.turbo or not style.scheduler):
        name, source = model.scheduler, f"model {model.id}"
    elif style.scheduler:
        name, source = style.scheduler, f"style {style.name}"
    else:
        name, source = presets.defaults.scheduler, None
    if source:
        notes.append(f"scheduler {name} from {source}")
    if name not in presets.schedulers:
        raise InputError(f"unknown scheduler {name!r}; accepted: {', '.join(presets.schedulers)}")
    scheduler = presets.schedulers[name]
    if request.schedule_type is not None:
        label = schedule_label(request.schedule_type)
    elif request.scheduler is None and source and (source.startswith("model") and model.schedule_type):
        label = model.schedule_type
        notes.append(f"schedule type {label} from {source}")
    elif request.scheduler is None and source and source.startswith("style") and style.schedule_type:
        label = style.schedule_type
        notes.append(f"schedule type {label} from {source}")
    else:
        label = AUTOMATIC
    # Automatic on a preset that names its schedule ("DPM++ 2M Karras") is that schedule: the record says so.
    return combine(scheduler, label), own_schedule(scheduler.kwargs, scheduler.a1111) if label == AUTOMATIC else label
