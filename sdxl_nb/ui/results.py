"""Results of a job: one image large (the newest first), every image of the batch as a thumbnail with its seed and
actions (a click shows it large), the job info, warnings."""

from __future__ import annotations

import ipywidgets as w

from sdxl_nb.record.description import describe
from sdxl_nb.ui.gallery import Gallery, GalleryItem
from sdxl_nb.ui.info_table import rows_table
from sdxl_nb.ui.widgets import column, lines_html
from sdxl_nb.ui.workspace import LargeView

BATCH_THUMB = 160  # a batch thumbnail's longest side (64 px images: 128 px, a whole factor up)


class ResultsView:
    """`on_seed`, `on_reuse`, `on_init`: what the gallery's actions do (see ui.gallery.Gallery)."""

    def __init__(self, **actions):
        self.warnings = w.HTML()
        self.warnings.add_class("sdxl-warnings")
        # The batch as small thumbnails, two or more to a row of the results column: the large view shows one.
        self.images = Gallery(on_pick=self.show_large, thumb_box=BATCH_THUMB, **actions)
        self.gallery = self.images.cells  # the cells, one per image: the thumbnails
        self.gallery.add_class("sdxl-batch")
        self.large = LargeView(self.images)  # the newest image large; a thumbnail's click shows another
        self.info = w.HTML()
        self.info.add_class("sdxl-job-info")
        self.widget = column([self.warnings, self.large.widget, self.images.widget, self.info])

    def clear(self) -> None:
        self.warnings.value = self.info.value = ""
        self.images.clear()
        self.large.clear()

    def show_large(self, item: GalleryItem) -> None:
        self.large.show(item)

    def show_warnings(self, lines: list[str]) -> None:
        self.warnings.value = lines_html(lines, "warning")

    def show_job(self, result, adjustments: list[str]) -> None:
        """A finished (or stopped) job: all its images, what ran, where it was saved."""
        record = result.record
        seeds = [image["seed"] for image in record["images"]]
        items = [GalleryItem(path, f"seed {seed}", seed) for path, seed in zip(result.paths, seeds, strict=True)]
        self.images.show(items)
        self.large.show_batch()
        lines = list(adjustments) + list(record.get("warnings", []))
        if record["status"] == "interrupted":
            lines.insert(0, f"stopped: {len(seeds)} of {record['batch']} image(s) finished and kept")
        self.show_warnings(lines)
        self.info.value = job_info_html(record, [str(path) for path in result.paths])


def job_info_html(record: dict, paths: list[str]) -> str:
    """The job info block: the record's description (every setting, how it went) with the files it saved."""
    rows = [(name, "\n".join(paths) or "(nothing)") if name == "Saved" else (name, value)
            for name, value in describe(record)]
    if paths and "Saved" not in dict(rows):
        rows.append(("Saved", "\n".join(paths)))
    return rows_table(rows)
