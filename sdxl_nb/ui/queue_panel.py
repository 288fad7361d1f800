"""Queue panel: every kind of job of the kernel's queue, oldest first; Cancel while waiting, Stop while running."""

from __future__ import annotations

import html

import ipywidgets as w

from sdxl_nb.jobs.queue import JobQueue, get_queue
from sdxl_nb.ui.widgets import Panel, button, column

SHOWN_FINISHED = 10
_BADGES = {"queued": "#6c757d", "running": "#b8860b", "ok": "#2e7d32", "interrupted": "#ef6c00",
           "failed": "#c62828", "cancelled": "#6c757d", "held": "#ef6c00"}


class QueuePanel(Panel):
    def __init__(self, queue: JobQueue | None = None):
        self.queue = queue or get_queue()
        self.rows = w.VBox()
        self.rows.add_class("sdxl-queue")
        self.running_text = w.Label()
        self._refresh()
        self.queue.subscribe(self._on_event)
        self.widget = column([w.HTML(f"<b>Jobs</b> (running and waiting ones, then the last {SHOWN_FINISHED} "
                                     "finished; oldest first in each)"),
                              self.running_text, self.rows])
        self.widget.add_class("sdxl-queue-panel")

    def cancel(self, job_id: int) -> bool:
        return self.queue.cancel(job_id)

    def row_labels(self) -> list[str]:
        """Text of each row, in display order (what the view shows; used by tests and scripts)."""
        return [row.children[0].value for row in self.rows.children]

    def _refresh(self) -> None:
        jobs = self.queue.jobs()
        active = [j for j in jobs if not j.done]
        finished = [j for j in jobs if j.done][-SHOWN_FINISHED:]
        self.rows.children = tuple(self._row(job) for job in active + finished)
        running = self.queue.running()
        if running is None:
            self.running_text.value = ""

    def _row(self, job) -> w.HBox:
        colour = _BADGES.get(job.status, "#6c757d")
        text = (f"<span style='color:{colour};font-weight:bold'>{job.status}</span> #{job.id} [{job.kind}] "
                f"{html.escape(job.label)}" + (f" — {html.escape(job.error)}" if job.error else ""))
        label = w.HTML(text)
        if job.status == "queued":
            return w.HBox([label, button("Cancel", lambda job_id=job.id: self.cancel(job_id), "warning")])
        if job.status == "running" and job.kind != "load":  # a load cannot stop half-way
            return w.HBox([label, button("Stop", lambda job_id=job.id: self.queue.stop(job_id), "danger")])
        return w.HBox([label])

    def _on_event(self, event: dict) -> None:
        if event["type"] in ("queued", "started", "finished", "cancelled"):
            self._refresh()
        elif event["type"] == "progress":
            self.running_text.value = f"#{event['job_id']}: {event['text']}"
