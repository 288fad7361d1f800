"""Concurrency: two threads in one kernel queue on the engine; two processes share one output folder."""

import subprocess
import threading
import time

import pytest

from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.recovery import verify_folder
from tests.conftest import PYTHON, python_env


def test_two_generate_calls_at_once_queue_instead_of_colliding(engine, run, tmp_path, monkeypatch):
    from sdxl_nb.backends.local.run_loop import RunLoop

    real_load, real_inner = engine.load, RunLoop.run
    entered, spans = {}, {}
    a_running, b_waiting = threading.Event(), threading.Event()

    def load_spy(*args, **kwargs):  # the job's first engine call, before the engine's lock
        name = threading.current_thread().name
        entered.setdefault(name, time.perf_counter())
        if name == "b":
            b_waiting.set()
        return real_load(*args, **kwargs)

    def inner_spy(self):  # inside the lock: the device work
        start = time.perf_counter()
        try:
            return real_inner(self)
        finally:
            spans[self.plan.request.prompt] = (start, time.perf_counter())

    monkeypatch.setattr(engine, "load", load_spy)
    monkeypatch.setattr(RunLoop, "run", inner_spy)

    def hold_until_b_waits(progress):
        a_running.set()
        assert b_waiting.wait(60)  # b has asked for the engine while a still holds it
        time.sleep(0.2)  # b is now blocked on the lock (it cannot get past it while a runs)

    results, errors = {}, []

    def job(prompt, **fields):
        try:
            results[prompt] = run(prompt=prompt, batch=2, steps=3, out_dir=tmp_path, **fields)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    first = threading.Thread(target=job, args=("a",), kwargs={"on_progress": hold_until_b_waits}, name="a")
    first.start()
    assert a_running.wait(60)
    second = threading.Thread(target=job, args=("b",), name="b")
    second.start()
    first.join(120)
    second.join(120)
    assert errors == []
    assert entered["b"] < spans["a"][1]  # they did compete ...
    assert spans["b"][0] >= spans["a"][1]  # ... and b ran only after a had finished
    records = read_records(tmp_path / "jobs.log")
    assert sorted(r["prompt"] for r in records) == ["a", "b"]
    assert all(r["status"] == "ok" and len(r["images"]) == 2 for r in records)
    assert {r["job_id"] for r in records} == {results["a"].record["job_id"], results["b"].record["job_id"]}
    assert verify_folder(tmp_path).ok


SCRIPT = """
import sys
from sdxl_nb.jobs.generate import generate
for job in range(3):
    generate(prompt=f"process {sys.argv[2]} job {job}", width=64, height=64, steps=2, batch=2,
             seed=int(sys.argv[2]) * 10 + job, out_dir=sys.argv[1])
"""


@pytest.mark.slow
def test_two_processes_share_one_folder(tmp_path):
    procs = [subprocess.Popen([PYTHON, "-c", SCRIPT, str(tmp_path), str(n)], env=python_env(),
                              stderr=subprocess.PIPE, text=True) for n in (1, 2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    records = read_records(tmp_path / "jobs.log")
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    assert sorted(r["seed"] for r in records) == [10, 11, 12, 20, 21, 22]
    check = verify_folder(tmp_path)
    assert check.ok, check
    assert len(list(tmp_path.glob("*.png"))) == 12


def test_jobs_opening_one_new_folder_at_once_all_pass_its_check(tmp_path):
    """Step 1's folder probe: creating the same new folder from many threads (or processes) never fails one of them,
    and another job's recovery never takes the probe for a killed writer's temporary file."""
    from concurrent.futures import ThreadPoolExecutor

    from sdxl_nb.record.recovery import recover
    from sdxl_nb.record.store import PROBE_PREFIX, TEMP_PREFIX, open_output_dir

    folder = tmp_path / "a" / "b" / "out"
    assert not PROBE_PREFIX.startswith(TEMP_PREFIX)
    with ThreadPoolExecutor(8) as pool:  # probes and recoveries interleaved
        outcomes = list(pool.map(lambda i: open_output_dir(folder) if i % 2 else recover(folder), range(32)))
    assert sum(len(c) for c in outcomes[1::2]) == 3  # each folder was made once, by one of them
    assert not any(outcomes[::2]) and sorted(p.name for p in folder.iterdir()) == []
