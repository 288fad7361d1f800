"""A received folder's scores.jsonl: bad lines are skipped with a warning, never stop load_jobs, never join."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SHA = "a" * 64
GOOD = {"image_sha256": SHA, "scorer": "clip", "weights": "b" * 64, "value": 21.5}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A jobs.log of one image whose sha256 is SHA (no real file needed to join)."""
    folder = tmp_path_factory.mktemp("hostile")
    record = {"schema": 1, "job_id": "j1", "mode": "txt2img", "status": "ok", "prompt": "x", "cfg": 5.0, "seed": 1,
              "images": [{"index": 0, "seed": 1, "path": "a.png", "sha256": SHA}]}
    (folder / "jobs.log").write_text(json.dumps(record) + "\n", encoding="utf-8")
    return folder


def _write(folder, lines: list[bytes]) -> None:
    (folder / "scores.jsonl").write_bytes(b"".join(lines))


def test_bad_lines_are_skipped_warned_and_listed_while_good_ones_join(folder):
    from sdxl_nb.analysis import load_jobs, load_problems
    from sdxl_nb.analysis.scores_file import MAX_LINE_BYTES

    good = json.dumps(GOOD).encode() + b"\n"
    bad = [
        b"{not json\n",
        b"[1, 2]\n",
        json.dumps({**GOOD, "value": "high"}).encode() + b"\n",
        json.dumps({**GOOD, "image_sha256": "../../etc"}).encode() + b"\n",
        json.dumps({**GOOD, "scorer": "CLIP SCORE" * 10}).encode() + b"\n",
        json.dumps(GOOD).replace("21.5", "NaN").encode() + b"\n",
        b'{"a":' * 200 + b"1" + b"}" * 200 + b"\n",
        b'{"v": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n',
        b"\xff\xfe\n",
        json.dumps({**GOOD, "value": 1}).encode()[:-3],  # torn, no newline: last in the file
    ]
    _write(folder, [good, *bad[:-1], b"\n", bad[-1]])
    with pytest.warns(UserWarning, match=r"10 unreadable line\(s\)"):
        frame = load_jobs(folder)
    assert frame["clip_score"].tolist() == [21.5]
    problems = load_problems(frame)
    assert sorted(problems["line"]) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert problems["reason"].str.endswith("skipped").all()
    assert problems["reason"].str.len().max() < 400  # one readable line each, not the hostile text


def test_the_latest_line_wins_for_one_image_and_scorer(folder):
    from sdxl_nb.analysis import load_jobs

    lines = [json.dumps({**GOOD, "value": v, "weights": w * 64}).encode() + b"\n" for v, w in ((1.0, "c"), (2.0, "d"))]
    _write(folder, lines)
    assert load_jobs(folder)["clip_score"].tolist() == [2.0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_any_bytes_never_break_load_jobs(folder, chunks):
    from sdxl_nb.analysis import load_jobs

    _write(folder, [chunk + b"\n" for chunk in chunks])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = load_jobs(folder)
    assert len(frame) == 1
    if "clip_score" in frame:
        assert frame["clip_score"].dtype == "float64"


def test_images_outside_the_folder_are_never_opened_and_damaged_ones_are_skipped(tmp_path):
    import pandas as pd

    from sdxl_nb.analysis import export, score

    folder = tmp_path / "received"
    folder.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not for export")
    (folder / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    images = [{"index": i, "seed": 1, "path": path, "sha256": SHA}
              for i, path in enumerate([str(secret), "../secret.png", "damaged.png"])]
    record = {"schema": 1, "job_id": "j1", "mode": "txt2img", "status": "ok", "prompt": "x", "images": images}
    (folder / "jobs.log").write_text(json.dumps(record) + "\n", encoding="utf-8")
    done = score(folder, ["clip"], model="tiny-clip", progress=False)
    assert (done.written, done.missing) == (0, 3)
    assert not (folder / "scores.jsonl").exists()
    table = pd.read_parquet(export(folder, tmp_path / "out.parquet"))
    assert table["image"].tolist() == [None, None, (folder / "damaged.png").read_bytes()]
