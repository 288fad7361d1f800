"""Summaries over the image table: per model/scheduler/style/resolution, prompt search, duplicate settings."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from sdxl_nb.errors import InputError

ALIASES = {"model": "model_id", "scheduler": "scheduler_name", "style": "style_name", "resolution": "resolution",
           "device": "device_name", "mode": "mode"}
# What makes two images the same request: same model build, sampler, exact text, numbers, inputs and
# (for animation frames) the frame's own prompt and position.
SETTINGS = ["mode", "model_id", "model_revision", "scheduler_class", "scheduler_name", "styled_prompt",
            "effective_negative_prompt", "steps", "cfg", "width", "height", "strength", "init_image_sha256",
            "mask_image_sha256", "seed", "frame_prompt", "frame_t"]
GIB = 2**30


def job_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per job (its first image row), for counting jobs rather than images."""
    jobs = frame["job"].to_numpy()
    first = np.ones(len(jobs), dtype=bool)
    first[1:] = jobs[1:] != jobs[:-1]
    return frame[first]


def resolution_labels(frame: pd.DataFrame) -> pd.Series:
    """`WIDTHxHEIGHT` as a categorical (built from the distinct sizes, not row by row)."""
    sizes = frame[["width", "height"]].astype("float64")
    codes, uniques = pd.MultiIndex.from_frame(sizes).factorize()
    labels = [f"{w:.0f}x{h:.0f}" if w == w and h == h else None for w, h in uniques]
    return pd.Series(pd.Categorical(np.asarray(labels, dtype=object)[codes]), index=frame.index, name="resolution")


def _keys(by) -> list[str]:
    names = [by] if isinstance(by, str) else list(by)
    return [ALIASES.get(name, name) for name in names]


def summarize(frame: pd.DataFrame, by: str | list[str] = "model") -> pd.DataFrame:
    """Per group: jobs, images, median generate seconds and seconds per step (finished jobs only),
    median and largest peak memory (GiB), and the share of jobs that failed or were interrupted.

    `by` is a column or a list of them; "model", "scheduler", "style", "resolution", "device" and
    "mode" are accepted as short names.
    """
    keys = _keys(by)
    jobs = job_rows(frame)
    if "resolution" in keys:
        jobs = jobs.assign(resolution=resolution_labels(jobs))
    missing = [key for key in keys if key not in jobs.columns]
    if missing:
        raise InputError(f"cannot group by {missing[0]!r}; accepted: {', '.join(ALIASES)} or any column")
    status = jobs["status"].astype(object)
    finished = (status == "ok").to_numpy()
    memory = jobs["peak_memory_bytes"].astype("float64") / GIB
    table = pd.DataFrame({key: jobs[key] for key in keys})
    table = table.assign(
        images=jobs["n_images"], failed=(status == "failed").astype(float), interrupted=(status == "interrupted").astype(float),
        generate_s=jobs["timings_generate_s"].where(finished), s_per_step=jobs["s_per_step"].where(finished),
        peak_memory_gib=memory)
    grouped = table.groupby(keys, observed=True, dropna=False, sort=False)
    summary = grouped.agg(jobs=("images", "size"), images=("images", "sum"),
                          median_generate_s=("generate_s", "median"), median_s_per_step=("s_per_step", "median"),
                          median_peak_memory_gib=("peak_memory_gib", "median"),
                          max_peak_memory_gib=("peak_memory_gib", "max"),
                          failure_rate=("failed", "mean"), interrupt_rate=("interrupted", "mean"))
    return summary.sort_values("jobs", ascending=False)


def search_prompts(frame: pd.DataFrame, pattern: str, *, regex: bool = False, case: bool = False,
                   fields: tuple[str, ...] = ("prompt", "styled_prompt")) -> pd.DataFrame:
    """Rows whose prompt (or another text field) contains `pattern` (a substring, or a regex if asked)."""
    if regex:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(f"search pattern {pattern!r} is not a valid regular expression ({exc})") from None
    hit = np.zeros(len(frame), dtype=bool)
    for field in fields:
        if field not in frame.columns:
            raise InputError(f"cannot search {field!r}; accepted: a text column such as prompt, styled_prompt, "
                             "negative_prompt, effective_negative_prompt")
        text = frame[field].astype(object).where(frame[field].notna(), "").astype(str)
        hit |= text.str.contains(pattern, case=case, regex=regex).to_numpy(dtype=bool)
    return frame[hit]


def duplicate_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """Images generated more than once with identical settings and seed.

    `duplicate_group` numbers each set; `same_image` says whether all its files have the same hash
    (False points at non-determinism, a different chunking, or a changed file).
    """
    rows = frame[frame["seed"].notna() & frame["image_path"].notna()]
    if rows.empty:
        return rows.assign(duplicate_group=pd.Series(dtype="int64"), same_image=pd.Series(dtype=bool))
    group = rows.groupby(SETTINGS, observed=True, dropna=False, sort=False).ngroup()
    sizes = group.map(group.value_counts())
    duplicates = rows[sizes > 1].assign(duplicate_group=group[sizes > 1])
    same = duplicates.groupby("duplicate_group")["image_sha256"].transform("nunique") == 1
    duplicates = duplicates.assign(same_image=same.to_numpy())
    return duplicates.sort_values(["duplicate_group", "started_at"])
