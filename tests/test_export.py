"""Exporting a run: one row per image with settings, scores and image, as Parquet or a `datasets` folder."""

from __future__ import annotations

import hashlib
import io

import pytest

from tests.conftest import SMALL


@pytest.fixture(scope="module")
def run_folder(engine, tmp_path_factory):
    """Two jobs (three images) and a failed-free sweep-less folder, scored with the tiny CLIP."""
    from sdxl_nb.analysis.scoring import score
    from sdxl_nb.jobs.generate import generate

    folder = tmp_path_factory.mktemp("export")
    generate(prompt="a red boat", model="tiny-sdxl", seed=1, batch=2, cfg=4.0, out_dir=folder, engine=engine, **SMALL)
    generate(prompt="a (blue:1.2) kite", model="tiny-sdxl", seed=3, cfg=6.0, out_dir=folder, engine=engine, **SMALL)
    score(folder, ["clip", "aesthetic"], model="tiny-clip", progress=False)
    return folder


def test_parquet_round_trip_has_one_row_per_image_with_settings_scores_and_bytes(run_folder, tmp_path):
    import pandas as pd
    from PIL import Image

    from sdxl_nb.analysis import load_jobs
    from sdxl_nb.analysis.exporting import export

    out = export(run_folder, tmp_path / "runs.parquet")
    table = pd.read_parquet(out)
    frame = load_jobs(run_folder)
    assert len(table) == 3 == frame["image_path"].notna().sum()
    assert table["cfg"].tolist() == [4.0, 4.0, 6.0] and table["seed"].tolist() == [1, 2, 3]
    assert table["clip_score"].tolist() == pytest.approx(frame["clip_score"].tolist())
    assert table["aesthetic_score"].notna().all()
    for _, row in table.iterrows():
        assert hashlib.sha256(row["image"]).hexdigest() == row["image_sha256"]
        assert (run_folder / row["image_path"]).read_bytes() == row["image"]  # the path is relative to the folder
        assert Image.open(io.BytesIO(row["image"])).size == (64, 64)
    assert "log" not in table.columns


def test_paths_only_leaves_the_images_out(run_folder, tmp_path):
    import pandas as pd

    from sdxl_nb.analysis.exporting import export

    table = pd.read_parquet(export(run_folder, tmp_path / "paths.parquet", images="path"))
    assert "image" not in table.columns and all((run_folder / path).is_file() for path in table["image_path"])


def test_a_datasets_folder_loads_back_with_decoded_images(run_folder, tmp_path):
    import datasets

    from sdxl_nb.analysis.exporting import export

    loaded = datasets.load_from_disk(str(export(run_folder, tmp_path / "runs_hf", to="hf")))
    assert loaded.num_rows == 3 and isinstance(loaded.features["image"], datasets.Image)
    assert loaded[2]["image"].size == (64, 64) and loaded[2]["prompt"] == "a (blue:1.2) kite"
    assert loaded[0]["clip_score"] is not None


@pytest.mark.parametrize("args, message", [
    (["{run}", "{tmp}/runs.csv", "--to", "csv"], "invalid choice: 'csv'"),
    (["{run}", "{tmp}/runs.parquet", "--images", "thumbnails"], "invalid choice: 'thumbnails'"),
    (["{tmp}", "{tmp}/runs.parquet"], "without a jobs.log"),
    (["{run}", "{run}/jobs.log"], "already exists"),
    (["{run}", "{tmp}/no/such/folder/runs.parquet"], "is not a folder"),
])
def test_bad_export_input_is_one_line_exit_2_and_writes_nothing(run_folder, tmp_path, capsys, args, message):
    from sdxl_nb.cli import main

    before = sorted(tmp_path.rglob("*"))
    try:
        code = main(["export", *[arg.format(run=run_folder, tmp=tmp_path) for arg in args]])
    except SystemExit as usage_error:  # argparse's own refusals exit from inside the parser
        code = usage_error.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before


def test_the_cli_writes_the_parquet_file(run_folder, tmp_path, capsys):
    import pandas as pd

    from sdxl_nb.cli import main

    assert main(["export", str(run_folder), str(tmp_path / "cli.parquet")]) == 0
    assert f"wrote {tmp_path / 'cli.parquet'}" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "cli.parquet")) == 3


def test_keys_of_mixed_kinds_travel_as_json_text(tmp_path):
    import json

    import pandas as pd

    from sdxl_nb.analysis.exporting import export

    images = [{"index": 0, "seed": 1, "path": "a.png", "sha256": "0" * 64}]
    records = [{"schema": 1, "job_id": f"j{i}", "mode": "txt2img", "status": "ok", "prompt": "x", "images": images,
                "newer_key": value} for i, value in enumerate(["text", 7, [1, {"a": 2}], 2 ** 80])]
    (tmp_path / "jobs.log").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    table = pd.read_parquet(export(tmp_path, tmp_path / "out.parquet", images="path"))
    assert [json.loads(value) for value in table["newer_key"]] == ["text", 7, [1, {"a": 2}], 2 ** 80]
