"""Engine settings panel: presets' engine profile, out-of-memory auto-tuning, and the backend (local or ComfyUI)."""

from __future__ import annotations

import ipywidgets as w

from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import InputError, one_line
from sdxl_nb.jobs.queue import JobQueue
from sdxl_nb.ui.widgets import Panel, button, column, set_status


class EngineSettings(Panel):
    """Choices apply to the jobs that follow (the queue applies them between jobs)."""

    def __init__(self, queue: JobQueue, *, auto_tune: bool = True):
        presets = load_presets()
        profiles = presets.engine_profiles
        self.queue = queue
        self.profile = w.Dropdown(options=[(f"{p.name}: {p.description}", p.name) for p in profiles.values()],
                                  value=presets.defaults.engine_profile, description="engine")
        self.auto_tune = w.Checkbox(value=auto_tune, description="on out of memory: retry lighter (auto-tune)",
                                    indent=False)
        self.backend = w.ToggleButtons(options=["local", "ComfyUI"], value="local", description="backend")
        self.comfy_url = w.Text(placeholder="http://127.0.0.1:8188", description="server")
        self.comfy_checkpoint = w.Text(placeholder="sd_xl_base_1.0.safetensors", description="checkpoint")
        self.apply = button("Apply", self.apply_settings, "")
        self.status = w.HTML()
        self.widget = column([w.HBox([self.profile, self.auto_tune]),
                              w.HBox([self.backend, self.comfy_url, self.comfy_checkpoint]), self.apply, self.status])
        self.apply_settings()  # the lab's defaults (auto-tune on) hold from the first job

    def apply_settings(self) -> None:
        from sdxl_nb.jobs.pipeline import engine_options

        try:
            options = engine_options(self.profile.value)
            backend = None
            if self.backend.value == "ComfyUI":
                from sdxl_nb.backends.comfy.backend import ComfyBackend

                backend = ComfyBackend(self.comfy_url.value.strip() or None,
                                       checkpoint=self.comfy_checkpoint.value.strip() or None)
        except InputError as exc:
            set_status(self.status, one_line(exc), "error")
            return
        self.queue.configure(options=options, auto_tune=self.auto_tune.value, backend=backend,
                             local=backend is None)
        where = "ComfyUI at " + backend.client.server if backend else "this machine"
        set_status(self.status, f"next jobs: engine {self.profile.value}, auto-tune "
                                f"{'on' if self.auto_tune.value else 'off'}, on {where}", "idle")
