"""A full disk at each point of a job: before it (bad input), at its marker, its images, its journal, its record
and its events block. Every job is recorded, or the error says why not; no empty marker, no torn line."""

import errno
import os

import pytest

from sdxl_nb.cli import main
from sdxl_nb.errors import GenerationError, InputError
from sdxl_nb.record import events, joblog, recovery, store
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.recovery import verify_folder
from tests.conftest import SMALL

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


class FullFile:
    """A file handle whose writes fail once `budget` writes have passed (as on a disk that just filled up)."""

    def __init__(self, handle, budget):
        self._handle, self._budget = handle, budget

    def write(self, data):
        if self._budget[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget[0] -= 1
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def fill_files(monkeypatch, module, match: str, writes_allowed: int = 0):
    """Writes through `module`'s open() to files whose name holds `match` fail after `writes_allowed` writes."""
    budget = [writes_allowed]

    def fake_open(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        return FullFile(handle, budget) if match in os.path.basename(str(path)) else handle

    monkeypatch.setattr(module, "open", fake_open, raising=False)


def fill_descriptor_writes(monkeypatch, suffix: str):
    """os.write to a file whose path ends with `suffix` (jobs.log, app_events.log) writes a little, then fails."""
    real = os.write

    def write(fd, data):
        if _path_of(fd).endswith(suffix):
            real(fd, data[:7])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def leftovers(out):
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".sdxl_nb-") and p.name != ".sdxl_nb.lock")


@pytest.fixture
def job(engine):
    from sdxl_nb.jobs.generate import generate

    def _job(out, **fields):
        return generate(out_dir=out, engine=engine, **{**SMALL, "seed": 3, "prompt": "full", **fields})

    return _job


def test_full_before_the_job_is_bad_input_and_writes_nothing(job, tmp_path, monkeypatch):
    out = tmp_path / "out"
    job(out)
    before = {p.name: p.stat().st_size for p in out.rglob("*")}
    fill_files(monkeypatch, store, "probe")
    with pytest.raises(InputError) as caught:
        job(out)
    assert str(caught.value) == f"output folder {str(out)!r} cannot be written: No space left on device"
    assert {p.name: p.stat().st_size for p in out.rglob("*")} == before
    with pytest.raises(InputError):
        job(tmp_path / "new" / "folder")
    assert not (tmp_path / "new").exists()  # the folders made for the probe went again


def test_cli_full_before_the_job_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    fill_files(monkeypatch, store, "probe")
    out = tmp_path / "out"
    code = main(["generate", "--prompt", "x", "--width", "64", "--height", "64", "--steps", "2", "--out", str(out)])
    assert code == 2
    assert capsys.readouterr().err == (f"sdxl-nb generate: error: output folder {str(out)!r} cannot be written: "
                                       "No space left on device\n")
    assert not out.exists()


def test_full_at_the_marker_leaves_no_marker_and_records_the_failure(job, tmp_path, monkeypatch):
    out = tmp_path / "out"
    fill_files(monkeypatch, recovery, ".sdxl_nb-job-")
    with pytest.raises(GenerationError) as caught:
        job(out)
    assert str(caught.value) == f"could not start the job in {out}: No space left on device; nothing was run or saved"
    assert leftovers(out) == [] and not list(out.glob("*.png"))
    (record,) = read_records(out / "jobs.log")
    assert record["status"] == "failed" and record["error"] == str(caught.value) and record["images"] == []


def test_full_at_the_marker_and_the_log_says_so(job, tmp_path, monkeypatch):
    out = tmp_path / "out"
    fill_files(monkeypatch, recovery, ".sdxl_nb-job-")
    fill_descriptor_writes(monkeypatch, "jobs.log")
    with pytest.raises(GenerationError, match=r"nothing was run or saved \(the job could not be recorded either\)$"):
        job(out)
    assert leftovers(out) == [] and (not (out / "jobs.log").exists() or (out / "jobs.log").read_bytes() == b"")


def test_full_at_the_journal_keeps_no_image_and_records_the_failure(job, tmp_path, monkeypatch):
    out = tmp_path / "out"
    fill_files(monkeypatch, recovery, ".sdxl_nb-job-", writes_allowed=1)  # the marker's first line, then full
    with pytest.raises(GenerationError, match="no image of this job was kept"):
        job(out, batch=2)
    assert leftovers(out) == [] and not list(out.glob("*.png"))
    (record,) = read_records(out / "jobs.log")
    assert record["status"] == "failed" and record["images"] == []
    assert verify_folder(out).ok


def test_full_at_the_record_keeps_the_images_and_the_next_job_records_them(job, tmp_path, monkeypatch):
    out = tmp_path / "out"
    fill_descriptor_writes(monkeypatch, "jobs.log")
    with pytest.raises(GenerationError) as caught:
        job(out, batch=2)
    message = str(caught.value)
    assert message == (f"the job's 2 file(s) were saved in {out} but jobs.log could not take its record (No space left "
                       "on device); its marker keeps them and the next job in this folder records the job")
    assert len(list(out.glob("*.png"))) == 2 and len(leftovers(out)) == 1  # the marker, with its journal
    assert not (out / "jobs.log").exists() or (out / "jobs.log").read_bytes() == b""  # no torn line
    monkeypatch.undo()
    job(out, prompt="after")  # room again: the job before is recorded first, with its two images
    first, second = read_records(out / "jobs.log")
    assert first["status"] == "interrupted" and len(first["images"]) == 2 and second["status"] == "ok"
    assert verify_folder(out).ok


def test_cli_full_at_the_record_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    fill_descriptor_writes(monkeypatch, "jobs.log")
    out = tmp_path / "out"
    code = main(["generate", "--prompt", "x", "--width", "64", "--height", "64", "--steps", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("sdxl-nb generate: failed: the job's 1 file(s) were saved in ")


def test_full_at_the_events_log_still_records_the_job(job, tmp_path, monkeypatch):
    out = tmp_path / "out"
    job(out, prompt="before")
    trail = (out / "logs" / "app_events.log").read_bytes()
    fill_descriptor_writes(monkeypatch, "app_events.log")
    result = job(out)
    assert result.status == "ok" and [r["status"] for r in read_records(out / "jobs.log")] == ["ok", "ok"]
    assert (out / "logs" / "app_events.log").read_bytes() == trail  # no torn block either
    assert leftovers(out) == []


def test_an_events_block_cut_short_is_taken_back(tmp_path, monkeypatch):
    events.write_event(tmp_path, "FIRST")
    before = events.events_log_path(tmp_path).read_bytes()
    fill_descriptor_writes(monkeypatch, "app_events.log")
    with pytest.raises(OSError):
        events.write_event(tmp_path, "SECOND", "more")
    assert events.events_log_path(tmp_path).read_bytes() == before
    assert events.try_write_event(tmp_path, "THIRD") is False


def test_a_short_jobs_log_write_is_taken_back(tmp_path, monkeypatch):
    joblog.append_record(tmp_path / "jobs.log", {"job_id": "a"})
    before = (tmp_path / "jobs.log").read_bytes()
    fill_descriptor_writes(monkeypatch, "jobs.log")
    with pytest.raises(OSError):
        joblog.append_record(tmp_path / "jobs.log", {"job_id": "b"})
    assert (tmp_path / "jobs.log").read_bytes() == before
