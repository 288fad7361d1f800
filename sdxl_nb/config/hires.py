"""Hires fix settings: a second, upscaled img2img pass after the first (A1111's hires fix); validation, no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sdxl_nb.config.limits import MAX_SIZE, MAX_STEPS, MIN_SIZE, check_int, check_number, strength_steps
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
    resize: tuple[int, int] | None = None  # A1111's "Hires resize" (hr_resize_x, hr_resize_y; 0 keeps the ratio)
    upscale_to: tuple[int, int] | None = None  # the upscaled size before A1111's centre crop; None: width x height

    @property
    def upscaled_size(self) -> tuple[int, int]:
        return tuple(self.upscale_to) if self.upscale_to else (self.width, self.height)

    @property
    def crop(self) -> tuple[int, int] | None:
        """(x, y) offset of the width x height window in the upscaled image, or None without a crop. A1111's
        sample_hr_pass cuts truncate//2 latent columns/rows before and (truncate+1)//2 after."""
        up_w, up_h = self.upscaled_size
        if (up_w, up_h) == (self.width, self.height):
            return None
        return (up_w - self.width) // 8 // 2 * 8, (up_h - self.height) // 8 // 2 * 8

    @property
    def schedule_steps(self) -> int:
        return schedule_steps(self.steps, self.denoise)

    def record(self, first_pass: tuple[int, int]) -> dict:
        resize = {"resize": list(self.resize), "upscale_to": list(self.upscaled_size)} if self.resize else {}
        return {"scale": self.scale, "steps": self.steps, "denoise": self.denoise, "upscaler": self.upscaler.record(),
                "width": self.width, "height": self.height, "first_pass": list(first_pass),
                "schedule_steps": self.schedule_steps, **resize}


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


