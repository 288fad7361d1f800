"""The job queue: order, cancel, stop, bad input, loads with their recorded time, failures and held jobs as data."""

import threading
import time

import pytest

from sdxl_nb.errors import InputError
from sdxl_nb.jobs.queue import JobQueue, describe_progress
from sdxl_nb.record.history import load_eta
from sdxl_nb.record.joblog import read_records
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import SMALL


def request(seed=1, **fields):
    return GenerationRequest(**{"prompt": "a fox", "model": "tiny-sdxl", "seed": seed, **SMALL, **fields})


@pytest.fixture
def queue(engine, tmp_path):
    return JobQueue(engine=engine, out_dir=tmp_path / "out")


def blocker(queue):
    """Hold the worker inside the first job's first step until released (makes queue states observable)."""
    entered, release = threading.Event(), threading.Event()

    def listener(event):
        if event["type"] == "progress" and not entered.is_set():
            entered.set()
            release.wait(60)

    queue.subscribe(listener)
    return entered, release


def test_jobs_run_one_at_a_time_in_submission_order(queue, tmp_path):
    started = []
    queue.subscribe(lambda e: e["type"] == "started" and started.append(e["job_id"]))
    jobs = [queue.submit(request(seed=s)) for s in (5, 6, 7)]
    assert queue.wait_idle(120)
    assert [job.status for job in jobs] == ["ok", "ok", "ok"]
    assert started == [job.id for job in jobs]
    assert [r["seed"] for r in read_records(tmp_path / "out" / "jobs.log")] == [5, 6, 7]
    assert jobs[0].result.images and jobs[0].result.seeds == [5]


def test_every_view_hears_queued_before_started_even_when_a_listener_is_slow(queue):
    """The worker starts a job only after its "queued" event went out to every listener."""
    events = []

    def slow_listener(event):  # heard first: while it sleeps, an idle worker would start the job if it could
        if event["type"] == "queued":
            time.sleep(0.5)

    queue.subscribe(slow_listener)
    queue.subscribe(lambda event: events.append(event["type"]))
    job = queue.submit(request(seed=4))
    assert queue.wait_idle(120) and job.status == "ok"
    assert events[0] == "queued" and events[1] == "started" and events[-1] == "finished"


def test_cancel_removes_a_waiting_job_and_cannot_cancel_the_running_one(queue, tmp_path):
    entered, release = blocker(queue)
    first = queue.submit(request(seed=1))
    assert entered.wait(60)
    second, third = queue.submit(request(seed=2)), queue.submit(request(seed=3))
    assert [job.id for job in queue.pending()] == [second.id, third.id]
    assert queue.cancel(second.id) and not queue.cancel(first.id)
    release.set()
    assert queue.wait_idle(120)
    assert (first.status, second.status, third.status) == ("ok", "cancelled", "ok")
    assert [r["seed"] for r in read_records(tmp_path / "out" / "jobs.log")] == [1, 3]


def test_stop_ends_the_running_job_between_steps_and_keeps_finished_images(queue, tmp_path):
    def stop_in_second_chunk(event):
        if event["type"] == "progress" and event["progress"]["chunk"] == 2:
            queue.stop()

    queue.subscribe(stop_in_second_chunk)
    job = queue.submit(request(seed=1, batch=3, steps=3), chunk_size=1)
    assert job.wait(120)
    assert job.status == "interrupted"
    assert job.result.seeds == [1]
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["status"] == "interrupted" and len(record["images"]) == 1


@pytest.mark.parametrize("fields, chunk, expected", [
    (dict(batch=0), None, "batch 0 is out of range"),
    (dict(model="no/such-model"), None, "unknown model"),
    (dict(width=100), None, "multiple of 8"),
    (dict(batch=2), 3, "chunk size 3 is out of range"),
])
def test_bad_input_raises_one_line_and_queues_or_writes_nothing(queue, tmp_path, fields, chunk, expected):
    with pytest.raises(InputError) as info:
        queue.submit(request(**fields), chunk_size=chunk)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert queue.jobs() == []
    assert not (tmp_path / "out").exists()


