"""THE job, for every kind of job: validate, open the folder, load, run, mask secrets, save every file, record, mirror.

`run_job` narrates the steps in order, the way diffusers narrates a pipeline's `__call__`. What differs
between kinds (a batch of images, an animation's frames) is a `JobKind` (sdxl_nb.jobs.kinds); which
machine runs it is a backend (sdxl_nb.backends.base); the rest is here, once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.backends.base import RunHooks, RunOutput, check_plan
from sdxl_nb.config.engine_profiles import engine_options
from sdxl_nb.config.presets import Presets, check_scheduler_installed, load_presets
from sdxl_nb.config.refiners import refiner_info, refiner_record
from sdxl_nb.config.registry import checkpoint_record, find_model
from sdxl_nb.errors import GenerationError, InputError, ModelUnavailableError, Terminated, one_line
from sdxl_nb.jobs.files import JobFiles
from sdxl_nb.jobs.kinds import JobKind
from sdxl_nb.jobs.signals import sigterm_as_interrupt
from sdxl_nb.record import events
from sdxl_nb.record.job_record import base_record, check_extra, new_job_id, now_iso
from sdxl_nb.record.joblog import JOBS_LOG, append_record
from sdxl_nb.record.recovery import JobMarker, recover
from sdxl_nb.record.secrets import mask, mask_data
from sdxl_nb.record.store import check_output_dir, open_output_dir, remove_new_folders
from sdxl_nb.request.preflight import Preflight, memory_check, memory_summary, preflight
from sdxl_nb.request.prepare import keep_inputs, prepare

__all__ = ["JobResult", "Preflight", "configure_engine", "default_output_dir", "engine_options", "preflight",
           "prepare", "run_job"]

SavedFn = Callable[[list[tuple[dict, object]]], None]  # each saved chunk: (its record entries by field, PIL image)


DEFAULT_OUTPUT_DIR = "output_images"


def default_output_dir() -> Path:
    """Where jobs write when no folder is given: SDXL_NB_OUTPUT, else ./output_images."""
    return Path(settings.output_dir() or DEFAULT_OUTPUT_DIR)


@dataclass
class JobResult:
    record: dict
    images: list = field(default_factory=list)  # PIL images, in index order
    paths: list[Path] = field(default_factory=list)  # their files, in the same order
    files: dict[str, Path] = field(default_factory=dict)  # the kind's other files by name ("grid", "gif", ...)
    extras: dict = field(default_factory=dict)  # the kind's other outputs ("grid": its PIL image)
    mirror_error: str | None = None  # set when the S3 mirror failed (the job itself is saved locally)

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def seeds(self) -> list[int]:
        return [image["seed"] for image in self.record["images"]]

    @property
    def error(self) -> str | None:
        return self.record["error"]


def configure_engine(profile: str | None = None, **options) -> list[str]:
    """Set the kernel engine's options (a presets profile and/or keywords such as fuse_qkv=True); returns events."""
    from sdxl_nb.backends.local import get_engine

    return get_engine().configure(engine_options(profile, **options))


def kernel_backend():
    """The kernel's backend: one per kernel, shared by every panel, API call and CLI command (imports torch)."""
    from sdxl_nb.backends.local import get_engine

    return get_engine()


def load_for_job(info, backend, folder: Path, on_stage: Callable[[str], None] | None = None):
    """(loaded model, whether it was already loaded); a fresh load is written to the folder's events log."""
    was_loaded = info.id in backend.loaded
    loaded = backend.load(info, on_stage=on_stage)
    if not was_loaded:
        events.try_write_event(folder, f"MODEL LOADED {info.id} (revision {loaded.revision}) in {loaded.load_s:.2f} s "
                                       f"on {backend.device} as {loaded.dtype_name}")
    return loaded, was_loaded


