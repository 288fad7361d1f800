"""Parameter sweeps: one or two request fields over lists of values, one tagged job per cell, a labelled X/Y grid."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sdxl_nb.errors import GenerationError, InputError
from sdxl_nb.request.resolve import MAX_SEED, GenerationRequest

# Fields a sweep may vary, and how a value typed as text becomes that field's value.
SWEEPABLE: dict[str, type] = {"prompt": str, "negative_prompt": str, "model": str, "scheduler": str, "style": str,
                              "schedule_type": str,
                              "steps": int, "cfg": float, "width": int, "height": int, "resolution": str,
                              "seed": int, "strength": float, "init_image": str, "refiner": str,
                              "refiner_switch": float, "ip_scale": float,
                              # the hires pass's settings (the base request gives hires_scale: one size per grid)
                              "hires_steps": int, "hires_denoise": float, "hires_upscaler": str}
MAX_CELLS = 100


@dataclass(frozen=True)
class SweepAxis:
    field: str
    values: tuple

    def label(self, index: int) -> str:
        """`field: value`, the field as typed on the command line (CLI lines and messages)."""
        return f"{self.field}: {self._value(index)}"

    def shown(self, index: int) -> str:
        """`Label: value` as a person reads it (the grid's headers, the lab's captions): "CFG scale: 7"."""
        from sdxl_nb.record.field_labels import label

        return f"{label(self.field)}: {self._value(index)}"

    def _value(self, index: int) -> str:
        value = self.values[index]
        return f"{value:g}" if isinstance(value, float) else f"{value}"


@dataclass(frozen=True)
class SweepCell:
    x: int  # index into the X values
    y: int  # index into the Y values (0 when there is no Y axis)
    request: GenerationRequest


@dataclass(frozen=True)
class SweepPlan:
    id: str
    x: SweepAxis
    y: SweepAxis | None
    cells: tuple[SweepCell, ...]
    notes: tuple[str, ...] = ()

    def tag(self, cell: SweepCell) -> dict:
        """The `sweep` object of a cell's record: enough to place it in the grid from jobs.log alone."""
        return {"id": self.id,
                "x": {"field": self.x.field, "value": self.x.values[cell.x], "index": cell.x},
                "y": None if self.y is None else {"field": self.y.field, "value": self.y.values[cell.y],
                                                  "index": cell.y},
                "x_values": list(self.x.values), "y_values": None if self.y is None else list(self.y.values)}


def axis(field_name: str, values) -> SweepAxis:
    """A checked axis: a sweepable field and distinct values of its type (text values are converted)."""
    if field_name not in SWEEPABLE:
        raise InputError(f"cannot sweep {field_name!r}; accepted fields: {', '.join(SWEEPABLE)}")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InputError(f"sweep values for {field_name} must be a list, got {values!r}")
    kind = SWEEPABLE[field_name]
    converted = []
    for value in values:
        if isinstance(value, str) and kind is not str:
            try:
                value = kind(value.strip())
            except ValueError:
                expected = "a whole number" if kind is int else "a number"
                raise InputError(f"sweep value {value!r} for {field_name} is not {expected}") from None
        converted.append(value)
    if not converted:
        raise InputError(f"sweep axis {field_name} has no values")
    if len(set(map(repr, converted))) != len(converted):
        raise InputError(f"sweep axis {field_name} repeats a value: {converted}")
    return SweepAxis(field_name, tuple(converted))


def parse_axis(text: str) -> SweepAxis:
    """`cfg=3,5,7.5` or, for values with commas, a JSON list: `prompt=["a cat, red", "a dog"]`."""
    name, sep, values = text.partition("=")
    if not sep or not values.strip():
        raise InputError(f"sweep axis {text!r} must look like FIELD=V1,V2,... (or FIELD=[JSON list])")
    values = values.strip()
    if values.startswith("["):
        try:
            parsed = json.loads(values)
        except json.JSONDecodeError as exc:
            raise InputError(f"sweep axis {name.strip()}: the JSON list does not parse ({exc.msg})") from None
        if not isinstance(parsed, list):
            raise InputError(f"sweep axis {name.strip()}: expected a JSON list")
        return axis(name.strip(), parsed)
    return axis(name.strip(), [value.strip() for value in values.split(",")])


