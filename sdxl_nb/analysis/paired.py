"""Paired comparison of a setting's values on one metric: per-pair differences and a seeded bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdxl_nb.errors import InputError


def bootstrap_ci(values, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `values` (numpy's seeded generator: the same seed gives the
    same interval); (nan, nan) for no values."""
    values = np.asarray(values, dtype=np.float64)
    if not 0 < confidence < 1:
        raise InputError(f"confidence {confidence} is not between 0 and 1; accepted: e.g. 0.95")
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _columns(frame: pd.DataFrame, names: list[str]) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise InputError(f"no column {missing[0]!r} in the frame; accepted: one of its columns, such as cfg, seed, "
                         "steps, scheduler_name, model_id, clip_score")


def _keys(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@dataclass
class PairedComparison:
    """`pairs`: one row per pair (its pair_on values, the baseline's and the other value's metric, `diff` = other -
    baseline); `summary`: per compared value, the pairs, the mean difference and its bootstrap interval."""

    by: str
    pair_on: list[str]
    metric: str
    baseline: object
    confidence: float
    pairs: pd.DataFrame
    summary: pd.DataFrame

    def plot(self, ax=None):
        from sdxl_nb.analysis.plots import paired_plot

        return paired_plot(self, ax=ax)


def compare(frame: pd.DataFrame, by: str = "cfg", pair_on="seed", metric: str = "clip_score", *, baseline=None,
            confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> PairedComparison:
    """Pair images that share `pair_on` (a column or a list) and differ in `by`; each other value of `by` is
    compared with `baseline` (default: the smallest). Several images of one (pair_on, by) are averaged first.
    """
    pair_on = _keys(pair_on)
    _columns(frame, [by, *pair_on, metric])
    rows = frame.dropna(subset=[by, *pair_on, metric])
    if rows.empty:
        raise InputError(f"no image has {metric!r}, {by!r} and {', '.join(pair_on)} all set (score the folder "
                         "first: sdxl-nb score DIR)")
    table = rows.groupby([*pair_on, by], observed=True)[metric].mean().unstack(by)
    levels = sorted(table.columns, key=lambda value: (str(type(value)), value))
    baseline = levels[0] if baseline is None else baseline
    if baseline not in table.columns:
        raise InputError(f"baseline {baseline!r} is not a value of {by!r}; accepted: {', '.join(map(str, levels))}")
    pairs, summary = [], []
    for level in levels:
        if level == baseline:
            continue
        both = table[[baseline, level]].dropna()
        diff = both[level] - both[baseline]
        pairs.append(pd.DataFrame({by: level, "baseline": both[baseline], "value": both[level], "diff": diff})
                     .reset_index())
        low, high = bootstrap_ci(diff.to_numpy(), confidence=confidence, n_boot=n_boot, seed=seed)
        summary.append({by: level, "pairs": len(diff), "mean_diff": float(diff.mean()) if len(diff) else np.nan,
                        "ci_low": low, "ci_high": high})
    if not pairs or not sum(len(p) for p in pairs):
        raise InputError(f"no two images share {', '.join(pair_on)} with different {by!r}; nothing to pair")
    return PairedComparison(by, pair_on, metric, baseline, confidence, pd.concat(pairs, ignore_index=True),
                            pd.DataFrame(summary))


def rank(frame: pd.DataFrame, by="cfg", metric: str = "clip_score", *, ascending: bool = False) -> pd.DataFrame:
    """The values of `by` (a column or a list) ranked by their mean `metric` (best first: highest, unless
    ascending), with the images' count and standard deviation."""
    keys = _keys(by)
    _columns(frame, [*keys, metric])
    rows = frame.dropna(subset=[*keys, metric])
    table = rows.groupby(keys, observed=True)[metric].agg(["mean", "std", "count"])
    table = table.sort_values("mean", ascending=ascending, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index()


def sweep_grid(folder, sweep_id: str | None = None, metric: str = "clip_score", frame: pd.DataFrame | None = None):
    """A sweep's grid (default: the folder's latest sweep) with each cell's `metric` under its image."""
    from sdxl_nb.analysis.frame import load_jobs
    from sdxl_nb.jobs.sweep import rebuild_grid
    from sdxl_nb.record.joblog import JOBS_LOG, read_records

    frame = load_jobs(folder) if frame is None else frame
    _columns(frame, [metric])
    if sweep_id is None:
        sweeps = [r["sweep"]["id"] for r in read_records(f"{folder}/{JOBS_LOG}")
                  if r.get("mode") == "sweep" and isinstance(r.get("sweep"), dict)]
        if not sweeps:
            raise InputError(f"no sweep recorded in {folder}; accepted: an output folder holding a sweep")
        sweep_id = sweeps[-1]
    values = frame.dropna(subset=["job_id", metric]).groupby("job_id")[metric].first()
    return rebuild_grid(folder, sweep_id, {job: f"{metric.removesuffix('_score')} {value:.3g}"
                                           for job, value in values.items()})