def run_job(kind: JobKind, *, out_dir: str | os.PathLike | None = None, backend=None,
            on_progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
            on_preview: Callable | None = None, on_stage: Callable[[str], None] | None = None,
            on_warning: Callable[[str], None] | None = None, on_saved: SavedFn | None = None,
            extra: dict | None = None, mirror=None, chunk_size: int | None = None, auto_tune: bool | None = None,
            presets: Presets | None = None) -> JobResult:
    """Run one job of any kind on a backend (default: the kernel's) and record it in the folder's jobs.log.

    Bad input raises InputError before anything is loaded or written. A stop keeps the finished chunks and
    records status "interrupted"; a run-time failure keeps them too, records status "failed" and raises
    GenerationError (its `result` holds the JobResult). `on_saved` sees each chunk's files as they are saved.
    """
    presets = presets or load_presets()
    r = kind.resolved

    # 1. Check inputs: everything knowable before any work. Nothing is loaded or written before this passes.
    extra = check_extra(extra)
    folder = check_output_dir(out_dir or default_output_dir())
    mirror = _mirror(mirror)
    info = find_model(r.model.id, presets)
    backend = backend or kernel_backend()
    if backend.capabilities.local_models and not info.available:
        raise ModelUnavailableError(info.reason)  # a remote server runs its own copy: the local cache is not asked
    refiner_info(r, presets, local=backend.capabilities.local_models)  # an unknown or missing refiner: refused here
    plan = kind.run_plan(chunk_size, auto_tune)
    check_plan(backend, plan)
    if (plan.request.loras or plan.request.embeddings or plan.request.ip_adapter or plan.request.controlnets
            or plan.request.refiner or (plan.request.hires and plan.request.hires.upscaler.kind == "model")):
        backend.check_networks(info, plan.request)  # files that do not fit the model, or a server lacks: refused here
    if backend.capabilities.scheduler_config:  # a remote server maps the preset to its own sampler
        check_scheduler_installed(r.scheduler)
    new_folders = open_output_dir(folder)  # last: a folder is created only for a job that passed every other check

    # 2. Open the folder: what a killed process left here is cleaned up, or recorded as its interrupted job.
    started_at, t0 = now_iso(), time.perf_counter()
    job_id = new_job_id()
    try:
        recover(folder, before=f"job {job_id}")
    except OSError as exc:  # the folder filled up since step 1's probe
        raise GenerationError(f"could not open the output folder {folder}: {_reason(exc)} (while recording what an "
                              "earlier process left there); nothing was run") from None

    # 3. Load the model (once per kernel; a later job finds it loaded). A remote server answers here whether it
    #    has the checkpoint: bad input too, so the folder made for this job goes again. Then, the job accepted, its
    #    input images are kept in the folder's inputs/ and the record names those copies.
    try:
        loaded, was_loaded = load_for_job(info, backend, folder, on_stage)
        kept = keep_inputs(r, folder)
    except InputError:
        remove_new_folders(new_folders)
        raise

    # 4. Start the record. Secrets are masked from here on: no file name, PNG chunk or log line carries one.
    model = {"id": info.id, "revision": loaded.revision, "source": getattr(loaded, "source", info.source),
             "dtype": loaded.dtype_name, "vae": loaded.vae, **checkpoint_record(info)}
    record = base_record(kept, job_id=job_id, started_at=started_at, model=model, device=backend.device_record(),
                         env=backend.environment())
    record["refiner"] = refiner_record(r, presets)
    record.update(extra)
    remote = backend.backend_record(info.id)
    if remote is not None:
        record["backend"] = remote
    record["chunk_size"] = plan.chunk_size
    # How CLIP reads each prompt (chunks, tokens, weights); None where the server tokenizes (ComfyUI).
    record["conditioning"] = backend.describe_prompts(loaded, plan) if backend.capabilities.prompt_weighting else None
    kind.start_record(record)
    advice = None
    if plan.chunk_size is not None and backend.capabilities.memory_facts:  # a remote server's memory is its own
        advice = memory_check(r, backend.memory_facts(loaded), images_at_once=plan.chunk_size,
                              device_name=record["device"]["name"], folder=folder)
    record["memory_check"] = memory_summary(advice) if advice else None
    warnings = list(loaded.warnings) + kind.warnings(backend, loaded, info)
    if presets.user_error:  # the user's styles were not read: said with every job until the file is fixed
        warnings.append(presets.user_error)
    record["warnings"] = warnings + ([advice.message] if advice and advice.risky else [])
    if not was_loaded:
        record["events"] += [f"loaded {info.id} in {loaded.load_s:.2f} s", *loaded.events]
    record.update(mask_data(record))
    for warning in record["warnings"]:
        if on_warning:
            on_warning(warning)

    # 5. Mark the job as running: the marker journals every file before it appears, so a kill loses none.
    try:
        marker = JobMarker.create(folder, record)
    except OSError as exc:  # a full disk: nothing ran, nothing is saved; recorded as failed when the log takes it
        raise _not_started(folder, record, exc, t0) from None
    files = JobFiles(folder, marker, record)
    saver = _ChunkSaver(kind, record, files, marker, datetime.fromisoformat(started_at), on_saved)
    recorded = False
    try:
        # 6. Run on the backend; each finished chunk is saved at once (a failed save stops the run). A job
        #    without images to make (a sweep's grid) has nothing to run.
        output, failure = None, None
        hooks = RunHooks(on_progress=on_progress, on_preview=on_preview, on_images=saver.save,
                         should_stop=lambda: bool(files.error) or bool(should_stop and should_stop()))
        try:
            with sigterm_as_interrupt():
                output = backend.run(plan, loaded, hooks) if plan.images else None
        except BaseException as exc:  # recorded below, then raised again
            failure, output = exc, getattr(exc, "partial_output", None)
        finally:
            saver.drain()  # every image the run finished is on disk (or the save failed) before anything else
        if output is not None:
            _merge_output(record, output)

        # 7. The kind's own files (an animation's grid, GIF and WebP), from the images saved.
        outputs = {}
        if files.error is None:
            try:
                outputs = kind.finish_files(record, saver.images, files, saver.moment)
            except OSError as exc:
                files.error = _save_error(folder, exc)
            except Exception as exc:  # a file that cannot be made (a control map's annotator failed): a failed job
                failure = failure or exc

        # 8. Append the record (then the marker goes). A job that could not save all its files keeps none.
        status, error = _outcome(output, failure, files.error)
        error = mask(error) if error else None
        for role in ("images", "frames"):  # replicas save their chunks as they finish: the record lists by index
            if isinstance(record.get(role), list):
                record[role].sort(key=lambda entry: entry["index"])
        if files.error:
            files.remove_all()
        record.update(status=status, error=error, finished_at=now_iso(),
                      timings={"load_s": 0.0 if was_loaded else loaded.load_s,
                               "generate_s": output.generate_s if output else None,
                               "save_s": files.save_s, "total_s": time.perf_counter() - t0})
        record.update(mask_data(record))
        problem = _append(folder, record)
        if problem and files.paths:
            # Its files are saved and journaled in the marker, which stays: the next start here records the job.
            unrecorded = (f"the job's {len(files.paths)} file(s) were saved in {folder} but jobs.log could not take "
                          f"its record ({problem}); its marker keeps them and the next job in this folder records the job")
            record["error"] = error = f"{error}; {unrecorded}" if error else unrecorded
        else:
            if problem:
                record["error"] = error = ((error or f"could not record the job in {folder}: {problem}")
                                           + " (the job could not be recorded either)")
            recorded = True  # as far as it can be: the marker must not turn it into an "interrupted" job
    finally:
        marker.close(remove=recorded)

    # 9. Mirror the recorded job (the local record stays the source of truth).
    result = JobResult(record=record, images=[saver.images[i] for i in sorted(saver.images)],
                       paths=[folder / image["path"] for image in sorted(record["images"], key=lambda e: e["index"])],
                       files={name: path for name, (path, _value) in outputs.items() if not files.error},
                       extras={name: value for name, (_path, value) in outputs.items() if value is not None},
                       mirror_error=_mirror_job(folder, record, mirror))
    if isinstance(failure, KeyboardInterrupt):
        raise failure
    if error:
        if isinstance(failure, GenerationError) and not files.error:
            failure.result = result  # keeps its type (e.g. ComfyRejected) for callers that tell them apart
            raise failure
        exc = GenerationError(error)
        exc.result = result
        raise exc from failure
    return result


