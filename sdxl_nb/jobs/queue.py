"""The kernel's job queue: one background worker runs every kind of job (loads, generations, animations,
sweeps) one at a time, on the backend chosen in the engine settings.

Requests are validated when submitted (bad input raises InputError and queues nothing). The worker
calls the same library functions as the CLI (`generate`, `animate`, `run_sweep`, a backend's `load`),
so the kernel stays free while a job runs. Listeners receive plain dicts: {"type", "job_id", "kind", ...}.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import find_model
from sdxl_nb.errors import one_line
from sdxl_nb.jobs.queue_submit import QueueSubmissions
from sdxl_nb.jobs.queued import FINAL, QUEUED, RUNNING, Job, describe_progress, memory_line
from sdxl_nb.record import events
from sdxl_nb.record.history import engine_start_line, load_event_line
from sdxl_nb.request.memory import MemoryAdvice
from sdxl_nb.request.prepare import prepare

__all__ = ["FINAL", "Job", "JobQueue", "describe_progress", "get_queue", "memory_line"]

KEEP_FINISHED = 100  # finished jobs remembered for the queue view
Listener = Callable[[dict], None]


class JobQueue(QueueSubmissions):
    """Jobs in submission order; one worker thread (started on the first submit) runs them one at a time (what
    each kind of job is checked for before it is queued: queue_submit.QueueSubmissions)."""

    def __init__(self, engine=None, out_dir: str | Path | None = None):
        self._engine = engine
        self._local_engine = engine  # the engine to return to when a remote backend is switched off
        self._pending_settings: dict | None = None  # applied by the worker between jobs, never during one
        self.out_dir = out_dir
        self._jobs: list[Job] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self._worker: threading.Thread | None = None
        self._running_on = None  # the backend of the job running now (settings chosen meanwhile wait for the next)

    # ---- engine ----
    @property
    def engine(self):
        """The engine jobs run on; the kernel's shared one unless given (imports torch on first use)."""
        if self._engine is None:
            from sdxl_nb.backends.local import get_engine

            self._engine = self._local_engine = get_engine()
        return self._engine

    def engine_started(self) -> bool:
        """Whether jobs will find an engine made (False: the next one pays for importing torch and diffusers)."""
        return self._engine is not None or _kernel_engine() is not None

    def _local(self):
        """The local engine settings apply to (the kernel's, made now if it was not yet)."""
        if self._local_engine is None:
            from sdxl_nb.backends.local import get_engine

            self._local_engine = get_engine()
        return self._local_engine

    def configure(self, *, options=None, auto_tune: bool | None = None, backend=None, local: bool = False) -> None:
        """Change engine settings for the jobs that follow: EngineOptions, auto-tuning, a remote backend
        (e.g. sdxl_nb.backends.comfy.backend.ComfyBackend) or back to the local engine (`local=True`).

        The worker applies them before its next job, so a running job is never disturbed. Options the local
        engine's device cannot run (fp8 without a float8 GPU) are refused here (InputError), and nothing changes.
        """
        if options is not None and backend is None and options.device_bound:
            local = self._local()
            if local.capabilities.configure:
                local.check_options(options)
        with self._cond:
            pending = self._pending_settings or {}
            pending.update({k: v for k, v in (("options", options), ("auto_tune", auto_tune), ("backend", backend))
                            if v is not None})
            if local:
                pending["backend"] = "local"
            self._pending_settings = pending
            self._cond.notify_all()

    def _apply_settings(self, job: Job) -> None:
        with self._cond:
            settings, self._pending_settings = self._pending_settings, None
        if not settings:
            return
        backend = settings.get("backend")
        if backend == "local":
            self._engine = self._local_engine
        elif backend is not None:
            self._local_engine = self._local_engine or self._engine
            self._engine = backend
        if self._engine is None:
            self._start_engine(job)
        engine = self.engine
        if settings.get("options") is not None and engine.capabilities.configure:
            for line in engine.configure(settings["options"]):
                self._emit(job, "settings", message=line)
        if settings.get("auto_tune") is not None and engine.capabilities.configure:
            engine.auto_tune = settings["auto_tune"]

    def loaded_models(self) -> list[str]:
        """Models in memory now (without importing torch when no engine exists yet)."""
        engine = self._engine if self._engine is not None else _kernel_engine()
        return list(engine.loaded) if engine is not None else []

    def backend_capabilities(self):
        """What the backend declares: the running job's, else the next job's (settings chosen but not applied yet
        included). Before the first job the kernel's local engine is not made yet: its class answers (importing torch).
        """
        backend = self._running_on
        if backend is None:
            backend = self._chosen_backend()
        if backend is None:
            from sdxl_nb.backends.local import Engine

            return Engine.capabilities
        return backend.capabilities

    def _chosen_backend(self):
        """The backend the next job runs on, or None while it is the kernel's local engine, not made yet."""
        with self._cond:
            pending = (self._pending_settings or {}).get("backend")
        if pending is None:
            pending = self._engine
        elif pending == "local":
            pending = self._local_engine
        return pending if pending is not None else _kernel_engine()

    # ---- listeners ----
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event_dict)` for every job event (from the worker thread); returns an unsubscribe."""
        with self._cond:
            self._listeners.append(listener)

        def unsubscribe():
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, job: Job, kind: str, **data) -> None:
        event = {"type": kind, "job_id": job.id, "kind": job.kind, "model": job.model, "status": job.status,
                 "owner": job.owner, **data}
        with self._cond:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken view must never stop the worker
                continue

    def _enqueue(self, job: Job) -> Job:
        with self._cond:
            self._jobs.append(job)
            finished = [j for j in self._jobs if j.done]
            for old in finished[:-KEEP_FINISHED]:
                self._jobs.remove(old)
        self._emit(job, "queued", label=job.label)
        with self._cond:
            job.announced = True
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="sdxl_nb-jobs", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        return job

    # ---- control ----
    def jobs(self) -> list[Job]:
        with self._cond:
            return list(self._jobs)

    def get(self, job_id: int) -> Job | None:
        return next((job for job in self.jobs() if job.id == job_id), None)

    def pending(self) -> list[Job]:
        return [job for job in self.jobs() if job.status == QUEUED]

    def running(self) -> Job | None:
        return next((job for job in self.jobs() if job.status == RUNNING), None)

    def loading(self) -> Job | None:
        """The job loading a model right now (a load job, or a generation loading its model first)."""
        job = self.running()
        return job if job is not None and job.phase == "loading" else None

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued job (False when it already started or ended: stop a running one instead)."""
        with self._cond:
            job = next((j for j in self._jobs if j.id == job_id), None)
            if job is None or job.status != QUEUED:
                return False
            job.status, job.finished_at = "cancelled", time.monotonic()
        self._emit(job, "cancelled")
        job.done_event.set()
        return True

    def stop(self, job_id: int | None = None) -> bool:
        """Ask the running generation (or the given one) to stop between steps; finished images are kept."""
        job = self.running() if job_id is None else self.get(job_id)
        if job is None or job.kind == "load" or job.done:
            return False
        job.stop_event.set()
        if job.status == QUEUED:
            return self.cancel(job.id)
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (True) or the timeout passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # jobs submitted while waiting (e.g. by a listener) are waited for too
            active = [job for job in self.jobs() if not job.done_event.is_set()]
            if not active:
                return True
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not active[0].wait(left):
                return False

    # ---- the worker ----
    def _next(self) -> Job | None:
        return next((job for job in self._jobs if job.status == QUEUED and job.announced), None)

    def _work(self) -> None:
        while True:
            with self._cond:
                while (job := self._next()) is None:
                    self._cond.wait()
                job.status, job.started_at = RUNNING, time.monotonic()
            self._emit(job, "started", label=job.label)
            try:
                self._apply_settings(job)
                if job.kind == "load":
                    self._run_load(job)
                else:
                    self._run_work(job)
            except Exception as exc:  # recorded on the job; the worker carries on with the next one
                job.status, job.error = "failed", one_line(exc)
            finally:
                if job.phase == "loading":  # the job ended before any step: did its load finish?
                    self._end_load(job)
                job.phase, job.finished_at = None, time.monotonic()
                self._emit(job, "finished", error=job.error)  # before waiters wake: views are up to date then
                job.done_event.set()

    def _stage(self, job: Job, stage: str) -> None:
        job.phase, job.stage = "loading", stage
        self._emit(job, "stage", stage=stage, elapsed=time.monotonic() - job.started_at)

    def _loaded(self, job: Job, load_s: float, already: bool) -> None:
        job.phase, job.stage = None, None
        # What the user waited for includes the engine's start when this job made it (load_s is the load alone).
        self._emit(job, "loaded", load_s=load_s, already_loaded=already, engine_start_s=job.engine_start_s)

    def _end_load(self, job: Job) -> None:
        loaded = self._engine.loaded.get(job.model) if self._engine is not None else None
        if loaded is not None:
            self._loaded(job, loaded.load_s, False)
        else:
            job.phase, job.stage = None, None
            self._emit(job, "load_failed", error=job.error or "the model did not load")

    def _engine_for(self, job: Job):
        if self._engine is None:
            self._start_engine(job)
        return self.engine

    def _start_engine(self, job: Job) -> None:
        """Make the kernel's engine for this job: the first job pays for importing torch and diffusers (seconds), so
        it is said as a load stage before it starts, timed on the job, and written to the events log (the load ETA
        adds it while no engine is made)."""
        if job.kind != "upscale":  # an upscale loads no model: it has no load stages to show
            self._stage(job, "starting the engine (importing torch and diffusers)")
        started = time.monotonic()
        engine = self.engine
        job.engine_start_s = time.monotonic() - started
        events.try_write_event(job.out_dir, engine_start_line(job.engine_start_s, str(engine.device)))

    def _run_load(self, job: Job) -> None:
        info = find_model(job.model, load_presets())
        engine = self._engine_for(job)
        if info.id in engine.loaded:
            job.result = {"model": info.id, "load_s": 0.0, "already_loaded": True}
            job.phase = None
        else:
            job.phase = "loading"
            loaded = engine.load(info, on_stage=lambda stage: self._stage(job, stage))
            events.try_write_event(job.out_dir, load_event_line(info.id, loaded.revision, loaded.load_s,
                                                                engine.device, loaded.dtype_name))
            job.result = {"model": info.id, "load_s": loaded.load_s, "already_loaded": False}
        job.status = "ok"
        self._loaded(job, job.result["load_s"], job.result["already_loaded"])

    def _run_work(self, job: Job) -> None:
        needs_load = job.kind != "upscale" and job.model not in self.loaded_models()  # an upscaler loads no model
        engine = self._engine_for(job) if needs_load else self.engine
        if job.check_memory and engine.capabilities.memory_facts:  # a remote server's memory is its own
            job.memory = self._check_memory(job, engine)
            self._emit(job, "memory", message=memory_line(job.memory), risky=job.memory.risky)
            if job.memory.risky:
                job.status = "held"
                if job.phase == "loading":
                    self._end_load(job)
                return

        def on_stage(stage: str) -> None:
            self._stage(job, stage)

        def on_progress(progress: dict) -> None:
            if job.phase == "loading" or (needs_load and job.progress is None):
                self._end_load(job)
            job.phase, job.progress = "generating", progress
            fraction, text = describe_progress(progress)
            self._emit(job, "progress", progress=progress, fraction=fraction, text=text)

        def on_preview(image, progress: dict) -> None:
            self._emit(job, "preview", image=image, progress=progress)

        self._running_on = engine
        try:
            job.result = job.work(engine=engine, on_progress=on_progress, should_stop=job.stop_event.is_set,
                                  on_stage=on_stage, on_preview=on_preview)
        except Exception as exc:  # a failed job is recorded by the pipeline; its result still belongs to the job
            job.result = getattr(exc, "result", None)
            raise
        finally:
            self._running_on = None
        job.status = job.result.status
        if job.status == "failed":  # a sweep with failed cells, a job that lost images: the row says why
            job.error = job.result.error

    def _check_memory(self, job: Job, engine) -> MemoryAdvice:
        """The calibrated memory check (sdxl_nb.request.memory) with the loaded model's real module sizes.

        The model is loaded first: the job needs it anyway, and the estimate then uses real bytes.
        """
        from sdxl_nb.request.preflight import memory_check

        resolved = prepare(job.request)
        loaded = engine.load(find_model(job.model, load_presets()), on_stage=lambda stage: self._stage(job, stage))
        return memory_check(resolved, engine.memory_facts(loaded), images_at_once=job.chunk_size or resolved.batch,
                            device_name=engine.device_record()["name"], folder=job.out_dir)


def _kernel_engine():
    """The kernel's local engine if it was made already (without importing torch when it was not)."""
    import sys

    core = sys.modules.get("sdxl_nb.backends.local.core")
    return getattr(core, "_ENGINE", None)


_QUEUE: JobQueue | None = None
_QUEUE_LOCK = threading.Lock()


def get_queue() -> JobQueue:
    """The kernel's one queue (every panel shares it, as they share the one engine)."""
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None:
            _QUEUE = JobQueue()
        return _QUEUE
