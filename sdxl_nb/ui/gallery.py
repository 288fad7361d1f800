"""A gallery of saved images with actions: full size, record, compare two, code, reuse settings, img2img/inpaint."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as w

from sdxl_nb.errors import InputError, one_line
from sdxl_nb.record.description import describe, image_settings, row_differences
from sdxl_nb.record.png_inputs import local_inputs
from sdxl_nb.record.png_params import read_png_parameters
from sdxl_nb.ui.image_view import THUMB_BOX, css, image_box, show_image
from sdxl_nb.ui.info_table import rows_table, text_block
from sdxl_nb.ui.widgets import button, set_status

COMPARE_BOX = 384  # each side of a comparison; both are shown at the same size
ACTIONS_WIDTH = 190  # px a cell's widest row of actions needs (img2img, Inpaint, Upscale) without wrapping
@dataclass(frozen=True)
class GalleryItem:
    path: Path  # the saved PNG: its record chunk is what every action reads
    caption: str  # e.g. "seed 11", "frame 3 · seed 13", "cfg=5"
    seed: int | None = None


class Gallery:
    """Cells of images with their actions, over a viewer (full size, record, comparison) and one note line.

    `on_seed(seed)`, `on_reuse(fields)` and `on_init(path, mode)` are what the owner does with an image (fill its
    form, switch tabs); an action without its callback is not shown. `on_pick(item)`, when given, makes each
    thumbnail clickable (e.g. to show that image large). `thumb_box`: a thumbnail's longest side.
    """

    def __init__(self, *, on_seed: Callable[[int], None] | None = None,
                 on_reuse: Callable[[dict], list[str]] | None = None,
                 on_init: Callable[[Path, str], None] | None = None,
                 on_upscale: Callable[[Path], None] | None = None,
                 on_pick: Callable[[GalleryItem], None] | None = None, thumb_box: int = THUMB_BOX):
        self.thumb_box = thumb_box
        self.on_seed, self.on_reuse, self.on_init, self.on_pick = on_seed, on_reuse, on_init, on_pick
        self.on_upscale = on_upscale  # queue an upscale of the image as its own job
        self.items: list[GalleryItem] = []
        self.cells = w.Box(layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
        self.cells.add_class("sdxl-gallery")
        self.viewer = w.VBox(layout=w.Layout(overflow="auto", max_width="100%"))
        self.viewer.add_class("sdxl-viewer")
        self.note = w.HTML()  # what an action just did, or why it could not
        self.note.add_class("sdxl-gallery-note")
        self.picked: GalleryItem | None = None  # the first image of a comparison (kept across jobs)
        self.widget = w.VBox([css(), self.note, self.viewer, self.cells])

    # ---- contents ----
    def show(self, items: list[GalleryItem]) -> None:
        self.items = list(items)
        self.cells.children = tuple(self._pickable(self._cell(item), item) for item in self.items)

    def _pickable(self, cell: w.VBox, item: GalleryItem) -> w.VBox:
        """With on_pick, the cell's image goes under a transparent button that picks it (images take no clicks)."""
        if self.on_pick is not None:
            pick = button("", lambda: self.on_pick(item), "", "show it large", layout=w.Layout(width="auto"))
            pick.add_class("sdxl-show-large")
            thumb = w.Box([cell.children[0], pick])
            thumb.add_class("sdxl-clickable-thumb")
            cell.children = (thumb, *cell.children[1:])
        return cell

    def clear(self) -> None:
        self.items = []
        self.cells.children = ()
        self.close()  # the viewer showed an image of the batch no longer shown
        self._say_picked()  # the note spoke of images no longer shown; a picked image stays picked across jobs

    def _cell(self, item: GalleryItem) -> w.VBox:
        image = image_box()
        show_image(image, item.path.read_bytes(), self.thumb_box)
        # Actions in rows by what they do (look at it, reuse it or its code, make something from it), each row a
        # thumbnail wide: no row wraps to leave one button alone on a line.
        groups = [[("View", "full size", self.view, True), ("Info", "its record and A1111 parameters", self.info, True),
                   ("Compare", "compare with another image, side by side", self.compare, True)],
                  [("Seed", "use its seed in the form", self.reuse_seed, self.on_seed),
                   ("Reuse", "send all its settings to the Generate form", self.reuse, self.on_reuse),
                   ("Code", "its job as a standalone diffusers script (no sdxl_nb) that makes it again", self.code,
                    True)],
                  [("img2img", "use it as the init image for img2img", lambda i: self.init(i, "img2img"),
                    self.on_init),
                   ("Inpaint", "use it as the init image for inpaint (then paint the mask)",
                    lambda i: self.init(i, "inpaint"), self.on_init),
                   ("Upscale", "enlarge it 2x as its own recorded job (the Hires upscaler when it is Lanczos or a "
                    "model, else Lanczos)", self.upscale, self.on_upscale)]]
        rows = []
        for group in groups:
            buttons = [self._action(label, tip, act, item) for label, tip, act, wired in group if wired]
            if buttons:
                row = w.HBox(buttons, layout=w.Layout(flex_flow="row wrap"))
                row.add_class("sdxl-gallery-actions")
                rows.append(row)
        cell = w.VBox([image, w.Label(item.caption), *rows], layout=w.Layout(margin="0 10px 10px 0",
                                                                              max_width=f"{max(self.thumb_box, ACTIONS_WIDTH) + 20}px"))
        cell.add_class("sdxl-gallery-item")
        return cell

    def _action(self, label: str, tooltip: str, act: Callable[[GalleryItem], None], item: GalleryItem) -> w.Button:
        b = button(label, lambda: self._do(act, item), "", tooltip, layout=small())
        b.add_class(f"sdxl-action-{label.lower()}")
        return b

    def _do(self, act: Callable[[GalleryItem], None], item: GalleryItem) -> None:
        try:
            act(item)
        except (InputError, OSError) as exc:  # e.g. the file was moved since
            set_status(self.note, f"{item.caption}: {one_line(exc)}", "error")

    # ---- actions ----
    def view(self, item: GalleryItem) -> None:
        """The image at its own pixel size (the viewer scrolls when it is larger than the page)."""
        image = image_box("sdxl-full-size")
        width, height = show_image(image, item.path.read_bytes(), full_size=True)
        self._open(f"{item.caption} · {width}x{height} px, full size · {item.path.name}", [image])

    def info(self, item: GalleryItem) -> None:
        """Everything that made it (the record's description, or what a foreign PNG says) and the A1111 parameters
        other tools read."""
        params = read_png_parameters(item.path)
        rows = (describe(params.record) if params.record is not None
                else image_settings(None, params.fields, params.unmapped))
        body = rows_table(rows) + text_block("A1111 parameters", params.text)
        body += f"<small style='overflow-wrap:anywhere'>{html.escape(str(item.path))}</small>"
        text = w.HTML(body, layout=w.Layout(max_width="100%"))
        text.add_class("sdxl-info")
        self._open(f"{item.caption}: record", [text])

    def compare(self, item: GalleryItem) -> None:
        """The first click picks an image; the second shows both side by side, with what differs between them."""
        first = self.picked
        if first is None or first.path == item.path:
            self.picked = item
            self._say_picked()
            return
        self.picked = None
        sides = []
        for shown in (first, item):
            image = image_box()
            show_image(image, shown.path.read_bytes(), COMPARE_BOX, smallest=COMPARE_BOX)
            sides.append(w.VBox([image, w.Label(shown.caption)], layout=w.Layout(margin="0 12px 0 0")))
        a, b = (read_png_parameters(shown.path) for shown in (first, item))
        changed = row_differences(*(image_settings(p.record, p.fields, p.unmapped) for p in (a, b)))
        lines = "".join(f"<li>{html.escape(label)}: {html.escape(str(x))} → {html.escape(str(y))}</li>"
                        for label, x, y in changed) or "<li>same settings</li>"
        differences = w.HTML(f"<b>differences</b><ul style='margin:2px 0;overflow-wrap:anywhere'>{lines}</ul>",
                             layout=w.Layout(max_width="100%"))
        differences.add_class("sdxl-differences")
        row = w.HBox(sides, layout=w.Layout(align_items="flex-start"))
        row.add_class("sdxl-compare")
        self._open(f"compare: {first.caption} | {item.caption}", [row, differences])

    def code(self, item: GalleryItem) -> None:
        """Its job as plain diffusers code: in the next notebook cell where the kernel can put it, and shown."""
        from sdxl_nb.codegen import code
        from sdxl_nb.ui.code_view import code_box, to_next_cell

        text = code(item.path)  # a job that cannot be written: its one line in the note (_do)
        where = "in the next cell and below" if to_next_cell(text) else "below"
        self._open(f"{item.caption}: its job as code", code_box(text))
        set_status(self.note, f"{item.caption}: the script that makes it again is {where}", "ok")

    def reuse_seed(self, item: GalleryItem) -> None:
        seed = item.seed if item.seed is not None else read_png_parameters(item.path).fields["seed"]
        self.on_seed(seed)
        set_status(self.note, f"seed {seed} is in the form (random seed off)", "ok")

    def reuse(self, item: GalleryItem) -> None:
        """Its settings into the Generate form. Input images follow PNG Info's Load into Generate rule (png_inputs):
        found by sha256 in the inputs/ of the output folder holding the image, never read from a recorded path."""
        params = read_png_parameters(item.path)
        fields, left_out = local_inputs(params.fields, params.inputs, item.path.parent)
        skipped = left_out + (self.on_reuse(fields) or [])
        said = "; ".join(skipped + list(params.unmapped.values()))
        set_status(self.note, f"{item.caption}: its settings are in the Generate form" + (f" ({said})" if said else ""),
                   "warning" if skipped else "ok")

    def init(self, item: GalleryItem, mode: str) -> None:
        self.on_init(item.path, mode)
        set_status(self.note, f"{item.caption} is the init image for {mode} in the Generate form", "ok")

    def upscale(self, item: GalleryItem) -> None:
        said = self.on_upscale(item.path)
        set_status(self.note, f"{item.caption}: {said or 'upscale queued'}", "ok")

    def _open(self, title: str, parts: list[w.Widget]) -> None:
        close = button("Close", self.close, "", "close this view", icon="times", layout=small())
        close.add_class("sdxl-viewer-close")
        heading = w.HTML(f"<b>{html.escape(title)}</b>")
        self.viewer.children = (w.HBox([heading, close], layout=w.Layout(align_items="center")), *parts)
        self.viewer.layout.border = "1px solid #ccc"
        self.viewer.layout.padding = "6px"
        self._say_picked()

    def _say_picked(self) -> None:
        """The note from the current state: the Compare hint while an image is picked, else nothing."""
        picked = self.picked
        set_status(self.note, f"{picked.caption} picked: press Compare on another image (any job's)" if picked else "")

    def close(self) -> None:
        self.viewer.children = ()
        self.viewer.layout.border = self.viewer.layout.padding = None


