"""Records that survive crashes: recovery at the next start, the folder audit, and the SIGKILL test."""

import json
import random
import subprocess
import threading
import time

import pytest

from sdxl_nb.record.events import events_log_path
from sdxl_nb.record.joblog import append_record, iter_records, read_records
from sdxl_nb.record.recovery import MARKER_PREFIX, TORN_RECORDS, JobMarker, recover, verify_folder
from sdxl_nb.record.store import TEMP_PREFIX, folder_lock, write_new_file
from tests.conftest import PYTHON, REPO, python_env

SCHEMA = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))


def base(job_id="a" * 32, started_at="2026-01-02T03:04:05.000+00:00"):
    return {"schema": 1, "job_id": job_id, "mode": "txt2img", "status": None, "error": None, "started_at": started_at,
            "finished_at": None, "model": {"id": "tiny-sdxl", "revision": "r", "source": "embedded", "dtype": "float32"},
            "device": {"type": "cpu", "name": "x"}, "scheduler": {"name": "Default", "class": None, "config": None},
            "style": {"name": "None / Raw", "hash": "0" * 12}, "prompt": "p", "negative_prompt": "", "styled_prompt": "p",
            "effective_negative_prompt": "", "steps": 2, "cfg": 5.0, "width": 64, "height": 64, "batch": 1, "seed": 1,
            "seeds": [1], "strength": None, "init_image": None, "mask_image": None, "images": [], "timings": {},
            "peak_memory_bytes": None, "events": [], "warnings": [], "notes": [], "env": {
                "python": "3", "torch": "t", "diffusers": "d", "transformers": "t", "sdxl_nb": "s", "cuda": None,
                "gpu": None, "deterministic": False}}


def validate(record):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(record, SCHEMA, format_checker=jsonschema.FormatChecker())


def events_text(folder):
    path = events_log_path(folder)
    return path.read_text(encoding="utf-8") if path.exists() else ""


def test_a_live_jobs_marker_is_left_alone(tmp_path):
    marker = JobMarker.create(tmp_path, base())
    assert not recover(tmp_path) and marker.path.exists()
    marker.close(remove=True)
    assert not marker.path.exists() and not recover(tmp_path)


def test_a_dead_jobs_marker_becomes_an_interrupted_record(tmp_path):
    (tmp_path / f"{MARKER_PREFIX}{'b' * 32}.json").write_text(json.dumps(base("b" * 32)), encoding="utf-8")
    report = recover(tmp_path)
    assert report.recovered_jobs == [("b" * 32, 0)]
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "interrupted" and "ended before recording it" in record["error"]
    assert record["events"][-1].startswith("recovered ")
    validate(record)
    assert not list(tmp_path.glob(f"{MARKER_PREFIX}*"))
    assert "RECOVERED in" in events_text(tmp_path) and "recorded job " + "b" * 32 in events_text(tmp_path)


def test_a_marker_whose_record_was_logged_is_just_removed(tmp_path):
    append_record(tmp_path / "jobs.log", {**base("c" * 32), "status": "ok"})
    (tmp_path / f"{MARKER_PREFIX}{'c' * 32}.json").write_text(json.dumps(base("c" * 32)), encoding="utf-8")
    (tmp_path / f"{MARKER_PREFIX}{'d' * 32}.json").write_bytes(b'{"job_id": "dd')  # killed while writing it
    report = recover(tmp_path)
    assert sorted(report.removed_markers) == [f"{MARKER_PREFIX}{'c' * 32}.json", f"{MARKER_PREFIX}{'d' * 32}.json"]
    assert [r["status"] for r in read_records(tmp_path / "jobs.log")] == ["ok"]


def test_a_torn_tail_is_moved_aside_and_said(tmp_path):
    log = tmp_path / "jobs.log"
    append_record(log, {"job_id": "a"})
    with open(log, "ab") as handle:
        handle.write(b'{"job_id": "torn", "pro')
    report = recover(tmp_path)
    assert report.torn_bytes == len(b'{"job_id": "torn", "pro')
    assert [problem for _, _, problem in iter_records(log)] == [None]
    assert (tmp_path / TORN_RECORDS).read_bytes() == b'{"job_id": "torn", "pro\n'
    assert "moved a torn jobs.log tail" in events_text(tmp_path)
    append_record(log, {"job_id": "b"})
    assert [r["job_id"] for r in read_records(log)] == ["a", "b"]


def test_leftover_temp_files_wait_for_live_writers(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}dead").write_bytes(b"half")
    done = threading.Event()
    with folder_lock(tmp_path, exclusive=False):  # a writer between its temp file and its link
        cleaner = threading.Thread(target=lambda: (recover(tmp_path), done.set()))
        cleaner.start()
        assert not done.wait(0.3)
        assert (tmp_path / f"{TEMP_PREFIX}dead").exists()
    cleaner.join(30)
    assert done.is_set() and not (tmp_path / f"{TEMP_PREFIX}dead").exists()
    assert f"removed 1 leftover temporary file(s) of a killed process: {TEMP_PREFIX}dead" in events_text(tmp_path)


