"""Collapsible feature groups of a form: one Accordion each, its title saying whether (and how) the group is on."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

ACTIVE = "sdxl-section-active"  # set while the group changes the job (the browser test reads it)


class Section:
    """An Accordion with one body; `summary()` says what the group does to the job now ("2x, 4 steps"), or None
    while it is off. The title is re-derived from that on every change of a watched widget, never kept."""

    def __init__(self, name: str, body: w.Widget, summary: Callable[[], str | None], slug: str | None = None):
        self.name, self.summary = name, summary
        # As wide as the form's column, its 2 px margins inside it: width 100% plus the margins was cut off at the
        # column's right edge (the column hides what overflows).
        self.widget = w.Accordion(children=[body], selected_index=None, layout=w.Layout(width="auto"))
        self.widget.add_class("sdxl-section")
        self.widget.add_class(f"sdxl-section-{slug or name.lower().replace(' ', '-')}")
        self.refresh()

    def watch(self, *widgets: w.Widget, names: str | tuple[str, ...] = "value") -> Section:
        """Re-derive the title whenever one of these widgets changes."""
        for widget in widgets:
            widget.observe(lambda _change: self.refresh(), names)
        return self

    def refresh(self) -> None:
        summary = self.summary()
        self.widget.set_title(0, f"{self.name} · {summary}" if summary else self.name)
        if summary:
            self.widget.add_class(ACTIVE)
        else:
            self.widget.remove_class(ACTIVE)

    @property
    def title(self) -> str:
        return self.widget.get_title(0)

    @property
    def active(self) -> bool:
        return ACTIVE in self.widget._dom_classes

    @property
    def is_open(self) -> bool:
        return self.widget.selected_index == 0

    def open(self, value: bool = True) -> None:
        self.widget.selected_index = 0 if value else None
