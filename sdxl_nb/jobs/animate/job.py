"""One animation job: validate, load, run frames in batches, save frames, grid, GIF and WebP, append one record."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path

from PIL import Image

from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.config.registry import default_model_id, find_model, model_presets
from sdxl_nb.errors import GenerationError, InputError, ModelUnavailableError, one_line
from sdxl_nb.jobs.animate import outputs
from sdxl_nb.jobs.animate.plan import AnimationPlan, AnimationRequest, animation_order, plan_animation
from sdxl_nb.jobs.animate.spec import FramesJob, FrameSpec
from sdxl_nb.record import events
from sdxl_nb.record.job_record import base_record, new_job_id, now_iso
from sdxl_nb.record.joblog import JOBS_LOG, append_record
from sdxl_nb.record.naming import frame_name
from sdxl_nb.record.store import check_output_dir, encode_png, sha256_bytes, write_new_file

FramesFn = Callable[[list[tuple[dict, Image.Image]]], None]


@dataclass
class AnimationResult:
    record: dict
    frames: list = field(default_factory=list)  # PIL images of the finished frames, in frame order
    paths: list[Path] = field(default_factory=list)  # their PNGs
    grid: Image.Image | None = None
    grid_path: Path | None = None
    animation_paths: dict[str, Path] = field(default_factory=dict)  # "gif" / "webp" -> file

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def gif_path(self) -> Path | None:
        return self.animation_paths.get("gif")

    @property
    def webp_path(self) -> Path | None:
        return self.animation_paths.get("webp")


def _default_output_dir() -> Path:
    from sdxl_nb.jobs.pipeline import default_output_dir

    return default_output_dir()


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


def frames_job(plan: AnimationPlan) -> FramesJob:
    base = plan.base
    frames = tuple(FrameSpec(index=f.index, seed=f.seed, styled_prompt=f.styled_prompt, seed_end=f.seed_end,
                             styled_prompt_end=f.styled_prompt_end, t=f.t) for f in plan.frames)
    return FramesJob(source=base.mode, frames=frames, negative=base.effective_negative_prompt, steps=base.steps,
                     cfg=base.cfg, width=base.width, height=base.height, strength=base.strength,
                     init_image=None if base.init_image is None else base.init_image.path,
                     scheduler_class=base.scheduler.cls, scheduler_kwargs=dict(base.scheduler.kwargs),
                     batch_size=plan.batch_size)


def animation_settings(plan: AnimationPlan) -> dict:
    """The record's `animation` object: everything that shaped the frames and their playback."""
    first = plan.frames[0]
    return {"mode": plan.mode, "source": plan.base.mode, "frames": len(plan.frames), "seed": first.seed,
            "seed_end": first.seed_end, "prompt": plan.base.prompt, "prompt_end": first.prompt_end,
            "styled_prompt_end": first.styled_prompt_end, "schedule": plan.schedule, "t": plan.t_values,
            "variation": plan.variation, "phrases_per_frame": plan.phrases_per_frame, "fps": plan.fps,
            "ping_pong": plan.ping_pong, "order": list(plan.order), "batch_size": plan.batch_size}


def animate(request: AnimationRequest | None = None, *, out_dir: str | os.PathLike | None = None, engine=None,
            on_progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
            on_stage: Callable[[str], None] | None = None, on_frames: FramesFn | None = None,
            presets: Presets | None = None, **fields_given) -> AnimationResult:
    """Make an animation (frames, frame grid, GIF, WebP) and record it as one `animate` job.

    Bad input raises InputError before anything is loaded or written. Frames are saved as each
    pipeline call finishes; a stop keeps them and records status "interrupted"; a run-time failure
    keeps them too, records status "failed" and raises GenerationError.
    """
    if request is not None and fields_given:
        raise InputError(f"give an AnimationRequest or fields, not both (got {', '.join(sorted(fields_given))} too)")
    request = request or request_from_fields(fields_given)
    presets = presets or load_presets()
    plan = prepare_animation(request, presets)
    folder = check_output_dir(out_dir or _default_output_dir())
    info = find_model(plan.base.model.id, presets)
    if not info.available:
        raise ModelUnavailableError(info.reason)
    from sdxl_nb.backends.local.frames import run_frames
    from sdxl_nb.jobs.pipeline import load_for_job

    started_at, t0 = now_iso(), time.perf_counter()
    engine, loaded, was_loaded = load_for_job(info, engine, folder, on_stage)
    record = _start_record(plan, engine, loaded, info, started_at, was_loaded)
    load_s = 0.0 if was_loaded else loaded.load_s
    moment = datetime.fromisoformat(started_at)
    saved = _FrameSaver(folder, record, moment, plan, on_frames)
    result = AnimationResult(record=record, frames=saved.images, paths=saved.paths)
    generate_s = None
    try:
        output = run_frames(engine, loaded, frames_job(plan), on_progress=on_progress, should_stop=should_stop,
                            on_call_done=saved.add)
        generate_s = output.generate_s
        record.update(scheduler={"name": plan.base.scheduler.name, **output.scheduler},
                      peak_memory_bytes=output.peak_memory_bytes)
        record["events"] += output.events
        save_started = time.perf_counter()
        if saved.images:
            _write_grid_and_animations(folder, record, moment, plan, result)
        saved.save_s += time.perf_counter() - save_started
    except Exception as exc:
        # The frames saved so far stay listed: they are whole files, each with its own metadata.
        message = one_line(exc)
        if isinstance(exc, OSError):
            message = f"could not save animation files to {folder}: {exc.strerror or exc}"
        record.update(status="failed", error=message)
        _finish(folder, record, saved, load_s, generate_s, t0)
        if isinstance(exc, GenerationError):
            raise
        raise GenerationError(message) from exc
    record["status"] = output.status
    _finish(folder, record, saved, load_s, generate_s, t0)
    return result


