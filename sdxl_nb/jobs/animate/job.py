"""An animation job: its plan as frames, then the one job pipeline; frames, grid, GIF and WebP, one record."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path

from PIL import Image

from sdxl_nb.backends.base import ImageSpec, RunPlan
from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.config.registry import default_model_id, model_presets
from sdxl_nb.errors import InputError
from sdxl_nb.jobs.animate.outputs import (
    LOOP_FOREVER,
    animation_name,
    count_frames,
    encode_animation,
    frame_durations,
    frame_grid,
    frame_png_info,
    grid_name,
)
from sdxl_nb.jobs.animate.plan import AnimationPlan, AnimationRequest, animation_order, plan_animation
from sdxl_nb.jobs.files import JobFiles
from sdxl_nb.jobs.pipeline import JobResult, run_job
from sdxl_nb.record.naming import frame_name
from sdxl_nb.record.secrets import mask_data
from sdxl_nb.record.store import encode_png
from sdxl_nb.request.lint import empty_prompt_warning
from sdxl_nb.request.preflight import input_warnings

FramesFn = Callable[[list[tuple[dict, Image.Image]]], None]


@dataclass
class AnimationResult:
    record: dict
    frames: list = field(default_factory=list)  # PIL images of the finished frames, in frame order
    paths: list[Path] = field(default_factory=list)  # their PNGs
    grid: Image.Image | None = None
    grid_path: Path | None = None
    animation_paths: dict[str, Path] = field(default_factory=dict)  # "gif" / "webp" -> file

    @classmethod
    def of(cls, result: JobResult) -> AnimationResult:
        return cls(record=result.record, frames=result.images, paths=result.paths, grid=result.extras.get("grid"),
                   grid_path=result.files.get("grid"),
                   animation_paths={fmt: result.files[fmt] for fmt in ("gif", "webp") if fmt in result.files})

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def error(self) -> str | None:
        return self.record["error"]

    @property
    def gif_path(self) -> Path | None:
        return self.animation_paths.get("gif")

    @property
    def webp_path(self) -> Path | None:
        return self.animation_paths.get("webp")


def request_from_fields(fields_given: dict) -> AnimationRequest:
    """An AnimationRequest from keyword fields; an unknown field is bad input, not a TypeError."""
    known = {f.name for f in fields(AnimationRequest)}
    unknown = sorted(set(fields_given) - known)
    if unknown:
        raise InputError(f"unknown animation field {unknown[0]!r}; accepted: {', '.join(sorted(known))}")
    if "prompt" not in fields_given:
        raise InputError("an animation needs a prompt")
    return AnimationRequest(**fields_given)


def prepare_animation(request: AnimationRequest, presets: Presets | None = None) -> AnimationPlan:
    """Validate and lay out an animation (no torch, nothing written): every frame's seed, prompt and t."""
    presets = presets or load_presets()
    if request.model is None:
        request = replace(request, model=default_model_id(presets))
    return plan_animation(request, presets, model_presets(presets))


def frame_specs(plan: AnimationPlan) -> tuple[ImageSpec, ...]:
    return tuple(ImageSpec(index=f.index, seed=f.seed, prompt=f.styled_prompt, seed_end=f.seed_end,
                           prompt_end=f.styled_prompt_end, t=f.t) for f in plan.frames)


def animation_settings(plan: AnimationPlan) -> dict:
    """The record's `animation` object: everything that shaped the frames and their playback."""
    first = plan.frames[0]
    return {"mode": plan.mode, "source": plan.base.mode, "frames": len(plan.frames), "seed": first.seed,
            "seed_end": first.seed_end, "prompt": plan.base.prompt, "prompt_end": first.prompt_end,
            "styled_prompt_end": first.styled_prompt_end, "schedule": plan.schedule, "t": plan.t_values,
            "variation": plan.variation, "phrases_per_frame": plan.phrases_per_frame, "fps": plan.fps,
            "ping_pong": plan.ping_pong, "order": list(plan.order), "batch_size": plan.batch_size}


