"""jobs.log -> a pandas DataFrame with one row per image (or animation frame), built column by column."""

from __future__ import annotations

import os
from itertools import chain
from operator import itemgetter

import numpy as np
import pandas as pd

from sdxl_nb.analysis.columns import (
    IMAGE_FIELDS,
    JOB_FIELDS,
    KNOWN_IMAGE_KEYS,
    KNOWN_TOP_KEYS,
    NESTED_FIELDS,
    Codes,
    coerce_image,
    coerce_nested,
    convert,
    derive,
    ordered,
)
from sdxl_nb.analysis.scores_file import join_scores
from sdxl_nb.analysis.sources import LineProblem, gc_paused, iter_chunks, log_paths

_NO_IMAGE = ({},)  # a job without images still gets one row, its image fields empty
# Schema 1 records hold all of these; seeds and images are read only to know that.
_TOP_KEYS = [key for _column, key, _kind in JOB_FIELDS] + list(NESTED_FIELDS) + ["seeds", "images"]
_IMAGE_KEYS = [key for key, _column, _kind in IMAGE_FIELDS]
_IMAGE_COMMON = 4  # index, seed, path, sha256: every image and frame has them; frames add prompt and t


def _read(items: list, keys: list[str], coerce, known: frozenset | set) -> tuple[dict[str, tuple], list[str], list]:
    """One tuple of values per key, the unknown keys present, and the items (as dicts).

    The fast path reads every key of every item in C (itemgetter); an item missing a key or not a
    dict sends the chunk down the slow path, which tolerates both. After a fast path every item
    holds all `keys`, so only items with more keys than that can hold unknown ones.
    """
    if not items:
        return {key: () for key in keys}, [], items
    try:
        rows = list(map(itemgetter(*keys), items))
    except (KeyError, TypeError, IndexError):
        items = [d if d.__class__ is dict else coerce(d) for d in items]
        columns = {key: tuple([d.get(key) for d in items]) for key in keys}
        odd = items
    else:
        columns = dict(zip(keys, zip(*rows, strict=True), strict=True))
        odd = [d for d in items if len(d) != len(keys)]
    return columns, sorted(set().union(*odd) - known, key=str), items