def _start_record(plan: AnimationPlan, engine, loaded, info, started_at: str, was_loaded: bool) -> dict:
    model = {"id": info.id, "revision": loaded.revision, "source": info.source, "dtype": loaded.dtype_name,
             "vae": loaded.vae}
    record = base_record(plan.base, job_id=new_job_id(), started_at=started_at, model=model,
                         device=engine.device_record(), env=engine.environment())
    styled = sorted({frame.styled_prompt for frame in plan.frames} | {plan.frames[0].styled_prompt_end or ""})
    warnings = list(loaded.warnings)
    warnings += engine.prompt_warnings(loaded, *[("prompt", text) for text in styled if text],
                                       ("negative prompt", plan.base.effective_negative_prompt))
    warnings += [note for note in plan.base.notes if note.startswith("init image resized")]
    record.update(mode="animate", batch=len(plan.frames), seeds=plan.seeds, warnings=warnings, notes=list(plan.notes),
                  animation=animation_settings(plan), frames=[], grid=None, animations=[])
    durations = outputs.frame_durations(plan.fps)
    for fmt, ms in durations.items():
        if abs(ms - 1000 / plan.fps) > 1e-9:
            record["notes"].append(f"{fmt.upper()} frame delay {ms} ms: the format stores whole "
                                   f"{'1/100 s' if fmt == 'gif' else 'ms'} ({plan.fps:g} fps asks for "
                                   f"{1000 / plan.fps:.4g} ms)")
    if not was_loaded:
        record["events"].append(f"loaded {info.id} in {loaded.load_s:.2f} s")
    return record


class _FrameSaver:
    """Saves each pipeline call's frames as soon as it finishes, so a stop or a failure keeps them."""

    def __init__(self, folder: Path, record: dict, moment: datetime, plan: AnimationPlan, on_frames):
        self.folder, self.record, self.moment, self.plan = folder, record, moment, plan
        self.on_frames = on_frames or (lambda _frames: None)
        self.images: list[Image.Image] = []
        self.paths: list[Path] = []
        self.save_s = 0.0
        self.calls = 0
        self.largest_call = 0

    def add(self, finished: list[tuple[int, Image.Image]]) -> None:
        started = time.perf_counter()
        done = []
        for index, image in finished:
            plan = self.plan.frames[index]
            frame = {"index": index, "seed": plan.seed, "seed_end": plan.seed_end, "t": plan.t,
                     "prompt": plan.prompt, "styled_prompt": plan.styled_prompt, "prompt_end": plan.prompt_end,
                     "styled_prompt_end": plan.styled_prompt_end, "call": self.calls}
            name = frame_name(self.moment, self.plan.base.prompt, index)
            try:
                data = encode_png(image, outputs.frame_png_info(self.record, frame, name))
                path = write_new_file(self.folder, name, data)
            except OSError as exc:
                raise GenerationError(f"could not save frames to {self.folder}: {exc.strerror or exc}") from exc
            frame.update(path=path.name, sha256=sha256_bytes(data))
            self.record["frames"].append(frame)
            self.record["images"].append({"path": path.name, "sha256": frame["sha256"], "seed": plan.seed,
                                          "index": index})
            self.images.append(image)
            self.paths.append(path)
            done.append((frame, image))
        self.calls += 1
        self.largest_call = max(self.largest_call, len(finished))
        self.save_s += time.perf_counter() - started
        self.on_frames(done)


def _write_grid_and_animations(folder: Path, record: dict, moment: datetime, plan: AnimationPlan,
                               result: AnimationResult) -> None:
    """The frame grid and the GIF/WebP of the finished frames (all of them, unless the job was stopped)."""
    frames = record["frames"]
    grid = outputs.frame_grid(result.frames, frames, len(plan.frames))
    data = encode_png(grid)
    path = write_new_file(folder, outputs.grid_name(moment, plan.base.prompt), data)
    record["grid"] = {"path": path.name, "sha256": sha256_bytes(data), "size": list(grid.size)}
    result.grid, result.grid_path = grid, path
    order = animation_order(len(frames), plan.ping_pong)
    for fmt, duration in outputs.frame_durations(plan.fps).items():
        data = outputs.encode_animation(result.frames, order, fmt, duration)
        path = write_new_file(folder, outputs.animation_name(moment, plan.base.prompt, fmt), data)
        record["animations"].append({"format": fmt, "path": path.name, "sha256": sha256_bytes(data),
                                     "frames": outputs.count_frames(data), "duration_ms": duration,
                                     "loop": outputs.LOOP_FOREVER})
        result.animation_paths[fmt] = path


def _finish(folder: Path, record: dict, saved: _FrameSaver, load_s: float, generate_s: float | None,
            t0: float) -> None:
    if saved.largest_call:
        record["chunk_size"] = saved.largest_call  # frames per pipeline call (each frame's "call" says which)
    record.update(finished_at=now_iso(), timings={"load_s": load_s, "generate_s": generate_s,
                                                  "save_s": saved.save_s, "total_s": time.perf_counter() - t0})
    append_record(folder / JOBS_LOG, record)
    events.write_event(folder, *events.job_block(record))
    if record.get("grid") or record.get("animations"):
        files = [record["grid"]["path"]] if record.get("grid") else []
        events.write_event(folder, f"ANIMATION {record['job_id']}: " + ", ".join(
            files + [item["path"] for item in record["animations"]]))
