"""The base/refiner split of a schedule (diffusers' denoising_end/start), and the switches that give both a step."""

from __future__ import annotations

import math

GRID = 1000  # switches are advised to three decimals, the precision of the cutoff on a 1000-step training schedule
# A switch is read as A1111 (sd_samplers_common.apply_refiner) reads it (request.refiner_choice.REFINER_SWITCH_BY):
# "timestep" (its default) switches once the model timestep of the current sigma passes the switch; "steps" (option
# refiner_switch_by_sample_steps, infotext `Refiner switch by sampling steps: True`) at the first step whose
# step / total_steps reaches it.


def _schedule(scheduler, steps: int, strength: float | None):
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    if strength is not None:  # img2img and inpaint start strength x the schedule from its end
        start = min(int(steps * strength), steps)
        timesteps = timesteps[(steps - start) * scheduler.order:]
    return timesteps


def _order(scheduler) -> int:
    return int(getattr(scheduler, "order", 1) or 1)


def by_steps(runs: int, switch: float) -> int:
    """The steps the base runs of a pass of `runs` steps when the switch counts steps: A1111 checks
    `step / total_steps < switch` before each step (apply_refiner), so the refiner takes the first step k reaching it."""
    return next(k for k in range(runs + 1) if k / runs >= switch) if runs else 0


def split_steps(scheduler, steps: int, switch: float, strength: float | None,
                by: str = "timestep") -> tuple[int, int]:
    """(base steps, refiner steps) of a run, as diffusers' denoising_end / denoising_start cut the schedule (counted
    in the scheduler's timesteps: a second-order scheduler has two per step but the first)."""
    timesteps = _schedule(scheduler, steps, strength)
    if by == "steps":
        order = _order(scheduler)
        k = by_steps(math.ceil(len(timesteps) / order), switch)
        base = min(k * order - (order - 1), len(timesteps)) if k else 0
        return base, len(timesteps) - base
    cutoff = int(round(scheduler.config.num_train_timesteps * (1 - switch)))
    base = int((timesteps >= cutoff).sum())
    return base, len(timesteps) - base


def denoising_point(scheduler, steps: int, switch: float, strength: float | None, by: str = "timestep"):
    """The denoising_end / denoising_start that cut diffusers' schedule where this split does: the switch itself
    when it is read on the timesteps; for a switch by steps, the fraction whose timestep cutoff falls between the
    base's last timestep and the refiner's first. None when no whole timestep lies between them."""
    if by != "steps":
        return switch
    base, refiner = split_steps(scheduler, steps, switch, strength, by)
    if not base or not refiner:
        return None
    timesteps = _schedule(scheduler, steps, strength)
    train = scheduler.config.num_train_timesteps
    cutoff = math.floor(float(timesteps[base - 1]))
    if cutoff <= float(timesteps[base]):
        return None
    point = (train - cutoff) / train
    return point if split_steps(scheduler, steps, point, strength) == (base, refiner) else None


def switch_by(r) -> str:
    return getattr(r, "refiner_switch_by", None) or "timestep"


def refined_pass(r) -> tuple[int, float | None]:
    """(schedule steps, strength) of the pass the refiner runs in: with a hires fix the second pass (A1111's default
    `hires_fix_refiner_pass: second pass`: the first pass is the base's alone), else the job's own."""
    if getattr(r, "hires", None) is not None:
        return r.hires.schedule_steps, r.hires.denoise
    return r.steps, r.strength


def switch_range(scheduler, steps: int, strength: float | None, by: str = "timestep") -> tuple[float, float] | None:
    """(lowest, highest) switch below 1, to three decimals, that leaves both the base and the refiner at least one
    step of this schedule; None when no switch does (too few steps). Found with split_steps itself, so the advice
    follows the very rule the run cuts the schedule by, for any scheduler (Karras sigmas, second-order steps)."""
    def split(k: int) -> tuple[int, int]:
        return split_steps(scheduler, steps, k / GRID, strength, by)

    # The base's share grows with the switch and the refiner's shrinks: a bisection finds each edge.
    low, high = 1, GRID - 1
    if split(high)[0] < 1:
        return None
    while low < high:  # the lowest k whose base gets a step
        middle = (low + high) // 2
        low, high = (low, middle) if split(middle)[0] >= 1 else (middle + 1, high)
    lowest = low
    low, high = lowest, GRID - 1
    if split(low)[1] < 1:
        return None
    while low < high:  # the highest k whose refiner gets a step
        middle = (low + high + 1) // 2
        low, high = (middle, high) if split(middle)[1] >= 1 else (low, middle - 1)
    return lowest / GRID, low / GRID


