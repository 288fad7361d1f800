"""The base/refiner split of a schedule (diffusers' denoising_end/start), and the switches that give both a step."""

from __future__ import annotations

GRID = 1000  # switches are advised to three decimals, the precision of the cutoff on a 1000-step training schedule


def split_steps(scheduler, steps: int, switch: float, strength: float | None) -> tuple[int, int]:
    """(base steps, refiner steps) of a run, as diffusers' denoising_end / denoising_start cut the schedule."""
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    if strength is not None:  # img2img and inpaint start strength x the schedule from its end
        start = min(int(steps * strength), steps)
        timesteps = timesteps[(steps - start) * scheduler.order:]
    cutoff = int(round(scheduler.config.num_train_timesteps * (1 - switch)))
    base = int((timesteps >= cutoff).sum())
    return base, len(timesteps) - base


def switch_range(scheduler, steps: int, strength: float | None) -> tuple[float, float] | None:
    """(lowest, highest) switch below 1, to three decimals, that leaves both the base and the refiner at least one
    step of this schedule; None when no switch does (too few steps). Found with split_steps itself, so the advice
    follows the very rule the run cuts the schedule by, for any scheduler (Karras sigmas, second-order steps)."""
    def split(k: int) -> tuple[int, int]:
        return split_steps(scheduler, steps, k / GRID, strength)

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
    base, refiner = split_steps(scheduler, r.steps, r.refiner_switch, r.strength)
    if base >= 1 and refiner >= 1:
        return None
    who = "the base model" if base < 1 else "the refiner"
    run = f"the {r.steps}-step schedule" if r.strength is None else \
        f"the {base + refiner} step(s) of {r.steps} that strength {r.strength:g} runs"
    head = f"refiner switch {r.refiner_switch:g} leaves {who} no step of {run} ({r.scheduler.name})"
    edges = switch_range(scheduler, r.steps, r.strength)
    if edges is None:
        return (f"{head}, and no switch gives both models a step; accepted: more steps, or refiner switch 1 (the "
                "base model alone)")
    lowest, highest = edges
    return (f"{head}; accepted: a switch from {lowest:g} (the lowest that gives the base a step) to {highest:g} (the "
            f"highest that gives the refiner a step) for {r.steps} steps, or 1 (the base model alone)")
