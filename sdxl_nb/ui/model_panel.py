"""Model panel: pick a registry model, load it through the job queue, see load stage, ETA and outcome."""

from __future__ import annotations

import html
import time
from pathlib import Path

import ipywidgets as w

from sdxl_nb import settings
from sdxl_nb.backends.load_events import on_model_loaded
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import default_model_id, list_models
from sdxl_nb.errors import InputError, one_line
from sdxl_nb.jobs.pipeline import default_output_dir
from sdxl_nb.jobs.queue import JobQueue, get_queue
from sdxl_nb.record.history import engine_start_eta, load_eta
from sdxl_nb.ui.widgets import Panel, button, column, set_status


class ModelPanel(Panel):
    """Nothing is loaded when it appears; it shows what the kernel's engine already holds."""

    def __init__(self, queue: JobQueue | None = None, out_dir: str | Path | None = None):
        self.queue = queue or get_queue()
        self.out_dir = Path(out_dir) if out_dir else default_output_dir()
        presets = load_presets()
        # Refiners only finish another model's job: they are picked in the request form, not here.
        self.models = {info.id: info for info in list_models(presets) if not info.preset.refiner}
        # The description is the line under the dropdown (with the model hash); the option names the model only.
        options = [(f"{m.id}{' [inpainting]' if m.preset.inpainting else ''}" if m.available else
                    f"✗ {m.id} ({'unusable' if m.source == 'checkpoint' else 'not available'})", m.id)
                   for m in self.models.values()]
        loaded = self.queue.loaded_models()
        chosen = loaded[-1] if loaded else default_model_id(presets)
        self.dropdown = w.Dropdown(options=options, value=chosen if chosen in self.models else options[0][1],
                                   description="Model", layout=w.Layout(width="100%"))
        self.info = w.HTML()
        self.load_button = button("Load", self.load, "info", "load the model now (Generate also loads it)")
        self.status = w.HTML()
        self.status.add_class("sdxl-model-status")
        self._load_started: float | None = None
        self._eta: float | None = None
        self._reported_job: int | None = None  # the job whose load outcome the status line shows
        self.dropdown.observe(lambda _c: self._show_choice(), "value")
        self._show_choice()
        self._show_state()
        self.queue.subscribe(self._on_event)
        on_model_loaded(self._on_model_loaded)  # loads outside the queue too (the notebook's API cells)
        self.widget = column([w.HBox([self.dropdown, self.load_button]), self.info, self.status])

    @property
    def model_id(self) -> str:
        return self.dropdown.value

    # ---- actions ----
    def load(self) -> None:
        # Said at once: the worker's first word may be seconds away (the engine is made first).
        self._load_started = None
        self._show_loading(self.model_id, "starting", 0.0)
        try:
            self.queue.submit_load(self.model_id, out_dir=self.out_dir)
        except InputError as exc:
            self._load_started = None
            set_status(self.status, one_line(exc), "error")
            self.load_button.disabled = not self.models[self.model_id].available

    # ---- views ----
    def _show_choice(self) -> None:
        info = self.models[self.model_id]
        if info.available:
            model_hash = f" · Model hash {info.model_hash}" if info.model_hash else ""
            self.info.value = f"<small>{html.escape(info.description)}{model_hash}</small>"
            self.load_button.disabled = self.queue.loading() is not None
        else:
            self.info.value = ""
            set_status(self.status, f"{info.id} is not available: {info.reason}", "error")
            self.load_button.disabled = True
            return
        if self.queue.loading() is None:
            self._show_state()

    def _show_state(self) -> None:
        """The engine's state now: loading, loaded (by this or any other panel), or nothing yet."""
        job = self.queue.loading()
        loaded = self.queue.loaded_models()
        if job is not None:
            self._show_loading(job.model, job.stage or "starting", time.monotonic() - (job.started_at or 0))
        elif loaded:
            names = ", ".join(loaded)
            set_status(self.status, f"loaded: {names}", "ok")
        elif self.models[self.model_id].available:
            set_status(self.status, "no model loaded yet: Load loads it now; Generate loads it when needed", "idle")

    def _show_loading(self, model: str, stage: str, elapsed: float) -> None:
        if self._load_started is None:
            self._load_started = time.monotonic() - elapsed
            self._eta = self._expected_load(model)
        elapsed = time.monotonic() - self._load_started
        if self._eta is None:
            eta = "no earlier load of it recorded"
        else:
            eta = f"ETA {max(0.0, self._eta[0] - elapsed):.1f} s ({self._eta[1]})"
        set_status(self.status, f"loading {model}: {stage} · {elapsed:.1f} s · {eta}", "busy")
        self.load_button.disabled = True

    def _expected_load(self, model: str) -> tuple[float, str] | None:
        """(seconds, how they add up) a load of `model` should take from now: its earlier loads, plus the engine's
        start (torch and diffusers imported) while no engine is made yet; None when nothing was recorded."""
        device = settings.device()
        load = load_eta(self.out_dir, model, device)
        started = self.queue.engine_started()
        start = None if started else engine_start_eta(self.out_dir, device)
        if load is None and start is None:
            return None
        parts = [f"earlier loads took ~{load:.1f} s" if load is not None else "no earlier load of it recorded"]
        if not started:
            parts.append(f"plus ~{start:.1f} s to start the engine" if start is not None
                         else "plus the engine's start: torch import, not timed yet")
        return (load or 0.0) + (start or 0.0), ", ".join(parts)

    def _on_model_loaded(self, _model_id: str) -> None:
        if self.queue.loading() is None:  # a queue load reports itself through the queue's events
            self._show_state()

    def _on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "stage":
            self._show_loading(event["model"], event["stage"], event.get("elapsed", 0.0))
        elif kind == "loaded":
            self._load_started = None
            self._reported_job = event["job_id"]
            if event.get("already_loaded"):
                set_status(self.status, f"{event['model']} is already loaded", "ok")
            else:
                start = event.get("engine_start_s") or 0.0
                total = event["load_s"] + start
                started = f" ({start:.1f} s of it starting the engine: torch and diffusers imported)" if start else ""
                set_status(self.status, f"loaded {event['model']} in {total:.1f} s{started}", "ok")
            self.load_button.disabled = not self.models[self.model_id].available
        elif kind == "load_failed":
            self._load_started = None
            self._reported_job = event["job_id"]
            set_status(self.status, f"could not load {event['model']}: {event['error']}", "error")
            self.load_button.disabled = not self.models[self.model_id].available
        elif kind == "load_skipped":
            self._load_started = None
            self._show_state()
            self.load_button.disabled = not self.models[self.model_id].available
        elif kind == "finished" and event["kind"] == "load" and event["status"] == "failed":
            # A load refused before it started (e.g. the model vanished from the cache).
            self._load_started = None
            set_status(self.status, f"could not load {event['model']}: {event['error']}", "error")
            self.load_button.disabled = not self.models[self.model_id].available
        elif kind == "finished" and event["job_id"] != self._reported_job and self.queue.loading() is None:
            # Models may also have been loaded by API calls outside the queue: show the engine as it is.
            self._show_state()
