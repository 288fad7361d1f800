"""What the frame runner takes: each frame's seed, noise end, prompts and t, plus the shared settings; no torch."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FrameSpec:
    """One frame as the pipeline sees it."""

    index: int  # 0-based frame number
    seed: int  # the CPU generator seed of this frame (its noise, and any ancestral-sampler noise)
    styled_prompt: str
    seed_end: int | None = None  # slerp: the initial noise travels from seed's toward seed_end's
    styled_prompt_end: str | None = None  # prompt travel: the conditioning travels toward this prompt's
    t: float | None = None  # 0 is seed / styled_prompt exactly, 1 is seed_end / styled_prompt_end exactly


@dataclass(frozen=True)
class FramesJob:
    """Settings shared by every frame of an animation; built from a plan or from a jobs.log record."""

    source: str  # "txt2img" or "img2img"
    frames: tuple[FrameSpec, ...]
    negative: str  # the effective negative prompt (style applied)
    steps: int
    cfg: float
    width: int
    height: int
    strength: float | None
    init_image: str | None  # path of the init image (img2img)
    scheduler_class: str | None  # diffusers class; None keeps the model's own
    scheduler_kwargs: dict = field(default_factory=dict)
    scheduler_config: dict | None = None  # a recorded full config: rebuild exactly that scheduler
    batch_size: int | None = None  # frames per pipeline call; None: as many as fit in memory
    calls: tuple[tuple[int, ...], ...] | None = None  # exact grouping (frame positions) to repeat a run
