"""Small widget helpers shared by the panels: coloured status lines, images from PIL, buttons, columns."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w

from sdxl_nb.errors import InputError

# (background, text) colours of the status lines.
COLOURS = {
    "idle": ("#eceff1", "#37474f"),
    "busy": ("#fff3cd", "#6d5200"),  # yellow: loading / working
    "ok": ("#d4edda", "#155724"),  # green: done
    "error": ("#f8d7da", "#721c24"),  # red: one-line reason
    "warning": ("#ffe0b2", "#7a3e00"),  # orange: risky, adjusted, lint
}


def status_html(text: str, kind: str = "idle") -> str:
    background, colour = COLOURS[kind]
    return (f'<div class="sdxl-status sdxl-status-{kind}" style="background:{background};color:{colour};'
            f'padding:4px 8px;border-radius:4px;margin:2px 0">{html.escape(text)}</div>')


def set_status(widget: w.HTML, text: str, kind: str = "idle") -> None:
    widget.value = status_html(text, kind) if text else ""


def lines_html(lines: list[str], kind: str = "warning") -> str:
    return "".join(status_html(line, kind) for line in lines)


def image_widget(image, box: int | None = None) -> w.Image:
    """A PIL image as an ipywidgets Image (PNG bytes, so it renders in every front end), at a sensible size:
    fitted into box x box, small ones scaled up without blur (sdxl_nb.ui.image_view)."""
    from sdxl_nb.ui.image_view import THUMB_BOX, image_box, show_pil

    widget = image_box()
    show_pil(widget, image, box or THUMB_BOX)
    return widget


def optional_number(text: str, name: str, kind: type = int, empty: str = "random") -> int | float | None:
    """A number typed in a text box (empty: None, which means `empty`); other text raises InputError."""
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise InputError(f"{name} must be {expected} (or empty for {empty}), got {text!r}") from None


def labelled_options(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Dropdown options "name — description" -> name."""
    return [(f"{name} — {description}" if description else name, name) for name, description in items]


def button(label: str, on_click: Callable[[], None], style: str = "", tooltip: str = "", **kwargs) -> w.Button:
    b = w.Button(description=label, button_style=style, tooltip=tooltip, **kwargs)
    b.on_click(lambda _b: on_click())
    return b


def column(children: list, **layout) -> w.VBox:
    """A panel's column; full-width children plus their 2 px margins would otherwise add a scrollbar."""
    return w.VBox(children, layout=w.Layout(overflow="hidden", **layout))


def show(widget: w.Widget, visible: bool) -> None:
    widget.layout.display = None if visible else "none"


class Panel:
    """A panel is a view: `.widget` is its root; displaying the panel displays that widget."""

    widget: w.Widget

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

