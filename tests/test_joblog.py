"""jobs.log: whole lines only, under concurrency, torn tails and failed writes."""

import json
import os
import subprocess
import threading

import pytest

from sdxl_nb.record import joblog
from sdxl_nb.record.joblog import append_record, iter_records, read_records
from tests.conftest import PYTHON, python_env


def test_append_and_read_back(tmp_path):
    log = tmp_path / "jobs.log"
    append_record(log, {"job_id": "a", "value": float("nan"), "text": "ünï\ncode"})
    append_record(log, {"job_id": "b"})
    records = read_records(log)
    assert [r["job_id"] for r in records] == ["a", "b"]
    assert records[0]["value"] is None and records[0]["text"] == "ünï\ncode"
    assert log.read_bytes().count(b"\n") == 2


def test_a_torn_tail_is_reported_and_the_next_record_starts_on_its_own_line(tmp_path):
    log = tmp_path / "jobs.log"
    append_record(log, {"job_id": "a"})
    with open(log, "ab") as handle:
        handle.write(b'{"job_id": "torn", "pro')
    append_record(log, {"job_id": "c"})
    rows = list(iter_records(log))
    assert [r["job_id"] for _, r, _ in rows if r] == ["a", "c"]
    assert [(n, problem.split(":")[0]) for n, r, problem in rows if r is None] == [(2, "invalid JSON")]


def test_truncated_final_line_is_named(tmp_path):
    log = tmp_path / "jobs.log"
    log.write_bytes(b'{"job_id": "a"}\n{"job_id": "b"')
    problems = [problem for _, r, problem in iter_records(log) if r is None]
    assert problems == ["truncated line (no newline at end of file)"]


def test_a_short_write_leaves_no_partial_line(tmp_path, monkeypatch):
    log = tmp_path / "jobs.log"
    append_record(log, {"job_id": "a"})
    before = log.read_bytes()
    real_write = os.write
    monkeypatch.setattr(joblog.os, "write", lambda fd, data: real_write(fd, data[:10]))
    with pytest.raises(OSError, match="short write"):
        append_record(log, {"job_id": "b", "pad": "x" * 100})
    assert log.read_bytes() == before


def test_threads_never_interleave(tmp_path):
    log = tmp_path / "jobs.log"
    payload = "y" * 5000

    def writer(n):
        for i in range(40):
            append_record(log, {"job_id": f"{n}-{i}", "payload": payload})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = read_records(log)
    assert len(records) == 160 and all(r["payload"] == payload for r in records)


def test_processes_never_interleave(tmp_path):
    log = tmp_path / "jobs.log"
    code = ("import sys; from sdxl_nb.record.joblog import append_record\n"
            "for i in range(60): append_record(sys.argv[1], {'job_id': sys.argv[2] + str(i), 'payload': 'z' * 20000})")
    procs = [subprocess.Popen([PYTHON, "-c", code, str(log), f"p{n}-"], env=python_env()) for n in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert len([json.loads(line) for line in lines[:-1]]) == 180
