"""PNG Info: read any PNG's generation parameters (ours, A1111's, ComfyUI's) and load them into a tab's form."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as w

from sdxl_nb.errors import InputError, one_line
from sdxl_nb.record.description import describe, field_rows, field_value
from sdxl_nb.record.field_labels import label
from sdxl_nb.record.png_inputs import local_inputs
from sdxl_nb.record.png_params import PngParameters, read_png_parameters
from sdxl_nb.record.png_text import read_png_file
from sdxl_nb.ui.image_view import THUMB_BOX, clear_image, css, image_box, show_image
from sdxl_nb.ui.info_table import rows_table, text_block
from sdxl_nb.ui.widgets import Panel, button, column, set_status

TARGETS = ("Generate", "Animate", "Sweep")
CHECK_NOTES = {"found": "✓ found", "other hash": "⚠ other hash", "missing": "✗ missing", "not checked": "not checked"}


class PngInfoPanel(Panel):
    """`lab` (optional) receives `load_into(tab, fields)`; without it only reading is offered."""

    def __init__(self, lab=None):
        self.lab = lab
        self.upload = w.FileUpload(accept=".png,image/png", multiple=False, description="Choose a PNG",
                                   layout=w.Layout(width="auto"))
        self.path = w.Text(description="or a path", placeholder="a PNG on this machine, e.g. output_images/…png",
                           layout=w.Layout(width="60%"))
        self.read_button = button("Read", self.read_path, "", "read the PNG at this path")
        self.status = w.HTML()
        self.status.add_class("sdxl-png-info-status")
        self.thumb = image_box("sdxl-png-info-image")
        # Beside the thumbnail it takes the rest of the row and no more: long values wrap inside it.
        self.table = w.HTML(layout=w.Layout(flex="1 1 0%", min_width="0", max_width="100%"))
        self.table.add_class("sdxl-png-info")
        self.load_buttons = [button(f"Load into {tab}", lambda tab=tab: self.load_into(tab), "info" if tab ==
                                    "Generate" else "", f"fill the {tab} form with the fields that map")
                             for tab in TARGETS]
        for b, tab in zip(self.load_buttons, TARGETS, strict=True):
            b.add_class(f"sdxl-load-{tab.lower()}")
        self.params: PngParameters | None = None
        self.upload.observe(lambda _c: self._read_upload(), "value")
        self._show(None)
        self.widget = column([
            css(), w.HTML("<small>Reads what made an image: this lab's record, A1111's <code>parameters</code> or "
                          "ComfyUI's workflow. Fields that map (prompt, negative, steps, sampler, cfg, seed, size, "
                          "model) load into a form; the rest is listed.</small>"),
            w.HBox([self.upload, self.path, self.read_button]), self.status,
            w.HBox([self.thumb, self.table], layout=w.Layout(align_items="flex-start")),
            w.HBox(self.load_buttons),
        ])
        self.widget.add_class("sdxl-png-info-panel")

    # ---- reading ----
    def read(self, data: bytes, name: str) -> PngParameters | None:
        """Show a PNG's parameters; what cannot be read is one line each (the rest still shows), never a
        traceback: every reader below is bounded and says InputError for what it refuses."""
        from PIL.Image import DecompressionBombError

        try:
            params = read_png_parameters(data)
        except InputError as exc:
            self._show(None)
            set_status(self.status, f"{name}: {one_line(exc)}", "error")
            return None
        problems = list(params.problems)
        try:
            show_image(self.thumb, data, THUMB_BOX)
        except (OSError, ValueError, SyntaxError, DecompressionBombError) as exc:  # the text read; the pixels not
            clear_image(self.thumb)
            problems.append(f"not read: the picture itself ({one_line(exc)})")
        self._show(params, problems)
        said = f"; {len(problems)} thing(s) not read, listed below" if problems else ""
        set_status(self.status, f"{name}: parameters written by {params.source}{said}", "warning" if said else "ok")
        return params

    def read_path(self) -> PngParameters | None:
        path = Path(self.path.value.strip()).expanduser()
        if not path.exists():
            set_status(self.status, f"no file at {path}", "error")
            return None
        try:
            data = read_png_file(path)  # a regular file within the size cap, or one line
        except InputError as exc:
            self._show(None)
            set_status(self.status, one_line(exc), "error")
            return None
        return self.read(data, path.name)

    def _read_upload(self) -> None:
        if self.upload.value:
            item = self.upload.value[0]
            self.read(bytes(item["content"]), item["name"])

    def _show(self, params: PngParameters | None, problems: list[str] | None = None) -> None:
        self.params = params
        for b in self.load_buttons:
            b.disabled = params is None or self.lab is None
        if params is None:
            self.table.value = ""
            clear_image(self.thumb)
            return
        # Label | value | status: what loads into a form ("read"), what the PNG says that has no field here ("not
        # loaded", the value saying why), the files it names (found, other hash, missing) and what could not be read.
        rows = [(name, value, "read") for name, value in field_rows(params.fields)]
        rows += [(label(key), shown, "not loaded") for key, value in params.unmapped.items()
                 if (shown := field_value(key, value))]
        rows += [(check.label, check.line, CHECK_NOTES.get(check.status, check.status)) for check in params.checks]
        rows += [("Not read", line.removeprefix("not read: "), "not read") for line in problems or ()]
        body = rows_table([(name, value) for name, value, _status in rows],
                          statuses=[status for _name, _value, status in rows], extra_class="sdxl-png-info-table")
        if params.record is not None:  # our own image: the whole job it came from, every setting named
            body += (f"<details><summary>the job's record</summary>{rows_table(describe(params.record))}"
                     "</details>")
        self.table.value = body + text_block("as stored", params.text, open_=False)

    # ---- loading ----
    def load_into(self, tab: str) -> list[str]:
        """Fill a tab's form with the fields that map; the line says what was not loaded. Input images come
        only from this lab's output folder's inputs/, by the sha256 the record names: a path in a PNG is never
        read (png_inputs)."""
        if self.params is None or self.lab is None:
            return []
        fields, left_out = local_inputs(self.params.fields, self.params.inputs, self.lab.out_dir)
        skipped = left_out + self.lab.load_into(tab, fields)
        said = "; ".join(skipped + [f"{label(key)} not loaded" for key in self.params.unmapped])
        set_status(self.status, f"loaded into {tab}" + (f" ({said})" if said else ""), "warning" if skipped else "ok")
        return skipped
