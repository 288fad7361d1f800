"""The Sweep panel: a base request and one or two axes (field + values), queued as one sweep job; its grid beside."""

from __future__ import annotations

import os
from pathlib import Path

import ipywidgets as widgets

from sdxl_nb.errors import InputError, one_line
from sdxl_nb.jobs.pipeline import default_output_dir
from sdxl_nb.jobs.queue import JobQueue, get_queue
from sdxl_nb.jobs.sweep import SWEEPABLE, parse_axis
from sdxl_nb.record.field_labels import field_options
from sdxl_nb.request import form
from sdxl_nb.request.resolve import GenerationRequest
from sdxl_nb.ui.controlnet_picker import ControlNetPicker
from sdxl_nb.ui.gallery import GalleryItem, linked_gallery
from sdxl_nb.ui.hires_form import HiresFields
from sdxl_nb.ui.image_view import clear_image, css, image_box, show_pil
from sdxl_nb.ui.ip_adapter_picker import IpAdapterPicker
from sdxl_nb.ui.own_jobs import OwnJobs
from sdxl_nb.ui.quick_listings import quick_ip_adapter_listing
from sdxl_nb.ui.request_form import RequestForm
from sdxl_nb.ui.score_controls import ScoreControls
from sdxl_nb.ui.sections import Section
from sdxl_nb.ui.widgets import Panel, button, set_status
from sdxl_nb.ui.workspace import workspace

NO_AXIS = "(none)"
GRID_BOX = 960  # a grid's longest side on screen (narrowed to its column): cells stay legible