class AnimationJob:
    """Frames are images with their own seed, prompt and t; the grid and the animations are made from them."""

    def __init__(self, plan: AnimationPlan):
        self.plan, self.resolved = plan, plan.base

    def run_plan(self, chunk_size: int | None, auto_tune: bool | None) -> RunPlan:
        # None: the backend runs as many frames per call as fit in memory.
        return RunPlan(request=self.resolved, images=frame_specs(self.plan), chunk_size=self.plan.batch_size,
                       auto_tune=auto_tune)

    def warnings(self, backend, loaded, info) -> list[str]:
        # input_warnings: the resized init image and the model files whose names several files share, as for images
        return [w for w in (empty_prompt_warning(self.resolved.prompt),) if w] + input_warnings(self.resolved)

    def start_record(self, record: dict) -> None:
        plan = self.plan
        record.update(mode="animate", batch=len(plan.frames), seeds=plan.seeds, notes=list(plan.notes),
                      animation=animation_settings(plan), frames=[], grid=None, animations=[])
        for fmt, ms in frame_durations(plan.fps).items():
            if abs(ms - 1000 / plan.fps) > 1e-9:
                record["notes"].append(f"{fmt.upper()} frame delay {ms} ms: the format stores whole "
                                       f"{'1/100 s' if fmt == 'gif' else 'ms'} ({plan.fps:g} fps asks for "
                                       f"{1000 / plan.fps:.4g} ms)")

    def image_file(self, record, index, seed, image, call, moment):
        planned = self.plan.frames[index]
        frame = mask_data({"index": index, "seed": planned.seed, "seed_end": planned.seed_end, "t": planned.t,
                           "prompt": planned.prompt, "styled_prompt": planned.styled_prompt,
                           "prompt_end": planned.prompt_end, "styled_prompt_end": planned.styled_prompt_end,
                           "call": call})
        name = frame_name(moment, record["prompt"], index)  # the record's prompt: secrets already masked
        data = encode_png(image, frame_png_info(record, frame, name))
        return name, data, {"frames": frame, "images": {"seed": planned.seed, "index": index}}

    def finish_files(self, record: dict, images: dict, files: JobFiles, moment: datetime) -> dict[str, tuple]:
        """The frame grid and the GIF/WebP of the finished frames (all of them, unless the job was stopped)."""
        if not images:
            return {}
        record["frames"].sort(key=lambda frame: frame["index"])
        record["images"].sort(key=lambda image: image["index"])
        frames = record["frames"]
        pictures = [images[frame["index"]] for frame in frames]
        grid = frame_grid(pictures, frames, len(self.plan.frames))
        made = {"grid": (files.write(grid_name(moment, record["prompt"]), encode_png(grid),
                                     {"grid": {"size": list(grid.size)}}), grid)}
        order = animation_order(len(frames), self.plan.ping_pong)
        for fmt, duration in frame_durations(self.plan.fps).items():
            data = encode_animation(pictures, order, fmt, duration)
            entry = {"format": fmt, "frames": count_frames(data), "duration_ms": duration,
                     "loop": LOOP_FOREVER}
            made[fmt] = (files.write(animation_name(moment, record["prompt"], fmt), data,
                                     {"animations": entry}), None)
        return made


def animate(request: AnimationRequest | None = None, *, out_dir: str | os.PathLike | None = None, engine=None,
            on_progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
            on_stage: Callable[[str], None] | None = None, on_frames: FramesFn | None = None,
            on_preview: Callable | None = None, presets: Presets | None = None, extra: dict | None = None,
            mirror=None, auto_tune: bool | None = None, **fields_given) -> AnimationResult:
    """Make an animation (frames, frame grid, GIF, WebP) and record it as one `animate` job.

    Bad input raises InputError before anything is loaded or written. Frames are saved as each
    pipeline call finishes; a stop keeps them and records status "interrupted"; a run-time failure
    keeps them too, records status "failed" and raises GenerationError. `engine` is the backend
    (default: the kernel's); `on_frames` sees each call's frames as ({frame entry}, image) pairs.
    """
    if request is not None and fields_given:
        raise InputError(f"give an AnimationRequest or fields, not both (got {', '.join(sorted(fields_given))} too)")
    request = request or request_from_fields(fields_given)
    presets = presets or load_presets()
    plan = prepare_animation(request, presets)
    saved = None if on_frames is None else (lambda done: on_frames([(entries["frames"], image)
                                                                     for entries, image in done]))
    try:
        result = run_job(AnimationJob(plan), out_dir=out_dir, backend=engine, on_progress=on_progress,
                         should_stop=should_stop, on_preview=on_preview, on_stage=on_stage, on_saved=saved,
                         extra=extra, mirror=mirror, auto_tune=auto_tune, presets=presets)
    except Exception as exc:
        if getattr(exc, "result", None) is not None:
            exc.result = AnimationResult.of(exc.result)
        raise
    return AnimationResult.of(result)
