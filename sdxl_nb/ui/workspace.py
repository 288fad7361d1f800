"""A tab's workspace: the form in the left column, what it made in the right one (one of its images large); one
column on narrow screens."""

from __future__ import annotations

import html

import ipywidgets as w

from sdxl_nb.ui.gallery import Gallery, GalleryItem
from sdxl_nb.ui.image_view import VIEW_BOX, clear_image, image_box, show_image
from sdxl_nb.ui.widgets import column, show

# Each column's flex basis: side by side while both fit, else the results wrap below the form; both grow to share
# any width beyond that. Side by side from about 870 px: a notebook's output area in JupyterLab at 1400 px with
# the file browser open is about 915 px wide.
FORM_BASIS = 440
RESULTS_BASIS = 400
GUTTER = 16  # between the columns when side by side
# Rows wrap, and widgets and tables narrow to their column, rather than being cut off at a column's edge (a form
# row, the progress line, a comparison's two sides, a job info's long paths). Text that wraps (a description, a
# status line) at a text's line height, not at an input row's 28 px.
CSS = ("<style>.sdxl-workspace .widget-hbox { flex-wrap: wrap; } "
       ".sdxl-workspace .jupyter-widgets, .sdxl-workspace table { max-width: 100%; } "
       ".sdxl-workspace td { overflow-wrap: anywhere; } "
       ".sdxl-lab .widget-html > .widget-html-content { line-height: 1.45; }</style>")


def workspace(form: list[w.Widget], results: list[w.Widget]) -> w.Box:
    """A wrapping row of two columns: `form` (class sdxl-form-column) and `results` (class sdxl-results)."""
    left = column(form, flex=f"1 1 {FORM_BASIS}px", min_width="0", margin=f"0 {GUTTER}px 0 0")
    left.add_class("sdxl-form-column")
    right = column(results, flex=f"1 1 {RESULTS_BASIS}px", min_width="0")
    right.add_class("sdxl-results")
    style = w.HTML(CSS, layout=w.Layout(display="none"))
    box = w.Box([style, left, right], layout=w.Layout(flex_flow="row wrap", align_items="flex-start",
                                                      width="100%"))
    box.add_class("sdxl-workspace")
    return box


def columns(box: w.Box) -> tuple[w.VBox, w.VBox]:
    """(form column, results column) of a workspace."""
    _style, left, right = box.children
    return left, right


class LargeView:
    """One image of a gallery's batch shown large above its thumbnails (the newest first; a thumbnail's click shows
    that one) and its thumbnail outlined (class sdxl-shown-large)."""

    def __init__(self, gallery: Gallery):
        self.gallery = gallery
        self.image = image_box("sdxl-newest-image")
        self.caption = w.HTML()
        self.widget = column([self.image, self.caption])
        self.widget.add_class("sdxl-newest")
        self.shown: GalleryItem | None = None
        self.clear()

    def clear(self) -> None:
        self.shown = None
        clear_image(self.image)
        self.caption.value = ""
        show(self.widget, False)

    def show_batch(self) -> None:
        """A new batch: its first image large; a single image's cell keeps only its caption and actions."""
        items = self.gallery.items
        if items:
            self.show(items[0])
        for cell in self.gallery.cells.children:
            show(cell.children[0], len(items) > 1)

    def show(self, item: GalleryItem) -> None:
        # Large whatever its size: small images scaled up by a whole factor to about VIEW_BOX, large ones fitted to
        # the column.
        show_image(self.image, item.path.read_bytes(), VIEW_BOX, smallest=VIEW_BOX, fit=True)
        self.shown = item
        self.caption.value = f"<small>{html.escape(item.caption)} · {html.escape(item.path.name)}</small>"
        show(self.widget, True)
        for cell, each in zip(self.gallery.cells.children, self.gallery.items, strict=True):
            if each is item:
                cell.add_class("sdxl-shown-large")
            else:
                cell.remove_class("sdxl-shown-large")
