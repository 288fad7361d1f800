"""jobs.log -> DataFrame: one row per image, bad lines reported not fatal, old and future records, summaries, plots."""

import io
import json
import subprocess

import pandas as pd
import pytest

from sdxl_nb.analysis import (
    duplicate_settings,
    job_rows,
    load_jobs,
    load_problems,
    search_prompts,
    summarize,
)
from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import append_record
from tests.audit_jobs import copy_jobs, make_jobs
from tests.conftest import PYTHON, python_env


@pytest.fixture(scope="module")
def jobs_dir(engine, tmp_path_factory):
    folder = tmp_path_factory.mktemp("analysis") / "out"
    results = make_jobs(folder, engine)
    failed = {**results[0].record, "job_id": "f" * 32, "status": "failed", "error": "out of memory",
              "images": [], "timings": {"load_s": 0.0, "generate_s": None, "save_s": None, "total_s": 0.1},
              "peak_memory_bytes": None}
    append_record(folder / "jobs.log", failed)
    return folder


def _write(path, lines):
    path.write_bytes(b"".join(lines))
    return path


def test_one_row_per_image_with_job_fields_flattened(jobs_dir):
    df = load_jobs(jobs_dir)
    assert len(df) == 2 + 1 + 1 + 1  # a batch of two, img2img, inpaint, and the failed job's single row
    first = df[(df["prompt"] == "a red fox") & (df["status"] == "ok")]
    assert list(first["seed"]) == [1, 2] and list(first["image_index"]) == [0, 1]
    assert set(first["scheduler_name"]) == {"Euler"} and set(first["style_name"]) == {"Cinematic"}
    assert set(first["scheduler_class"]) == {"EulerDiscreteScheduler"} and set(first["model_id"]) == {"tiny-sdxl"}
    assert first["styled_prompt"].iloc[0].startswith("cinematic film still, a red fox")
    for path in first["image_path"]:
        assert path.startswith(str(jobs_dir.resolve()) + "/") and (jobs_dir / path.rsplit("/", 1)[1]).is_file()
    assert first["timings_generate_s"].notna().all() and (first["s_per_step"] > 0).all()
    assert (first["env_torch"].astype(str) != "").all() and first["peak_memory_bytes"].notna().all()
    failed = df[df["status"] == "failed"]
    assert len(failed) == 1 and failed["image_path"].isna().all() and failed["seed"].isna().all()
    assert failed["n_images"].tolist() == [0] and failed["error"].tolist() == ["out of memory"]
    img2img = df[df["mode"] == "img2img"].iloc[0]
    assert img2img["strength"] == 0.6 and img2img["effective_steps"] == 2  # int(4 * 0.6) steps actually run
    assert img2img["init_image_path"] == f"inputs/{img2img['init_image_sha256']}.png" and len(img2img["init_image_sha256"]) == 64
    assert df.attrs["problems"] == [] and df.attrs["sources"] == [str((jobs_dir / "jobs.log").resolve())]


def test_dtypes_are_analysis_ready(jobs_dir):
    df = load_jobs(jobs_dir / "jobs.log")
    assert str(df["started_at"].dt.tz) == "UTC" and df["finished_at"].notna().all()
    for column in ("mode", "status", "model_id", "scheduler_name", "style_name", "env_torch", "device_type"):
        assert isinstance(df[column].dtype, pd.CategoricalDtype), column
    assert str(df["steps"].dtype) == "Int64" and df["cfg"].dtype == "float64"
    assert str(df["env_deterministic"].dtype) == "boolean"
    assert df["job"].is_monotonic_increasing and job_rows(df)["job_id"].is_unique


