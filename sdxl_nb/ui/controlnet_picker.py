"""ControlNet units in the lab: model, control image, preprocessor, weight, start/end; shows the map before a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ipywidgets as w

from sdxl_nb.request.control_maps import CANNY_DEFAULTS, PREPROCESSORS
from sdxl_nb.ui.thumbnails import Thumbnails
from sdxl_nb.ui.uploads import image_upload
from sdxl_nb.ui.widgets import set_status, show

# Three to a row of the form's column (at 150 px with the default label width, End wrapped alone).
NUMBER = w.Layout(width="130px")
SHORT_LABEL = {"description_width": "56px"}


class ControlUnitRow:
    """One ControlNet unit's widgets; `fields(out_dir)` is the request's dict for it (the image kept under inputs/)."""

    def __init__(self, models: list[str], on_remove: Callable[[ControlUnitRow], None]):
        self.model = w.Dropdown(description="ControlNet", options=models, layout=w.Layout(width="360px"))
        self.upload = image_upload("Control image")
        self.thumb = Thumbnails("control image", "sdxl-thumbs-control").follow(self.upload)
        self.preprocessor = w.Dropdown(description="Type", options=list(PREPROCESSORS), value="canny",
                                       layout=w.Layout(width="200px"))
        # Plain number boxes: resolve() names the accepted range instead of clamping silently.
        self.weight = w.FloatText(value=1.0, description="Weight", layout=NUMBER, style=SHORT_LABEL)
        self.start = w.FloatText(value=0.0, description="Start", layout=NUMBER, style=SHORT_LABEL)
        self.end = w.FloatText(value=1.0, description="End", layout=NUMBER, style=SHORT_LABEL)
        self.low = w.IntText(value=CANNY_DEFAULTS["low_threshold"], description="Low", layout=NUMBER, style=SHORT_LABEL)
        self.high = w.IntText(value=CANNY_DEFAULTS["high_threshold"], description="High", layout=NUMBER, style=SHORT_LABEL)
        self.preview_button = w.Button(description="Show map", icon="eye", tooltip="preprocess the control image now")
        self.remove = w.Button(description="Remove", icon="trash")
        self.preview = w.Image(format="png", layout=w.Layout(max_width="256px", display="none"))
        self.status = w.HTML()
        self.preprocessor.observe(lambda _c: show(self.thresholds, self.preprocessor.value == "canny"), "value")
        self.remove.on_click(lambda _b: on_remove(self))
        self.thresholds = w.HBox([self.low, self.high])
        self.widget = w.VBox([w.HBox([self.model, self.preprocessor, self.remove]),
                              w.HBox([self.upload, self.thumb.widget], layout=w.Layout(align_items="center")),
                              w.HBox([self.weight, self.start, self.end]), self.thresholds,
                              w.HBox([self.preview_button, self.status]), self.preview])
        self.widget.add_class("sdxl-control-unit")
        # A map shown for an earlier image (or other settings) would be stale: it is cleared when they change.
        for widget in (self.upload, self.preprocessor, self.low, self.high):
            widget.observe(lambda _c: self._forget_map(), "value")

    def _forget_map(self) -> None:
        from sdxl_nb.ui.image_view import clear_image

        if self.preview.value:
            clear_image(self.preview)
        self.status.value = ""

    def image_bytes(self) -> bytes | None:
        return bytes(self.upload.value[0]["content"]) if self.upload.value else None

    def settings(self) -> dict:
        if self.preprocessor.value != "canny":
            return {}
        return {"low_threshold": self.low.value, "high_threshold": self.high.value}

    def show_map(self, size: tuple[int, int]):
        """Preprocess the uploaded image at the job's size and show it (the map the job will save); the map or None."""
        from sdxl_nb.errors import InputError, one_line
        from sdxl_nb.request.control_maps import check_preprocessor_settings, control_map, map_png
        from sdxl_nb.request.resolve import decode_image

        data = self.image_bytes()
        if data is None:
            set_status(self.status, "upload a control image first", "error")
            return None
        try:
            decode_image(data, "control image")
            settings = check_preprocessor_settings(self.preprocessor.value, self.settings(), "control map")
            image = control_map(data, self.preprocessor.value, settings, size)
        except InputError as exc:
            set_status(self.status, one_line(exc), "error")
            return None
        self.preview.value = map_png(image)
        self.preview.layout.display = None
        set_status(self.status, f"{self.preprocessor.value} map at {size[0]}x{size[1]}", "ok")
        return image

    def use(self, unit: dict) -> str | None:
        """Fill the row from a request's unit (a reused image); why its control image could not be used, or None."""
        from sdxl_nb.ui.uploads import upload_value

        self.preprocessor.value = unit.get("preprocessor") or "none"
        for widget, key in ((self.weight, "weight"), (self.start, "start"), (self.end, "end"),
                            (self.low, "low_threshold"), (self.high, "high_threshold")):
            if unit.get(key) is not None:
                widget.value = unit[key]
        image = Path(str(unit.get("image") or ""))
        if not image.is_file():
            return f"the control image {image} of ControlNet {self.model.value} is not there any more"
        self.upload.value = upload_value(image)
        return None

    def fields(self, out_dir: Path) -> dict:
        from sdxl_nb.errors import InputError
        from sdxl_nb.request import form

        data = self.image_bytes()
        if data is None:
            raise InputError(f"ControlNet {self.model.value} needs a control image: upload one (or remove the unit)")
        return {"model": self.model.value, "image": str(form.save_upload(data, out_dir, "control image")),
                "preprocessor": self.preprocessor.value, "weight": self.weight.value, "start": self.start.value,
                "end": self.end.value, **self.settings()}


