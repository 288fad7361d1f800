"""Animation requests -> validated frame plans: seeds per mode, motion phrases, t schedule, loop order; no torch."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

from sdxl_nb.config.presets import ModelPreset, Presets
from sdxl_nb.errors import InputError
from sdxl_nb.request.resolve import (  # the same rules as every request: prompts, whole numbers, numbers
    MAX_SEED,
    GenerationRequest,
    ResolvedRequest,
    check_int,
    check_number,
    check_text,
    resolve,
)

MODES = ("seed-walk", "slerp", "prompt-travel")
SCHEDULES = ("linear", "ease-in-out")
MIN_FRAMES, MAX_FRAMES = 2, 240
MAX_FPS = 50.0  # GIF delays are whole 1/100 s and browsers slow down anything faster than 50 fps
MAX_PHRASES = 3  # motion phrases a frame gets at variation 1.0
DEFAULT_VARIATION = 0.3  # seed walk: one motion phrase per frame, as the original lab did


@dataclass
class AnimationRequest:
    """What a user asks for. None means "the style's, then the model's, then the lab's default"."""

    prompt: str
    mode: str = "seed-walk"  # seed-walk | slerp | prompt-travel
    frames: int = 8
    seed: int | None = None  # seed walk: frame i uses seed + i; interpolation: the start seed
    seed_end: int | None = None  # slerp: the noise travels from seed to seed_end (prompt travel: optional)
    prompt_end: str | None = None  # prompt travel: the conditioning travels from prompt to prompt_end
    variation: float | None = None  # seed walk: 0..1, how many motion phrases each frame gets
    schedule: str = "linear"  # interpolation t spacing: linear | ease-in-out
    fps: float = 8.0
    ping_pong: bool = False  # the animation plays forward then back, so it loops without a jump
    batch_size: int | None = None  # frames per pipeline call; None: as many as fit in memory
    negative_prompt: str = ""
    model: str | None = None
    scheduler: str | None = None
    schedule_type: str | None = None  # A1111's Schedule type for the sampler (config/schedule_types.py)
    style: str | None = None
    steps: int | None = None
    cfg: float | None = None
    width: int | None = None
    height: int | None = None
    resolution: str | None = None
    init_image: str | None = None  # img2img for every frame
    strength: float | None = None
    loras: list | None = None  # LoRAs for every frame besides the prompt's <lora:NAME:WEIGHT> tags


@dataclass(frozen=True)
class FramePlan:
    index: int
    seed: int
    prompt: str  # as typed, plus this frame's motion phrases
    styled_prompt: str
    seed_end: int | None = None
    prompt_end: str | None = None
    styled_prompt_end: str | None = None
    t: float | None = None
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnimationPlan:
    """Everything an animation job will do, validated before any work."""

    mode: str
    base: ResolvedRequest  # the shared settings (model, style, steps, cfg, size, init image, base seed)
    frames: tuple[FramePlan, ...]
    fps: float
    ping_pong: bool
    schedule: str | None  # None for seed walk (no interpolation)
    variation: float | None  # None for interpolation modes
    phrases_per_frame: int
    batch_size: int | None
    order: tuple[int, ...]  # frame indices in playback order (ping-pong plays back without repeating ends)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def seeds(self) -> list[int]:
        return [frame.seed for frame in self.frames]

    @property
    def t_values(self) -> list[float] | None:
        return None if self.schedule is None else [frame.t for frame in self.frames]


def schedule_t(frames: int, schedule: str) -> list[float]:
    """t for each frame, from exactly 0.0 to exactly 1.0."""
    steps = [i / (frames - 1) for i in range(frames)]
    if schedule == "ease-in-out":  # slow at both ends: smoother loops, especially with ping-pong
        steps = [0.5 - 0.5 * math.cos(math.pi * u) for u in steps]
        steps[0], steps[-1] = 0.0, 1.0
    return steps


def animation_order(frames: int, ping_pong: bool) -> list[int]:
    """Playback order: 0..N-1, or 0..N-1..1 with ping-pong (the ends are not shown twice in a loop)."""
    forward = list(range(frames))
    return forward + forward[-2:0:-1] if ping_pong else forward


def phrases_per_frame(variation: float) -> int:
    """0 at variation 0; then one phrase per third of the range, up to MAX_PHRASES at 1.0."""
    return math.ceil(round(variation * MAX_PHRASES, 9))


def motion_phrases(index: int, phrases: tuple[str, ...], count: int) -> tuple[str, ...]:
    """Frame i's phrases: phrase i first, the others spread through the list so they never repeat in a frame."""
    if not phrases or count == 0:
        return ()
    count = min(count, len(phrases))
    stride = max(1, len(phrases) // count)
    return tuple(phrases[(index + k * stride) % len(phrases)] for k in range(count))


def _fail(message: str) -> InputError:
    return InputError(message)


def _check_settings(request: AnimationRequest) -> None:
    """The animation's own settings (the request fields are checked by resolve())."""
    if request.mode not in MODES:
        raise _fail(f"unknown animation mode {request.mode!r}; accepted: {', '.join(MODES)}")
    check_int(request.frames, "frames", MIN_FRAMES, MAX_FRAMES)
    fps = check_number(request.fps, "fps")
    if not 0 < fps <= MAX_FPS:
        raise _fail(f"fps {fps:g} is out of range; accepted: greater than 0, at most {MAX_FPS:g}")
    if not isinstance(request.ping_pong, bool):
        raise _fail(f"ping_pong must be true or false, got {request.ping_pong!r}")
    if request.schedule not in SCHEDULES:
        raise _fail(f"unknown schedule {request.schedule!r}; accepted: {', '.join(SCHEDULES)}")
    if request.batch_size is not None:
        check_int(request.batch_size, "batch size (frames per pipeline call)", 1, request.frames)
    if request.variation is not None:
        variation = check_number(request.variation, "variation")
        if not 0 <= variation <= 1:
            raise _fail(f"variation {variation:g} is out of range; accepted: 0 to 1")
    if request.mode == "seed-walk":
        for name, value in (("prompt end", request.prompt_end), ("seed end", request.seed_end)):
            if value is not None:
                raise _fail(f"{name} applies to slerp and prompt-travel, not seed-walk")
        if request.schedule != "linear":
            raise _fail("schedule applies to slerp and prompt-travel (seed-walk has no interpolation)")
        return
    if request.variation:
        raise _fail(f"variation (motion phrases) applies to seed-walk; {request.mode} keeps one prompt per end "
                    "so its ends match plain images")
    if request.mode == "slerp" and request.seed_end is None:
        raise _fail("slerp needs a seed end (the noise travels from seed to seed end)")
    if request.mode == "prompt-travel" and request.prompt_end is None:
        raise _fail("prompt-travel needs a prompt end (the conditioning travels from prompt to prompt end)")
    if request.seed_end is not None:
        check_int(request.seed_end, "seed end", 0, MAX_SEED)
        if request.seed_end == request.seed:
            raise _fail(f"seed end equals seed ({request.seed}); give two different seeds to interpolate")
    if request.prompt_end is not None and request.prompt_end == request.prompt:
        raise _fail("prompt end equals prompt; give two different prompts to travel between")


def plan_animation(request: AnimationRequest, presets: Presets, models: dict[str, ModelPreset] | None = None
                   ) -> AnimationPlan:
    """Validate a request before any work and lay out every frame; raise InputError on bad input."""
    _check_settings(request)
    notes: list[str] = []
    walk = request.mode == "seed-walk"
    seed = request.seed
    if seed is None:
        # Drawn here so that a seed walk's last seed (seed + frames - 1) stays inside the seed range.
        seed = secrets.randbelow(MAX_SEED - (request.frames - 1 if walk else 0) + 1)
        notes.append(f"seed {seed} drawn at random")
    elif walk:
        check_int(seed, "seed", 0, MAX_SEED - request.frames + 1)
    base = resolve(GenerationRequest(
        prompt=request.prompt, negative_prompt=request.negative_prompt, model=request.model,
        scheduler=request.scheduler, schedule_type=request.schedule_type, style=request.style, steps=request.steps, cfg=request.cfg, width=request.width,
        height=request.height, resolution=request.resolution, batch=1, seed=seed, init_image=request.init_image,
        strength=request.strength, loras=request.loras), presets, models)
    notes += base.notes

    frames: list[FramePlan] = []
    if walk:
        variation = DEFAULT_VARIATION if request.variation is None else float(request.variation)
        count = phrases_per_frame(variation)
        if request.variation is None:
            notes.append(f"variation {variation:g} (lab default): {count} motion phrase(s) per frame")
        if count > len(presets.motion_phrases):
            notes.append(f"only {len(presets.motion_phrases)} motion phrases in presets; each frame gets all of them")
        for i in range(request.frames):
            phrases = motion_phrases(i, presets.motion_phrases, count)
            prompt = ", ".join(part for part in (request.prompt, *phrases) if part)
            styled, _ = base.style.apply(prompt, base.negative_prompt)
            frames.append(FramePlan(index=i, seed=seed + i, prompt=prompt, styled_prompt=styled, phrases=phrases))
        schedule, count_used = None, count
    else:
        variation, count_used, schedule = None, 0, request.schedule
        prompt_end = None if request.prompt_end is None else check_text(request.prompt_end, "prompt end")
        styled_end = None if prompt_end is None else base.style.apply(prompt_end, base.negative_prompt)[0]
        if styled_end is not None:
            base = _with_end_networks(base, styled_end)
        for i, t in enumerate(schedule_t(request.frames, schedule)):
            frames.append(FramePlan(index=i, seed=seed, prompt=request.prompt, styled_prompt=base.styled_prompt,
                                    seed_end=request.seed_end, prompt_end=prompt_end, styled_prompt_end=styled_end,
                                    t=t))
    return AnimationPlan(mode=request.mode, base=base, frames=tuple(frames), fps=float(request.fps),
                         ping_pong=request.ping_pong, schedule=schedule, variation=variation,
                         phrases_per_frame=count_used, batch_size=request.batch_size,
                         order=tuple(animation_order(request.frames, request.ping_pong)), notes=tuple(notes))


def _with_end_networks(base: ResolvedRequest, styled_end: str) -> ResolvedRequest:
    """A prompt travel's end shares the job's LoRAs (a LoRA applies to every frame) and adds its embeddings."""
    from dataclasses import replace

    from sdxl_nb.request.networks import resolve_embeddings
    from sdxl_nb.request.prompt_syntax import check_weights, lora_tags

    check_weights(styled_end, "prompt end")
    job = {lora.name: lora.weight for lora in base.loras}
    for tag in lora_tags(styled_end):
        if job.get(tag.name) != tag.weight:
            raise InputError(f"prompt end tag {tag.text!r}: a LoRA applies to every frame, so the prompt end may only "
                             "repeat the prompt's LoRAs at the same weights; put it in the prompt (or --lora)")
    return replace(base, embeddings=resolve_embeddings(base.styled_prompt, styled_end, base.effective_negative_prompt))