def test_corrupt_and_torn_lines_are_reported_and_the_rest_loads(jobs_dir, tmp_path):
    good = (jobs_dir / "jobs.log").read_bytes().splitlines(keepends=True)
    log = _write(tmp_path / "jobs.log", [
        good[0],
        b'{"job_id": "broken",, "mode": "txt2img"}\n',  # corrupt
        good[1][: len(good[1]) // 2] + b"\n",  # torn by a killed writer, then appends went on
        b"[1, 2, 3]\n",  # JSON, but not a record
        b"   \n",  # blank: not a problem
        good[2],
        good[1][:40],  # the last line cut off mid-write (no newline)
    ])
    df = load_jobs(log)
    problems = load_problems(df)
    assert problems["line"].tolist() == [2, 3, 4, 7]
    assert set(problems["file"]) == {str(log.resolve())}
    reasons = problems["reason"].tolist()
    assert reasons[0].startswith("invalid JSON") and reasons[1].startswith("torn line")
    assert reasons[2].startswith("not a JSON object") and reasons[3].startswith("truncated line")
    assert sorted(set(df["line"])) == [1, 6] and len(df) == 3


def test_unknown_keys_are_kept_and_schema_0_records_load(jobs_dir, tmp_path):
    record = json.loads((jobs_dir / "jobs.log").read_text(encoding="utf-8").splitlines()[0])
    future = {**record, "schema": 2, "upscale": {"factor": 2}, "timings": {**record["timings"], "decode_s": 0.25},
              "images": [{**image, "nsfw": False} for image in record["images"]]}
    # A hypothetical schema 0: bare strings for model and scheduler, bare file names, no env/style/timings.
    old = {"job_id": "old-1", "prompt": "an old job", "model": "tiny-sdxl", "scheduler": "Euler", "seed": 5,
           "steps": 20, "cfg": 7, "width": 512, "height": 512, "images": ["old.png"], "created": "2023-05-01"}
    log = _write(tmp_path / "jobs.log", [json.dumps(future).encode() + b"\n", json.dumps(old).encode() + b"\n"])
    df = load_jobs(log)
    assert df.attrs["problems"] == []
    new_rows, old_rows = df[df["schema"] == 2], df[df["job_id"] == "old-1"]
    assert new_rows["upscale"].tolist() == [{"factor": 2}] * 2 and new_rows["timings_decode_s"].tolist() == [0.25] * 2
    assert new_rows["image_nsfw"].tolist() == [False, False]
    assert len(old_rows) == 1
    row = old_rows.iloc[0]
    assert (row["model_id"], row["scheduler_name"], row["steps"], row["created"]) == ("tiny-sdxl", "Euler", 20, "2023-05-01")
    assert row["image_path"] == str(tmp_path.resolve() / "old.png")
    assert pd.isna(row["schema"]) and pd.isna(row["started_at"]) and pd.isna(row["env_torch"])


def test_animation_records_give_one_row_per_frame(tmp_path):
    frames = [{"index": i, "seed": 9, "prompt": f"fox, frame {i}", "t": i / 2, "path": f"anim_frame_{i:03d}.png",
               "sha256": "0" * 64} for i in range(3)]
    record = {"schema": 1, "job_id": "a" * 32, "mode": "animate", "status": "ok", "prompt": "fox", "seed": 9,
              "width": 64, "height": 64, "steps": 2, "images": [], "frames": frames,
              "timings": {"generate_s": 1.2}, "started_at": "2026-01-02T03:04:05.000+02:00"}
    log = _write(tmp_path / "jobs.log", [json.dumps(record).encode() + b"\n"])
    df = load_jobs(log)
    assert df["image_index"].tolist() == [0, 1, 2] and df["frame_t"].tolist() == [0, 0.5, 1.0]
    assert df["frame_prompt"].tolist() == ["fox, frame 0", "fox, frame 1", "fox, frame 2"]
    assert df["n_images"].tolist() == [3] * 3 and df["s_per_step"].iloc[0] == pytest.approx(1.2 / (2 * 3))
    assert df["started_at"].iloc[0] == pd.Timestamp("2026-01-02T01:04:05Z")


def test_several_sources_and_bad_sources(jobs_dir, tmp_path):
    other = copy_jobs(jobs_dir, tmp_path / "copy")
    df = load_jobs(jobs_dir, other / "jobs.log")
    assert len(df) == 10 and df["log"].nunique() == 2 and df["job"].nunique() == 8
    with pytest.raises(InputError, match="does not exist"):
        load_jobs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder without a jobs.log"):
        load_jobs(tmp_path / "empty")


def test_summaries_search_and_duplicates(jobs_dir, tmp_path):
    df = load_jobs(jobs_dir)
    by_model = summarize(df, "model")
    row = by_model.loc["tiny-sdxl"]
    assert (row["jobs"], row["images"]) == (4, 4)
    assert row["failure_rate"] == pytest.approx(0.25) and row["interrupt_rate"] == 0
    assert row["median_s_per_step"] > 0 and row["max_peak_memory_gib"] > 0
    assert summarize(df, "resolution").index.tolist() == ["64x64"]
    assert set(summarize(df, ["scheduler", "style"]).index.get_level_values(0)) >= {"Euler", "DPM++ 2M Karras"}
    with pytest.raises(InputError, match="cannot group by"):
        summarize(df, "colour")
    assert set(search_prompts(df, "FOX IN IMG")["mode"]) == {"img2img"}
    assert len(search_prompts(df, r"^cinematic film still, a \w+ fox", regex=True)) == 3  # with the failed copy
    with pytest.raises(InputError, match="not a valid regular expression"):
        search_prompts(df, "(", regex=True)
    assert duplicate_settings(df).empty
    twice = load_jobs(jobs_dir, copy_jobs(jobs_dir, tmp_path / "again"))
    duplicates = duplicate_settings(twice)
    assert len(duplicates) == 8 and duplicates["duplicate_group"].nunique() == 4 and duplicates["same_image"].all()


def test_plots_render_headless(jobs_dir):
    from matplotlib.figure import Figure

    from sdxl_nb.analysis import jobs_over_time_plot, peak_memory_plot, step_time_plot, thumbnail_grid

    df = load_jobs(jobs_dir)
    for plot in (step_time_plot, peak_memory_plot, jobs_over_time_plot):
        ax = plot(df)
        assert ax.get_ylabel() and (ax.collections or ax.patches), plot.__name__
        ax.figure.savefig(io.BytesIO(), format="png")
    selection = df[df["image_path"].notna()].copy()
    selection.loc[selection.index[0], "image_path"] = "/no/such.png"
    grid = thumbnail_grid(selection, columns=2)
    assert isinstance(grid, Figure) and len(grid.axes) == 4
    assert [len(ax.images) > 0 for ax in grid.axes] == [False, True, True, True]
    grid.savefig(io.BytesIO(), format="png")
    empty = step_time_plot(df.iloc[0:0])
    assert "no finished jobs" in empty.texts[0].get_text()


def test_analysis_and_audit_modules_import_without_torch(jobs_dir):
    code = ("import sys\n"
            "import sdxl_nb.analysis, sdxl_nb.analysis.plots, sdxl_nb.analysis.benchmark, sdxl_nb.audit, sdxl_nb.cli.audit\n"
            "from sdxl_nb.analysis import load_jobs, read_logged_records, summarize\n"
            "from sdxl_nb.audit import check_integrity, environment_drift, preset_drift\n"
            f"df = load_jobs({str(jobs_dir)!r}); summarize(df)\n"
            f"records, _ = read_logged_records({str(jobs_dir)!r})\n"
            "assert check_integrity(records).ok and environment_drift(records).empty and preset_drift(records).empty\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_benchmark_reports_both_loaders(tmp_path):
    from sdxl_nb.analysis.benchmark import bench_load

    result = bench_load(lines=300, repeats=2, folder=tmp_path)
    assert result["read_json_rows"] == 300 and result["ours_rows"] > 300  # batches and frames give more rows
    assert len(result["ours_runs"]) == len(result["read_json_runs"]) == 2
    assert result["ratio"] == pytest.approx(result["ours_s"] / result["read_json_s"])
    assert list(tmp_path.iterdir()) == []  # the scratch log is removed


def test_synthetic_benchmark_records_follow_the_job_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from sdxl_nb.analysis.synthetic import SyntheticRecords
    from tests.conftest import REPO

    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    records = SyntheticRecords(seed=3)
    made = [records.record(number) for number in range(300)]
    for record in made:
        jsonschema.validate(record, schema)
    assert {r["mode"] for r in made} == {"txt2img", "img2img", "inpaint", "animate"}
    assert {r["status"] for r in made} == {"ok", "interrupted", "failed"}