class ControlNetPicker:
    """A thin view over `controlnet_listing` and `control_map`: add units, see each map, read the request's list."""

    def __init__(self, size: Callable[[], tuple[int, int]], listing: Callable[[], list[dict]] | None = None):
        from sdxl_nb.jobs.control_listing import controlnet_listing

        self.size, self.listing = size, listing or controlnet_listing
        self.names: list[str] = []
        self.units: list[ControlUnitRow] = []
        self._listing_line: tuple[str, str] | None = None  # what the last listing found (None: not listed yet)
        self._listeners: list[Callable[[], None]] = []
        self.add = w.Button(description="Add ControlNet", icon="plus")
        self.refresh = w.Button(description="Refresh", icon="refresh", tooltip="look for ControlNets again")
        self.status = w.HTML()
        self.status.add_class("sdxl-controlnet-status")
        self.box = w.VBox()
        self.add.on_click(lambda _b: self.add_unit())
        self.refresh.on_click(lambda _b: self.load())
        self.widget = w.VBox([w.HBox([self.add, self.refresh]), self.status, self.box])
        self.show_status()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever a unit is added or removed or one of its settings changes."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        self.show_status()
        for listener in self._listeners:
            listener()

    def show_status(self) -> None:
        """The line above the units, from the current state only: how many units, then what the listing found."""
        count = len(self.units)
        parts = [f"{count} unit{'' if count == 1 else 's'} added" if count else "no unit: Add ControlNet to use one"]
        kind = "idle"
        if self._listing_line is not None:
            parts.append(self._listing_line[0])
            kind = self._listing_line[1]
        set_status(self.status, " · ".join(parts), kind)

    def summary(self) -> str | None:
        """The section title's account of the units ("canny with tiny-controlnet"), None without any."""
        if not self.units:
            return None
        described = [f"{unit.preprocessor.value} ({unit.model.value})" for unit in self.units]
        return ", ".join(described) if len(described) < 3 else f"{len(described)} units"

    def load(self) -> None:
        """(Re)list the ControlNets (builds the embedded tiny one on first use); a failure is one red line."""
        from sdxl_nb.errors import one_line

        try:
            rows = self.listing()
        except Exception as exc:  # a broken folder must not break the form
            self._listing_line = (f"ControlNets could not be listed: {one_line(exc)}", "error")
            self.show_status()
            return
        # An unusable one (a malformed file) is not offered: the line below names it and why.
        self.names = [row["name"] for row in rows if row.get("usable", True)]
        for unit in self.units:
            chosen = unit.model.value
            unit.model.options = self.names
            unit.model.value = chosen if chosen in self.names else (self.names[0] if self.names else None)
        unusable = [f"✗ {row['name']} (unusable: {row.get('problem')})" for row in rows if not row.get("usable", True)]
        clashes = [row["clash"] for row in rows if row.get("clash")]
        found = f"{len(self.names)} ControlNet model{'' if len(self.names) == 1 else 's'} to choose from"
        self._listing_line = ("; ".join([found, *unusable, *clashes]), "warning" if unusable or clashes else "idle")
        self._changed()

    def add_unit(self) -> ControlUnitRow:
        if not self.names:
            self.load()
        unit = ControlUnitRow(self.names, self.remove_unit)
        unit.preview_button.on_click(lambda _b: unit.show_map(self.size()))
        for widget in (unit.model, unit.preprocessor, unit.upload):
            widget.observe(lambda _c: self._changed(), "value")
        self.units.append(unit)
        self.box.children = [u.widget for u in self.units]
        self._changed()
        return unit

    def remove_unit(self, unit: ControlUnitRow) -> None:
        self.units.remove(unit)
        self.box.children = [u.widget for u in self.units]
        self._changed()

    def use(self, fields: dict) -> list[str]:
        """Replace the units with a request's `controlnets` (a reused image); returns what could not be used, one
        line each (a ControlNet not found here, a control image gone)."""
        for unit in list(self.units):
            self.remove_unit(unit)
        skipped = []
        for unit in fields.get("controlnets") or []:
            if not self.names:
                self.load()
            if unit.get("model") not in self.names:
                skipped.append(f"ControlNet {unit.get('model')} is not found here; its unit was left out")
                continue
            row = self.add_unit()
            row.model.value = unit["model"]
            problem = row.use(unit)
            if problem:
                skipped.append(problem)
        return skipped

    def fields(self, out_dir: Path) -> list[dict] | None:
        """The request's `controlnets` (None without units); InputError when a unit has no image."""
        return [unit.fields(out_dir) for unit in self.units] or None
