"""A tab's workspace: the form in the left column, what it made in the right one; one column on narrow screens."""

from __future__ import annotations

import ipywidgets as w

from sdxl_nb.ui.widgets import column

# Each column's flex basis: side by side while both fit, else the results wrap below the form; both grow to share
# any width beyond that. Side by side from about 870 px: a notebook's output area in JupyterLab at 1400 px with
# the file browser open is about 915 px wide.
FORM_BASIS = 440
RESULTS_BASIS = 400
GUTTER = 16  # between the columns when side by side
# Rows wrap, and widgets and tables narrow to their column, rather than being cut off at a column's edge (a form
# row, the progress line, a comparison's two sides, a job info's long paths).
CSS = ("<style>.sdxl-workspace .widget-hbox { flex-wrap: wrap; } "
       ".sdxl-workspace .jupyter-widgets, .sdxl-workspace table { max-width: 100%; } "
       ".sdxl-workspace td { overflow-wrap: anywhere; }</style>")


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
