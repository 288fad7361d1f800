"""ipywidgets panels (views only: every action calls the library); `lab()` shows them all."""

from sdxl_nb.ui.animate_panel import AnimatePanel
from sdxl_nb.ui.generate_panel import GeneratePanel
from sdxl_nb.ui.lab import TABS, Lab, lab
from sdxl_nb.ui.model_panel import ModelPanel
from sdxl_nb.ui.preset_editor import PresetEditor
from sdxl_nb.ui.queue_panel import QueuePanel
from sdxl_nb.ui.sweep_panel import SweepPanel

__all__ = ["TABS", "AnimatePanel", "GeneratePanel", "Lab", "ModelPanel", "PresetEditor", "QueuePanel", "SweepPanel",
           "lab"]
