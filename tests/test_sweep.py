"""Sweeps: axes parsing, one tagged job per cell, the labelled grid and its rebuild from jobs.log, bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.errors import InputError
from sdxl_nb.jobs.sweep import axis, parse_axis, plan_sweep, rebuild_grid, run_sweep
from sdxl_nb.record.joblog import read_records
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import REPO, SMALL, pixels


def test_axes_parse_typed_values():
    assert parse_axis("cfg=3, 5,7.5") == axis("cfg", [3.0, 5.0, 7.5])
    assert parse_axis("steps=2,3").values == (2, 3)
    assert parse_axis('prompt=["a cat, red", "a dog"]').values == ("a cat, red", "a dog")
    assert parse_axis("scheduler=Euler a,DPM++ 2M Karras").values == ("Euler a", "DPM++ 2M Karras")
    assert parse_axis("cfg=7.5").label(0) == "cfg: 7.5" and parse_axis("cfg=3").label(0) == "cfg: 3"
    assert parse_axis("cfg=7.5").shown(0) == "CFG scale: 7.5"  # the grid's header and the lab's caption
    assert parse_axis("hires_denoise=0.5").shown(0) == "Hires denoising strength: 0.5"


@pytest.mark.parametrize("text, message", [
    ("cfg", "must look like FIELD=V1,V2"),
    ("colour=red,blue", "cannot sweep 'colour'; accepted fields: prompt"),
    ("steps=2,two", "sweep value 'two' for steps is not a whole number"),
    ("cfg=3,3", "repeats a value"),
    ("prompt=[1, 2", "the JSON list does not parse"),
])
def test_bad_axes_are_one_line(text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_axis(text)


def test_every_cell_is_validated_before_any_work(tmp_path):
    base = GenerationRequest(prompt="x", **SMALL)
    with pytest.raises(InputError, match=r"sweep cell steps=0: steps 0 is out of range"):
        plan_sweep(base, axis("steps", [2, 0]))
    with pytest.raises(InputError, match="X and Y both sweep cfg"):
        plan_sweep(base, axis("cfg", [3]), axis("cfg", [5]))
    with pytest.raises(InputError, match="a sweep cell is one image"):
        plan_sweep(GenerationRequest(prompt="x", batch=2), axis("cfg", [3]))
    with pytest.raises(InputError):
        run_sweep(base, x=axis("style", ["Photoreal", "nope"]), out_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_one_seed_for_every_cell_when_none_is_given():
    plan = plan_sweep(GenerationRequest(prompt="x", **SMALL), axis("cfg", [3, 5]), axis("steps", [2, 3]))
    assert len({cell.request.seed for cell in plan.cells}) == 1 and plan.notes
    assert [(c.x, c.y, c.request.cfg, c.request.steps) for c in plan.cells] == [
        (0, 0, 3, 2), (1, 0, 5, 2), (0, 1, 3, 3), (1, 1, 5, 3)]


def test_sweep_runs_one_tagged_job_per_cell_and_the_grid_rebuilds_from_jobs_log(engine, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    seen = []
    result = run_sweep(GenerationRequest(prompt="a fox", width=64, height=64, seed=3), x=axis("cfg", [2, 6]),
                       y=axis("steps", [2, 3]), out_dir=tmp_path, engine=engine, on_progress=seen.append)
    assert result.status == "ok" and len(result.results) == 4
    *records, grid_job = read_records(tmp_path / "jobs.log")
    assert len(records) == 4 and {r["sweep"]["id"] for r in records} == {result.plan.id}
    # The sweep's own job names the grid and every cell, so audits know the grid file.
    jsonschema.validate(grid_job, schema)
    assert grid_job["mode"] == "sweep" and grid_job["grid"]["path"] == result.grid_path.name
    assert grid_job["sweep"]["id"] == result.plan.id and len(grid_job["sweep"]["cells"]) == 4
    for record in records:
        jsonschema.validate(record, schema)
        tag = record["sweep"]
        assert record["cfg"] == tag["x"]["value"] and record["steps"] == tag["y"]["value"]
        assert tag["x_values"] == [2, 6] and tag["y_values"] == [2, 3]
        with Image.open(tmp_path / record["images"][0]["path"]) as image:
            assert json.loads(image.text["sdxl_nb"])["sweep"] == tag
    assert {(p["cell"], p["cells"]) for p in seen} == {(1, 4), (2, 4), (3, 4), (4, 4)}
    cells = [pixels(result.results[key].images[0]) for key in ((0, 0), (1, 0), (0, 1))]
    assert not np.array_equal(cells[0], cells[1]) and not np.array_equal(cells[0], cells[2])
    with Image.open(result.grid_path) as saved:
        assert json.loads(saved.text["sdxl_nb_sweep"])["id"] == result.plan.id
        saved_pixels = pixels(saved)
    assert saved_pixels.shape[0] > 2 * 64 and saved_pixels.shape[1] > 2 * 64
    assert np.array_equal(pixels(rebuild_grid(tmp_path, result.plan.id)), saved_pixels)
    with pytest.raises(InputError, match="no jobs of sweep 'nope'"):
        rebuild_grid(tmp_path, "nope")


def test_stop_ends_the_sweep_and_keeps_finished_cells(engine, tmp_path):
    done = []
    result = run_sweep(GenerationRequest(prompt="stop", **SMALL, seed=1), x=axis("seed", [1, 2, 3]), out_dir=tmp_path,
                       engine=engine, should_stop=lambda: len(done) == 1, on_cell=lambda cell, job: done.append(job))
    assert result.status == "interrupted" and list(result.results) == [(0, 0)]
    cell, grid_job = read_records(tmp_path / "jobs.log")
    assert cell["mode"] == "txt2img" and grid_job["mode"] == "sweep" and grid_job["sweep"]["status"] == "interrupted"
    assert result.grid is not None and rebuild_grid(tmp_path, result.plan.id).size == result.grid.size


def test_generate_extra_fields_cannot_replace_lab_fields(run, tmp_path):
    with pytest.raises(InputError, match="extra field 'seed' is a record field"):
        run(prompt="x", extra={"seed": 5}, out_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    tagged = run(prompt="x", extra={"experiment": "a"}, out_dir=tmp_path / "ok")
    assert read_records(tmp_path / "ok" / "jobs.log")[0]["experiment"] == "a" == tagged.record["experiment"]
