"""matplotlib views of the image table (headless-safe: Figures, never pyplot's global state)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from sdxl_nb.analysis.summaries import GIB, job_rows
from sdxl_nb.errors import InputError

STATUS_COLOURS = {"ok": "#4c9f70", "interrupted": "#e0a23b", "failed": "#c8553d"}


def _axes(ax: Axes | None, size=(6.4, 4.2)) -> Axes:
    if ax is not None:
        return ax
    figure = Figure(figsize=size, layout="constrained")
    return figure.add_subplot()


def _no_data(ax: Axes, what: str) -> Axes:
    ax.text(0.5, 0.5, f"no {what} to plot", ha="center", va="center", transform=ax.transAxes, color="grey")
    return ax


def _scatter_by(ax: Axes, jobs: pd.DataFrame, x: np.ndarray, y: np.ndarray, by: str) -> None:
    labels = jobs[by].astype(object).fillna("(unknown)").to_numpy()
    for label in sorted(set(labels), key=str):
        chosen = labels == label
        ax.scatter(x[chosen], y[chosen], s=18, alpha=0.75, label=str(label))
    ax.legend(fontsize="small", title=by, loc="best")
    ax.grid(alpha=0.3)


def step_time_plot(frame: pd.DataFrame, ax: Axes | None = None, by: str = "model_id") -> Axes:
    """Seconds per denoising step (per image) against megapixels, one colour per model."""
    ax = _axes(ax)
    jobs = job_rows(frame)
    jobs = jobs[(jobs["status"].astype(object) == "ok") & jobs["s_per_step"].notna() & jobs["megapixels"].notna()]
    ax.set(xlabel="megapixels per image", ylabel="seconds per step per image", title="Step time by size")
    if jobs.empty:
        return _no_data(ax, "finished jobs with timings")
    _scatter_by(ax, jobs, jobs["megapixels"].to_numpy(), jobs["s_per_step"].to_numpy(), by)
    return ax


def peak_memory_plot(frame: pd.DataFrame, ax: Axes | None = None, by: str = "model_id") -> Axes:
    """Peak memory (GiB) against pixels x images per pipeline call: what a memory estimate is fitted on."""
    ax = _axes(ax)
    jobs = job_rows(frame)
    jobs = jobs[jobs["peak_memory_bytes"].notna() & jobs["width"].notna() & jobs["height"].notna()]
    ax.set(xlabel="megapixels x images per call", ylabel="peak memory (GiB)", title="Peak memory by load")
    if jobs.empty:
        return _no_data(ax, "jobs with a peak memory")
    per_call = jobs["chunk_size"].fillna(jobs["batch"]).fillna(1).astype("float64").to_numpy()
    load = (jobs["width"].astype("float64") * jobs["height"].astype("float64")).to_numpy() * per_call / 1e6
    _scatter_by(ax, jobs, load, jobs["peak_memory_bytes"].astype("float64").to_numpy() / GIB, by)
    return ax


def jobs_over_time_plot(frame: pd.DataFrame, ax: Axes | None = None, freq: str = "D") -> Axes:
    """Jobs started per period (`freq`: a pandas period frequency such as "h", "D", "W", "M"), by status."""
    ax = _axes(ax, size=(8, 3.6))
    jobs = job_rows(frame)
    jobs = jobs[jobs["started_at"].notna()]
    ax.set(ylabel="jobs", title=f"Jobs per period ({freq})")
    if jobs.empty:
        return _no_data(ax, "jobs with a start time")
    try:
        periods = jobs["started_at"].dt.tz_localize(None).dt.to_period(freq)
    except ValueError:
        raise InputError(f"freq {freq!r} is not a pandas period frequency; accepted: e.g. h, D, W, M") from None
    first = periods.iloc[0]
    width = ((first + 1).start_time - first.start_time) * 0.8
    counts = pd.crosstab(periods.dt.start_time, jobs["status"].astype(object).fillna("(unknown)"))
    bottom = np.zeros(len(counts))
    for status in counts.columns:
        ax.bar(counts.index, counts[status].to_numpy(), width=width, bottom=bottom, label=status,
               color=STATUS_COLOURS.get(status), align="edge")
        bottom += counts[status].to_numpy()
    ax.legend(fontsize="small")
    ax.figure.autofmt_xdate()
    return ax


def thumbnail_grid(rows: pd.DataFrame, columns: int = 6, cell_inches: float = 1.8, limit: int = 48,
                   caption: str = "seed") -> Figure:
    """The images of any selection of rows in a grid, captioned (a missing file is shown as missing)."""
    rows = rows[rows["image_path"].notna()]
    shown = rows.head(limit)
    count = max(len(shown), 1)
    columns = max(1, min(columns, count))
    lines = math.ceil(count / columns)
    figure = Figure(figsize=(columns * cell_inches, lines * (cell_inches + 0.25)), layout="constrained")
    axes = figure.subplots(lines, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    if shown.empty:
        axes.flat[0].text(0.5, 0.5, "no images in this selection", ha="center", va="center")
    for ax, (_, row) in zip(axes.flat, shown.iterrows(), strict=False):
        try:
            with Image.open(row["image_path"]) as image:
                image.thumbnail((256, 256))
                ax.imshow(np.asarray(image.convert("RGB")))
            label = f"{caption} {row[caption]}" if caption in row.index else ""
        except (OSError, ValueError):
            ax.text(0.5, 0.5, "missing", ha="center", va="center", color="#c8553d")
            label = str(row["image_path"]).rsplit("/", 1)[-1][:24]
        ax.set_title(label, fontsize=8)
    if len(rows) > len(shown):
        figure.suptitle(f"first {len(shown)} of {len(rows)} images", fontsize=9)
    return figure


def paired_plot(comparison, ax: Axes | None = None) -> Axes:
    """A paired comparison: each pair's difference (dots) per compared value, its mean and bootstrap interval."""
    ax = _axes(ax)
    pairs, summary, by = comparison.pairs, comparison.summary, comparison.by
    ax.set(xlabel=f"{by} (against {comparison.baseline})",
           ylabel=f"{comparison.metric} difference per pair", title=f"Paired by {', '.join(comparison.pair_on)}")
    if pairs.empty:
        return _no_data(ax, "pairs")
    positions = np.arange(len(summary))
    for position, level in zip(positions, summary[by], strict=True):
        diffs = pairs.loc[pairs[by] == level, "diff"].to_numpy()
        jitter = np.linspace(-0.12, 0.12, len(diffs)) if len(diffs) > 1 else np.zeros(1)
        ax.scatter(position + jitter, diffs, s=14, alpha=0.6, color="#4c72b0")
    means = summary["mean_diff"].to_numpy()
    errors = np.vstack([means - summary["ci_low"].to_numpy(), summary["ci_high"].to_numpy() - means])
    ax.errorbar(positions, means, yerr=errors, fmt="D", color="#c8553d", capsize=6,
                label=f"mean, {comparison.confidence:.0%} bootstrap interval")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(positions, [str(level) for level in summary[by]])
    ax.set_xlim(-0.5, len(positions) - 0.5)
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return ax
