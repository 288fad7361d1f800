"""The Sweep panel: a base request and one or two axes (field + values); one job per cell, the labelled grid inline."""

from __future__ import annotations

import html
import os
import threading

import ipywidgets as widgets

from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import GenerationError, InputError, one_line
from sdxl_nb.jobs.sweep import SWEEPABLE, parse_axis, plan_sweep, run_sweep
from sdxl_nb.record.store import encode_png
from sdxl_nb.request.resolve import GenerationRequest

NO_AXIS = "(none)"
MODEL_DEFAULT = "model default"
_WIDE = widgets.Layout(width="100%")


class SweepPanel:
    """Widgets plus one background sweep at a time; every action is a library call."""

    def __init__(self, out_dir: str | os.PathLike | None = None, engine=None, presets=None):
        self.out_dir, self.engine = out_dir, engine
        presets = presets or load_presets()
        self.presets = presets
        self.prompt = widgets.Textarea(description="prompt", layout=_WIDE)
        self.style = widgets.Dropdown(options=list(presets.styles), value=presets.defaults.style, description="style")
        self.size = widgets.Dropdown(options=[MODEL_DEFAULT, *presets.resolutions], value=MODEL_DEFAULT,
                                     description="size")
        self.steps = widgets.IntText(value=0, description="steps", tooltip="0: the style's or model's default")
        self.seed = widgets.Text(value="", description="seed", placeholder="random (one for every cell)")
        self.x_field = widgets.Dropdown(options=list(SWEEPABLE), value="cfg", description="X field")
        self.x_values = widgets.Text(value="3, 5, 7", description="X values", placeholder="V1, V2, ... or JSON list")
        self.y_field = widgets.Dropdown(options=[NO_AXIS, *SWEEPABLE], value=NO_AXIS, description="Y field")
        self.y_values = widgets.Text(value="", description="Y values")
        self.run_button = widgets.Button(description="Sweep", button_style="primary", icon="th")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="cells")
        self.status = widgets.HTML(value="")
        self.grid_view = widgets.Image(format="png")
        self.result = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.run_button.on_click(lambda _button: self.start())
        self.stop_button.on_click(lambda _button: self._stop.set())
        self.widget = widgets.VBox([
            self.prompt, widgets.HBox([self.style, self.size, self.steps, self.seed]),
            widgets.HBox([self.x_field, self.x_values]), widgets.HBox([self.y_field, self.y_values]),
            widgets.HBox([self.run_button, self.stop_button, self.progress]), self.status, self.grid_view,
        ])

    def axes(self):
        x = parse_axis(f"{self.x_field.value}={self.x_values.value}")
        y = None if self.y_field.value == NO_AXIS else parse_axis(f"{self.y_field.value}={self.y_values.value}")
        return x, y

    def base_request(self) -> GenerationRequest:
        seed_text = self.seed.value.strip()
        try:
            seed = int(seed_text) if seed_text else None
        except ValueError:
            raise InputError(f"seed must be a whole number (or empty for random), got {seed_text!r}") from None
        return GenerationRequest(prompt=self.prompt.value, style=self.style.value, steps=self.steps.value or None,
                                 resolution=None if self.size.value == MODEL_DEFAULT else self.size.value, seed=seed)

    def start(self) -> None:
        """Validate every cell now (one line on bad input), then run the sweep in a background thread."""
        if self.thread is not None and self.thread.is_alive():
            return
        try:
            x, y = self.axes()
            base = self.base_request()
            cells = len(plan_sweep(base, x, y, self.presets).cells)
        except InputError as exc:
            self.status.value = f"<b>error:</b> {_escape(str(exc))}"
            return
        self._stop.clear()
        self.progress.max, self.progress.value = cells, 0
        self.grid_view.value = b""
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"{cells} cells: starting"
        self.thread = threading.Thread(target=self._work, args=(base, x, y), daemon=True)
        self.thread.start()

    def _work(self, base, x, y) -> None:
        def on_progress(p: dict) -> None:
            self.status.value = f"cell {p['cell']}/{p['cells']}: step {p['step']}/{p['total']}"

        def on_cell(_cell, _job) -> None:
            self.progress.value += 1

        try:
            self.result = run_sweep(base, x=x, y=y, out_dir=self.out_dir, engine=self.engine, on_progress=on_progress,
                                    should_stop=self._stop.is_set, on_cell=on_cell, presets=self.presets)
            result = self.result
            if result.grid is not None:
                self.grid_view.value = encode_png(result.grid)
            errors = "; ".join(f"{x.label(xi)}: {error}" for (xi, _yi), error in result.errors.items())
            self.status.value = _escape(
                f"{result.status}: {len(result.results)} of {len(result.plan.cells)} cells, sweep {result.plan.id}"
                + (f", grid {result.grid_path.name}" if result.grid_path else "") + (f"; failed: {errors}" if errors else ""))
        except (InputError, GenerationError) as exc:
            self.status.value = f"<b>error:</b> {_escape(one_line(exc))}"
        except Exception as exc:  # the panel must never die silently in a thread
            self.status.value = f"<b>failed:</b> {type(exc).__name__}: {_escape(str(exc)[:200])}"
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def sweep_panel(out_dir: str | os.PathLike | None = None, engine=None, presets=None) -> widgets.Widget:
    """The Sweep panel as one widget (display it in a notebook cell)."""
    panel = SweepPanel(out_dir=out_dir, engine=engine, presets=presets)
    panel.widget.panel = panel
    return panel.widget
