"""The Animate panel: prompt(s), style, size, frames, seeds, mode, variation, fps; queued animate jobs, frames and GIF."""

from __future__ import annotations

import os
from pathlib import Path

import ipywidgets as widgets

from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import InputError, one_line
from sdxl_nb.jobs.animate import MODES, SCHEDULES, AnimationRequest
from sdxl_nb.jobs.animate.outputs import frame_grid
from sdxl_nb.jobs.animate.plan import DEFAULT_VARIATION
from sdxl_nb.jobs.queue import JobQueue, get_queue
from sdxl_nb.ui.own_jobs import OwnJobs
from sdxl_nb.ui.styles import style_dropdown
from sdxl_nb.ui.widgets import Panel, button, optional_number, png_bytes, set_status

MODEL_DEFAULT = "model default"
_WIDE = widgets.Layout(width="100%")


class AnimatePanel(Panel):
    """Queues animations on the kernel's job queue (in turn with every other job, on the backend chosen in the
    engine settings) and shows its own jobs: progress, frames as they are saved, then the grid and the GIF."""

    def __init__(self, queue: JobQueue | None = None, out_dir: str | os.PathLike | None = None):
        self.queue = queue or get_queue()
        self.out_dir = Path(out_dir) if out_dir else None  # None: the queue's folder
        presets = load_presets()
        self.prompt = widgets.Textarea(description="prompt", placeholder="a lighthouse on a cliff at dusk",
                                       layout=_WIDE)
        self.prompt_end = widgets.Text(description="prompt end", placeholder="prompt-travel: where the prompt goes",
                                       layout=_WIDE)
        self.mode = widgets.ToggleButtons(options=list(MODES), value="seed-walk", description="mode")
        self.style = style_dropdown(description="style")
        self.size = widgets.Dropdown(options=[MODEL_DEFAULT, *presets.resolutions], value=MODEL_DEFAULT,
                                     description="size")
        self.steps = widgets.IntText(value=0, description="steps", tooltip="0: the style's or model's default")
        self.frames = widgets.IntText(value=8, description="frames")
        self.seed = widgets.Text(value="", description="seed", placeholder="random")
        self.seed_end = widgets.Text(value="", description="seed end", placeholder="slerp: the end seed")
        self.variation = widgets.FloatSlider(value=DEFAULT_VARIATION, min=0, max=1, step=0.05, description="variation",
                                             tooltip="seed-walk: how many motion phrases each frame gets")
        self.schedule = widgets.Dropdown(options=list(SCHEDULES), value="linear", description="schedule")
        self.fps = widgets.FloatText(value=8.0, description="fps")
        self.frames_per_call = widgets.IntText(value=0, description="per call",
                                               tooltip="frames per pipeline call; 0: as many as fit in memory")
        self.ping_pong = widgets.Checkbox(value=False, description="ping-pong loop")
        self.init_image = widgets.Text(value="", description="init image", placeholder="optional: img2img from a file")
        self.strength = widgets.Text(value="", description="strength", placeholder="img2img, default 0.75")
        self.run_button = button("Animate", self.submit, "primary", "queue this animation", icon="play")
        self.status = widgets.HTML()  # one red line for bad input or a failed job; otherwise what was just done
        self.own = OwnJobs(self.queue, self, self.status, on_event=self._on_own_event, on_finished=self._finished,
                           stop_tooltip="stop between steps; the frames of finished calls are kept")
        self.stop_button, self.progress, self.progress_text = self.own.stop_button, self.own.bar, self.own.text
        self.grid_view = widgets.Image(format="png")
        self.animation_view = widgets.Image(format="gif")
        self.result = None  # the last finished job's AnimationResult
        self.mode.observe(lambda _change: self._show_mode_fields(), names="value")
        self.end_fields = widgets.HBox([self.seed_end, self.schedule])
        self.walk_fields = widgets.HBox([self.variation])
        self.widget = widgets.VBox([
            self.prompt, self.mode, self.prompt_end,
            widgets.HBox([self.style, self.size, self.steps]),
            widgets.HBox([self.frames, self.seed, self.fps, self.ping_pong]),
            self.walk_fields, self.end_fields,
            widgets.HBox([self.init_image, self.strength, self.frames_per_call]),
            widgets.HBox([self.run_button, self.stop_button]), self.status,
            widgets.HBox([self.progress, self.progress_text]),
            widgets.HBox([self.grid_view, self.animation_view]),
        ])
        self._show_mode_fields()

    def _show_mode_fields(self) -> None:
        walk = self.mode.value == "seed-walk"
        self.walk_fields.layout.display = None if walk else "none"
        self.end_fields.layout.display = "none" if walk else None
        self.prompt_end.layout.display = "none" if walk else None

    def request(self) -> AnimationRequest:
        """The request the widgets describe (fields that do not apply to the mode are left out)."""
        walk = self.mode.value == "seed-walk"
        size = None if self.size.value == MODEL_DEFAULT else self.size.value
        return AnimationRequest(
            prompt=self.prompt.value, mode=self.mode.value, frames=self.frames.value,
            seed=optional_number(self.seed.value, "seed"),
            seed_end=None if walk else optional_number(self.seed_end.value, "seed end"),
            prompt_end=None if walk or not self.prompt_end.value else self.prompt_end.value,
            variation=self.variation.value if walk else None, schedule="linear" if walk else self.schedule.value,
            fps=self.fps.value, ping_pong=self.ping_pong.value, style=self.style.value, resolution=size,
            steps=self.steps.value or None, init_image=self.init_image.value.strip() or None,
            strength=optional_number(self.strength.value, "strength", float, "the default"),
            batch_size=self.frames_per_call.value or None)

    def submit(self):
        """Queue the animation; bad input (or a mode the chosen backend cannot run) is one red line and queues
        nothing. Returns the job or None."""
        try:
            request = self.request()
            job = self.queue.submit_animation(request, out_dir=self.out_dir, owner=self,
                                              on_frames=self._frame_sheet(request.frames))
        except InputError as exc:
            set_status(self.status, one_line(exc), "error")
            return None
        self.own.queued(job)
        return job

    def _frame_sheet(self, total: int):
        """A job's on_frames: its contact sheet so far, shown as each pipeline call's frames are saved."""
        frames, images = [], []

        def on_frames(done) -> None:
            for frame, image in done:
                frames.append(frame)
                images.append(image)
            self.grid_view.value = png_bytes(frame_grid(images, frames, total))

        return on_frames

    def _on_own_event(self, event: dict) -> None:
        if event["type"] == "started":
            self.grid_view.value = self.animation_view.value = b""

    def _finished(self, job) -> None:
        result = self.result = job.result
        if result.grid_path:
            self.grid_view.value = result.grid_path.read_bytes()
        if result.gif_path:
            self.animation_view.value = result.gif_path.read_bytes()
        record = result.record
        done = "done" if result.status == "ok" else "stopped; finished frames kept"
        set_status(self.status, f"job #{job.id} {done}: {len(record['frames'])} of {record['batch']} frames"
                                + (f", {result.gif_path.name}" if result.gif_path else ""), "ok")


def animate_panel(out_dir: str | os.PathLike | None = None, queue: JobQueue | None = None) -> widgets.Widget:
    """The Animate panel as one widget (display it in a notebook cell)."""
    panel = AnimatePanel(queue, out_dir)
    panel.widget.panel = panel  # reachable from the displayed widget, e.g. for scripted runs
    return panel.widget
