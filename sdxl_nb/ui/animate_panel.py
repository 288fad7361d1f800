"""The Animate panel: prompt(s), style, size, frames, seeds, mode, variation, fps; frame grid and animation inline."""

from __future__ import annotations

import os
import threading

import ipywidgets as widgets

from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import GenerationError, InputError, one_line
from sdxl_nb.jobs.animate import MODES, SCHEDULES, AnimationRequest, animate, prepare_animation
from sdxl_nb.jobs.animate.outputs import frame_grid
from sdxl_nb.jobs.animate.plan import DEFAULT_VARIATION
from sdxl_nb.record.store import encode_png

MODEL_DEFAULT = "model default"
_WIDE = widgets.Layout(width="100%")


def _optional_int(text: str, name: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name} must be a whole number (or empty for random), got {text!r}") from None


def _optional_float(text: str, name: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{name} must be a number (or empty for the default), got {text!r}") from None


class AnimatePanel:
    """Widgets plus one background run at a time; every action is a library call."""

    def __init__(self, out_dir: str | os.PathLike | None = None, engine=None, presets=None):
        self.out_dir, self.engine = out_dir, engine
        presets = presets or load_presets()
        self.presets = presets
        self.prompt = widgets.Textarea(description="prompt", placeholder="a lighthouse on a cliff at dusk",
                                       layout=_WIDE)
        self.prompt_end = widgets.Text(description="prompt end", placeholder="prompt-travel: where the prompt goes",
                                       layout=_WIDE)
        self.mode = widgets.ToggleButtons(options=list(MODES), value="seed-walk", description="mode")
        self.style = widgets.Dropdown(options=list(presets.styles), value=presets.defaults.style, description="style")
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
        self.run_button = widgets.Button(description="Animate", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=8, description="frames")
        self.status = widgets.HTML(value="")
        self.grid_view = widgets.Image(format="png")
        self.animation_view = widgets.Image(format="gif")
        self.result = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.run_button.on_click(lambda _button: self.start())
        self.stop_button.on_click(lambda _button: self._stop.set())
        self.mode.observe(lambda _change: self._show_mode_fields(), names="value")
        self.end_fields = widgets.HBox([self.seed_end, self.schedule])
        self.walk_fields = widgets.HBox([self.variation])
        self.widget = widgets.VBox([
            self.prompt, self.mode, self.prompt_end,
            widgets.HBox([self.style, self.size, self.steps]),
            widgets.HBox([self.frames, self.seed, self.fps, self.ping_pong]),
            self.walk_fields, self.end_fields,
            widgets.HBox([self.init_image, self.strength, self.frames_per_call]),
            widgets.HBox([self.run_button, self.stop_button, self.progress]), self.status,
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
            seed=_optional_int(self.seed.value, "seed"),
            seed_end=None if walk else _optional_int(self.seed_end.value, "seed end"),
            prompt_end=None if walk or not self.prompt_end.value else self.prompt_end.value,
            variation=self.variation.value if walk else None, schedule="linear" if walk else self.schedule.value,
            fps=self.fps.value, ping_pong=self.ping_pong.value, style=self.style.value, resolution=size,
            steps=self.steps.value or None, init_image=self.init_image.value.strip() or None,
            strength=_optional_float(self.strength.value, "strength"), batch_size=self.frames_per_call.value or None)

    def start(self) -> None:
        """Validate now (one line on bad input), then animate in a background thread."""
        if self.thread is not None and self.thread.is_alive():
            return
        try:
            request = self.request()
            plan = prepare_animation(request, self.presets)
        except InputError as exc:
            self.status.value = f"<b>error:</b> {_escape(str(exc))}"
            return
        self._stop.clear()
        self.progress.max, self.progress.value = len(plan.frames), 0
        self.grid_view.value = self.animation_view.value = b""
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"{len(plan.frames)} frames, seed {plan.frames[0].seed}: starting"
        self.thread = threading.Thread(target=self._work, args=(request,), daemon=True)
        self.thread.start()

    def _work(self, request: AnimationRequest) -> None:
        finished_frames, finished_images = [], []

        def on_progress(p: dict) -> None:
            self.status.value = (f"frame {p['images_done'] + 1}-{p['images_done'] + p['images_in_chunk']} of "
                                 f"{p['batch']}: step {p['step']}/{p['total']}")

        def on_frames(done) -> None:
            for frame, image in done:
                finished_frames.append(frame)
                finished_images.append(image)
            self.progress.value = len(finished_frames)
            self.grid_view.value = encode_png(frame_grid(finished_images, finished_frames, self.progress.max))

        try:
            self.result = animate(request, out_dir=self.out_dir, engine=self.engine, on_progress=on_progress,
                                  should_stop=self._stop.is_set, on_frames=on_frames, presets=self.presets)
            self._show(self.result)
        except (InputError, GenerationError) as exc:
            self.status.value = f"<b>error:</b> {_escape(one_line(exc))}"
        except Exception as exc:  # the panel must never die silently in a thread
            self.status.value = f"<b>failed:</b> {type(exc).__name__}: {_escape(one_line(exc))}"
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True

    def _show(self, result) -> None:
        record = result.record
        if result.grid_path:
            self.grid_view.value = result.grid_path.read_bytes()
        if result.gif_path:
            self.animation_view.value = result.gif_path.read_bytes()
        kept = f"{len(record['frames'])} of {record['batch']} frames"
        note = "stopped; finished frames kept" if result.status == "interrupted" else result.status
        self.status.value = (f"{note}: {kept}, job {record['job_id'][:8]}"
                             + (f", {result.gif_path.name}" if result.gif_path else ""))


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)


def animate_panel(out_dir: str | os.PathLike | None = None, engine=None, presets=None) -> widgets.Widget:
    """The Animate panel as one widget (display it in a notebook cell)."""
    panel = AnimatePanel(out_dir=out_dir, engine=engine, presets=presets)
    panel.widget.panel = panel  # reachable from the displayed widget, e.g. for scripted runs
    return panel.widget
