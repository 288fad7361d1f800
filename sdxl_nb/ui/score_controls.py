"""The Sweep tab's scoring row: score the last sweep's images with a local CLIP and show its grid annotated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ipywidgets as w

from sdxl_nb.analysis.scorers import CLIP_REPO, SCORERS, TINY_CLIP
from sdxl_nb.errors import InputError, one_line
from sdxl_nb.ui.widgets import button, set_status

METRICS = [(f"{'CLIP' if name == 'clip' else name.capitalize()} score", name) for name in SCORERS]
CLIPS = [(f"{CLIP_REPO} (Hugging Face cache)", CLIP_REPO), (f"{TINY_CLIP} (random weights, for trying it out)",
                                                            TINY_CLIP)]


class ScoreControls:
    """Metric, CLIP and a button; `sweep()` gives the last sweep's output folder and id (None before a sweep
    finished), whose cells alone are scored, and `annotate(metric)` redraws its grid with each cell's value."""

    def __init__(self, sweep: Callable[[], tuple[Path, str] | None], annotate: Callable[[str], None]):
        self.sweep, self.annotate = sweep, annotate
        self.metric = w.Dropdown(options=METRICS, value="clip", description="Score by",
                                 layout=w.Layout(width="220px"))
        self.clip = w.Dropdown(options=CLIPS, value=CLIP_REPO, description="CLIP", layout=w.Layout(width="420px"))
        self.run_button = button("Score grid", self.score, "", "score each cell's images with the chosen CLIP "
                                 "(scores.jsonl beside jobs.log) and write the value under each cell", icon="star",
                                 layout=w.Layout(width="auto"))
        self.run_button.add_class("sdxl-score-grid")
        self.status = w.HTML()
        self.status.add_class("sdxl-score-status")
        row = w.HBox([self.metric, self.clip, self.run_button], layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([row, self.status])

    def score(self) -> None:
        from sdxl_nb.analysis.scoring import score
        from sdxl_nb.jobs.sweep import sweep_records

        sweep = self.sweep()
        if sweep is None:
            set_status(self.status, "no sweep grid yet: run a sweep, then score it", "error")
            return
        folder, sweep_id = sweep
        cells = {record["job_id"] for record in sweep_records(folder, sweep_id)}
        set_status(self.status, f"scoring the sweep's {len(cells)} cell(s) with {self.clip.value}...", "busy")
        try:
            run = score(folder, [self.metric.value], model=self.clip.value, progress=False, jobs=cells)
            self.annotate(f"{self.metric.value}_score")
        except InputError as exc:
            set_status(self.status, one_line(exc), "error")
            return
        set_status(self.status, f"{run}; each cell shows its {self.metric.label}", "ok")
