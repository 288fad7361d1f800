"""`sdxl-nb animate` and `sdxl-nb sweep` as a user runs them: outputs, records, exit codes, one-line errors."""

import json

import pytest

from sdxl_nb.record.joblog import read_records
from tests.test_cli import cli

pytestmark = pytest.mark.slow
SMALL = ["--width", "64", "--height", "64", "--steps", "2"]


def test_animate_prints_frames_grid_and_animations(tmp_path):
    result = cli("animate", "--prompt", "cli fox", "--mode", "slerp", "--frames", "3", "--seed", "4", "--seed-end",
                 "5", "--fps", "10", "--ping-pong", *SMALL, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert [p.rsplit("_", 1)[-1] for p in paths[:3]] == ["001.png", "002.png", "003.png"]
    assert paths[3].endswith("_grid.png") and paths[4].endswith(".gif") and paths[5].endswith(".webp")
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["mode"] == "animate" and record["animation"]["seed_end"] == 5
    assert record["animation"]["fps"] == 10 and record["animation"]["order"] == [0, 1, 2, 1]


def test_animate_json_prints_the_record(tmp_path):
    result = cli("animate", "--prompt", "json", "--frames", "2", "--seed", "1", *SMALL, "--out", str(tmp_path),
                 "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == read_records(tmp_path / "jobs.log")[0]


@pytest.mark.parametrize("args, message", [
    (["--frames", "1"], "frames 1 is out of range; accepted: 2 to 240"),
    (["--fps", "0"], "fps 0 is out of range"),
    (["--mode", "slerp"], "slerp needs a seed end"),
    (["--mode", "prompt-travel"], "prompt-travel needs a prompt end"),
    (["--mode", "zoom"], "argument --mode: invalid choice: 'zoom'"),
    (["--frames", "two"], "argument --frames: invalid int value: 'two'"),
    (["--variation", "2"], "variation 2 is out of range"),
])
def test_animate_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = cli("animate", "--prompt", "x", "--out", str(out), *args)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not out.exists()


def test_sweep_runs_cells_and_prints_the_grid(tmp_path):
    result = cli("sweep", "--x", "cfg=3,6", "--y", 'prompt=["a fox, red", "a wolf"]', "--seed", "2", *SMALL,
                 "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split("\n")
    assert len([p for p in paths if p]) == 5 and "_sweep-" in paths[4]
    records = read_records(tmp_path / "jobs.log")
    assert len({r["sweep"]["id"] for r in records}) == 1
    *cells, grid_job = records
    assert [(r["cfg"], r["prompt"]) for r in cells] == [(3, "a fox, red"), (6, "a fox, red"), (3, "a wolf"),
                                                       (6, "a wolf")]
    # The grid is the sweep's own recorded job: it names the grid file and every cell by job id.
    assert grid_job["mode"] == "sweep" and grid_job["grid"]["path"] == paths[4].rsplit("/", 1)[-1]
    assert [c["job_id"] for c in grid_job["sweep"]["cells"]] == [r["job_id"] for r in cells]


@pytest.mark.parametrize("args, message", [
    (["--x", "cfg"], "must look like FIELD=V1,V2"),
    (["--x", "steps=2,0", "--prompt", "x"], "sweep cell steps=0: steps 0 is out of range"),
    (["--x", "cfg=3,5"], "give --prompt (or sweep the prompt"),
])
def test_sweep_bad_input_exits_2(tmp_path, args, message):
    result = cli("sweep", *args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