class _Builder:
    """Accumulates Python columns chunk by chunk; `frame()` types them and expands jobs to image rows."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {column: kind for column, _key, kind in JOB_FIELDS}
        for _key, (_prefix, fields, _skipped) in NESTED_FIELDS.items():
            self.kinds.update({column: kind for _sub, column, kind in fields})
        # Low-cardinality text is encoded as it arrives: no million copies of "float16" kept alive.
        self.job: dict[str, list | Codes] = {column: Codes(extract_id=kind == "vae") if kind in ("cat", "vae") else []
                                             for column, kind in self.kinds.items()}
        self.image: dict[str, list] = {column: [] for _key, column, _kind in IMAGE_FIELDS}
        self.job_extra: dict[str, list] = {}  # keys this version does not know: kept as they are
        self.image_extra: dict[str, list] = {}
        self.logs: list[str] = []
        self.log_index: list[int] = []
        self.lines: list[int] = []
        self.rows_per_job: list[int] = []
        self.n_images: list[int] = []

    @property
    def n_jobs(self) -> int:
        return len(self.lines)

    def add(self, log_number: int, prefix: str, numbers: list[int], records: list[dict]) -> None:
        count, offset = len(records), self.n_jobs
        touched: set[str] = set()
        values, unknown, records = _read(records, _TOP_KEYS, dict, KNOWN_TOP_KEYS)
        for column, key, _kind in JOB_FIELDS:
            self.job[column].extend(values[key])
        for key in unknown:
            self._extend(self.job_extra, key, [r.get(key) for r in records], offset, touched)
        for key, (prefix_name, fields, skipped) in NESTED_FIELDS.items():
            subs = [sub for sub, _column, _kind in fields]
            nested, unknown, dicts = _read(values[key], subs + sorted(skipped),
                                           lambda d, key=key: coerce_nested(key, d), set(subs) | skipped)
            for sub, column, _kind in fields:
                self.job[column].extend(nested[sub])
            for sub in unknown:
                self._extend(self.job_extra, f"{prefix_name}_{sub}", [d.get(sub) for d in dicts], offset, touched)
        self._pad(self.job_extra, touched, count)

        # Animations list their frames; every other mode its images.
        items = [r.get("frames") or r.get("images") for r in records]
        items = [x if x.__class__ is list and x else _NO_IMAGE for x in items]
        self.rows_per_job.extend(map(len, items))
        self.n_images.extend([0 if x is _NO_IMAGE else len(x) for x in items])
        row_offset = len(self.image["image_index"])
        common, unknown, flat = _read(list(chain.from_iterable(items)), _IMAGE_KEYS[:_IMAGE_COMMON], coerce_image,
                                      KNOWN_IMAGE_KEYS)
        common.update({key: tuple([d.get(key) for d in flat]) for key in _IMAGE_KEYS[_IMAGE_COMMON:]})
        for key, column, _kind in IMAGE_FIELDS:
            column_values = common[key]
            if key == "path":  # absolute, resolved against the log's folder
                column_values = [(p if p[:1] == os.sep else prefix + p) if p.__class__ is str else None
                                 for p in column_values]
            self.image[column].extend(column_values)
        image_touched: set[str] = set()
        for key in unknown:
            self._extend(self.image_extra, f"image_{key}", [d.get(key) for d in flat], row_offset, image_touched)
        self._pad(self.image_extra, image_touched, len(flat))

        self.log_index.extend([log_number] * count)
        self.lines.extend(numbers)

    @staticmethod
    def _extend(store: dict[str, list], column: str, values: list, offset: int, touched: set[str]) -> None:
        if column not in store:
            store[column] = [None] * offset
        store[column].extend(values)
        touched.add(column)

    @staticmethod
    def _pad(store: dict[str, list], touched: set[str], count: int) -> None:
        for column, values in store.items():
            if column not in touched:
                values.extend([None] * count)

    def frame(self, problems: list[LineProblem]) -> pd.DataFrame:
        rows_per_job = np.asarray(self.rows_per_job, dtype=np.int64)
        row_job = np.repeat(np.arange(self.n_jobs, dtype=np.int64), rows_per_job)
        expand = (lambda a: a) if len(row_job) == self.n_jobs else (lambda a: a.take(row_job))
        image_kinds = {column: kind for _key, column, kind in IMAGE_FIELDS}

        columns: dict[str, object] = {"job": row_job}
        columns["log"] = expand(pd.Categorical.from_codes(np.asarray(self.log_index, dtype=np.int32),
                                                          categories=pd.Index(self.logs)))
        columns["line"] = expand(np.asarray(self.lines, dtype=np.int64))
        job_typed = {column: convert(values, self.kinds[column]) for column, values in self.job.items()}
        job_typed.update({column: convert(values, "auto") for column, values in self.job_extra.items()})
        for column in ("started_at", "finished_at"):
            self._report_bad_times(job_typed[column], self.job[column], column, problems)
        job_typed["n_images"] = np.asarray(self.n_images, dtype=np.int64)
        job_typed.update(derive(job_typed))
        columns.update({column: expand(values) for column, values in job_typed.items()})
        columns.update({column: convert(values, image_kinds[column]) for column, values in self.image.items()})
        columns.update({column: convert(values, "auto") for column, values in self.image_extra.items()})
        return pd.DataFrame(ordered(columns), copy=False)

    def _report_bad_times(self, parsed, raw: list, column: str, problems: list[LineProblem]) -> None:
        given = np.fromiter((value is not None for value in raw), dtype=bool, count=len(raw))
        for job in np.flatnonzero(pd.isna(parsed) & given):
            problems.append(LineProblem(self.logs[self.log_index[job]], self.lines[job],
                                        f"{column} {raw[job]!r} is not an ISO 8601 time; loaded as missing (NaT)"))


def load_jobs(*sources: str | os.PathLike) -> pd.DataFrame:
    """Load jobs.log files (or output folders holding one) into a DataFrame, one row per image.

    Job fields are flattened beside image fields (`model_id`, `scheduler_name`, `timings_generate_s`,
    `env_torch`, ...); `image_path` is absolute. A job without images (a failure) still has one row,
    its image fields missing; an animation has one row per frame. Lines that cannot be read (torn,
    corrupt, not an object) are skipped and listed in ``df.attrs["problems"]`` as dicts with `file`,
    `line` and `reason` (see `load_problems`); they never stop the load. Keys this version does not
    know are kept as columns; records of older schemas load with their missing fields empty. Where a
    folder holds a scores.jsonl (`score`), each scorer adds a column (`clip_score`, `aesthetic_score`).
    """
    builder = _Builder()
    problems: list[LineProblem] = []
    paths = log_paths(sources)
    with gc_paused():
        for number, path in enumerate(paths):
            builder.logs.append(str(path))
            prefix = str(path.parent) + os.sep
            for numbers, records in iter_chunks(path, problems):
                builder.add(number, prefix, numbers, records)
        frame = builder.frame(problems)
    frame = join_scores(frame, [path.parent for path in paths], problems)
    frame.attrs["sources"] = [str(path) for path in paths]
    frame.attrs["problems"] = [problem.as_dict() for problem in problems]
    return frame


def load_problems(frame: pd.DataFrame) -> pd.DataFrame:
    """The lines `load_jobs` skipped or could only partly read: file, line, reason."""
    return pd.DataFrame(frame.attrs.get("problems", []), columns=["file", "line", "reason"])
