"""Generate panel: the form beside Generate/Stop, memory pre-check, progress with step preview, queue line, results."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import ipywidgets as w

from sdxl_nb.errors import InputError, one_line
from sdxl_nb.jobs.pipeline import default_output_dir
from sdxl_nb.jobs.queue import JobQueue, get_queue
from sdxl_nb.request import form
from sdxl_nb.request.prepare import prepare
from sdxl_nb.ui.generate_form import GenerateForm
from sdxl_nb.ui.image_view import THUMB_BOX, clear_image, image_box, show_pil
from sdxl_nb.ui.model_panel import ModelPanel
from sdxl_nb.ui.own_jobs import OwnJobs
from sdxl_nb.ui.results import ResultsView
from sdxl_nb.ui.widgets import Panel, button, set_status, show
from sdxl_nb.ui.workspace import workspace

NO_PREVIEWS = "<small style='color:#6c757d'>no step previews on this backend</small>"


class GeneratePanel(Panel):
    """Submits requests to the kernel's job queue and shows its own jobs; the kernel stays free meanwhile."""

    def __init__(self, queue: JobQueue | None = None, model_panel: ModelPanel | None = None,
                 out_dir: str | Path | None = None, show_model_panel: bool | None = None, actions=None):
        self.queue = queue or get_queue()
        self.out_dir = Path(out_dir) if out_dir else default_output_dir()
        self.model_panel = model_panel or ModelPanel(self.queue, self.out_dir)
        self.form = GenerateForm(self.model_panel.model_id)
        self.form.follow(self.model_panel)
        self.check_memory = w.Checkbox(value=True, description="memory pre-check before running", indent=False)
        self.generate = button("Generate", self.submit, "primary", "queue this request")
        self.generate.add_class("sdxl-generate")
        self.message = w.HTML()  # one red line for bad input; otherwise what was just done
        self.message.add_class("sdxl-message")
        self.own = OwnJobs(self.queue, self, self.message, on_event=self._on_own_event, on_finished=self._finished)
        self.stop, self.progress, self.progress_text = self.own.stop_button, self.own.bar, self.own.text
        if self.form.presets.user_error:  # a broken user presets file: said here, the built-in presets still work
            set_status(self.message, self.form.presets.user_error, "error")
        self.memory = w.HTML()
        self.run_anyway = button("Run anyway", self._run_anyway, "warning")
        self.use_suggestion = button("Use the suggestion", self._use_suggestion, "")
        self.preview = image_box("sdxl-preview")
        self.preview_note = w.HTML()  # said instead of the preview where the backend makes none
        self.queue_line = w.HTML()
        # A gallery's Reuse / img2img go to the lab (which switches to this tab), or here when alone.
        actions = actions or self
        self.results = ResultsView(on_seed=self.form.use_seed, on_reuse=actions.reuse, on_init=actions.use_init,
                                   on_upscale=self.upscale)
        self._held = None  # the job the memory pre-check held (for Run anyway / Use the suggestion)
        self._show_memory_actions(False)
        self.queue.subscribe(self._on_event)
        self._sync_buttons()
        self._show_queue()
        # Alone, the panel shows its own model picker; in the lab the model panel sits above the tabs.
        include_model = show_model_panel if show_model_panel is not None else model_panel is None
        parts = [self.model_panel.widget] if include_model else []
        # Generate heads the results column, as in A1111: the button, its progress and the images stay in view
        # together however long the form is.
        self.widget = workspace(parts + [self.form.widget], [
            w.HBox([self.generate, self.stop]), self.check_memory, self.message,
            self.memory, w.HBox([self.run_anyway, self.use_suggestion]),
            w.HBox([self.progress, self.progress_text]), self.preview, self.preview_note, self.queue_line,
            self.results.widget,
        ])
        self.widget.add_class("sdxl-generate-panel")

    # ---- actions ----
    def submit(self, check_memory: bool | None = None):
        """Queue the form's request; bad input shows one red line and starts nothing. Returns the job or None."""
        self._show_memory_actions(False)
        self.memory.value = ""
        try:
            with form.uploads_for_one_request():  # a refused request keeps none of its uploads
                request, adjustments = self.form.request(self.out_dir)
                job = self.queue.submit(request, out_dir=self.out_dir, chunk_size=self.form.chunk_size(),
                                        check_memory=self.check_memory.value if check_memory is None else check_memory,
                                        owner=self, notes=tuple(adjustments))
        except InputError as exc:
            set_status(self.message, one_line(exc), "error")
            return None
        self.own.queued(job, self.form.warnings())
        return job

    def reuse(self, fields: dict) -> list[str]:
        """Fill the form (and choose the model) from an image's request fields; returns what was not loaded."""
        skipped = []
        model = fields.get("model")
        if model and model != self.model_panel.model_id:
            info = self.model_panel.models.get(model)
            if info is not None and info.available:
                self.model_panel.dropdown.value = model  # first: a new model resets the form's defaults
            else:
                skipped.append(f"model {model} is not available here (kept {self.model_panel.model_id})")
        skipped += self.form.load(fields)
        self.form.batch.value = 1
        mode, init = fields.get("mode", "txt2img"), fields.get("init_image")
        if mode in ("img2img", "inpaint") and init and Path(init).is_file():
            self.form.use_init_image(init, mode)
            if fields.get("strength") is not None:
                self.form.strength.value = fields["strength"]
            mask = fields.get("mask_image")
            if mode == "inpaint" and mask and Path(mask).is_file():
                self.form.use_mask_file(mask)
        else:
            if mode in ("img2img", "inpaint"):
                skipped.append(f"its init image {init} is not there any more: txt2img instead")
            self.form.mode.value = "txt2img"
        skipped += self.form.ip_adapter.use(fields)
        skipped += self.form.controlnets.use(fields)
        return skipped

    def upscale(self, path: Path) -> str:
        """Queue a 2x upscale of a saved image as its own job (a gallery action); its result shows here."""
        from sdxl_nb.config.upscalers import find_upscaler

        name = self.form.hires.upscaler.value
        upscaler = name if name and find_upscaler(name).kind != "latent" else "Lanczos"
        job = self.queue.submit_upscale(path, scale=2.0, upscaler=upscaler, out_dir=self.out_dir, owner=self)
        return f"upscale 2x with {upscaler} queued as job #{job.id}"

    def use_init(self, path: Path, mode: str) -> None:
        self.form.use_init_image(path, mode)

    def stop_running(self) -> None:
        self.own.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queue is idle (scripts and tests; the panel itself never blocks)."""
        return self.queue.wait_idle(timeout)

    def _run_anyway(self) -> None:
        job = self._held
        if job is not None:
            self._resubmit(job.request, job.chunk_size)

    def _use_suggestion(self) -> None:
        job = self._held
        if job is None or not job.memory or not job.memory.suggestion:
            return
        width, height, at_once = job.memory.suggestion
        request = job.request
        resolved = prepare(request)
        if (width, height) != (resolved.width, resolved.height):
            request = replace(request, width=width, height=height, resolution=None)
            self.form.resolution.value = "custom"
            self.form.width.value, self.form.height.value = width, height
        chunk = at_once if at_once < request.batch else None
        if chunk in [value for _label, value in self.form.at_once.options]:
            self.form.at_once.value = chunk
        self._resubmit(request, chunk)

    def _resubmit(self, request, chunk_size: int | None) -> None:
        self._show_memory_actions(False)
        try:
            job = self.queue.submit(request, out_dir=self.out_dir, chunk_size=chunk_size, check_memory=False,
                                    owner=self, notes=self._held.notes)
        except InputError as exc:
            set_status(self.message, one_line(exc), "error")
            return
        self.own.queued(job)

    # ---- views ----
    def _show_memory_actions(self, visible: bool) -> None:
        show(self.run_anyway, visible)
        job = self._held
        show(self.use_suggestion, visible and job is not None and bool(job.memory and job.memory.suggestion))

    def _sync_buttons(self) -> None:
        # Generate waits only for a load in progress: it is enabled again the moment loading ends.
        self.generate.disabled = self.queue.loading() is not None

    def _show_queue(self) -> None:
        waiting = len(self.queue.pending())
        running = self.queue.running()
        if running is None and not waiting:
            self.queue_line.value = "<small>queue: idle</small>"
        else:
            now = f"running #{running.id}" if running else "nothing running"
            self.queue_line.value = f"<small>queue: {now}, {waiting} waiting (cancel in the Queue tab)</small>"

    def _on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind in ("stage", "loaded", "load_failed", "load_skipped", "started", "finished", "cancelled"):
            self._sync_buttons()
        if kind in ("queued", "started", "finished", "cancelled"):
            self._show_queue()

    def _on_own_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "started":
            self.preview_note.value = ""
            self.results.clear()  # the previous job's images never sit under this job's preview
        elif kind == "memory":
            set_status(self.memory, event["message"], "warning" if event["risky"] else "idle")
        elif kind == "progress" and not self.preview_note.value and not self.queue.backend_capabilities().previews:
            self.preview_note.value = NO_PREVIEWS  # once per job: the backend declares it makes none
        elif kind == "preview":
            show_pil(self.preview, event["image"], box=THUMB_BOX)
        elif kind == "finished":
            clear_image(self.preview)

    def _finished(self, job) -> None:
        if job.status == "held":
            self._held = job
            set_status(self.message, f"job #{job.id} not started: the memory pre-check found it risky", "warning")
            self._show_memory_actions(True)
            return
        result = job.result
        self.results.show_job(result, list(job.notes))
        if job.request is not None and job.request.seed is None and result.record["seeds"]:
            self.form.seed.value = result.record["seed"]  # the drawn seed, ready to reuse
        done = "done" if job.status == "ok" else "stopped"
        set_status(self.message, f"job #{job.id} {done}: {len(result.images)} image(s) saved", "ok")
