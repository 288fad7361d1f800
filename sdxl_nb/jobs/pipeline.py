"""The Python API: one job = validate, load, run, save PNGs, append one jobs.log record."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.config.registry import default_model_id, find_model, model_presets
from sdxl_nb.errors import GenerationError, InputError, ModelUnavailableError, one_line
from sdxl_nb.record import events
from sdxl_nb.record.job_record import base_record, check_extra, new_job_id, now_iso, png_info
from sdxl_nb.record.joblog import JOBS_LOG, append_record
from sdxl_nb.record.naming import image_name
from sdxl_nb.record.recovery import JobMarker, recover
from sdxl_nb.record.secrets import mask, mask_data
from sdxl_nb.record.store import check_output_dir, encode_png, sha256_bytes, write_new_file
from sdxl_nb.request.preflight import Preflight, check_request, memory_check, memory_summary, preflight
from sdxl_nb.request.resolve import GenerationRequest, ResolvedRequest, resolve

__all__ = ["JobResult", "Preflight", "generate", "preflight", "prepare"]

DEFAULT_OUTPUT_DIR = "output_images"


def default_output_dir() -> Path:
    return Path(settings.output_dir() or DEFAULT_OUTPUT_DIR)


@dataclass
class JobResult:
    record: dict
    images: list = field(default_factory=list)  # PIL images, in batch order
    paths: list[Path] = field(default_factory=list)
    mirror_error: str | None = None  # set when the S3 mirror failed (the job itself is saved locally)

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def seeds(self) -> list[int]:
        return [image["seed"] for image in self.record["images"]]


def engine_options(profile: str | None = None, presets: Presets | None = None, **options):
    """EngineOptions from a presets profile (default: presets' default profile) with keyword overrides."""
    from dataclasses import asdict

    from sdxl_nb.config.options import options_from_dict

    presets = presets or load_presets()
    name = profile or presets.defaults.engine_profile
    if name not in presets.engine_profiles:
        raise InputError(f"unknown engine profile {name!r}; accepted: {', '.join(presets.engine_profiles)}")
    return options_from_dict({**asdict(presets.engine_profiles[name].options), **options})


def configure_engine(profile: str | None = None, **options) -> list[str]:
    """Set the kernel engine's options (a presets profile and/or keywords such as fuse_qkv=True); returns events."""
    from sdxl_nb.backends.local import get_engine

    return get_engine().configure(engine_options(profile, **options))


def prepare(request: GenerationRequest, presets: Presets | None = None) -> ResolvedRequest:
    """Validate and resolve a request (no torch, nothing written): what would run, exactly."""
    presets = presets or load_presets()
    if request.model is None:
        request = replace(request, model=default_model_id(presets))
    return resolve(request, presets, model_presets(presets))


def load_for_job(info, engine, folder: Path, on_stage: Callable[[str], None] | None = None):
    """(engine, loaded model, whether it was already loaded): the kernel's engine unless one is given;
    a fresh load is written to the folder's events log."""
    if engine is None:
        from sdxl_nb.backends.local import get_engine

        engine = get_engine()
    was_loaded = info.id in engine.loaded
    loaded = engine.load(info, on_stage=on_stage)
    if not was_loaded:
        events.write_event(folder, f"MODEL LOADED {info.id} (revision {loaded.revision}) in {loaded.load_s:.2f} s "
                                   f"on {engine.device} as {loaded.dtype_name}")
    return engine, loaded, was_loaded


def generate(request: GenerationRequest | None = None, *, out_dir: str | os.PathLike | None = None,
             engine=None, on_progress: Callable[[dict], None] | None = None,
             should_stop: Callable[[], bool] | None = None, on_stage: Callable[[str], None] | None = None,
             chunk_size: int | None = None, presets: Presets | None = None, auto_tune: bool | None = None,
             on_warning: Callable[[str], None] | None = None, extra: dict | None = None, mirror=None,
             on_preview: Callable | None = None, **fields) -> JobResult:
    """Generate images for a request (or keyword fields of one) and record the job.

    Bad input raises InputError before anything is loaded or written. Warnings (quality lint, prompt
    longer than CLIP reads, memory risk) go to `on_warning` before the run and into the record. A run-time
    failure is recorded (status "failed", with the images finished before it) and raised as
    GenerationError, whose `result` holds that JobResult; so are images the NaN guard could not save.
    A stop keeps finished images and records status "interrupted". `auto_tune` (default: the engine's
    setting) retries lighter settings on out of memory. Leftovers of a killed process in the folder are
    cleaned up (or recorded) first. `extra` is merged into the record under its own keys (a sweep
    cell, a batch scenario, a backend, process placement). `mirror` (an S3Mirror or an s3:// URL;
    default: from SDXL_NB_S3_URL) copies the images and the record to an S3-compatible bucket.
    `on_preview(image, progress)` receives throttled step previews (a cheap RGB approximation of the latents).
    """
    request = request or GenerationRequest(**fields)
    presets = presets or load_presets()
    resolved = prepare(request, presets)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or not 1 <= chunk_size <= resolved.batch):
        raise InputError(f"chunk_size {chunk_size!r} is out of range; accepted: 1 to the batch ({resolved.batch})")
    extra = check_extra(extra)
    folder = check_output_dir(out_dir or default_output_dir())
    mirror = _mirror(mirror)
    info = find_model(resolved.model.id, presets)
    # A remote engine (ComfyUI) runs its own copy of the model: the local cache does not matter.
    if not info.available and (engine is None or getattr(engine, "uses_local_models", True)):
        raise ModelUnavailableError(info.reason)
    started_at, t0 = now_iso(), time.perf_counter()
    engine, loaded, was_loaded = load_for_job(info, engine, folder, on_stage)
    load_s = 0.0 if was_loaded else loaded.load_s
    model = {"id": info.id, "revision": loaded.revision, "source": getattr(loaded, "source", info.source),
             "dtype": loaded.dtype_name, "vae": loaded.vae}
    record = base_record(resolved, job_id=new_job_id(), started_at=started_at, model=model,
                         device=engine.device_record(), env=engine.environment())
    record.update(extra)
    # Batched and one-by-one runs can differ in the last bit; exact re-runs use the same chunking.
    record["chunk_size"] = chunk_size or resolved.batch
    advice = None
    if hasattr(engine, "memory_facts"):  # a remote server's memory is not ours to check
        advice = memory_check(resolved, engine.memory_facts(loaded), images_at_once=record["chunk_size"],
                              device_name=record["device"]["name"], folder=folder)
    record["memory_check"] = memory_summary(advice) if advice else None
    warnings = list(loaded.warnings) + check_request(resolved, info, engine=engine)
    record["warnings"] = [mask(w) for w in warnings + ([advice.message] if advice and advice.risky else [])]
    for warning in record["warnings"]:
        if on_warning:
            on_warning(warning)
    if not was_loaded:
        record["events"].append(f"loaded {info.id} in {loaded.load_s:.2f} s")
        record["events"] += loaded.events

    recover(folder, before=f"job {record['job_id']}")  # what a killed process left here
    marker = JobMarker.create(folder, record)
    recorded = False
    try:
        output, failure = None, None
        try:
            preview = {"on_preview": on_preview} if on_preview else {}  # engines without previews keep working
            output = engine.run(resolved, loaded, on_progress=on_progress, should_stop=should_stop,
                                chunk_size=chunk_size, auto_tune=auto_tune, **preview)
        except BaseException as exc:  # recorded below, then raised again
            failure, output = exc, getattr(exc, "partial_output", None)
        if output is not None:
            _merge_output(record, output)
        record.update(mask_data(record))  # before anything is written: PNG chunks, jobs.log
        save_started = time.perf_counter()
        try:
            images, paths = _save(folder, record, resolved, output.images if output else [], started_at)
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            message = mask(f"could not save images to {folder}: {reason}; no image of this job was kept")
            record.update(status="failed", error=message, finished_at=now_iso(),
                          timings=_timings(load_s, output, None, t0))
            if not _finish(folder, record, required=False):
                message += " (the job could not be recorded either)"
            recorded = True  # as far as it can be: the marker must not turn it into an "interrupted" job
            raise GenerationError(message) from exc
        status, error = _outcome(output, failure)
        record.update(status=status, error=error, finished_at=now_iso(),
                      timings=_timings(load_s, output, time.perf_counter() - save_started, t0))
        _finish(folder, record)
        recorded = True
    finally:
        marker.close(remove=recorded)
    result = JobResult(record=record, images=images, paths=paths, mirror_error=_mirror_job(folder, record, mirror))
    if isinstance(failure, KeyboardInterrupt):
        raise failure
    if error:
        if isinstance(failure, GenerationError):  # keep its type (e.g. ComfyRejected) for callers that tell them apart
            failure.result = result
            raise failure
        exc = GenerationError(error)
        exc.result = result
        raise exc from failure
    return result