def test_load_job_reports_stages_and_its_time_feeds_the_next_load_eta(tmp_path):
    from sdxl_nb.backends.local import Engine

    out = tmp_path / "out"
    queue = JobQueue(engine=Engine(device="cpu"), out_dir=out)
    seen = []
    queue.subscribe(lambda e: seen.append((e["type"], e.get("stage"))))
    assert load_eta(out, "tiny-sdxl") is None
    job = queue.submit_load("tiny-sdxl")
    assert job.wait(120) and job.status == "ok"
    stages = [stage for kind, stage in seen if kind == "stage"]
    assert stages[-4:] == ["text encoders", "UNet", "VAE", "moving to cpu"]
    assert ("loaded", None) in seen and queue.loaded_models() == ["tiny-sdxl"]
    assert load_eta(out, "tiny-sdxl") == pytest.approx(job.result["load_s"], abs=0.01)
    again = queue.submit_load("tiny-sdxl")
    assert again.wait(60) and again.result["already_loaded"]


def test_runtime_failure_is_delivered_as_data_and_the_worker_goes_on(queue, engine, monkeypatch):
    real_run = engine.run
    calls = []

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("device fell over\nsecond line")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(engine, "run", failing_once)
    failed, ok = queue.submit(request(seed=1)), queue.submit(request(seed=2))
    assert queue.wait_idle(120)
    assert failed.status == "failed" and failed.error == "device fell over"
    assert ok.status == "ok"


def test_memory_precheck_holds_a_risky_request_before_anything_is_written(queue, tmp_path, monkeypatch):
    import sdxl_nb.backends.local.core as core

    monkeypatch.setattr(core, "free_memory_bytes", lambda device: 1024)
    messages = []
    queue.subscribe(lambda e: e["type"] == "memory" and messages.append(e["message"]))
    job = queue.submit(request(seed=1), check_memory=True)
    assert job.wait(120) and job.status == "held"
    assert job.memory.risky and messages[0].startswith("memory check: risky. memory: this job needs about")
    assert "but only 0.0 GiB is free" in messages[0]
    assert not (tmp_path / "out" / "jobs.log").exists()


def test_progress_text_gives_step_elapsed_and_eta():
    fraction, text = describe_progress({"step": 2, "total": 4, "chunk": 2, "chunks": 2, "elapsed": 6.0})
    assert fraction == pytest.approx(0.75)
    assert text == "step 2/4 of chunk 2/2 · 6.0 s elapsed · ETA 2.0 s"
    assert describe_progress({"step": 4, "total": 4, "elapsed": 1.0})[1] == "step 4/4 · 1.0 s elapsed"


def test_an_animation_the_chosen_backend_cannot_run_is_refused_at_submit(queue, engine, tmp_path):
    from sdxl_nb.backends.comfy.backend import ComfyBackend
    from sdxl_nb.jobs.animate import AnimationRequest

    slerp = AnimationRequest(prompt="a fox", mode="slerp", frames=2, seed=1, seed_end=2, steps=2)
    assert queue.backend_capabilities() is engine.capabilities
    queue.configure(backend=ComfyBackend("http://127.0.0.1:9"))  # chosen, applied before the next job
    assert not queue.backend_capabilities().previews and not queue.backend_capabilities().noise_mix
    with pytest.raises(InputError, match="the ComfyUI backend cannot run slerp between seeds' noise"):
        queue.submit_animation(slerp)
    with pytest.raises(InputError, match="cannot run prompt travel"):
        queue.submit_animation(AnimationRequest(prompt="a fox", prompt_end="a wolf", mode="prompt-travel", frames=2))
    assert queue.jobs() == [] and not (tmp_path / "out").exists()
    queue.configure(local=True)
    assert queue.backend_capabilities() is engine.capabilities
    job = queue.submit_animation(slerp)
    assert job.wait(120) and job.status == "ok"


def test_a_sweep_with_a_failed_cell_says_which_cell_and_why(queue, engine, monkeypatch):
    from sdxl_nb.errors import GenerationError
    from sdxl_nb.jobs.sweep import axis

    real_run = engine.run

    def run(plan, loaded, hooks=None):
        if plan.request.cfg == 6:
            raise GenerationError("out of memory on cpu (simulated)")
        return real_run(plan, loaded, hooks)

    monkeypatch.setattr(engine, "run", run)
    job = queue.submit_sweep(request(), axis("cfg", [2, 6]))
    assert job.wait(120) and job.status == "failed" and job.kind == "sweep"
    assert job.error == "1 of 2 cells failed: cfg: 6: out of memory on cpu (simulated)"
    assert job.result.grid_path is not None  # the other cell's image still makes the grid
