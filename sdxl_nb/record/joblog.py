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
SCHEMA_VERSION = 1


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


def iter_records(log_path: str | os.PathLike) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield (line number, record or None, problem or None) for every non-empty line."""
    with open(log_path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                problem = "truncated line (no newline at end of file)" if not raw.endswith(b"\n") else f"invalid JSON: {exc}"
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
            record = json.loads(line) if line.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_records(log_path: str | os.PathLike) -> list[dict]:
    """All well-formed records of a jobs.log (bad lines are skipped; see iter_records for them)."""
    if not Path(log_path).exists():
        return []
    return [record for _, record, _ in iter_records(log_path) if record is not None]
