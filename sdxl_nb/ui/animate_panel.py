"""The Animate panel: the shared request form plus mode, frames, end seed or prompt, fps, init image; beside it the
queued job's progress, GIF, frames grid and frames."""

from __future__ import annotations

import os
from pathlib import Path

import ipywidgets as widgets

from sdxl_nb.errors import InputError, one_line
from sdxl_nb.jobs.animate import MODES, SCHEDULES, AnimationRequest
from sdxl_nb.jobs.animate.outputs import frame_caption, frame_grid
from sdxl_nb.jobs.animate.plan import DEFAULT_VARIATION
from sdxl_nb.jobs.pipeline import default_output_dir
from sdxl_nb.jobs.queue import JobQueue, get_queue
from sdxl_nb.request import form
from sdxl_nb.ui.gallery import GalleryItem, linked_gallery
from sdxl_nb.ui.image_view import clear_image, css, image_box, show_image, show_pil
from sdxl_nb.ui.own_jobs import OwnJobs
from sdxl_nb.ui.request_form import RequestForm
from sdxl_nb.ui.thumbnails import Thumbnails, upload_bytes
from sdxl_nb.ui.uploads import image_upload, upload_value
from sdxl_nb.ui.widgets import Panel, button, optional_number, set_status, show
from sdxl_nb.ui.workspace import workspace

_MODE_HELP = {"seed-walk": "each frame: the next seed, with a few motion words added to the prompt",
              "slerp": "the noise travels from the seed to the end seed; the prompt stays",
              "prompt-travel": "the prompt's meaning travels to the end prompt; the seed stays"}


