"""Helpers for driving the panels headless (no browser, no kernel): a queue per test, form filling, reading."""

import html
import io
import re

from PIL import Image

from sdxl_nb.jobs.queue import JobQueue


def lab_for(engine, out_dir):
    from sdxl_nb.ui import lab

    return lab(out_dir=out_dir, queue=JobQueue(engine=engine, out_dir=out_dir))


def small_form(form, seed=11, batch=1, steps=2, prompt="a lighthouse"):
    form.prompt.value = prompt
    form.resolution.value = "custom"
    form.width.value = form.height.value = 64
    form.steps.value = steps
    form.batch.value = batch
    form.random_seed.value = False
    form.seed.value = seed


def thumbnail(picture):
    """The image widget of a gallery cell's picture (a clickable thumbnail wraps it with its pick button)."""
    return picture.children[0] if hasattr(picture, "children") else picture


def gallery_images(panel):
    """(PIL image, caption) of every gallery cell, decoded from the widgets the front end receives."""
    cells = []
    for cell in panel.results.gallery.children:
        picture, caption = cell.children[:2]  # then the rows of actions
        image_widget = thumbnail(picture)
        assert image_widget.format == "png"
        cells.append((Image.open(io.BytesIO(image_widget.value)), caption.value))
    return cells


def status_kind(html_widget):
    for kind in ("idle", "busy", "ok", "error", "warning"):
        if f"sdxl-status-{kind}" in html_widget.value:
            return kind
    return None


def status_text(html_widget):
    """The words a status line (or any HTML widget) shows, without its markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_widget.value))
