"""Queue panel: every kind of job of the kernel's queue, oldest first; Cancel while waiting, Stop while running."""

from __future__ import annotations

import html

import ipywidgets as w

from sdxl_nb.jobs.queue import JobQueue, get_queue
from sdxl_nb.record.description_values import clip_words
from sdxl_nb.ui.widgets import Panel, button, column

SHOWN_FINISHED = 10
_BADGES = {"queued": "#6c757d", "running": "#b8860b", "ok": "#2e7d32", "interrupted": "#ef6c00",
           "failed": "#c62828", "cancelled": "#6c757d", "held": "#ef6c00"}


PROMPT_CHARS = 60  # a row's prompt is cut at a word boundary past this
BUTTON_WIDTH = "90px"  # Stop and Cancel alike, at the right end of every row: one column of buttons


def _line(children: list) -> w.HBox:
    row = w.HBox(children, layout=w.Layout(width="100%", align_items="center", justify_content="space-between"))
    row.add_class("sdxl-queue-row")
    return row


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
        prompt = f" · “{html.escape(clip_words(job.prompt, PROMPT_CHARS))}”" if job.prompt.strip() else ""
        text = (f"<span style='color:{colour};font-weight:bold'>{job.status}</span> #{job.id} [{job.kind}] "
                f"{html.escape(job.label)}{prompt}" + (f" — {html.escape(job.error)}" if job.error else ""))
        # The whole prompt in the row's tooltip; the line wraps rather than run under the button.
        label = w.HTML(f"<div title='{html.escape(job.prompt, quote=True)}' style='overflow-wrap:anywhere'>{text}"
                       "</div>", layout=w.Layout(flex="1 1 0%", min_width="0"))
        label.add_class("sdxl-queue-label")
        if job.status == "queued":
            action = button("Cancel", lambda job_id=job.id: self.cancel(job_id), "warning")
        elif job.status == "running" and job.kind != "load":  # a load cannot stop half-way
            action = button("Stop", lambda job_id=job.id: self.queue.stop(job_id), "danger")
        else:
            return _line([label])
        action.layout = w.Layout(width=BUTTON_WIDTH, flex="0 0 auto")
        action.add_class("sdxl-queue-action")
        return _line([label, action])

    def _on_event(self, event: dict) -> None:
        if event["type"] in ("queued", "started", "finished", "cancelled"):
            self._refresh()
        elif event["type"] == "progress":
            self.running_text.value = f"#{event['job_id']}: {event['text']}"
