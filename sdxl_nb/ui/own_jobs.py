"""A panel's own queue jobs: queued line, progress bar and line from the queue's events, Stop, failures."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from sdxl_nb.jobs.queue import JobQueue
from sdxl_nb.ui.widgets import button, set_status


class OwnJobs:
    """Follows the events of the jobs `owner` submitted (other panels' jobs share the queue, not these views).

    `on_event(event)` sees each of the owner's events after the common handling; `on_finished(job)` sees
    each job that ended without raising (ok, interrupted, held, or a sweep with failed cells); a job that
    raised is its one red line here.
    """

    def __init__(self, queue: JobQueue, owner: object, message: w.HTML, *,
                 on_event: Callable[[dict], None] | None = None, on_finished: Callable | None = None,
                 stop_tooltip: str = "stop between steps; finished images are kept"):
        self.queue, self.owner, self.message = queue, owner, message
        self.on_event, self.on_finished = on_event, on_finished
        self.current: int | None = None  # the owner's running job
        self.bar = w.FloatProgress(value=0, min=0, max=1, description="Progress")
        self.text = w.Label()
        self.stop_button = button("Stop", self.stop, "danger", stop_tooltip, disabled=True)
        queue.subscribe(self._on_event)

    def queued(self, job, warnings: list[str] = ()) -> None:
        """Say that a job was queued and how many run before it; `warnings` (it runs all the same) in orange."""
        ahead = len(self.queue.pending()) - 1 + (self.queue.running() is not None)
        line = f"queued job #{job.id}" + (f" ({ahead} ahead of it)" if ahead > 0 else "")
        set_status(self.message, "; ".join([line, *warnings]), "warning" if warnings else "idle")

    def stop(self) -> None:
        """Stop the owner's running job between steps (what it finished is kept)."""
        if self.current is not None and self.queue.stop(self.current):
            set_status(self.message, f"stopping job #{self.current} after the current step…", "busy")

    def _on_event(self, event: dict) -> None:
        if event["owner"] is not self.owner:
            return
        kind, job_id = event["type"], event["job_id"]
        if kind == "started":
            self.current = job_id
            self.bar.value = 0
            self.text.value = f"job #{job_id} started"
            self.stop_button.disabled = False
        elif kind == "stage":
            self.text.value = f"job #{job_id}: loading {event['model']} ({event['stage']})"
        elif kind == "progress":
            self.bar.value = event["fraction"]
            self.text.value = f"job #{job_id}: {event['text']}"
        elif kind == "cancelled":
            set_status(self.message, f"job #{job_id} cancelled before it started", "idle")
        elif kind == "finished":
            self.current = None
            self.stop_button.disabled = True
            self.text.value = ended_line(self.queue.get(job_id), job_id)  # no step count or ETA left behind
        if self.on_event:
            self.on_event(event)
        if kind == "finished":
            self._finished(self.queue.get(job_id))

    def _finished(self, job) -> None:
        if job is None:
            return
        if job.error is not None:
            set_status(self.message, f"job #{job.id} failed: {job.error}", "error")
        elif self.on_finished:
            if job.status == "ok":
                self.bar.value = 1
            self.on_finished(job)


def ended_line(job, job_id: int) -> str:
    """The progress line once a job is over: how it ended, where it stopped, how long it ran."""
    if job is None:
        return f"job #{job_id} ended"
    took = f" in {job.finished_at - job.started_at:.1f} s" if job.started_at and job.finished_at else ""
    where = ""
    if job.progress and job.status != "ok":
        where = f" at step {job.progress['step']}/{job.progress['total']}"
        if job.progress.get("chunks", 1) > 1:
            where += f" of chunk {job.progress['chunk']}/{job.progress['chunks']}"
        if "cell" in job.progress:
            where += f" of cell {job.progress['cell']}/{job.progress['cells']}"
    said = {"ok": "done", "interrupted": "stopped", "failed": "failed", "held": "held by the memory pre-check"}
    return f"job #{job.id} {said.get(job.status, job.status)}{where}{took}"
