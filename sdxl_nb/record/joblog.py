"""jobs.log: one JSON record per job per line, appended whole (one write, file lock, fsync)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import portalocker

from sdxl_nb.record.secrets import mask_data

JOBS_LOG = "jobs.log"
# Per-image scores beside jobs.log (sdxl_nb.analysis.scoring): appended the same way, never into jobs.log itself.
SCORES_FILE = "scores.jsonl"
SCHEMA_VERSION = 1
# Readers skip a longer line as one problem: no job record is near this size, and a received jobs.log may hold a
# line of any length.
MAX_LINE_BYTES = 16 << 20
TOO_LONG = f"line longer than {MAX_LINE_BYTES >> 20} MiB (no job record is); skipped"


def _jsonable(value):
    # NaN/inf are not JSON; a record must stay loadable by any JSON reader.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def encode_record(record: dict) -> bytes:
    """One line of UTF-8 JSON ending in a newline, secrets masked; raises if the record cannot be encoded."""
    # Callers mask too; this is the last line of defence for every record and PNG chunk written.
    line = json.dumps(mask_data(_jsonable(record)), ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str)
    return (line + "\n").encode("utf-8")


def append_record(log_path: str | os.PathLike, record: dict) -> None:
    """Append one record to jobs.log safely for several processes and threads.

    Under an exclusive lock on the log itself: if a killed writer left the file without a final
    newline, start on a fresh line (the torn line stays and is reported by readers); write the
    whole line in one call; if the write comes up short (disk full), cut the file back to where it
    was, so no torn line of ours is ever left; then fsync before releasing the lock.
    """
    data = encode_record(record)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        portalocker.lock(fd, portalocker.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and _last_byte(log_path, size) != b"\n":
            data = b"\n" + data
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {log_path} ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)


def _lines(handle) -> Iterator[bytes | None]:
    """The lines of a file, each at most MAX_LINE_BYTES (None in place of a longer one, which is never held whole)."""
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while True:  # the rest of the long line, a block at a time
                rest = handle.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
        else:
            yield raw


def iter_records(log_path: str | os.PathLike) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield (line number, record or None, problem or None) for every non-empty line."""
    with open(log_path, "rb") as handle:
        for number, raw in enumerate(_lines(handle), start=1):
            if raw is None:
                yield number, None, TOO_LONG
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a 5000-digit number, deep nesting
                problem = ("truncated line (no newline at end of file)" if not raw.endswith(b"\n")
                           else f"invalid JSON: {type(exc).__name__}: {str(exc)[:200]}")
                yield number, None, problem
                continue
            if not isinstance(record, dict):
                yield number, None, "not a JSON object"
                continue
            yield number, record, None


def tail_records(log_path: str | os.PathLike, max_bytes: int = 4 << 20) -> list[dict]:
    """The well-formed records in the last `max_bytes` of a jobs.log (the newest jobs; cheap on big logs)."""
    path = Path(log_path)
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - max_bytes))
        data = handle.read()
    lines = data.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first line is probably cut
    records = []
    for line in lines:
        try:
            record = json.loads(line) if line.strip() and len(line) <= MAX_LINE_BYTES else None
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_records(log_path: str | os.PathLike) -> list[dict]:
    """All well-formed records of a jobs.log (bad lines are skipped; see iter_records for them)."""
    if not Path(log_path).exists():
        return []
    return [record for _, record, _ in iter_records(log_path) if record is not None]
