"""Description rows as an HTML table (label | value, optionally a status per row); values wrap, never overflow."""

from __future__ import annotations

import html

TABLE_CLASS = "sdxl-info-table"
# Inline as well as by class: the table reads right in any front end, with or without the lab's stylesheet.
_TABLE = "width:100%;max-width:100%;table-layout:auto;border-collapse:collapse;font-size:90%"
_LABEL = "text-align:left;vertical-align:top;padding:1px 12px 1px 0;white-space:nowrap;font-weight:600"
# Long paths, hashes and prompts break anywhere rather than push the table sideways; newlines stay lines.
_VALUE = "vertical-align:top;padding:1px 8px 1px 0;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word"
_STATUS = "vertical-align:top;padding:1px 0;white-space:nowrap"
# A row's status -> its CSS class suffix (sdxl-row-...), so a front end or a test tells them apart, and its colour
# (the status lines' green, orange and red: ui.widgets.COLOURS).
STATUS_CLASSES = {"read": ("read", "#155724"), "not loaded": ("not-loaded", "#7a3e00"),
                  "not read": ("not-read", "#721c24"), "✓ found": ("found", "#155724"),
                  "⚠ other hash": ("other-hash", "#7a3e00"), "✗ missing": ("missing", "#721c24"),
                  "not checked": ("not-checked", "#37474f")}


def rows_table(rows, *, statuses: list[str] | None = None, extra_class: str = "") -> str:
    """The rows [(label, value)] as a two-column table; with `statuses` (one per row), a third column saying
    whether each row was read, not loaded, missing..., and a class per row (sdxl-row-read, sdxl-row-not-loaded...)."""
    body = []
    for index, (name, value) in enumerate(rows):
        status = statuses[index] if statuses else None
        kind, colour = STATUS_CLASSES.get(status, ("other", "#37474f"))
        row_class = f" class='sdxl-row-{kind}'" if status else ""
        cells = (f"<th style='{_LABEL}'>{html.escape(str(name))}</th>"
                 f"<td style='{_VALUE}'>{html.escape(str(value))}</td>")
        if statuses is not None:
            cells += (f"<td style='{_STATUS};color:{colour}' class='sdxl-row-status'>"
                      f"{html.escape(status or '')}</td>")
        body.append(f"<tr{row_class}>{cells}</tr>")
    classes = f"{TABLE_CLASS} {extra_class}".strip()
    return f"<table class='{classes}' style='{_TABLE}'>{''.join(body)}</table>"


def text_block(title: str, text: str, *, open_: bool = True) -> str:
    """Text as stored (A1111 parameters, a workflow), wrapped, under a title that folds it."""
    return (f"<details{' open' if open_ else ''}><summary>{html.escape(title)}</summary>"
            # word-break:normal: JupyterLab breaks an output's <pre> anywhere ("V ersion"); words stay whole here
            f"<pre style='white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;font-size:85%;margin:2px 0'>"
            f"{html.escape(text)}</pre></details>")