def test_verify_folder_names_every_kind_of_problem(tmp_path):
    good = write_new_file(tmp_path, "good.png", b"good")
    changed = write_new_file(tmp_path, "changed.png", b"before")
    import hashlib

    images = [{"path": p.name, "sha256": hashlib.sha256(d).hexdigest(), "seed": 1, "index": i}
              for i, (p, d) in enumerate([(good, b"good"), (changed, b"before")])]
    images.append({"path": "gone.png", "sha256": "0" * 64, "seed": 1, "index": 2})
    append_record(tmp_path / "jobs.log", {"job_id": "a", "images": images})
    changed.write_bytes(b"after")
    write_new_file(tmp_path, "stray.png", b"stray")
    (tmp_path / f"{TEMP_PREFIX}x").write_bytes(b"")
    with open(tmp_path / "jobs.log", "ab") as handle:
        handle.write(b"{torn")
    check = verify_folder(tmp_path)
    assert not check.ok
    assert check.bad_lines == ["line 2: truncated line (no newline at end of file)"]
    assert (check.missing_images, check.changed_images, check.unlogged_images) == (["gone.png"], ["changed.png"],
                                                                                    ["stray.png"])
    assert check.leftovers == [f"{TEMP_PREFIX}x"]


def test_generate_cleans_up_before_its_job(run, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / f"{TEMP_PREFIX}leftover").write_bytes(b"half a png")
    result = run(prompt="after a crash", out_dir=tmp_path)
    assert not (tmp_path / f"{TEMP_PREFIX}leftover").exists()
    assert f"(before job {result.record['job_id']})" in events_text(tmp_path)
    assert verify_folder(tmp_path).ok


class ForkServer:
    """tests/kill_worker.py in a subprocess: the engine loads once; each trial forks a worker."""

    def __init__(self, out_dir):
        self.process = subprocess.Popen([PYTHON, str(REPO / "tests" / "kill_worker.py"), str(out_dir)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                        env=python_env())
        assert self.ask(None) == "ready"

    def ask(self, command):
        if command:
            self.process.stdin.write(command + "\n")
        return self.process.stdout.readline().strip()

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_breaks_the_record(tmp_path):
    """24 workers killed at random moments, then 4 at the narrow windows: after each, the next start's
    recovery leaves a folder whose every line parses, every logged image exists with its sha256, every
    PNG is logged, and nothing temporary is left."""
    out = tmp_path / "out"
    server = ForkServer(out)
    rng = random.Random(20260101)
    try:
        for trial in range(24):
            pid = server.ask(f"fork {trial} none")
            time.sleep(rng.uniform(0.05, 0.8))
            assert server.ask(f"kill {pid}") == "dead"
            recover(out)
            check = verify_folder(out)
            assert check.ok, (trial, check)
        for trial, point in enumerate(["after-first-image", "before-link", "mid-append", "after-append"], 100):
            pid = server.ask(f"fork {trial} {point}")
            assert server.ask(f"wait {pid}") == "9", point  # it died of SIGKILL where we meant it to
            report = recover(out)
            check = verify_folder(out)
            assert check.ok, (point, check)
            expected = {"after-first-image": "recorded job", "before-link": "leftover temporary file",
                        "mid-append": "torn jobs.log tail", "after-append": "stale job marker"}[point]
            assert any(expected in line for line in report.lines()), (point, report.lines())
    finally:
        server.close()
    records = read_records(out / "jobs.log")
    for record in records:
        validate(record)
    statuses = [r["status"] for r in records]
    assert statuses.count("ok") >= 1 and statuses.count("interrupted") >= 5  # the kills did land mid-job
    assert len({r["job_id"] for r in records}) == len(records)  # no job recorded twice
    recovered = [r for r in records if r["status"] == "interrupted"]
    assert any(r["images"] for r in recovered)  # images saved before a kill are recorded, not orphaned


def test_cli_verify_reports_then_repairs(tmp_path, capsys):
    from sdxl_nb.cli import main

    append_record(tmp_path / "jobs.log", {**base("e" * 32), "status": "ok"})
    (tmp_path / f"{TEMP_PREFIX}dead").write_bytes(b"half")
    (tmp_path / f"{MARKER_PREFIX}{'f' * 32}.json").write_text(json.dumps(base("f" * 32)), encoding="utf-8")
    live = JobMarker.create(tmp_path, base("9" * 32))
    try:
        assert main(["verify", "--out", str(tmp_path)]) == 1
        out = capsys.readouterr().out.splitlines()
        assert f"left by a killed process (sdxl-nb verify --repair removes it): {TEMP_PREFIX}dead" in out
        assert f"job still running: {MARKER_PREFIX}{'9' * 32}.json" in out
        assert out[-1] == f"{tmp_path}: problems found"
        assert main(["verify", "--out", str(tmp_path), "--repair"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("repaired: removed 1 leftover temporary file(s)")
        assert out[1].startswith(f"repaired: recorded job {'f' * 32} as interrupted with 0 image(s)")
        assert out[-1] == f"{tmp_path}: ok"
    finally:
        live.close(remove=True)
    assert [r["job_id"] for r in read_records(tmp_path / "jobs.log")] == ["e" * 32, "f" * 32]
    assert main(["verify", "--out", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_kernel_interrupt_records_the_images_finished_before_it(engine, run, tmp_path):
    def interrupt(stage, indices, **_context):
        if stage == "denoise" and indices == [1]:
            raise KeyboardInterrupt  # what Jupyter's "interrupt kernel" raises mid-run

    engine.fault_hook = interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            run(prompt="ctrl-c", batch=3, chunk_size=1, out_dir=tmp_path)
    finally:
        engine.fault_hook = None
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "interrupted" and record["error"].startswith("interrupted (KeyboardInterrupt)")
    assert [i["seed"] for i in record["images"]] == [1]
    assert verify_folder(tmp_path).ok