class AnimatePanel(Panel):
    """Queues animations on the kernel's job queue (in turn with every other job, on the backend chosen in the
    engine settings) and shows its own jobs: progress, frames as they are saved, then the grid and the GIF."""

    def __init__(self, queue: JobQueue | None = None, out_dir: str | os.PathLike | None = None, model_panel=None,
                 actions=None):
        self.queue = queue or get_queue()
        self.out_dir = Path(out_dir) if out_dir else None  # None: the queue's folder
        self.form = RequestForm(model_panel.model_id if model_panel else None, refiner=False)
        if model_panel is not None:
            self.form.follow(model_panel)
        # Each widget has its own Layout: hiding one never hides another.
        # Each end belongs to one mode, shown and sent only in it: an end typed in one mode never rides along
        # unseen into the other.
        self.prompt_end = widgets.Text(description="Prompt end", placeholder="where the prompt travels to",
                                       layout=widgets.Layout(width="100%"))
        self.mode = widgets.ToggleButtons(options=list(MODES), value="seed-walk", description="Mode")
        self.mode.add_class("sdxl-animate-mode")
        self.mode_help = widgets.HTML()
        self.frames = widgets.IntText(value=8, description="Frames", layout=widgets.Layout(width="160px"))
        self.seed_end = widgets.Text(value="", description="Seed end", placeholder="where the noise travels to")
        self.variation = widgets.FloatSlider(value=DEFAULT_VARIATION, min=0, max=1, step=0.05, description="Variation",
                                             tooltip="seed walk: how many motion words each frame gets")
        self.schedule = widgets.Dropdown(options=list(SCHEDULES), value="linear", description="Schedule")
        self.fps = widgets.FloatText(value=8.0, description="FPS", layout=widgets.Layout(width="160px"))
        self.frames_per_call = widgets.IntText(value=0, description="Per call", layout=widgets.Layout(width="160px"),
                                               tooltip="frames per pipeline call; 0: as many as fit in memory")
        self.ping_pong = widgets.Checkbox(value=False, description="ping-pong loop", indent=False,
                                          layout=widgets.Layout(width="auto"))
        # An init image makes every frame img2img from it, uploaded and previewed as in the Generate tab.
        self.init_upload = image_upload("Init image")
        self.init_thumb = Thumbnails("init image", "sdxl-thumbs-init").follow(self.init_upload)
        self.remove_init = button("", self._remove_init, "", "remove the init image (frames from noise again)",
                                  icon="times", layout=widgets.Layout(width="auto", flex="0 0 auto"))
        self.remove_init.add_class("sdxl-remove-init")
        # Shown and sent only with an init image (it is img2img's denoising strength).
        self.strength = widgets.Text(value="", description="Strength", placeholder="img2img, default 0.75")
        self.init_upload.observe(lambda _change: self._show_init_fields(), "value")
        self._show_init_fields()
        self.run_button = button("Animate", self.submit, "primary", "queue this animation", icon="play")
        self.run_button.add_class("sdxl-animate")
        self.status = widgets.HTML()  # one red line for bad input or a failed job; otherwise what was just done
        self.status.add_class("sdxl-animate-status")
        self.own = OwnJobs(self.queue, self, self.status, on_event=self._on_own_event, on_finished=self._finished,
                           stop_tooltip="stop between steps; the frames of finished calls are kept")
        self.stop_button, self.progress, self.progress_text = self.own.stop_button, self.own.bar, self.own.text
        self.grid_view = image_box("sdxl-animate-grid")
        self.animation_view = image_box("sdxl-animate-gif")
        self.frames_gallery = linked_gallery("frames", self.form, actions)
        self.result = None  # the last finished job's AnimationResult
        self.mode.observe(lambda _change: self._show_mode_fields(), names="value")
        self.end_fields = widgets.HBox([self.seed_end, self.schedule])
        self.walk_fields = widgets.HBox([self.variation])
        self.form.build([
            self.mode, self.mode_help, self.prompt_end, self.walk_fields, self.end_fields,
            widgets.HBox([self.frames, self.fps, self.frames_per_call, self.ping_pong]),
            widgets.HBox([self.init_upload, self.init_thumb.widget, self.remove_init, self.strength],
                         layout=widgets.Layout(align_items="center")),
        ])
        self.widget = workspace([self.form.widget], [
            css(), widgets.HBox([self.run_button, self.stop_button]), self.status,
            widgets.HBox([self.progress, self.progress_text]),
            widgets.HBox([self.animation_view, self.grid_view], layout=widgets.Layout(align_items="flex-start",
                                                                                       flex_flow="row wrap")),
            self.frames_gallery.widget,
        ])
        self.widget.add_class("sdxl-animate-panel")
        self._show_mode_fields()

    def _show_mode_fields(self) -> None:
        mode = self.mode.value
        show(self.walk_fields, mode == "seed-walk")
        show(self.end_fields, mode != "seed-walk")
        show(self.prompt_end, mode == "prompt-travel")
        show(self.seed_end, mode == "slerp")
        self.mode_help.value = f"<small>{_MODE_HELP.get(mode, '')}</small>"

    def _show_init_fields(self) -> None:
        picked = bool(self.init_upload.value)
        show(self.remove_init, picked)
        show(self.strength, picked)

    def _remove_init(self) -> None:
        self.init_upload.value = ()

    def load(self, fields: dict) -> list[str]:
        """Fill the form from request fields (a reused image); returns what was not loaded, one line each."""
        skipped = self.form.load(fields)
        init = fields.get("init_image")
        if init and Path(init).is_file():  # PNG Info has put it in this output folder's inputs/ (png_inputs)
            self.init_upload.value = upload_value(init)
            if fields.get("strength") is not None:
                self.strength.value = f"{fields['strength']:g}"
        for key, what in (("controlnets", "ControlNet units"), ("ip_adapter", "IP-Adapter")):
            if fields.get(key):  # animations are not guided by them
                skipped.append(f"its {what} left out: the Animate tab has none (use the Generate or Sweep tab)")
        return skipped

    def request(self) -> tuple[AnimationRequest, list[str]]:
        """The request the widgets describe (fields that do not apply to the mode are left out) and the
        adjustments the form made. An uploaded init image is kept under the output folder's inputs/."""
        mode = self.mode.value
        walk = mode == "seed-walk"
        fields, adjustments = self.form.fields()
        init = upload_bytes(self.init_upload)
        folder = self.out_dir or self.queue.out_dir or default_output_dir()
        request = AnimationRequest(
            **fields, mode=mode, frames=self.frames.value,
            seed_end=optional_number(self.seed_end.value, "seed end") if mode == "slerp" else None,
            prompt_end=(self.prompt_end.value or None) if mode == "prompt-travel" else None,
            variation=self.variation.value if walk else None, schedule="linear" if walk else self.schedule.value,
            fps=self.fps.value, ping_pong=self.ping_pong.value,
            init_image=str(form.save_upload(init[0], folder, "init image")) if init else None,
            strength=optional_number(self.strength.value, "strength", float, "the default") if init else None,
            batch_size=self.frames_per_call.value or None)
        return request, adjustments

    def submit(self):
        """Queue the animation; bad input (or a mode the chosen backend cannot run) is one red line and queues
        nothing. Returns the job or None."""
        try:
            with form.uploads_for_one_request():  # a refused animation keeps none of its uploads
                request, adjustments = self.request()
                job = self.queue.submit_animation(request, out_dir=self.out_dir, owner=self,
                                                  on_frames=self._frame_sheet(request.frames))
        except InputError as exc:
            set_status(self.status, one_line(exc), "error")
            return None
        self.own.queued(job, adjustments + self.form.warnings())
        return job

    def _frame_sheet(self, total: int):
        """A job's on_frames: its contact sheet so far, shown as each pipeline call's frames are saved."""
        frames, images = [], []

        def on_frames(done) -> None:
            for frame, image in done:
                frames.append(frame)
                images.append(image)
            show_pil(self.grid_view, frame_grid(images, frames, total), fit=True)

        return on_frames

    def _on_own_event(self, event: dict) -> None:
        if event["type"] == "started":
            clear_image(self.grid_view)
            clear_image(self.animation_view)
            self.frames_gallery.clear()

    def _finished(self, job) -> None:
        result = self.result = job.result
        if result.grid_path:
            show_image(self.grid_view, result.grid_path.read_bytes(), fit=True)
        if result.gif_path:
            show_image(self.animation_view, result.gif_path.read_bytes(), fit=True)
        record = result.record
        frames = sorted(record["frames"], key=lambda frame: frame["index"])
        # Each caption is the grid's (what the frame used: its seed, the end seed it slerps to, its t), on one line.
        self.frames_gallery.show([GalleryItem(path, " · ".join(frame_caption(frame, record["batch"]).splitlines()),
                                              frame["seed"]) for frame, path in zip(frames, result.paths, strict=True)])
        done = "done" if result.status == "ok" else "stopped; finished frames kept"
        set_status(self.status, f"job #{job.id} {done}: {len(record['frames'])} of {record['batch']} frames"
                                + (f", {result.gif_path.name}" if result.gif_path else ""), "ok")


def animate_panel(out_dir: str | os.PathLike | None = None, queue: JobQueue | None = None) -> widgets.Widget:
    """The Animate panel as one widget (display it in a notebook cell)."""
    panel = AnimatePanel(queue, out_dir)
    panel.widget.panel = panel  # reachable from the displayed widget, e.g. for scripted runs
    return panel.widget