def small() -> w.Layout:
    """A compact button's layout (each button its own: a shared Layout would change all of them at once)."""
    return w.Layout(width="auto", height="26px", padding="0 6px", margin="1px", flex="0 0 auto")


class FoldedGallery(Gallery):
    """A gallery folded under a title that counts its images (Animate's frames, Sweep's cells): the grid and the
    animation stay the main view, and each image's actions are one click away."""

    def __init__(self, what: str, **actions):
        super().__init__(**actions)
        self.what = what
        self.fold = w.Accordion(children=[w.VBox([self.note, self.viewer, self.cells])], selected_index=None)
        self.widget = w.VBox([css(), self.fold])
        self.widget.layout.display = "none"  # nothing to fold before the first job

    def show(self, items: list[GalleryItem]) -> None:
        super().show(items)
        self.fold.set_title(0, f"{len(items)} {self.what}: view, info, compare, reuse each")
        self.widget.layout.display = None if items else "none"

    def clear(self) -> None:
        super().clear()
        self.widget.layout.display = "none"


def linked_gallery(what: str, form, actions=None) -> FoldedGallery:
    """A folded gallery whose Seed fills `form`, and whose Reuse / img2img / Inpaint go to `actions` (the lab's
    Generate form) when given."""
    return FoldedGallery(what, on_seed=form.use_seed, on_reuse=actions.reuse if actions else None,
                         on_init=actions.use_init if actions else None)
