"""What earlier jobs say about the next one: a model's recorded load times, for the lab's load ETA."""

from __future__ import annotations

import json
import os
import re
import statistics
from datetime import datetime
from pathlib import Path

from sdxl_nb.record.events import events_log_path
from sdxl_nb.record.joblog import JOBS_LOG

# Loads made before any job (the lab's Load button) have no jobs.log record; their events-log
# line carries this mark so they are counted once (a job's own load is in its record's timings).
LOAD_WITHOUT_JOB = "before any job"
_LOAD_LINE = re.compile(r"^\[(?P<stamp>[^]]+)\] MODEL LOADED (?P<id>\S+) \(revision [^)]*\) in (?P<s>[0-9.]+) s on (?P<device>\S+) "
                        rf"as \S+, {LOAD_WITHOUT_JOB}$")


def load_event_line(model_id: str, revision: str, load_s: float, device: str, dtype: str) -> str:
    """The events-log line of a load made before any job (read back by `load_times`)."""
    return f"MODEL LOADED {model_id} (revision {revision}) in {load_s:.2f} s on {device} as {dtype}, {LOAD_WITHOUT_JOB}"


_ENGINE_LINE = re.compile(r"^\[[^]]+\] ENGINE STARTED in (?P<s>[0-9.]+) s on (?P<device>\S+) ")


def engine_start_line(start_s: float, device: str) -> str:
    """The events-log line of the kernel's engine being made (torch and diffusers imported): a first load waits for it."""
    return f"ENGINE STARTED in {start_s:.2f} s on {device} (torch and diffusers imported)"


def engine_start_eta(out_dir: str | os.PathLike, device: str | None = None, last: int = 5) -> float | None:
    """Expected time to make the engine: the median of its last `last` recorded starts, None when never recorded."""
    wanted = _device_type(device)
    events = events_log_path(out_dir)
    if not events.is_file():
        return None
    times = []
    with open(events, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = _ENGINE_LINE.search(line.rstrip("\n"))
            if match and wanted in (None, _device_type(match["device"])):
                times.append(float(match["s"]))
    return statistics.median(times[-last:]) if times else None


def _device_type(device: str | None) -> str | None:
    return None if device is None else device.split(":", 1)[0]


def load_times(out_dir: str | os.PathLike, model_id: str, device: str | None = None) -> list[float]:
    """Seconds each earlier load of a model took (oldest first): jobs.log `timings.load_s` of its records
    (0 means it was already loaded, so those are skipped) plus loads made before any job.

    `device` ("cpu", "cuda", "cuda:1") keeps only loads on that kind of device.
    """
    wanted = _device_type(device)
    times: list[tuple[datetime, float]] = []
    log = Path(out_dir) / JOBS_LOG
    needle = json.dumps(model_id, ensure_ascii=False)[1:-1]
    if log.is_file():
        with open(log, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if needle not in line:  # cheap filter before parsing: logs grow long
                    continue
                try:
                    record = json.loads(line)
                    load_s = record["timings"]["load_s"]
                    same = record["model"]["id"] == model_id
                    kind = (record.get("device") or {}).get("type")
                    # Local wall-clock time without zone, as the events log writes it.
                    when = datetime.fromisoformat(record["started_at"]).astimezone().replace(tzinfo=None)
                except (ValueError, KeyError, TypeError):
                    continue
                if same and isinstance(load_s, (int, float)) and load_s > 0 and wanted in (None, kind):
                    times.append((when, float(load_s)))
    events = events_log_path(out_dir)
    if events.is_file():
        with open(events, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                match = _LOAD_LINE.search(line.rstrip("\n"))
                if match and match["id"] == model_id and wanted in (None, _device_type(match["device"])):
                    try:
                        times.append((datetime.strptime(match["stamp"], "%Y-%m-%d %H:%M:%S"), float(match["s"])))
                    except ValueError:
                        continue
    return [seconds for _, seconds in sorted(times, key=lambda pair: pair[0])]


def load_eta(out_dir: str | os.PathLike, model_id: str, device: str | None = None, last: int = 5) -> float | None:
    """Expected load time of a model: the median of its last `last` recorded loads, None when never loaded."""
    times = load_times(out_dir, model_id, device)
    return statistics.median(times[-last:]) if times else None