def split_problem(scheduler, r) -> str | None:
    """Why a request's refiner switch leaves the base or the refiner no step (one line naming the switches that
    work for its steps), or None; a switch of 1 (the refiner does not run) is never a problem."""
    if r.refiner is None or r.refiner_switch >= 1:
        return None
    by, (steps, strength) = switch_by(r), refined_pass(r)
    base, refiner = split_steps(scheduler, steps, r.refiner_switch, strength, by)
    hires = getattr(r, "hires", None) is not None
    read = " by sampling steps" if by == "steps" else ""
    if base >= 1 and refiner >= 1:
        if denoising_point(scheduler, steps, r.refiner_switch, strength, by) is not None:
            return None
        return (f"refiner switch {r.refiner_switch:g}{read} falls between two timesteps of the {steps}-step "
                f"{r.scheduler.name} schedule with no whole timestep between them; accepted: another switch, or the "
                "switch read on timesteps (refiner_switch_by timestep)")
    who = "the base model" if base < 1 else "the refiner"
    if hires:
        run = f"the {base + refiner} step(s) of the hires pass (hires steps {r.hires.steps})"
    elif strength is None:
        run = f"the {steps}-step schedule"
    else:
        run = f"the {base + refiner} step(s) of {steps} that strength {strength:g} runs"
    head = f"refiner switch {r.refiner_switch:g}{read} leaves {who} no step of {run} ({r.scheduler.name})"
    edges = switch_range(scheduler, steps, strength, by)
    if edges is None:
        return (f"{head}, and no switch gives both models a step; accepted: more steps, or refiner switch 1 (the "
                "base model alone)")
    lowest, highest = edges
    return (f"{head}; accepted: a switch from {lowest:g} (the lowest that gives the base a step) to {highest:g} (the "
            f"highest that gives the refiner a step) for {r.hires.steps if hires else r.steps} {'hires ' if hires else ''}"
            "steps, or 1 (the base model alone)")


def refiner_plan(scheduler, r) -> dict | None:
    """Where a job's refiner takes over, in sampling steps (a second-order step counts once), for the record and
    the ComfyUI graph: the pass it runs in, that pass's schedule length (KSamplerAdvanced `steps`), the step the
    pass starts at, the base's and the refiner's steps, and the switch step (end_at_step / start_at_step)."""
    if r.refiner is None or r.refiner_switch >= 1:
        return None
    by, (steps, strength) = switch_by(r), refined_pass(r)
    base, refiner = split_steps(scheduler, steps, r.refiner_switch, strength, by)
    order = _order(scheduler)
    runs, base_steps = math.ceil((base + refiner) / order), math.ceil(base / order)
    start = steps - runs
    return {"by": by, "pass": "hires" if getattr(r, "hires", None) is not None else "first",
            "schedule_steps": steps, "start_step": start, "base_steps": base_steps,
            "refiner_steps": runs - base_steps, "switch_step": start + base_steps}


def request_scheduler(r, notes: list[str] | None = None):
    """The request's scheduler as a local run builds it (the preset's class and options on the model's own scheduler
    config, engine.make_scheduler), from config files alone: the tiny model's, a cached repo's, a checkpoint's
    config folder; a model whose configs are not here (a checkpoint only a ComfyUI server holds, a repo not cached)
    uses SDXL base's bundled scheduler config, the one SDXL checkpoints ship with."""
    import json
    from pathlib import Path

    import diffusers

    from sdxl_nb.config.sdxl_base import CONFIGS

    config = dict(CONFIGS["scheduler/scheduler_config.json"])
    folder = _model_folder(r.model.id)
    if folder is None and notes is not None:
        notes.append(f"the refiner switch step comes from SDXL base's scheduler config: {r.model.id}'s own config is "
                     "not here")
    if folder is not None:
        try:
            config = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # an unreadable folder is the load's to report; the split uses SDXL's config meanwhile
    base = getattr(diffusers, config["_class_name"]).from_config(config)
    cls = type(base) if r.scheduler.cls is None else getattr(diffusers, r.scheduler.cls)
    return cls.from_config(base.config, **r.scheduler.kwargs)


def _model_folder(model_id: str):
    """The local folder whose scheduler config the model runs with, or None where it is not here."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model, locate_model
    from sdxl_nb.errors import InputError, ModelUnavailableError

    try:
        info = find_model(model_id, load_presets())
        if info.source == "embedded":
            from sdxl_nb.config.tiny import ensure_tiny_model

            return ensure_tiny_model()
        if not info.available:
            return None
        if info.source == "checkpoint":
            from sdxl_nb.backends.local.checkpoint_load import config_for

            return config_for(info.path)
        return locate_model(info.id)[0]
    except (InputError, ModelUnavailableError, OSError, ValueError, KeyError):
        return None


def split_record(r) -> dict | None:
    """The record's refiner split (refiner_plan on the request's scheduler), or None without a refiner run."""
    if r.refiner is None or r.refiner_switch >= 1:
        return None
    return refiner_plan(request_scheduler(r), r)
