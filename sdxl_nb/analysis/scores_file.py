"""scores.jsonl beside jobs.log: one line per (image sha256, scorer, weights hash), appended whole, read defensively."""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path

from sdxl_nb.analysis.sources import LineProblem
from sdxl_nb.config.bounded_json import loads
from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import SCORES_FILE, append_record

# No line we write is near this; a received folder's file may hold lines of any length.
MAX_LINE_BYTES = 64 << 10
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCORER = re.compile(r"[a-z][a-z0-9_]{0,31}")


def scores_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / SCORES_FILE


def append_score(folder: Path, line: dict) -> None:
    """One score line, written with jobs.log's locked, whole-line append (never a torn line)."""
    append_record(scores_path(folder), line)


def _lines(handle):
    """(number, bytes or None for a line longer than MAX_LINE_BYTES, which is never held whole)."""
    number = 0
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := handle.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
            yield number, None
        else:
            yield number, raw


def _checked(raw: bytes) -> dict:
    """The line's entry; InputError naming what is wrong."""
    entry = loads(raw, "score line", max_chars=MAX_LINE_BYTES, max_depth=4)
    if not isinstance(entry, dict):
        raise InputError("not a JSON object")
    sha, scorer, weights, value = (entry.get(key) for key in ("image_sha256", "scorer", "weights", "value"))
    if not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        raise InputError("image_sha256 is not a sha256 in hex")
    if not (isinstance(scorer, str) and _SCORER.fullmatch(scorer)):
        raise InputError("scorer is not a short lower-case name")
    if not (isinstance(weights, str) and _SHA256.fullmatch(weights)):
        raise InputError("weights is not a sha256 in hex")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError("value is not a finite number")
    return entry


def read_scores(folder: str | os.PathLike, problems: list[LineProblem] | None = None) -> list[dict]:
    """The well-formed lines of a folder's scores.jsonl, in file order ([] when there is none). A bad line is
    skipped, listed in `problems` and warned about once per file."""
    path = scores_path(folder)
    if not path.is_file():
        return []
    entries, bad = [], []
    with open(path, "rb") as handle:
        for number, raw in _lines(handle):
            if raw is not None and not raw.strip():
                continue
            try:
                if raw is None:
                    raise InputError(f"line longer than {MAX_LINE_BYTES >> 10} KiB (no score line is)")
                entries.append(_checked(raw))
            except InputError as exc:
                bad.append(LineProblem(str(path), number, f"{exc}; skipped"))
    if bad:
        warnings.warn(f"{len(bad)} unreadable line(s) in {path} skipped; first: line {bad[0].line}: {bad[0].reason}",
                      stacklevel=3)
        if problems is not None:
            problems.extend(bad)
    return entries


def scored_keys(folder: str | os.PathLike) -> set[tuple[str, str, str]]:
    """(image sha256, scorer, weights hash) of every score already in the folder."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scorer rewrites nothing; load_jobs reports bad lines
        return {(e["image_sha256"], e["scorer"], e["weights"]) for e in read_scores(folder)}


def join_scores(frame, folders: list[Path], problems: list[LineProblem]):
    """The frame with a `<scorer>_score` column per scorer found in the folders' scores.jsonl, matched on
    image_sha256 (the latest line wins where one image was scored with several weights); unchanged without any."""
    latest: dict[str, dict[str, float]] = {}
    for folder in dict.fromkeys(folders):
        for entry in read_scores(folder, problems):
            latest.setdefault(entry["scorer"], {})[entry["image_sha256"]] = float(entry["value"])
    if not latest or "image_sha256" not in frame:
        return frame
    shas = frame["image_sha256"].astype(object)
    for scorer in sorted(latest):
        frame[f"{scorer}_score"] = shas.map(latest[scorer]).astype("float64")
    return frame
