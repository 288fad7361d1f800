"""The Python API: one job = validate, load, run, save PNGs, append one jobs.log record."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sdxl_nb import events
from sdxl_nb.errors import GenerationError
from sdxl_nb.joblog import JOBS_LOG, append_record
from sdxl_nb.naming import image_name
from sdxl_nb.presets import Presets, load_presets
from sdxl_nb.record import base_record, new_job_id, now_iso, png_info
from sdxl_nb.registry import default_model_id, find_model, model_presets
from sdxl_nb.request import GenerationRequest, ResolvedRequest, resolve
from sdxl_nb.store import check_output_dir, encode_png, sha256_bytes, write_new_file

DEFAULT_OUTPUT_DIR = "output_images"


def default_output_dir() -> Path:
    return Path(os.environ.get("SDXL_NB_OUTPUT") or DEFAULT_OUTPUT_DIR)


@dataclass
class JobResult:
    record: dict
    images: list = field(default_factory=list)  # PIL images, in batch order
    paths: list[Path] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def seeds(self) -> list[int]:
        return [image["seed"] for image in self.record["images"]]


def prepare(request: GenerationRequest, presets: Presets | None = None) -> ResolvedRequest:
    """Validate and resolve a request (no torch, nothing written): what would run, exactly."""
    presets = presets or load_presets()
    if request.model is None:
        request = replace(request, model=default_model_id(presets))
    return resolve(request, presets, model_presets(presets))


def generate(request: GenerationRequest | None = None, *, out_dir: str | os.PathLike | None = None,
             engine=None, on_progress: Callable[[dict], None] | None = None,
             should_stop: Callable[[], bool] | None = None, on_stage: Callable[[str], None] | None = None,
             chunk_size: int | None = None, presets: Presets | None = None,
             on_preview: Callable | None = None, **fields) -> JobResult:
    """Generate images for a request (or keyword fields of one) and record the job.

    Bad input raises InputError before anything is loaded or written. A run-time failure is
    recorded (status "failed") and raised as GenerationError. A stop keeps finished images and
    records status "interrupted". `on_preview(image, progress)` receives throttled step previews
    (a cheap RGB approximation of the latents).
    """
    request = request or GenerationRequest(**fields)
    presets = presets or load_presets()
    resolved = prepare(request, presets)
    folder = check_output_dir(out_dir or default_output_dir())
    info = find_model(resolved.model.id, presets)
    if not info.available:
        from sdxl_nb.errors import ModelUnavailableError

        raise ModelUnavailableError(info.reason)
    if engine is None:
        from sdxl_nb.engine import get_engine

        engine = get_engine()

    started_at, t0 = now_iso(), time.perf_counter()
    was_loaded = info.id in engine.loaded
    loaded = engine.load(info, on_stage=on_stage)
    load_s = 0.0 if was_loaded else loaded.load_s
    if not was_loaded:
        events.write_event(folder, f"MODEL LOADED {info.id} (revision {loaded.revision}) in {loaded.load_s:.2f} s "
                                   f"on {engine.device} as {loaded.dtype_name}")
    model = {"id": info.id, "revision": loaded.revision, "source": info.source, "dtype": loaded.dtype_name,
             "vae": loaded.vae}
    record = base_record(resolved, job_id=new_job_id(), started_at=started_at, model=model,
                         device=engine.device_record(), env=engine.environment())
    warnings = list(loaded.warnings)
    warnings += engine.prompt_warnings(loaded, ("prompt", resolved.styled_prompt),
                                       ("negative prompt", resolved.effective_negative_prompt))
    warnings += [note for note in resolved.notes if note.startswith("init image resized")]
    record["warnings"] = warnings
    # Batched and one-by-one runs can differ in the last bit; exact re-runs use the same chunking.
    record["chunk_size"] = chunk_size or resolved.batch
    if not was_loaded:
        record["events"].append(f"loaded {info.id} in {loaded.load_s:.2f} s")

    try:
        preview = {"on_preview": on_preview} if on_preview else {}  # engines without previews keep working
        output = engine.run(resolved, loaded, on_progress=on_progress, should_stop=should_stop, chunk_size=chunk_size,
                            **preview)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        record.update(status="failed", error=message, finished_at=now_iso(),
                      timings={"load_s": load_s, "generate_s": None, "save_s": None,
                               "total_s": time.perf_counter() - t0})
        _finish(folder, record)
        if isinstance(exc, GenerationError):
            raise
        raise GenerationError(message) from exc
    record.update(scheduler=output.scheduler, peak_memory_bytes=output.peak_memory_bytes)
    record["events"] += output.events
    record["warnings"] += output.warnings

    save_started = time.perf_counter()
    moment = _started_moment(started_at)
    images, paths = [], []
    try:
        for index, seed, image in output.images:
            name = image_name(moment, resolved.prompt, seed, index)
            data = encode_png(image, png_info(record, index, seed, name))
            path = write_new_file(folder, name, data)
            paths.append(path)
            images.append(image)
            record["images"].append({"path": path.name, "sha256": sha256_bytes(data), "seed": seed, "index": index})
    except OSError as exc:
        # Nothing half-written: the images of a job that cannot be recorded whole are removed.
        for path in paths:
            path.unlink(missing_ok=True)
        raise GenerationError(f"could not save images to {folder}: {exc.strerror or exc}") from exc
    save_s = time.perf_counter() - save_started
    record.update(status=output.status, finished_at=now_iso(),
                  timings={"load_s": load_s, "generate_s": output.generate_s, "save_s": save_s,
                           "total_s": time.perf_counter() - t0})
    _finish(folder, record)
    return JobResult(record=record, images=images, paths=paths)


def _finish(folder: Path, record: dict) -> None:
    append_record(folder / JOBS_LOG, record)
    events.write_event(folder, *events.job_block(record))


def _started_moment(started_at: str):
    from datetime import datetime

    return datetime.fromisoformat(started_at)
