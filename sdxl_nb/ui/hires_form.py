"""The Generate tab's hires fix fields: on/off, scale, steps, denoise, upscaler (txt2img only, as in A1111)."""

from __future__ import annotations

import ipywidgets as w

from sdxl_nb.config.hires import DEFAULT_DENOISE
from sdxl_nb.config.upscalers import DEFAULT_UPSCALER, list_upscalers
from sdxl_nb.ui.widgets import lines_html

NUMBER = dict(width="160px")


class HiresFields:
    """Widgets for GenerationRequest's hires_* fields; the rules (ranges, sizes) are resolve()'s."""

    def __init__(self):
        self.enabled = w.Checkbox(value=False, description="Hires fix", indent=False, layout=w.Layout(width="auto"))
        # Plain number boxes: a bounded box would clamp silently; resolve() names the accepted range instead.
        self.scale = w.FloatText(value=2.0, description="Upscale by", layout=w.Layout(**NUMBER))
        # A1111's "Resize width/height to": 0 and 0 use the scale; one 0 keeps the first pass's aspect ratio.
        self.resize_width = w.IntText(value=0, description="Resize to W", layout=w.Layout(**NUMBER))
        self.resize_height = w.IntText(value=0, description="H", layout=w.Layout(**NUMBER))
        self.steps = w.IntText(value=0, description="Hires steps", layout=w.Layout(**NUMBER),
                               tooltip="0: the first pass's steps")
        self.denoise = w.FloatText(value=DEFAULT_DENOISE, description="Denoise", layout=w.Layout(**NUMBER))
        self.upscaler = w.Dropdown(description="Upscaler", layout=w.Layout(width="300px"))
        self.notes = w.HTML()  # upscaler files that cannot be used, and names two files share
        self.refresh()
        self.settings = w.VBox([w.HBox([self.scale, self.steps, self.denoise, self.upscaler]),
                                w.HBox([self.resize_width, self.resize_height]), self.notes])
        self.widget = w.VBox([self.enabled, self.settings])
        self.enabled.add_class("sdxl-hires")
        self.enabled.observe(lambda _c: self._on_enabled(), "value")
        self._show()

    def refresh(self) -> None:
        """List the upscalers again (a model file may have been added to SDXL_NB_UPSCALERS); keep the choice."""
        chosen = self.upscaler.value
        rows = list_upscalers()
        names = [row["name"] for row in rows if row["usable"]]  # an unusable file is named below, not offered
        self.upscaler.options = names
        self.upscaler.value = chosen if chosen in names else DEFAULT_UPSCALER
        lines = [f"✗ {row['name']} (unusable: {row['problem']})" for row in rows if not row["usable"]]
        self.notes.value = lines_html(lines + [row["clash"] for row in rows if row["clash"]])

    def _on_enabled(self) -> None:
        if self.enabled.value:
            self.refresh()  # model files added since the lab opened are listed when the fix is turned on
        self._show()

    def _show(self) -> None:
        self.settings.layout.display = None if self.enabled.value else "none"

    def summary(self) -> str | None:
        """The section title's account of the pass ("2x, 4 steps"), None when off."""
        if not self.enabled.value:
            return None
        resize = (self.resize_width.value, self.resize_height.value)
        size = f"to {resize[0]}x{resize[1]}" if any(resize) else f"{self.scale.value:g}x"
        steps = f"{self.steps.value} steps" if self.steps.value else "the first pass's steps"
        return f"{size}, {steps}, denoise {self.denoise.value:g}"

    def watched(self) -> tuple[w.Widget, ...]:
        """The widgets whose change changes the summary or the fields."""
        return (self.enabled, self.scale, self.resize_width, self.resize_height, self.steps, self.denoise,
                self.upscaler)

    def fields(self) -> dict:
        """The request's hires_* fields (empty when off)."""
        if not self.enabled.value:
            return {}
        resize = (self.resize_width.value, self.resize_height.value)
        size = dict(hires_resize=resize) if any(resize) else dict(hires_scale=self.scale.value)
        return dict(**size, hires_steps=self.steps.value or None, hires_denoise=self.denoise.value,
                    hires_upscaler=self.upscaler.value)

    def load(self, fields: dict) -> list[str]:
        """Fill from request fields (a reused record or PNG); returns what could not be loaded."""
        resize = fields.get("hires_resize")
        if fields.get("hires_scale") is None and resize is None:
            self.enabled.value = False
            return []
        self.enabled.value = True
        if fields.get("hires_scale") is not None:
            self.scale.value = float(fields["hires_scale"])
        self.resize_width.value, self.resize_height.value = (int(side) for side in resize) if resize else (0, 0)
        self.steps.value = int(fields.get("hires_steps") or 0)
        if fields.get("hires_denoise") is not None:
            self.denoise.value = float(fields["hires_denoise"])
        name = fields.get("hires_upscaler") or DEFAULT_UPSCALER
        if name in self.upscaler.options:
            self.upscaler.value = name
            return []
        return [f"upscaler {name!r} is not one of this lab's upscalers (kept {self.upscaler.value})"]