def plan_sweep(base: GenerationRequest, x: SweepAxis, y: SweepAxis | None = None, presets=None) -> SweepPlan:
    """Every cell's request, each validated before any work; raise InputError naming the bad cell."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.request.prepare import prepare

    presets = presets or load_presets()
    if y is not None and y.field == x.field:
        raise InputError(f"X and Y both sweep {x.field}; choose two different fields")
    cells_count = len(x.values) * (1 if y is None else len(y.values))
    if cells_count > MAX_CELLS:
        raise InputError(f"a sweep of {cells_count} cells is too big; accepted: at most {MAX_CELLS}")
    if base.batch != 1:
        raise InputError(f"a sweep cell is one image (batch {base.batch} given); sweep the seed for variety")
    notes = []
    if base.seed is None and "seed" not in (x.field, None if y is None else y.field):
        # One seed for every cell, so cells differ only in the swept fields.
        base = replace(base, seed=secrets.randbelow(MAX_SEED + 1))
        notes.append(f"seed {base.seed} drawn at random for every cell")
    cells = []
    for yi in range(1 if y is None else len(y.values)):
        for xi, x_value in enumerate(x.values):
            changes = {x.field: x_value} | ({} if y is None else {y.field: y.values[yi]})
            request = replace(base, **changes)
            try:
                prepare(request, presets)
            except InputError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in changes.items())
                raise InputError(f"sweep cell {where}: {exc}") from None
            cells.append(SweepCell(x=xi, y=yi, request=request))
    return SweepPlan(id=uuid.uuid4().hex[:12], x=x, y=y, cells=tuple(cells), notes=tuple(notes))


@dataclass
class SweepResult:
    plan: SweepPlan
    results: dict = field(default_factory=dict)  # (x, y) -> JobResult
    errors: dict = field(default_factory=dict)  # (x, y) -> one-line error of a failed cell
    grid: object = None  # PIL image
    grid_path: Path | None = None
    status: str = "ok"  # ok / interrupted / failed (some cell failed)

    @property
    def error(self) -> str | None:
        """One line naming each failed cell and why (None when no cell failed)."""
        if not self.errors:
            return None

        def where(x: int, y: int) -> str:
            return self.plan.x.label(x) + ("" if self.plan.y is None else f", {self.plan.y.label(y)}")
        return f"{len(self.errors)} of {len(self.plan.cells)} cells failed: " + "; ".join(
            f"{where(x, y)}: {error}" for (x, y), error in self.errors.items())


def run_sweep(base: GenerationRequest | None = None, *, x: SweepAxis, y: SweepAxis | None = None,
              out_dir: str | os.PathLike | None = None, engine=None, on_progress: Callable[[dict], None] | None = None,
              should_stop: Callable[[], bool] | None = None, on_cell: Callable | None = None, presets=None,
              on_stage: Callable[[str], None] | None = None, on_preview: Callable | None = None,
              **fields) -> SweepResult:
    """Run one generate job per cell (each tagged with the sweep), then save, record and return the labelled grid.

    A stop ends the sweep after the running cell; a failed cell is recorded by its job and left
    empty in the grid while the other cells run.
    """
    base = base or GenerationRequest(**fields)
    return run_planned_sweep(plan_sweep(base, x, y, presets), out_dir=out_dir, engine=engine, on_progress=on_progress,
                             should_stop=should_stop, on_cell=on_cell, presets=presets, on_stage=on_stage,
                             on_preview=on_preview)


def run_planned_sweep(plan: SweepPlan, *, out_dir: str | os.PathLike | None = None, engine=None,
                      on_progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
                      on_cell: Callable | None = None, presets=None, on_stage: Callable[[str], None] | None = None,
                      on_preview: Callable | None = None) -> SweepResult:
    """Run a sweep already planned (every cell validated): the cells, then the grid job that names the grid."""
    from sdxl_nb.jobs.generate import generate
    from sdxl_nb.jobs.pipeline import default_output_dir as output_dir
    from sdxl_nb.jobs.sweep_grid import record_grid
    from sdxl_nb.record.store import check_output_dir

    folder = check_output_dir(out_dir or output_dir())
    stop = should_stop or (lambda: False)
    result = SweepResult(plan=plan)
    for number, cell in enumerate(plan.cells):
        if stop():
            result.status = "interrupted"
            break

        def progress(p: dict, number=number) -> None:
            if on_progress:
                on_progress({**p, "cell": number + 1, "cells": len(plan.cells)})

        try:
            job = generate(cell.request, out_dir=folder, engine=engine, on_progress=progress, should_stop=stop,
                           on_stage=on_stage, on_preview=on_preview, presets=presets, extra={"sweep": plan.tag(cell)})
        except GenerationError as exc:
            result.errors[(cell.x, cell.y)] = str(exc)
            result.status = "failed"
            continue
        result.results[(cell.x, cell.y)] = job
        if on_cell:
            on_cell(cell, job)
        if job.status == "interrupted":
            result.status = "interrupted"
            break
    if result.results:
        records = [job.record for job in result.results.values()]
        images = {(job.record["sweep"]["x"]["index"], (job.record["sweep"]["y"] or {}).get("index", 0)): job.images[0]
                  for job in result.results.values() if job.images}
        result.grid = grid_image(records, images)
        result.grid_path = record_grid(plan, result, folder, engine=engine, presets=presets)
    return result


def grid_image(records: list[dict], images: dict, notes: dict | None = None):
    """The labelled grid of a sweep from its records (axes and values) and each cell's image; `notes`: a line
    under some cells ((x, y) -> text, such as a score)."""
    from sdxl_nb.outputs.grid import xy_grid
    from sdxl_nb.record.field_labels import label

    tag = records[0]["sweep"]
    x = SweepAxis(tag["x"]["field"], tuple(tag["x_values"]))
    y = None if tag["y"] is None else SweepAxis(tag["y"]["field"], tuple(tag["y_values"]))
    return xy_grid(images, label(x.field), [x.shown(i) for i in range(len(x.values))],
                   None if y is None else label(y.field), None if y is None else [y.shown(i) for i in range(len(y.values))],
                   notes=notes)


def sweep_records(folder: str | os.PathLike, sweep_id: str) -> list[dict]:
    """The jobs of one sweep from a folder's jobs.log (a re-run cell: its latest record)."""
    from sdxl_nb.record.joblog import JOBS_LOG, read_records

    latest = {}
    for record in read_records(Path(folder) / JOBS_LOG):
        tag = record.get("sweep")
        if isinstance(tag, dict) and tag.get("id") == sweep_id and record.get("mode") != "sweep":
            latest[(tag["x"]["index"], (tag["y"] or {}).get("index", 0))] = record
    return list(latest.values())


def rebuild_grid(folder: str | os.PathLike, sweep_id: str, notes_by_job: dict[str, str] | None = None):
    """The sweep's grid again, from jobs.log and the saved images alone; `notes_by_job`: a line under each cell
    whose job id it names (a score: see sdxl_nb.analysis.paired.sweep_grid)."""
    from PIL import Image

    records = sweep_records(folder, sweep_id)
    if not records:
        raise InputError(f"no jobs of sweep {sweep_id!r} in {Path(folder) / 'jobs.log'}")
    images = {}
    for record in records:
        if record["images"]:
            tag = record["sweep"]
            with Image.open(Path(folder) / record["images"][0]["path"]) as image:
                images[(tag["x"]["index"], (tag["y"] or {}).get("index", 0))] = image.convert("RGB")
    notes = {(r["sweep"]["x"]["index"], (r["sweep"]["y"] or {}).get("index", 0)): notes_by_job[r["job_id"]]
             for r in records if notes_by_job and r.get("job_id") in notes_by_job}
    return grid_image(records, images, notes or None)