def _merge_output(record: dict, output) -> None:
    record.update(scheduler=output.scheduler, peak_memory_bytes=output.peak_memory_bytes)
    record["events"] += output.events
    record["warnings"] += output.warnings
    if output.adjustments:
        record["auto_tune"] = output.adjustments
        record["chunk_size"] = output.chunk_size


def _outcome(output, failure: BaseException | None) -> tuple[str, str | None]:
    """(status, error) of a run that may have failed, been stopped, or lost images to the NaN guard."""
    if isinstance(failure, KeyboardInterrupt):
        return "interrupted", "interrupted (KeyboardInterrupt) before the job finished"
    if failure is not None:
        return "failed", mask(one_line(failure))
    if output.dropped:
        seeds = ", ".join(str(d["seed"]) for d in output.dropped)
        return "failed", (f"{len(output.dropped)} image(s) came out NaN or black even with the VAE in float32 and "
                          f"were not saved (seeds {seeds}); see warnings")
    # A partial failure (one replica of several out of memory) keeps the other images and names what failed.
    if getattr(output, "error", None):
        return "failed", output.error
    return output.status, None


def _timings(load_s: float, output, save_s: float | None, t0: float) -> dict:
    return {"load_s": load_s, "generate_s": output.generate_s if output else None, "save_s": save_s,
            "total_s": time.perf_counter() - t0}


