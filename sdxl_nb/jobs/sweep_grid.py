"""A sweep's own job: its labelled grid, saved and named by a `sweep` record through the one job pipeline."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from PIL.PngImagePlugin import PngInfo

from sdxl_nb.backends.base import RunPlan
from sdxl_nb.jobs.files import JobFiles
from sdxl_nb.jobs.pipeline import run_job
from sdxl_nb.record.naming import slugify, timestamp
from sdxl_nb.record.store import encode_png
from sdxl_nb.request.prepare import prepare


class SweepGridJob:
    """No image is generated: the record lists the sweep's cells (by job id) and names the grid made from them."""

    def __init__(self, plan, result):
        first = min(result.results.values(), key=lambda job: job.record["started_at"])
        self.plan, self.result = plan, result
        self.resolved = prepare(plan.cells[0].request)
        self.cells = [job.record for job in result.results.values()]
        self.first = first.record

    def run_plan(self, chunk_size: int | None, auto_tune: bool | None) -> RunPlan:
        return RunPlan(request=self.resolved, images=(), chunk_size=None)

    def warnings(self, backend, loaded, info) -> list[str]:
        return []

    def start_record(self, record: dict) -> None:
        tag = {key: value for key, value in self.plan.tag(self.plan.cells[0]).items() if key not in ("x", "y")}
        tag.update(x={"field": self.plan.x.field}, y=None if self.plan.y is None else {"field": self.plan.y.field},
                   cells=[{"job_id": cell["job_id"], "status": cell["status"], "x": cell["sweep"]["x"]["index"],
                           "y": (cell["sweep"]["y"] or {}).get("index", 0)} for cell in self.cells],
                   status=self.result.status, errors=[f"{x},{y}: {error}" for (x, y), error in self.result.errors.items()])
        record.update(mode="sweep", batch=len(self.cells), seeds=[cell["seed"] for cell in self.cells],
                      seed=self.cells[0]["seed"], sweep=tag, grid=None, chunk_size=None)
        record["notes"] = [*record["notes"], *self.plan.notes]

    def image_file(self, record, index, seed, image, call, moment):
        raise AssertionError("a sweep's grid job generates no image")

    def finish_files(self, record: dict, images: dict, files: JobFiles, moment: datetime) -> dict[str, tuple]:
        grid = self.result.grid
        info = PngInfo()
        info.add_text("sdxl_nb_sweep", json.dumps({"id": self.plan.id, "job_id": record["job_id"],
                                                    "x": self.plan.x.field,
                                                    "y": None if self.plan.y is None else self.plan.y.field}))
        name = f"{timestamp(moment)}_{slugify(record['prompt'] or 'sweep')}_sweep-{self.plan.id}.png"
        return {"grid": (files.write(name, encode_png(grid, info), {"grid": {"size": list(grid.size)}}), grid)}


def record_grid(plan, result, folder: Path, *, engine=None, presets=None) -> Path | None:
    """Save the sweep's grid as its own recorded job; the grid's path (None when it could not be saved)."""
    job = run_job(SweepGridJob(plan, result), out_dir=folder, backend=engine, presets=presets)
    return job.files.get("grid")
