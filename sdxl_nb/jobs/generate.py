"""A txt2img / img2img / inpaint job: the request resolved, then the one job pipeline with a plain batch."""

from __future__ import annotations

import os
from collections.abc import Callable

from sdxl_nb.backends.base import check_request
from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.errors import InputError
from sdxl_nb.jobs.kinds import ImagesJob
from sdxl_nb.jobs.pipeline import JobResult, run_job
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest


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
    A stop keeps finished images and records status "interrupted". `engine` is the backend (default: the
    kernel's; replicas and ComfyUI servers too). `auto_tune` (default: the engine's setting) retries
    lighter settings on out of memory. `extra` is merged into the record under its own keys (a sweep cell,
    a batch scenario, process placement). `mirror` (an S3Mirror or an s3:// URL; default: from
    SDXL_NB_S3_URL) copies the images and the record to an S3-compatible bucket. `on_preview(image,
    progress)` receives throttled step previews where the backend makes them.
    """
    request = request or GenerationRequest(**fields)
    check_request(engine, request)  # what the backend cannot run is refused before anything is resolved or built
    presets = presets or load_presets()
    resolved = prepare(request, presets)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or not 1 <= chunk_size <= resolved.batch):
        raise InputError(f"chunk_size {chunk_size!r} is out of range; accepted: 1 to the batch ({resolved.batch})")
    return run_job(ImagesJob(resolved), out_dir=out_dir, backend=engine, on_progress=on_progress,
                   should_stop=should_stop, on_preview=on_preview, on_stage=on_stage, on_warning=on_warning,
                   extra=extra, mirror=mirror, chunk_size=chunk_size, auto_tune=auto_tune, presets=presets)
