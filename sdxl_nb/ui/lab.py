"""The lab: model and engine settings above tabs (Generate, Animate, Sweep, Queue, Presets, PNG Info, more in TABS)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ipywidgets as w

from sdxl_nb.jobs.pipeline import default_output_dir
from sdxl_nb.jobs.queue import JobQueue, get_queue
from sdxl_nb.ui.animate_panel import AnimatePanel
from sdxl_nb.ui.engine_settings import EngineSettings
from sdxl_nb.ui.generate_panel import GeneratePanel
from sdxl_nb.ui.model_panel import ModelPanel
from sdxl_nb.ui.png_info_panel import PngInfoPanel
from sdxl_nb.ui.preset_editor import PresetEditor
from sdxl_nb.ui.queue_panel import QueuePanel
from sdxl_nb.ui.sweep_panel import SweepPanel
from sdxl_nb.ui.widgets import Panel

# (tab title, factory(lab) -> panel or widget). Other panels append here; lab() builds them in order.
TABS: list[tuple[str, Callable[[Lab], object]]] = [
    ("Generate", lambda lab: GeneratePanel(lab.queue, lab.model, lab.out_dir, actions=lab)),
    ("Animate", lambda lab: AnimatePanel(lab.queue, lab.out_dir, lab.model, actions=lab)),
    ("Sweep", lambda lab: SweepPanel(lab.queue, lab.out_dir, lab.model, actions=lab)),
    ("Queue", lambda lab: QueuePanel(lab.queue)),
    ("Presets", lambda lab: PresetEditor()),
    ("PNG Info", lambda lab: PngInfoPanel(lab)),
]


class Lab(Panel):
    """All panels over one queue and one engine; `lab.panels["Generate"]` etc. reach each one."""

    def __init__(self, queue: JobQueue | None = None, out_dir: str | Path | None = None):
        self.queue = queue or get_queue()
        self.out_dir = Path(out_dir) if out_dir else default_output_dir()
        self.model = ModelPanel(self.queue, self.out_dir)
        self.settings = EngineSettings(self.queue)  # auto-tune on by default in the lab
        self.panels = {title: factory(self) for title, factory in TABS}
        self.tabs = w.Tab(children=[getattr(p, "widget", p) for p in self.panels.values()])
        for index, title in enumerate(self.panels):
            self.tabs.set_title(index, title)
        header = w.HTML(f"<b>sdxl_nb lab</b> · outputs and jobs.log in <code>{self.out_dir}</code>")
        self.widget = w.VBox([header, self.model.widget, self.settings.widget, self.tabs])
        self.widget.add_class("sdxl-lab")

    @property
    def generate(self) -> GeneratePanel:
        return self.panels["Generate"]

    # ---- what any tab's images (or PNG Info) send to the Generate form ----
    def reuse(self, fields: dict) -> list[str]:
        """Fill the Generate form from request fields and show it; returns what could not be loaded."""
        skipped = self.generate.reuse(fields)
        self.show_tab("Generate")
        return skipped

    def load_into(self, title: str, fields: dict) -> list[str]:
        """Fill a tab's form (Generate, Animate or Sweep) from request fields and show it."""
        if title == "Generate":
            return self.reuse(fields)
        skipped = self.panels[title].load(fields)
        model = fields.get("model")
        if model and model != self.model.model_id:
            skipped.append(f"model {model} is chosen in the model panel (the tab uses {self.model.model_id})")
        self.show_tab(title)
        return skipped

    def use_init(self, path: Path, mode: str) -> None:
        self.generate.use_init(path, mode)
        self.show_tab("Generate")

    def show_tab(self, title: str) -> None:
        self.tabs.selected_index = list(self.panels).index(title)


def lab(out_dir: str | Path | None = None, queue: JobQueue | None = None) -> Lab:
    """The whole lab in one call (display it, or leave it as a cell's last expression)."""
    return Lab(queue, out_dir)