class SweepPanel(Panel):
    """Queues sweeps on the kernel's job queue (in turn with every other job, on the backend chosen in the engine
    settings) and shows its own jobs: progress cell by cell, then the labelled grid."""

    def __init__(self, queue: JobQueue | None = None, out_dir: str | os.PathLike | None = None, model_panel=None,
                 actions=None):
        self.queue = queue or get_queue()
        self.out_dir = Path(out_dir) if out_dir else None  # None: the queue's folder
        self.form = RequestForm(model_panel.model_id if model_panel else None)
        if model_panel is not None:
            self.form.follow(model_panel)
        self.x_field = widgets.Dropdown(options=field_options(SWEEPABLE), value="cfg", description="X field")
        self.x_values = widgets.Text(value="3, 5, 7", description="X values", placeholder="V1, V2, ... or JSON list")
        self.y_field = widgets.Dropdown(options=[(NO_AXIS, NO_AXIS), *field_options(SWEEPABLE)], value=NO_AXIS,
                                        description="Y field")
        self.y_values = widgets.Text(value="", description="Y values")
        self.hires = HiresFields()  # every cell gets the same second pass; its steps/denoise/upscaler may be axes
        # Every cell is guided alike (the IP-Adapter's scale may be an axis); maps are made at each cell's size.
        self.ip_adapter = IpAdapterPicker(model=lambda: self.form.model_id,
                                          start_listing=lambda: quick_ip_adapter_listing(self.form.model_id))
        self.form.network_pickers.append(self.ip_adapter)
        self.controlnets = ControlNetPicker(size=self.form.base_size)
        self._add_feature_sections()
        self.run_button = button("Sweep", self.submit, "primary", "queue this sweep", icon="th")
        self.run_button.add_class("sdxl-sweep")
        self.status = widgets.HTML()  # one red line for bad input or a failed job; otherwise what was just done
        self.status.add_class("sdxl-sweep-status")
        self.own = OwnJobs(self.queue, self, self.status, on_event=self._on_own_event, on_finished=self._finished,
                           stop_tooltip="stop between steps; finished cells are kept")
        self.stop_button, self.progress, self.progress_text = self.own.stop_button, self.own.bar, self.own.text
        self.grid_view = image_box("sdxl-sweep-grid")
        self.cells_gallery = linked_gallery("cells", self.form, actions)
        self.result = None  # the last finished job's SweepResult
        self.scoring = ScoreControls(
            lambda: (self.result.grid_path.parent, self.result.plan.id) if self._has_grid() else None, self.show_scores)
        self.form.build([
            widgets.HTML("<small>Each cell is this request with the axis values below; a field an axis "
                         "sets is taken from the axis.</small>"),
            widgets.HBox([self.x_field, self.x_values]), widgets.HBox([self.y_field, self.y_values]),
        ])
        self.widget = workspace([self.form.widget], [
            css(), widgets.HBox([self.run_button, self.stop_button]), self.status,
            widgets.HBox([self.progress, self.progress_text]), self.grid_view, self.scoring.widget,
            self.cells_gallery.widget,
        ])
        self.widget.add_class("sdxl-sweep-panel")

    def _add_feature_sections(self) -> None:
        """Hires fix, ControlNet and IP-Adapter in collapsed sections, as in the Generate form."""
        self.form.add_section(Section("Hires fix", self.hires.widget, self.hires.summary)).watch(*self.hires.watched())
        controlnet = self.form.add_section(Section("ControlNet", self.controlnets.widget, self.controlnets.summary))
        self.controlnets.on_change(controlnet.refresh)
        self.form.add_section(Section("IP-Adapter", self.ip_adapter.widget, self.ip_adapter.summary)).watch(
            self.ip_adapter.choice, self.ip_adapter.images, self.ip_adapter.scale)

    def axes(self):
        x = parse_axis(f"{self.x_field.value}={self.x_values.value}")
        y = None if self.y_field.value == NO_AXIS else parse_axis(f"{self.y_field.value}={self.y_values.value}")
        return x, y

    def base_request(self) -> tuple[GenerationRequest, list[str]]:
        """The request every cell starts from, and the adjustments the form made (uploads kept under inputs/)."""
        fields, adjustments = self.form.fields()
        folder = self.out_dir or self.queue.out_dir or default_output_dir()
        return GenerationRequest(**fields, **self.hires.fields(), **self.ip_adapter.fields(folder),
                                 controlnets=self.controlnets.fields(Path(folder))), adjustments

    def load(self, fields: dict) -> list[str]:
        """Fill the form and the pickers from request fields (a reused image); returns what was not loaded."""
        return self.form.load(fields) + self.ip_adapter.use(fields) + self.controlnets.use(fields)

    def submit(self):
        """Queue the sweep; a bad axis or cell is one red line and queues nothing. Returns the job or None."""
        try:
            x, y = self.axes()
            with form.uploads_for_one_request():  # a refused sweep keeps none of its uploads
                base, adjustments = self.base_request()
                job = self.queue.submit_sweep(base, x, y, out_dir=self.out_dir, owner=self)
        except InputError as exc:
            set_status(self.status, one_line(exc), "error")
            return None
        self.own.queued(job, adjustments + self.form.warnings())
        return job

    def _on_own_event(self, event: dict) -> None:
        if event["type"] == "started":
            clear_image(self.grid_view)
            self.cells_gallery.clear()

    def _finished(self, job) -> None:
        result = self.result = job.result
        plan = result.plan
        if result.grid is not None:
            show_pil(self.grid_view, result.grid, box=GRID_BOX, fit=True)
        self.cells_gallery.show([GalleryItem(path, plan.x.shown(xi) + (f", {plan.y.shown(yi)}" if plan.y else ""),
                                             seed)
                                 for (xi, yi), cell in sorted(result.results.items(), key=lambda c: (c[0][1], c[0][0]))
                                 for path, seed in zip(cell.paths, cell.seeds, strict=True)])
        failed = "; ".join(plan.x.shown(xi) + (f", {plan.y.shown(yi)}" if plan.y else "") + f": {error}"
                           for (xi, yi), error in result.errors.items())
        done = {"ok": "done", "interrupted": "stopped; finished cells kept"}.get(result.status, "ended")
        made = sum(1 for cell in result.results.values() if cell.images)  # a cell stopped half-way made none
        set_status(self.status, f"job #{job.id} {done}: {made} of {len(plan.cells)} cells, sweep "
                                f"{plan.id}" + (f", grid {result.grid_path.name}" if result.grid_path else "")
                                + (f"; failed cells: {failed}" if failed else ""), "warning" if failed else "ok")

    def show_scores(self, metric: str = "clip_score") -> None:
        """Show the last sweep's grid with each cell's `metric` under it (after `sdxl-nb score` on its folder)."""
        from sdxl_nb.analysis.paired import sweep_grid

        if self._has_grid():
            grid = sweep_grid(self.result.grid_path.parent, self.result.plan.id, metric)
            show_pil(self.grid_view, grid, box=GRID_BOX, fit=True)

    def _has_grid(self) -> bool:
        return self.result is not None and self.result.grid_path is not None


def sweep_panel(out_dir: str | os.PathLike | None = None, queue: JobQueue | None = None) -> widgets.Widget:
    """The Sweep panel as one widget (display it in a notebook cell)."""
    panel = SweepPanel(queue, out_dir)
    panel.widget.panel = panel
    return panel.widget