def _save(folder: Path, record: dict, resolved: ResolvedRequest, outputs: list, started_at: str):
    """Write every image (temp file + link); on any failure remove the ones already written, then raise."""
    moment = datetime.fromisoformat(started_at)
    images, paths, entries = [], [], []
    try:
        for index, seed, image in outputs:
            name = image_name(moment, mask(resolved.prompt), seed, index)  # a key typed into a prompt stays out
            data = encode_png(image, png_info(record, index, seed, name))
            path = write_new_file(folder, name, data)
            paths.append(path)
            images.append(image)
            entries.append({"path": path.name, "sha256": sha256_bytes(data), "seed": seed, "index": index})
    except BaseException:
        # Nothing half-written: the images of a job that cannot be saved whole are removed.
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    record["images"] = entries
    return images, paths


def _finish(folder: Path, record: dict, *, required: bool = True) -> bool:
    """Append the record and its events block; with required=False a failing append (disk full) is skipped."""
    try:
        append_record(folder / JOBS_LOG, record)
        events.write_event(folder, *events.job_block(record))
    except OSError:
        if required:
            raise
        return False
    return True


def _mirror(mirror):
    """The S3 mirror for this job: the one given (object or URL), else SDXL_NB_S3_URL's; False: none."""
    if mirror is False or (mirror is None and not settings.s3_url()):
        return None
    from sdxl_nb.cloud.mirror import S3Mirror, mirror_from_env

    if mirror is None:
        return mirror_from_env()
    return S3Mirror(mirror) if isinstance(mirror, str) else mirror


def _mirror_job(folder: Path, record: dict, mirror) -> str | None:
    """Copy a recorded job to the S3 mirror; the local record is the source of truth. Returns the mirror's error."""
    if mirror is None:
        return None
    from sdxl_nb.cloud.mirror import MirrorError

    try:
        mirror.mirror_job(folder, record)
    except MirrorError as exc:
        events.write_event(folder, f"S3 MIRROR FAILED for job {record['job_id']}: {exc}",
                           "the job is saved locally; `sdxl-nb mirror` copies what is missing later")
        return str(exc)
    return None
