"""Hires fix settings: a second, upscaled img2img pass after the first (A1111's hires fix); validation, no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sdxl_nb.config.limits import MAX_SIZE, MAX_STEPS, check_int, check_number, strength_steps
from sdxl_nb.config.upscalers import DEFAULT_UPSCALER, Upscaler, find_upscaler
from sdxl_nb.errors import InputError

MAX_SCALE = 4.0  # A1111's slider ends at 4
DEFAULT_DENOISE = 0.7  # A1111's default denoising strength
MAX_SCHEDULE = 1000  # SDXL's training timesteps: no diffusers scheduler takes a longer schedule


@dataclass(frozen=True)
class HiresFix:
    """The second pass: upscale the first pass's result by `scale` to width x height, then denoise `steps` steps
    at strength `denoise` (as A1111 and ComfyUI count them: `steps` is what runs)."""

    scale: float
    steps: int
    denoise: float
    upscaler: Upscaler
    width: int  # the final size (the first pass's size is the request's width and height)
    height: int

    @property
    def schedule_steps(self) -> int:
        return schedule_steps(self.steps, self.denoise)

    def record(self, first_pass: tuple[int, int]) -> dict:
        return {"scale": self.scale, "steps": self.steps, "denoise": self.denoise, "upscaler": self.upscaler.record(),
                "width": self.width, "height": self.height, "first_pass": list(first_pass),
                "schedule_steps": self.schedule_steps}


def schedule_steps(steps: int, denoise: float) -> int:
    """The diffusers schedule length whose img2img tail (int(n x denoise) steps) is exactly `steps` steps: A1111's
    "Hires steps" (and ComfyUI's KSampler steps with denoise) count the steps that run."""
    n = max(steps, int(steps / denoise))
    while strength_steps(n, denoise) < steps:
        n += 1
    while n > steps and strength_steps(n - 1, denoise) >= steps:
        n -= 1
    return n


def hires_size(width: int, height: int, scale: float) -> tuple[int, int]:
    # A1111 truncates: hr_upscale_to_x = int(width * hr_scale).
    return int(width * scale), int(height * scale)


def _scales_that_fit(width: int, height: int) -> str:
    good = [s for s in (1.25, 1.5, 2, 3, 4) if all(int(side * s) % 8 == 0 and int(side * s) <= MAX_SIZE
                                                  for side in (width, height))]
    return ", ".join(f"{s:g}" for s in good) or "none at this size"


def resolve_hires(scale, steps, denoise, upscaler, *, mode: str, width: int, height: int,
                  base_steps: int) -> HiresFix | None:
    """The hires pass of a request, validated before any work (InputError, one line); None without a scale."""
    if scale is None:
        given = [name for name, value in (("hires steps", steps), ("hires denoise", denoise),
                                          ("hires upscaler", upscaler)) if value is not None]
        if given:
            raise InputError(f"{given[0]} needs a hires scale (e.g. --hires-scale 2)")
        return None
    if mode != "txt2img":
        raise InputError(f"hires fix runs in txt2img only (as in A1111), not {mode}; to enlarge an image use "
                         "`sdxl-nb upscale` or give img2img a larger width and height")
    scale = check_number(scale, "hires scale")
    if not 1 <= scale <= MAX_SCALE:
        raise InputError(f"hires scale {scale:g} is out of range; accepted: 1 to {MAX_SCALE:g}")
    new_width, new_height = hires_size(width, height, scale)
    if new_width % 8 or new_height % 8 or max(new_width, new_height) > MAX_SIZE:
        raise InputError(f"hires size {new_width}x{new_height} ({width}x{height} x {scale:g}) must be multiples of 8 "
                         f"up to {MAX_SIZE}; accepted scales at this size: {_scales_that_fit(width, height)}")
    steps = base_steps if steps is None else check_int(steps, "hires steps", 1, MAX_STEPS)
    denoise = DEFAULT_DENOISE if denoise is None else check_number(denoise, "hires denoise")
    if not 0 < denoise <= 1:
        raise InputError(f"hires denoise {denoise:g} is out of range; accepted: greater than 0, at most 1")
    if steps / denoise > 2 * MAX_SCHEDULE or schedule_steps(steps, denoise) > MAX_SCHEDULE:
        # The second pass runs the tail of a steps / denoise schedule; SDXL schedulers stop at 1000 steps.
        raise InputError(f"hires steps {steps} at denoise {denoise:g} need a {steps / denoise:.0f}-step schedule; "
                         f"accepted: hires steps / denoise at most {MAX_SCHEDULE} (e.g. denoise "
                         f"{math.ceil(steps / MAX_SCHEDULE * 1000) / 1000:g})")
    chosen = find_upscaler(DEFAULT_UPSCALER if upscaler is None else upscaler)
    return HiresFix(scale=scale, steps=steps, denoise=denoise, upscaler=chosen, width=new_width, height=new_height)