class _ChunkSaver:
    """The backend's `on_images`: hands each finished chunk to one writer thread, so naming, encoding, hashing and
    writing its files overlap the next chunk's denoising. `drain()` returns once every file is durable; the
    record is appended only after it, so the crash journal and recovery see the same order as before."""

    def __init__(self, kind: JobKind, record: dict, files: JobFiles, marker: JobMarker, moment: datetime,
                 on_saved: SavedFn | None):
        self.kind, self.record, self.files, self.marker, self.moment = kind, record, files, marker, moment
        self.on_saved = on_saved
        self.images: dict[int, object] = {}  # index -> PIL image of every saved image
        self.calls = 0
        self.lock = threading.Lock()
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdxl_nb-writer")
        self.pending: list[Future] = []

    def save(self, images: list[tuple[int, int, object]], scheduler: dict) -> None:
        with self.lock:  # replicas finish chunks in several threads; one writer keeps their order
            if not self.files.error:
                self.pending.append(self.writer.submit(self._write, images, scheduler))

    def drain(self) -> None:
        """Wait for every submitted chunk to be written (or to fail: `files.error` then says why)."""
        with self.lock:
            pending = list(self.pending)
        wait(pending)
        self.writer.shutdown(wait=True)

    def _write(self, images: list[tuple[int, int, object]], scheduler: dict) -> None:
        if self.files.error:
            return
        call, self.calls = self.calls, self.calls + 1
        saved = []
        try:
            if call == 0:  # the first chunk knows what ran: every image's metadata names it
                self.record["scheduler"] = mask_data(scheduler)
                self.marker.note({"set": {"scheduler": self.record["scheduler"]}})
            for index, seed, image in images:
                name, data, entries = self.kind.image_file(self.record, index, seed, image, call, self.moment)
                self.files.write(name, data, entries)
                self.images[index] = image
                saved.append((entries, image))
        except OSError as exc:
            self.files.error = _save_error(self.files.folder, exc)
            return
        if self.on_saved and saved:
            try:
                self.on_saved(saved)
            except Exception:  # a broken view must never stop the job's saving
                pass


