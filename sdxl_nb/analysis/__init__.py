"""jobs.log analysis in pandas (loading, summaries, scores, comparisons, plots, export); torch only when scoring."""

from sdxl_nb.analysis.exporting import export
from sdxl_nb.analysis.frame import load_jobs, load_problems
from sdxl_nb.analysis.paired import PairedComparison, bootstrap_ci, compare, rank, sweep_grid
from sdxl_nb.analysis.scoring import ScoreRun, score
from sdxl_nb.analysis.sets import cmmd, fid_kid
from sdxl_nb.analysis.sources import LineProblem, LoggedRecord, read_logged_records
from sdxl_nb.analysis.summaries import duplicate_settings, job_rows, search_prompts, summarize

_PLOTS = ("step_time_plot", "peak_memory_plot", "jobs_over_time_plot", "thumbnail_grid", "paired_plot")


def __getattr__(name: str):
    # matplotlib loads only when a plot is asked for.
    if name in _PLOTS:
        from sdxl_nb.analysis import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LineProblem", "LoggedRecord", "PairedComparison", "ScoreRun", "bootstrap_ci", "cmmd", "compare",
           "duplicate_settings", "export", "fid_kid", "job_rows", "load_jobs", "load_problems", "rank",
           "read_logged_records", "score", "search_prompts", "summarize", "sweep_grid", *_PLOTS]
