"""Engine settings panel: presets' engine profile, out-of-memory auto-tuning, and the backend (local or ComfyUI)."""

from __future__ import annotations

import html

import ipywidgets as w

from sdxl_nb import settings
from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import InputError, one_line
from sdxl_nb.jobs.queue import JobQueue
from sdxl_nb.ui.widgets import Panel, button, column, set_status, show

COMFY_EXAMPLE = "http://127.0.0.1:8188"


class EngineSettings(Panel):
    """Choices apply to the jobs that follow (the queue applies them between jobs)."""

    def __init__(self, queue: JobQueue, *, auto_tune: bool = True):
        presets = load_presets()
        self.profiles = presets.engine_profiles
        self.queue = queue
        # Short names in the list (a long label would be cut off); the chosen profile's description below it.
        self.profile = w.Dropdown(options=list(self.profiles), value=presets.defaults.engine_profile,
                                  description="Engine", layout=w.Layout(width="auto"))
        self.profile_info = w.HTML()
        self.auto_tune = w.Checkbox(value=auto_tune, description="out of memory: retry with lighter settings",
                                    indent=False, layout=w.Layout(width="auto"))
        self.backend = w.ToggleButtons(options=["local", "ComfyUI"], value="local", description="Backend")
        self.comfy_url = w.Text(placeholder=COMFY_EXAMPLE, description="Server", value=settings.comfy_url() or "")
        self.comfy_checkpoint = w.Text(placeholder="sd_xl_base_1.0.safetensors", description="Checkpoint")
        self.comfy_refiner_checkpoint = w.Text(placeholder="(refiner repo name).safetensors", description="Refiner")
        self.comfy_fields = w.HBox([self.comfy_url, self.comfy_checkpoint, self.comfy_refiner_checkpoint])
        self.apply = button("Apply", self.apply_settings, "")
        self.status = w.HTML()
        for widget, name in ((self.profile, "engine-profile"), (self.comfy_fields, "comfy-fields"),
                             (self.backend, "backend"), (self.status, "engine-status")):
            widget.add_class(f"sdxl-{name}")
        self.profile.observe(lambda _c: self._show_profile(), "value")
        self.backend.observe(lambda _c: self._show_backend(), "value")
        self._show_profile()
        self._show_backend()
        self.widget = column([w.HBox([self.profile, self.auto_tune]), self.profile_info,
                              w.HBox([self.backend, self.comfy_fields]), self.apply, self.status])
        self.apply_settings()  # the lab's defaults (auto-tune on) hold from the first job

    def _show_profile(self) -> None:
        description = self.profiles[self.profile.value].description
        self.profile_info.value = f"<small>{html.escape(description)}</small>"

    def _show_backend(self) -> None:
        show(self.comfy_fields, self.backend.value == "ComfyUI")  # the server boxes mean nothing for "local"

    def apply_settings(self) -> None:
        from sdxl_nb.config.engine_profiles import engine_options

        try:
            options = engine_options(self.profile.value)
            backend = None
            if self.backend.value == "ComfyUI":
                from sdxl_nb.backends.comfy.backend import ComfyBackend

                url = self.comfy_url.value.strip()
                if not url:
                    raise InputError(f"ComfyUI needs its server's address: type it in the Server box "
                                     f"(e.g. {COMFY_EXAMPLE})")
                backend = ComfyBackend(url, checkpoint=self.comfy_checkpoint.value.strip() or None,
                                       refiner_checkpoint=self.comfy_refiner_checkpoint.value.strip() or None)
            self.queue.configure(options=options, auto_tune=self.auto_tune.value, backend=backend,
                                 local=backend is None)
        except InputError as exc:  # the earlier settings stay for the next jobs
            set_status(self.status, one_line(exc), "error")
            return
        where = "ComfyUI at " + backend.client.server if backend else "this machine"
        set_status(self.status, f"next jobs: engine {self.profile.value}, retry lighter on out of memory "
                                f"{'on' if self.auto_tune.value else 'off'}, on {where}", "idle")
