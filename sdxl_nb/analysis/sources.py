"""Finds jobs.log files and reads them line by line: good records out, bad lines reported, never fatal."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import JOBS_LOG, MAX_LINE_BYTES, TOO_LONG

# Read this much at a time: memory stays flat however long the log is, and one block's parsed records
# still sit in the CPU cache while their columns are read out (larger blocks measured slower).
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class LineProblem:
    """A jobs.log line that could not be read as a record (skipped, everything else still loads)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LoggedRecord:
    """One record with where it came from; `folder` is the output folder its image paths are relative to."""

    log: Path
    line: int
    record: dict

    @property
    def folder(self) -> Path:
        return self.log.parent


def log_paths(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """Each source is a jobs.log file or an output folder holding one; InputError names a bad one."""
    paths: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / JOBS_LOG
            if not path.is_file():
                raise InputError(f"{str(source)!r} is a folder without a {JOBS_LOG}; accepted: a jobs.log file or "
                                 "an output folder that holds one")
        elif not path.is_file():
            raise InputError(f"{str(source)!r} does not exist; accepted: a jobs.log file or an output folder")
        resolved = path.resolve()
        if resolved not in paths:
            paths.append(resolved)
    if not paths:
        raise InputError("no jobs.log given; accepted: one or more jobs.log files or output folders")
    return paths


def _reason(exc: Exception, last: bool) -> str:
    message = str(exc)
    if "end of data" in message:
        if last:
            return "truncated line: no newline at the end of the file and the JSON stops early (an interrupted write)"
        return "torn line: the JSON stops early (an interrupted write)"
    return f"invalid JSON ({message})"


def parse_lines(lines: list[bytes], first_number: int, file: str, problems: list[LineProblem],
                last_is_unterminated: bool = False) -> tuple[list[int], list[dict]]:
    """Parse complete lines; return (line numbers, records) and append a LineProblem per bad line."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    numbers: list[int] = []
    records: list[dict] = []
    last_index = len(lines) - 1
    for offset, line in enumerate(lines):
        try:
            record = loads(line)
        except decode_error as exc:
            if line.strip():  # blank lines are not problems
                last = last_is_unterminated and offset == last_index
                problems.append(LineProblem(file, first_number + offset, _reason(exc, last)))
            continue
        if record.__class__ is dict:
            numbers.append(first_number + offset)
            records.append(record)
        else:
            problems.append(LineProblem(file, first_number + offset,
                                        f"not a JSON object (a JSON {type(record).__name__}); skipped"))
    return numbers, records


def iter_chunks(path: Path, problems: list[LineProblem],
                chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[list[int], list[dict]]]:
    """Yield (line numbers, records) a block at a time; bad lines go to `problems` with file and line."""
    file = str(path)
    number = 1
    tail = b""
    skipping = False  # inside a line longer than MAX_LINE_BYTES, already reported
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk_bytes)
            if not block:
                break
            if skipping:
                end = block.find(b"\n")
                if end < 0:
                    continue
                block, skipping, number = block[end + 1:], False, number + 1
            lines = (tail + block).split(b"\n") if tail else block.split(b"\n")
            tail = lines.pop()  # the line still being read (b"" when the block ended on a newline)
            if lines:
                yield parse_lines(lines, number, file, problems)
                number += len(lines)
            if len(tail) > MAX_LINE_BYTES:  # never held whole: a received log may hold a line of any length
                problems.append(LineProblem(file, number, TOO_LONG))
                tail, skipping = b"", True
    if tail:
        yield parse_lines([tail], number, file, problems, last_is_unterminated=True)


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: parsing allocates millions of containers and none form cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_logged_records(*sources: str | os.PathLike) -> tuple[list[LoggedRecord], list[LineProblem]]:
    """Every well-formed record of the given logs/folders, in file order, and the problems found."""
    problems: list[LineProblem] = []
    records: list[LoggedRecord] = []
    with gc_paused():
        for path in log_paths(sources):
            for numbers, chunk in iter_chunks(path, problems):
                records.extend(LoggedRecord(path, number, record)
                               for number, record in zip(numbers, chunk, strict=True))
    return records, problems
