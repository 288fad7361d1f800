"""Load ETA from the logs: earlier loads of the same model (jobs.log timings and loads made before any job)."""

from sdxl_nb.record import events
from sdxl_nb.record.history import load_eta, load_event_line, load_times
from sdxl_nb.record.joblog import append_record


def record(model, load_s, device="cpu", started="2025-01-01T10:00:00+00:00"):
    return {"model": {"id": model}, "device": {"type": device}, "timings": {"load_s": load_s}, "started_at": started}


def test_load_times_come_from_job_records_and_loads_before_any_job(tmp_path):
    log = tmp_path / "jobs.log"
    append_record(log, record("m/a", 4.0, started="2025-01-01T10:00:00+00:00"))
    append_record(log, record("m/a", 0.0))  # already loaded: not a load
    append_record(log, record("m/b", 9.0))
    append_record(log, record("m/a", 6.0, device="cuda", started="2025-01-01T10:05:00+00:00"))
    with open(log, "a", encoding="utf-8") as handle:
        handle.write('{"model": {"id": "m/a"}, "timings": {"load_s": "x"}\n')  # torn line is skipped
    events.write_event(tmp_path, load_event_line("m/a", "abc", 5.0, "cuda:0", "float16"))
    events.write_event(tmp_path, "MODEL LOADED m/a (revision abc) in 99.00 s on cpu as float32")  # a job's own load
    assert load_times(tmp_path, "m/a") == [4.0, 6.0, 5.0]
    assert load_times(tmp_path, "m/a", device="cuda") == [6.0, 5.0]
    assert load_eta(tmp_path, "m/a") == 5.0
    assert load_eta(tmp_path, "m/a", last=1) == 5.0
    assert load_eta(tmp_path, "m/c") is None
    assert load_eta(tmp_path / "nowhere", "m/a") is None
