"""jobs.log analysis in pandas (loading, summaries, plots); imports pandas and matplotlib, never torch."""

from sdxl_nb.analysis.frame import load_jobs, load_problems
from sdxl_nb.analysis.sources import LineProblem, LoggedRecord, read_logged_records
from sdxl_nb.analysis.summaries import duplicate_settings, job_rows, search_prompts, summarize

_PLOTS = ("step_time_plot", "peak_memory_plot", "jobs_over_time_plot", "thumbnail_grid", "paired_plot")


def __getattr__(name: str):
    # matplotlib loads only when a plot is asked for.
    if name in _PLOTS:
        from sdxl_nb.analysis import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LineProblem", "LoggedRecord", "duplicate_settings", "job_rows", "load_jobs", "load_problems",
           "read_logged_records", "search_prompts", "summarize", *_PLOTS]