def resize_sizes(width: int, height: int, resize: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(upscaled size, final size) for A1111's "Hires resize" of a width x height first pass, as
    StableDiffusionProcessingTxt2Img.calculate_target_resolution does: one side 0 keeps the aspect ratio; both
    given with another ratio upscale to cover the target (integer division), then crop to it."""
    x, y = resize
    if y == 0:
        size = (x, x * height // width)
        return size, size
    if x == 0:
        size = (y * width // height, y)
        return size, size
    if width / height < x / y:
        return (x, x * height // width), (x, y)
    return (y * width // height, y), (x, y)


def parse_resize(value) -> tuple[int, int]:
    """A hires resize as (width, height) from "WxH" text or a pair; one InputError line otherwise."""
    parts = value.lower().split("x") if isinstance(value, str) else value
    try:
        x, y = (int(p) if isinstance(p, str) and p.strip().isascii() and p.strip().isdigit() and len(p) < 6 else p
                for p in parts)
        if not all(isinstance(side, int) and not isinstance(side, bool) and 0 <= side <= MAX_SIZE for side in (x, y)):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"hires resize {value!r} is not WIDTHxHEIGHT; accepted: two whole numbers 0 to {MAX_SIZE} "
                         "(0 keeps the aspect ratio), e.g. 1536x1536 or 1536x0") from None
    if x == y == 0:
        raise InputError("hires resize 0x0 sets no size; accepted: a width, a height or both (e.g. 1536x0), or "
                         "a hires scale instead")
    return x, y


def _resized(resize, width: int, height: int) -> tuple[float, tuple[int, int], tuple[int, int]]:
    resize = parse_resize(resize)
    upscaled, final = resize_sizes(width, height, resize)
    for label, (w, h) in (("an upscaled", upscaled), ("a final", final)):
        if w % 8 or h % 8 or not MIN_SIZE <= min(w, h) or max(w, h) > MAX_SIZE:
            raise InputError(f"hires resize {resize[0]}x{resize[1]} of {width}x{height} gives {label} size {w}x{h}; "
                             f"accepted: sizes in multiples of 8, {MIN_SIZE} to {MAX_SIZE} (e.g. a width or height "
                             "alone, which keeps the aspect ratio)")
    if upscaled[0] < width or upscaled[1] < height:
        raise InputError(f"hires resize {resize[0]}x{resize[1]} is smaller than the first pass ({width}x{height}); "
                         f"accepted: at least {width}x{height}")
    return round(max(upscaled[0] / width, upscaled[1] / height), 4), upscaled, final


def recorded_resize(entry: dict) -> dict:
    """HiresFix's resize and upscale_to from a record's hires entry ({} for a scale); ValueError when malformed."""
    if entry.get("resize") is None:
        return {}
    resize, upscaled = entry.get("resize"), entry.get("upscale_to")
    pairs = [pair for pair in (resize, upscaled) if isinstance(pair, list) and len(pair) == 2
             and all(isinstance(side, int) and not isinstance(side, bool) and 0 <= side <= MAX_SIZE for side in pair)]
    if len(pairs) != 2:
        raise ValueError(f"the record's hires resize {resize!r} / upscale_to {upscaled!r} are not two sizes")
    upscaled = tuple(upscaled)
    return {"resize": tuple(resize),
            "upscale_to": None if upscaled == (entry.get("width"), entry.get("height")) else upscaled}


def _scales_that_fit(width: int, height: int) -> str:
    good = [s for s in (1.25, 1.5, 2, 3, 4) if all(int(side * s) % 8 == 0 and int(side * s) <= MAX_SIZE
                                                  for side in (width, height))]
    return ", ".join(f"{s:g}" for s in good) or "none at this size"


def resolve_hires(scale, steps, denoise, upscaler, *, mode: str, width: int, height: int,
                  base_steps: int, resize=None) -> HiresFix | None:
    """The hires pass of a request, validated before any work (InputError, one line); None without a scale or
    resize (A1111's "Upscale by" or "Resize width/height to": one of them)."""
    if scale is not None and resize is not None:
        raise InputError("give a hires scale or a hires resize, not both (A1111's Hires resize replaces its "
                         "Upscale by)")
    if resize is not None:
        if mode != "txt2img":
            raise InputError(f"hires fix runs in txt2img only (as in A1111), not {mode}")
        scale, upscaled, final = _resized(resize, width, height)
        return HiresFix(scale, *_second_pass(steps, denoise, upscaler, base_steps), width=final[0], height=final[1],
                        resize=parse_resize(resize), upscale_to=upscaled if upscaled != final else None)
    if scale is None:
        given = [name for name, value in (("hires steps", steps), ("hires denoise", denoise),
                                          ("hires upscaler", upscaler)) if value is not None]
        if given:
            raise InputError(f"{given[0]} needs a hires scale or resize (e.g. --hires-scale 2)")
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
    return HiresFix(scale, *_second_pass(steps, denoise, upscaler, base_steps), width=new_width, height=new_height)


def _second_pass(steps, denoise, upscaler, base_steps: int) -> tuple[int, float, Upscaler]:
    """(steps, denoise, upscaler) of the second pass, validated."""
    steps = base_steps if steps is None else check_int(steps, "hires steps", 1, MAX_STEPS)
    denoise = DEFAULT_DENOISE if denoise is None else check_number(denoise, "hires denoise")
    if not 0 < denoise <= 1:
        raise InputError(f"hires denoise {denoise:g} is out of range; accepted: greater than 0, at most 1")
    if steps / denoise > 2 * MAX_SCHEDULE or schedule_steps(steps, denoise) > MAX_SCHEDULE:
        # The second pass runs the tail of a steps / denoise schedule; SDXL schedulers stop at 1000 steps.
        raise InputError(f"hires steps {steps} at denoise {denoise:g} need a {steps / denoise:.0f}-step schedule; "
                         f"accepted: hires steps / denoise at most {MAX_SCHEDULE} (e.g. denoise "
                         f"{math.ceil(steps / MAX_SCHEDULE * 1000) / 1000:g})")
    return steps, denoise, find_upscaler(DEFAULT_UPSCALER if upscaler is None else upscaler)