def _reason(exc: OSError) -> str:
    return exc.strerror if exc.strerror else str(exc)


def _save_error(folder: Path, exc: OSError) -> str:
    return f"could not save images to {folder}: {_reason(exc)}; no image of this job was kept"


def _not_started(folder: Path, record: dict, exc: OSError, t0: float) -> GenerationError:
    """The failure of a job that could not be marked as running: recorded as failed if jobs.log takes it."""
    error = f"could not start the job in {folder}: {_reason(exc)}; nothing was run or saved"
    record.update(status="failed", error=error, finished_at=now_iso(),
                  timings={"load_s": None, "generate_s": None, "save_s": 0.0, "total_s": time.perf_counter() - t0})
    if _append(folder, record):
        record["error"] = error = error + " (the job could not be recorded either)"
    failure = GenerationError(error)
    failure.result = JobResult(record=record)
    return failure


def _merge_output(record: dict, output: RunOutput) -> None:
    record.update(peak_memory_bytes=output.peak_memory_bytes)
    if output.scheduler:
        record["scheduler"] = mask_data(output.scheduler)
    record["events"] += output.events
    record["warnings"] += output.warnings
    if output.calls or output.adjustments:
        record["chunk_size"] = output.chunk_size
    if output.adjustments:
        record["auto_tune"] = output.adjustments


def _outcome(output: RunOutput | None, failure: BaseException | None, save_error: str | None) -> tuple[str, str | None]:
    """(status, error) of a run that may have failed, been stopped, or lost images to the NaN guard or a save."""
    if save_error:
        return "failed", save_error
    if isinstance(failure, KeyboardInterrupt):
        cause = "SIGTERM" if isinstance(failure, Terminated) else "KeyboardInterrupt"
        return "interrupted", f"interrupted ({cause}) before the job finished"
    if failure is not None:
        return "failed", one_line(failure)
    if output is None:
        return "ok", None
    if output.dropped:
        seeds = ", ".join(str(d["seed"]) for d in output.dropped)
        return "failed", (f"{len(output.dropped)} image(s) came out NaN or black even with the VAE in float32 and "
                          f"were not saved (seeds {seeds}); see warnings")
    # A partial failure (one replica of several out of memory) keeps the other images and names what failed.
    if output.error:
        return "failed", output.error
    return output.status, None


def _append(folder: Path, record: dict) -> str | None:
    """Append the record, then its events block; None, or why jobs.log could not take the record (disk full: it is
    left as it was). The events block is the human trail of what jobs.log holds: without it no job is lost."""
    try:
        append_record(folder / JOBS_LOG, record)
    except OSError as exc:
        return _reason(exc)
    events.try_write_event(folder, *events.job_block(record))
    return None


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
        events.try_write_event(folder, f"S3 MIRROR FAILED for job {record['job_id']}: {exc}",
                               "the job is saved locally; `sdxl-nb mirror` copies what is missing later")
        return str(exc)
    return None
