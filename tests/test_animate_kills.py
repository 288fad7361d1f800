"""`sdxl-nb animate` SIGKILLed at random moments: after recovery every frame, grid, GIF and WebP is named by a record."""

from __future__ import annotations

import json
import random
import subprocess
import time

import pytest

from sdxl_nb.audit.report import run_audit
from sdxl_nb.cli import main
from sdxl_nb.record.files import named_files
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.recovery import OUTPUT_SUFFIXES, RECOVERED_ERROR, verify_folder
from tests.conftest import PYTHON, REPO, python_env

RANDOM_KILLS = 12
MAX_TRIAL_S = 3.0  # no random kill waits longer than this, so the test's time is bounded
# Deterministic kills in the narrow windows of an animation (file numbers: frames 1-4, grid 5, GIF 6, WebP 7).
NARROW = {"write-1": "first frame published", "write-5": "grid published, no GIF yet",
          "write-6": "GIF published, no WebP yet", "link-7": "WebP linked, not yet journalled",
          "mid-append": "record half appended", "after-append": "record appended, marker left"}


class AnimateForkServer:
    """tests/animate_kill_worker.py in a subprocess: the engine loads once; each trial forks a CLI worker."""

    def __init__(self, out_dir):
        self.process = subprocess.Popen([PYTHON, str(REPO / "tests" / "animate_kill_worker.py"), str(out_dir)],
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


def repair(out) -> None:
    """`sdxl-nb verify --out DIR --repair`: what the next job would do; the folder is clean afterwards."""
    assert main(["verify", "--out", str(out), "--repair"]) == 0


@pytest.mark.slow
def test_sigkilled_animations_leave_every_file_named_by_a_record(tmp_path, capsys):
    out = tmp_path / "out"
    server = AnimateForkServer(out)
    rng = random.Random(20260615)
    started = time.monotonic()
    try:
        pid = server.ask("fork 1 1 none")  # one whole job first: how long a job takes here
        assert server.ask(f"wait {pid}") == "0", (tmp_path / "worker_errors.log").read_text()
        job_s = time.monotonic() - started
        for trial in range(RANDOM_KILLS):
            # Each worker runs jobs back to back; a kill lands in any phase of a job (or between two).
            pid = server.ask(f"fork {trial + 10} 0 none")
            time.sleep(rng.uniform(0.0, min(MAX_TRIAL_S, 2.5 * job_s)))
            assert server.ask(f"kill {pid}") == "dead"
            if trial % 2 == 0:
                repair(out)
                assert verify_folder(out).ok, trial
            # odd trials: the next worker's first job recovers the folder before it starts
        for trial, point in enumerate(NARROW, 100):
            pid = server.ask(f"fork {trial} 1 {point}")
            assert server.ask(f"wait {pid}") == "9", (point, (tmp_path / "worker_errors.log").read_text())
            repair(out)
            check = verify_folder(out)
            assert check.ok, (point, NARROW[point], check)
    finally:
        server.close()
    capsys.readouterr()
    assert not (tmp_path / "worker_errors.log").exists()

    records = read_records(out / "jobs.log")
    assert len({r["job_id"] for r in records}) == len(records)  # no job recorded twice
    statuses = [r["status"] for r in records]
    assert statuses.count("ok") >= 2 and statuses.count("interrupted") >= 8  # the kills did land mid-job
    recovered = [r for r in records if r["status"] == "interrupted"]
    assert all(r["error"] == RECOVERED_ERROR and r["mode"] == "animate" for r in recovered)
    assert any(r["frames"] for r in recovered) and any(r["grid"] for r in recovered)
    assert any(len(r["animations"]) == 1 for r in recovered)  # killed between the GIF and the WebP
    for record in recovered:  # a recovered record lists its frames as the record of a finished job would
        assert sorted(f["index"] for f in record["frames"]) == sorted(i["index"] for i in record["images"])
        assert all(f["sha256"] and f["path"] for f in record["frames"])
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    for record in records:
        jsonschema.validate(record, schema, format_checker=jsonschema.FormatChecker())

    named = {entry["path"] for record in records for _role, entry in named_files(record)}
    written = {path.name for path in out.iterdir() if path.suffix in OUTPUT_SUFFIXES}
    assert written and written <= named, sorted(written - named)
    assert {path.suffix for path in out.iterdir()} >= {".png", ".gif", ".webp"}
    assert main(["verify", "--out", str(out)]) == 0
    audit = run_audit(out)
    assert audit.integrity.untracked == [] and audit.integrity.leftovers == [] and audit.ok, audit.problems()
    assert main(["audit", str(out)]) == 0
    assert time.monotonic() - started < 240


@pytest.mark.slow
def test_recovered_animations_rerun_bit_exact_under_the_recorded_thread_count(tmp_path, engine):
    """The workers ran with one CPU thread (torch.set_num_threads(1)); the audit names another count as drift,
    and under the recorded one every frame of every job, the recovered ones included, re-runs bit-exact."""
    import torch

    out = tmp_path / "out"
    server = AnimateForkServer(out)
    try:
        for trial, point in enumerate(["write-3", "write-6", "none"], 200):
            pid = server.ask(f"fork {trial} 1 {point}")
            assert server.ask(f"wait {pid}") == ("0" if point == "none" else "9"), point
    finally:
        server.close()
    repair(out)
    records = read_records(out / "jobs.log")
    assert [r["status"] for r in records] == ["interrupted", "interrupted", "ok"]
    assert all(r["env"]["cpu_threads"] == 1 for r in records)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        drift = run_audit(out, engine=engine).environment_drift
        assert list(drift["differences"]) == ["cpu_threads 1 -> 2"] * 3
        torch.set_num_threads(1)
        report = run_audit(out, rerun="all", engine=engine)
    finally:
        torch.set_num_threads(threads)
    assert report.ok and report.environment_drift.empty, report.problems()
    assert list(report.reruns["verdict"]) == ["bit-exact"] * (3 + 4 + 4)
